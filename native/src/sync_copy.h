// Copying one regular file with plain system calls: the whole job of the
// synchronous engine, and the bulk path for large files in the io_uring
// engine.  Large files try, in order: a reflink (FICLONE), copy_file_range,
// then read/write; each step falls back on the errors that mean "not here".
#pragma once

#include <fcntl.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <functional>

#include "durable.h"
#include "job.h"
#include "md5.h"
#include "md5_lanes.h"

namespace usync {

// The kernel-side copy of a large file (t.size bytes as opened): FICLONE,
// then copy_file_range, then (between filesystems, where copy_file_range
// says EXDEV) sendfile, which moves the source's page cache pages into the
// destination with one copy where read and write make two.  cfr and sf are
// parameters so tests can play a filesystem that copies nothing.  Returns 1
// when copied (*done bytes), 0 to fall back to read/write (nothing
// written), -1 on an error (errno set).
using CopyRangeFn = ssize_t (*)(int, loff_t*, int, loff_t*, size_t, unsigned int);
using SendFileFn = ssize_t (*)(int, int, off_t*, size_t);
int copy_in_kernel(const Job& job, const FileTask& t, int in, int out, uint64_t* done,
                   CopyRangeFn cfr = ::copy_file_range, SendFileFn sf = ::sendfile) noexcept;

// buf: a scratch buffer of bufsize bytes.  md5: non-null to hash while copying
// (forces read/write, since the kernel-side copies never show the data).
// With USYNC_VERIFY the file is read back before it is published (read/write
// too); digest: a reusable one for that (null: one is made per file).  With
// USYNC_FSYNC the file is synced before it is published.
//
// would_block non-null asks for the copy only if its source needs no I/O:
// the source is opened with openat2(RESOLVE_CACHED) and its first chunk read
// with preadv2(RWF_NOWAIT) before anything is created in the destination.
// When either would block (or fails in any way: the caller's own attempt
// reports it) *would_block is set and nothing was done; t is then the
// caller's to copy another way.  Files that take the kernel-side or sparse
// paths are declined the same way.
FileResult copy_file_sync(const Job& job, FileTask& t, char* buf, size_t bufsize, Md5* md5,
                          Digest* digest = nullptr, bool* would_block = nullptr) noexcept;

// Gives the complete anonymous (O_TMPFILE) file open at fd its metadata
// (xattrs and ACLs read through src_fd), seals it (USYNC_FSYNC, and with
// digest the read-back of USYNC_VERIFY, buf as scratch), then its name:
// linkat where the name is free, else a temporary name renamed over the old
// file.  Returns 0 or an errno and sets *step.  synced: fd was synced already
// (by the ring), so USYNC_FSYNC has nothing left to do.
int publish_anonymous(const Job& job, const FileTask& t, int src_fd, int fd, const Digest* digest, uint64_t bytes,
                      char* buf, size_t bufsize, int* step, bool synced = false) noexcept;

// Whether err from an O_TMPFILE open means the destination has no anonymous
// files (FUSE, NFS, old filesystems), so temporary names must be used.
inline bool tmpfile_refused(int err) noexcept {
  return err == EOPNOTSUPP || err == EISDIR || err == EINVAL || err == ENOENT;
}

// Whether openat2(RESOLVE_CACHED) and preadv2(RWF_NOWAIT) work here (Linux
// 5.12+); probed once.
bool nowait_reads_supported() noexcept;

// The files of one thread whose MD5 is left to Md5Lanes: each small file's
// bytes are staged as they are copied (start), and the file waits, staged,
// to be finished with its digest (finish) until enough are staged to hash
// them together, or finish_all: which the thread calls before its tasks go
// away and before it waits for anything.  Other files are finished at once.  On a
// CPU without vector lanes (Md5Lanes::lanes() 1), every file is hashed
// and finished at once, as without it.
class StagedFiles {
 public:
  static constexpr size_t kSlots = 32;
  static constexpr size_t kSlotBytes = 16 << 10;

  explicit StagedFiles(bool hashing) noexcept : hashing_(hashing && Md5Lanes::lanes() > 1) {}
  ~StagedFiles();  // gives the thread's arena back; finish_all must have run
  StagedFiles(const StagedFiles&) = delete;
  StagedFiles& operator=(const StagedFiles&) = delete;

  // Starts md5 for t: staged when t looks small enough (its size as
  // walked; a file that has grown is hashed as it is read instead).
  void start(Md5& md5, const FileTask& t) noexcept;
  // Finishes t with r, or holds it for its digest (md5 staged it): t must
  // stay where it is until finish_all.
  void finish(Job& job, FileTask& t, const FileResult& r, const Md5* md5) noexcept;
  void finish_all(Job& job) noexcept;

 private:
  struct File {
    FileTask* t = nullptr;
    FileResult r;
  };
  bool hashing_;
  // For the first small file: this thread's arena (kept across calls) or,
  // when a call further up this thread's stack holds it, one of its own.
  Md5Lanes* lanes_ = nullptr;
  size_t n_ = 0;                     // files staged
  uint32_t lens_[kSlots] = {};
  File files_[kSlots];
};

// The adaptive engine's cheap path: copies t with plain system calls and
// finishes it (counted in files_inline when copied) if its source is all in
// the page cache; false, with nothing done and the miss noted
// (Job::note_probe_miss), where it would wait for the device.  md5 and
// digest as for copy_file_sync; with staged, t's MD5 may be staged and its
// finish left to staged.
bool copy_if_cached(Job& job, FileTask& t, char* buf, size_t bufsize, Md5* md5, Digest* digest,
                    StagedFiles* staged = nullptr) noexcept;

// A worker thread of the synchronous engine: copies files from q until it is
// closed and drained (or the job is cancelled).
void run_sync_worker(Job& job, WorkQueue<FileTask>& q, const std::function<void()>& after_file = {}) noexcept;

}  // namespace usync
