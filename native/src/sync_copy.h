// Copying one regular file with plain system calls: the whole job of the
// synchronous engine, and the bulk path for large files in the io_uring
// engine.  Large files try, in order: a reflink (FICLONE), copy_file_range,
// then read/write; each step falls back on the errors that mean "not here".
#pragma once

#include <cstddef>

#include "job.h"
#include "md5.h"

namespace usync {

// buf: a scratch buffer of bufsize bytes.  md5: non-null to hash while copying
// (forces read/write, since the kernel-side copies never show the data).
FileResult copy_file_sync(const Job& job, const FileTask& t, char* buf, size_t bufsize, Md5* md5) noexcept;

// A worker thread of the synchronous engine: copies files from q until it is
// closed and drained (or the job is cancelled).
void run_sync_worker(Job& job, WorkQueue<FileTask>& q) noexcept;

}  // namespace usync
