// The directory walker: one thread that lists directories with getdents64,
// creates the destination directories, symlinks and special files itself,
// and queues regular files (batched per directory, so that workers spread
// over different directories) for the workers.  Walks depth-first with an
// explicit stack, relative to directory fds (no path length limit), never
// following a symlink where a directory is expected.
#pragma once

#include "job.h"

namespace usync {

// Walks the tree under root (whose fds are open) and queues its files.
// Closes both queues when done.  route_large: send files of
// cfg.large_threshold bytes or more to job.large_q (io_uring engine).
void run_walker(Job& job, Dir* root, bool route_large) noexcept;

// Copies one non-regular, non-directory entry (symlink, FIFO, socket, device)
// from (sfd, name) to (dfd, name).  replace: build it under a temporary name
// and rename over an existing entry.  Returns 0 or an errno and sets *step.
// *wrote (optional) tells whether anything was written (false: the entry
// was already there, as on a re-run).
// dir: the walked directory of the entry (for messages), or null.
// Dry runs: whether copy_special would leave the entry at (dfd, dname) as it
// is (without comparing -o -g -X -A's metadata, which it would put right).
bool special_up_to_date(const Job& job, int sfd, const char* name, const struct stat& st, int dfd,
                        const char* dname) noexcept;

int copy_special(const Job& job, int sfd, const char* name, const struct stat& st, int dfd, const char* dname,
                 bool replace, int* step, bool* wrote = nullptr, const Dir* dir = nullptr) noexcept;

}  // namespace usync
