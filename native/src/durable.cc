#include "durable.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "unique_fd.h"

namespace usync {

TestSeams test_seams;

int sync_fd(int fd, bool is_dir) noexcept {
  while (::fsync(fd) != 0)
    if (errno != EINTR) return errno;
  if (test_seams.on_fsync != nullptr) test_seams.on_fsync(is_dir);
  return 0;
}

int sync_dir_path(const char* path, bool parent_of) noexcept {
  std::string dir;
  try {
    dir = path;
    if (parent_of) {
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();  // "a/b/" names b
      const size_t slash = dir.rfind('/');
      dir = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
    }
  } catch (...) {
    return ENOMEM;
  }
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  return sync_fd(fd.get(), true);
}

int sync_pair_parent(const Job& job, const FileTask& t, int* step) noexcept {
  if (t.dir != nullptr || !job.cfg.has(USYNC_FSYNC)) return 0;
  const int err = sync_dir_path(t.dst_name.c_str(), true);
  if (err != 0) *step = USYNC_STEP_FSYNC;
  return err;
}

int verify_file(const Job& job, int fd, const Digest& src, uint64_t bytes, char* buf, size_t bufsize) noexcept {
  if (!src.ok()) return ENOMEM;
  if (test_seams.before_verify != nullptr) test_seams.before_verify(fd);
  // Dirty pages cannot be dropped: write them back first (a no-op after
  // USYNC_FSYNC's fsync).  The advice is only advice: a filesystem that
  // keeps the pages (tmpfs, whose pages are the file) is read as it is.
  while (::fdatasync(fd) != 0)
    if (errno != EINTR) return errno;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  Digest got;
  if (!got.ok()) return ENOMEM;
  uint64_t off = 0;
  for (;;) {
    if (job.cancelled()) return ECANCELED;
    const ssize_t n = ::pread(fd, buf, bufsize, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) break;
    got.update(buf, static_cast<size_t>(n));
    off += static_cast<uint64_t>(n);
    if (off > bytes) return EBADMSG;  // longer than what was written
  }
  const XXH128_hash_t a = src.value(), b = got.value();
  if (off != bytes || !XXH128_isEqual(a, b)) return EBADMSG;
  job.counters.files_verified.fetch_add(1, std::memory_order_relaxed);
  job.counters.bytes_verified.fetch_add(bytes, std::memory_order_relaxed);
  return 0;
}

int seal_file(const Job& job, int fd, const Digest* src, uint64_t bytes, char* buf, size_t bufsize, int* step,
              bool synced) noexcept {
  if (job.cfg.has(USYNC_FSYNC) && !synced) {
    if (const int err = sync_fd(fd, false); err != 0) {
      *step = USYNC_STEP_FSYNC;
      return err;
    }
  }
  if (src != nullptr) {
    if (const int err = verify_file(job, fd, *src, bytes, buf, bufsize); err != 0) {
      *step = err == ECANCELED ? USYNC_STEP_CANCELED : USYNC_STEP_VERIFY;
      return err;
    }
  }
  return 0;
}

}  // namespace usync
