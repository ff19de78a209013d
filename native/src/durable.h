// Durability (USYNC_FSYNC) and read-back verification (USYNC_VERIFY) of the
// files and directories a copy writes.  Both drivers call these with plain
// system calls; the io_uring driver syncs files through the ring instead
// (FileCopy's kFsyncDst) and verifies here, on its own thread.
#pragma once

#include <xxhash.h>

#include <cstddef>
#include <cstdint>

#include "job.h"

namespace usync {

// XXH3 (128 bits) of a stream of bytes: fast, not cryptographic; it detects
// accidental corruption, not tampering.
class Digest {
 public:
  Digest() noexcept : st_(XXH3_createState()) { reset(); }
  ~Digest() { XXH3_freeState(st_); }
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;

  bool ok() const noexcept { return st_ != nullptr; }
  void reset() noexcept {
    if (st_ != nullptr) XXH3_128bits_reset(st_);
  }
  void update(const void* data, size_t len) noexcept {
    if (st_ != nullptr && len > 0) XXH3_128bits_update(st_, data, len);
  }
  XXH128_hash_t value() const noexcept { return st_ != nullptr ? XXH3_128bits_digest(st_) : XXH128_hash_t{}; }

 private:
  XXH3_state_t* st_;
};

// fsync(fd), retried on EINTR.  Returns 0 or an errno.
int sync_fd(int fd, bool is_dir) noexcept;

// Opens the directory at path (or the parent directory of path when
// parent_of is set: "." for a bare name) and fsyncs it.  0 or an errno.
int sync_dir_path(const char* path, bool parent_of) noexcept;

// USYNC_FSYNC: a pair copy's (or a single file's) new name is durable once
// the directory holding it is synced; a tree's directories are synced when
// they are settled (walker.cc).  Returns 0 or an errno and sets *step.
int sync_pair_parent(const Job& job, const FileTask& t, int* step) noexcept;

// The last steps before a written file is published, on its descriptor
// (open for reading when verifying): fsync it (USYNC_FSYNC), then, when
// `src` is given, re-read it from the device and compare with `src`, the
// digest of the `bytes` bytes read from the source.  Returns 0 or an errno
// (EBADMSG: the bytes differ) and sets *step.  buf: bufsize bytes of scratch.
// synced: the caller has synced it already (the ring's kFsyncDst).
int seal_file(const Job& job, int fd, const Digest* src, uint64_t bytes, char* buf, size_t bufsize, int* step,
              bool synced = false) noexcept;

// Re-reads the file open at fd past the page cache (fdatasync, then
// POSIX_FADV_DONTNEED drops its clean pages; on tmpfs the pages are the file)
// and compares it with src (same length, same XXH3).  Counts a success in
// files_verified / bytes_verified.  Returns 0, EBADMSG, or the errno of a
// failed sync or read.
int verify_file(const Job& job, int fd, const Digest& src, uint64_t bytes, char* buf, size_t bufsize) noexcept;

// Test seams: null in production, set only by tests (before a copy call).
struct TestSeams {
  // Called with the written file's descriptor just before it is re-read: a
  // test may change the file's bytes here, as a faulty device would.
  void (*before_verify)(int fd) = nullptr;
  // Called after each successful fsync of a file or a directory, by either
  // engine (the ring's kFsyncDst completions included).
  void (*on_fsync)(bool is_dir) = nullptr;
  // Called before an entry's owner, xattrs and ACLs are copied: a test may
  // put another file under the source's name here, as a racing user would.
  void (*before_extra_meta)() = nullptr;
  // Called before a tree's source file is opened by name, by either engine
  // (the adaptive engine's cached-only attempt included): a test may put
  // another file under the name here.
  void (*before_open_src)(int dirfd, const char* name) = nullptr;
  // Called with the source's descriptor once all its bytes were read, before
  // a pair copy's source stat is taken (note_stats), by either engine: a
  // test may change the file here, as a writer racing the copy would.
  void (*after_read_src)(int fd) = nullptr;
  // Called with a ring's source descriptor once it was checked (the
  // regular file the walker saw, its size taken), before its first read: a
  // test may append to the file here, as a writer racing the copy would.
  void (*after_check_src)(int fd) = nullptr;
  // Reads every source through the page cache: the adaptive engine's ring
  // otherwise reads uncached files with O_DIRECT (UringWorker::read_direct).
  bool no_direct_reads = false;
  // Taken off the length of every direct read: a test makes the filesystem
  // refuse them (EINVAL: not whole blocks), as one that offers direct I/O
  // and then refuses it would.
  uint32_t direct_read_trim = 0;
  // Keeps the destination's creates and writes on the rings (io-wq) even
  // into a local filesystem (Job::dst_ops_inline false): the tests run
  // both ways on this machine's disk.
  bool dst_ops_on_ring = false;
  // The destination's time granularity in ns (Job::dst_time_ns) in place of
  // what its filesystem type says (time_granularity): tests stand in for an
  // exFAT or SMB destination on this machine's ext4.  0: from the type.
  long dst_time_granularity = 0;
};
extern TestSeams test_seams;

}  // namespace usync
