// Durability (USYNC_FSYNC) of the files and directories a copy writes.  The
// synchronous driver calls these with plain system calls; the io_uring
// driver syncs files through the ring instead (FileCopy's kFsyncDst).
#pragma once

#include <cstddef>
#include <cstdint>

#include "job.h"

namespace usync {

// fsync(fd), retried on EINTR.  Returns 0 or an errno.
int sync_fd(int fd, bool is_dir) noexcept;

// Opens the directory at path (or the parent directory of path when
// parent_of is set: "." for a bare name) and fsyncs it.  0 or an errno.
int sync_dir_path(const char* path, bool parent_of) noexcept;

// USYNC_FSYNC: a pair copy's (or a single file's) new name is durable once
// the directory holding it is synced; a tree's directories are synced when
// they are settled (walker.cc).  Returns 0 or an errno and sets *step.
int sync_pair_parent(const Job& job, const FileTask& t, int* step) noexcept;

// The last step before a written file is published, on its descriptor:
// fsync it (USYNC_FSYNC).  Returns 0 or an errno and sets *step.
int seal_file(const Job& job, int fd, int* step) noexcept;

// Test seams: null in production, set only by tests (before a copy call).
struct TestSeams {
  // Called after each successful fsync of a file or a directory, by either
  // engine (the ring's kFsyncDst completions included).
  void (*on_fsync)(bool is_dir) = nullptr;
};
extern TestSeams test_seams;

}  // namespace usync
