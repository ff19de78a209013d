#include "sync_copy.h"

#include "meta.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "durable.h"
#include "md5_lanes.h"
#include "unique_fd.h"

namespace usync {
namespace {

bool write_all(const Job& job, int fd, const char* p, size_t n, uint64_t* done) noexcept {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (w == 0) {
      errno = ENOSPC;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
    *done += static_cast<uint64_t>(w);
    job.add_bytes(static_cast<uint64_t>(w));
  }
  return true;
}

}  // namespace

namespace {

// Gives the complete file open at fd its metadata: xattrs and ACLs (read
// through src_fd: the file whose bytes were copied), -p's mode, times.
// Returns 0 or an errno and sets *step.
int apply_meta(const Job& job, const FileTask& t, int src_fd, int fd, int* step) noexcept {
  const timespec ts[2] = {job.cfg.file_atime(t.atime, t.mtime), t.mtime};
  // A failure here (a destination without xattrs, root squashed by NFS) is
  // reported; the bytes are right, so the file is still published, but
  // without its times: it never looks complete, and a re-run tries again.
  bool incomplete = false;
  if (wants_extra_meta(job)) {
    if (const int err = sync_extra_meta(job, Place{src_fd, ""}, Place{fd, ""}, t.mode, t.uid, t.gid); err != 0) {
      report_metadata(job, t.dir, t.dst_name, err, t.pair);
      incomplete = true;
    }
  }
  if ((job.preserve() && !job.mode_as_created(t) && fchmod(fd, t.mode & 07777) != 0) ||
      (!incomplete && futimens(fd, ts) != 0)) {
    *step = USYNC_STEP_METADATA;
    return errno;
  }
  return 0;
}

}  // namespace

// Gives the complete anonymous file open at fd its metadata, then (sealed:
// synced and verified as asked) its name: linkat (where the name is free) or
// a temporary name renamed over the old file.  Returns 0 or an errno and
// sets *step.
int publish_anonymous(const Job& job, const FileTask& t, int src_fd, int fd, const Digest* digest, uint64_t bytes,
                      char* buf, size_t bufsize, int* step, bool synced) noexcept {
  if (const int err = apply_meta(job, t, src_fd, fd, step); err != 0) return err;
  if (const int err = seal_file(job, fd, digest, bytes, buf, bufsize, step, synced); err != 0) return err;
  const int dfd = t.dst_dirfd();
  auto link_as = [&](const char* as) {
    // AT_EMPTY_PATH on the descriptor; without the privilege it may need,
    // the /proc link of the descriptor does the same.
    if (linkat(fd, "", dfd, as, AT_EMPTY_PATH) == 0) return 0;
    if (errno != ENOENT && errno != EPERM) return errno;
    char proc[64];
    std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, dfd, as, AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
  };
  *step = USYNC_STEP_RENAME;
  int err = link_as(t.dst_rel());
  if (err == 0) return sync_pair_parent(job, t, step);
  if (err != EEXIST || t.exclusive) return err;  // USYNC_NO_REPLACE: the entry there stays
  std::string tmp;  // the name is taken (an older copy): replace it atomically
  try {
    tmp = t.create_name();
  } catch (...) {
    return ENOMEM;
  }
  if ((err = link_as(tmp.c_str())) != 0) return err;
  if (renameat(dfd, tmp.c_str(), dfd, t.dst_rel()) != 0) {
    err = errno;
    unlinkat(dfd, tmp.c_str(), 0);
    return err;
  }
  return sync_pair_parent(job, t, step);
}

namespace {

// After a FICLONE of the whole source: the file as it was when opened.  A
// reflink shares the source as it is now, so a file that grew since its
// size was taken is cut back to that size (a file that shrank keeps its new
// end).  *done: the copy's length.  False with errno set.
bool clone_as_opened(const FileTask& t, int out, uint64_t* done) noexcept {
  struct stat st {};
  if (fstat(out, &st) != 0) return false;
  *done = static_cast<uint64_t>(st.st_size);
  if (t.size != 0 && *done > t.size) {
    if (ftruncate(out, static_cast<off_t>(t.size)) != 0) return false;
    *done = t.size;
  }
  return true;
}

// -S: the data of a file with holes, segment by segment (SEEK_DATA,
// SEEK_HOLE), at the same offsets, so the holes stay holes; then the size.
// A reflink shares the extents, holes included, when nothing needs the
// bytes.  md5 sees a hole as the zeros it reads as.  t.size bytes as
// opened (a file that shrinks ends there).  Returns 0 or an errno, *step
// set; -1 when the file has no hole after all (compressed filesystems
// allocate less than the size too) or cannot be probed: copy it whole.
int copy_sparse(const Job& job, const FileTask& t, int in, int out, char* buf, size_t bufsize, Md5* md5,
                Digest* digest, uint64_t* done, uint64_t* length, int* step) noexcept {
  const off_t first_hole = lseek(in, 0, SEEK_HOLE);
  if (first_hole < 0 || static_cast<uint64_t>(first_hole) >= t.size) return -1;
  if (md5 == nullptr && digest == nullptr && ioctl(out, FICLONE, in) == 0) {
    if (!clone_as_opened(t, out, done)) {
      *step = USYNC_STEP_WRITE;
      return errno;
    }
    *length = *done;
    job.add_bytes(*done);
    return 0;
  }
  uint64_t size = t.size, off = 0;
  while (off < size) {
    if (job.cancelled()) {
      *step = USYNC_STEP_CANCELED;
      return ECANCELED;
    }
    *step = USYNC_STEP_READ;
    off_t data = lseek(in, static_cast<off_t>(off), SEEK_DATA);
    if (data < 0) {
      if (errno != ENXIO) return errno;
      // A hole to the end, or the file shrank: it ends at its size now.
      struct stat now {};
      if (fstat(in, &now) == 0 && static_cast<uint64_t>(now.st_size) < size) size = static_cast<uint64_t>(now.st_size);
      data = static_cast<off_t>(size);
    }
    const uint64_t from = std::min<uint64_t>(static_cast<uint64_t>(data), size);
    off_t hole = from < size ? lseek(in, static_cast<off_t>(from), SEEK_HOLE) : static_cast<off_t>(size);
    if (hole < 0) return errno;
    const uint64_t to = std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    if ((md5 != nullptr || digest != nullptr) && from > off) {  // the hole's zeros, for the digests
      std::memset(buf, 0, bufsize);
      for (uint64_t z = off; z < from; z += bufsize) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(bufsize, from - z));
        if (md5 != nullptr) md5->update(buf, n);
        if (digest != nullptr) digest->update(buf, n);
      }
    }
    for (uint64_t p = from; p < to;) {
      const ssize_t n = pread(in, buf, static_cast<size_t>(std::min<uint64_t>(bufsize, to - p)), static_cast<off_t>(p));
      if (n < 0) {
        if (errno == EINTR) continue;
        *step = USYNC_STEP_READ;
        return errno;
      }
      if (n == 0) {  // shrank: this is its end now
        size = p;
        break;
      }
      if (md5 != nullptr) md5->update(buf, static_cast<size_t>(n));
      if (digest != nullptr) digest->update(buf, static_cast<size_t>(n));
      for (ssize_t w = 0; w < n;) {
        const ssize_t k = pwrite(out, buf + w, static_cast<size_t>(n - w), static_cast<off_t>(p) + w);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
          *step = USYNC_STEP_WRITE;
          return k < 0 ? errno : ENOSPC;
        }
        w += k;
      }
      p += static_cast<uint64_t>(n);
      *done += static_cast<uint64_t>(n);
      job.add_bytes(static_cast<uint64_t>(n));
    }
    off = std::max(to, from);
  }
  if (ftruncate(out, static_cast<off_t>(size)) != 0) {  // a hole at the end, and the size
    *step = USYNC_STEP_WRITE;
    return errno;
  }
  *length = size;
  return 0;
}

}  // namespace

namespace {

// One kernel-side way of copying, from both descriptors' file offsets: the
// file in pieces until t.size (or until the source ends).  Returns as
// copy_in_kernel does, 0 when this way does not copy here.
template <typename Copy>
int copy_pieces(const Job& job, const FileTask& t, uint64_t* done, Copy copy) noexcept {
  while (*done < t.size) {
    if (job.cancelled()) {
      errno = ECANCELED;
      return -1;
    }
    // 8 MiB at a time keeps bytes_done (live progress) moving on big files.
    const size_t want = static_cast<size_t>(std::min<uint64_t>(8u << 20, t.size - *done));
    const ssize_t n = copy(want);
    if (n > 0) {
      *done += static_cast<uint64_t>(n);
      job.add_bytes(static_cast<uint64_t>(n));
      continue;
    }
    // 0 at offset 0 of a file that is not empty: this filesystem (or kernel)
    // does not copy here; anywhere else, the file shrank to this end.
    if (n == 0) return *done == 0 ? 0 : 1;
    if (errno == EINTR) continue;
    if (*done == 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS || errno == EBADF ||
                       errno == EPERM || errno == ETXTBSY))
      return 0;
    return -1;
  }
  return 1;
}

}  // namespace

int copy_in_kernel(const Job& job, const FileTask& t, int in, int out, uint64_t* done, CopyRangeFn cfr,
                   SendFileFn sf) noexcept {
  if (ioctl(out, FICLONE, in) == 0) {
    if (!clone_as_opened(t, out, done)) return -1;
    job.add_bytes(*done);
    return 1;
  }
  const int ret = copy_pieces(job, t, done, [&](size_t n) { return cfr(in, nullptr, out, nullptr, n, 0); });
  if (ret != 0) return ret;
  // Nothing copied, so both offsets are still 0.  Between filesystems
  // copy_file_range refuses (EXDEV); sendfile splices the source's cached
  // pages into the destination: one copy of the bytes instead of
  // read/write's two (1 GiB from ext4's page cache into a tmpfs: 0.44 s of
  // CPU against 0.51).
  return copy_pieces(job, t, done, [&](size_t n) { return sf(out, in, nullptr, n); });
}

bool nowait_reads_supported() noexcept {
  static const bool ok = [] {
    open_how how{};
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_CACHED;
    // "/" is always in the dcache: EAGAIN here would mean the flag is
    // understood but useless; EINVAL or ENOSYS, a kernel without it.
    const long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
    if (fd < 0) return false;
    ::close(static_cast<int>(fd));
    return true;
  }();
  return ok;
}

FileResult copy_file_sync(const Job& job, FileTask& walked, char* buf, size_t bufsize, Md5* md5,
                          Digest* digest, bool* would_block) noexcept {
  FileResult r;
  if (would_block != nullptr) *would_block = false;
  // USYNC_VERIFY: the digest of the bytes read from the source, compared
  // with the file as re-read before it is published.
  std::unique_ptr<Digest> own;
  if (digest == nullptr && job.cfg.has(USYNC_VERIFY) && !job.dry_run()) {
    own.reset(new (std::nothrow) Digest);
    if (!own || !own->ok()) {
      r.error = ENOMEM;
      r.step = USYNC_STEP_VERIFY;
      return r;
    }
    digest = own.get();
  }
  if (digest != nullptr) digest->reset();
  FileTask t;  // the walked stat, then the opened file's
  try {
    t = walked;
  } catch (...) {
    r.error = ENOMEM;
    r.step = USYNC_STEP_OPEN_SRC;
    return r;
  }
  // O_NONBLOCK (src_open_flags): a FIFO or device swapped in after the
  // walker's stat must not block the open; the fstat check then refuses it.
  // The non-blocking attempt declines (nothing done) rather than fail: the
  // caller's own attempt is the one that reports.
  auto decline = [&] {
    *would_block = true;
    return r;
  };
  UniqueFd in;
  if (t.dir != nullptr && test_seams.before_open_src != nullptr)
    test_seams.before_open_src(t.src_dirfd(), t.src_rel());
  if (would_block != nullptr) {
    open_how how{};
    how.flags = static_cast<uint64_t>(t.src_open_flags());
    how.resolve = RESOLVE_CACHED;
    in.reset(static_cast<int>(syscall(SYS_openat2, t.src_dirfd(), t.src_rel(), &how, sizeof how)));
    if (!in.valid()) return decline();
  } else {
    in.reset(open_waiting(job, [&] { return openat(t.src_dirfd(), t.src_rel(), t.src_open_flags()); }));
  }
  if (!in.valid()) {
    r.error = t.open_src_error(errno, &r.step);
    return r;
  }
  struct stat st {};
  if (fstat(in.get(), &st) != 0) {
    if (would_block != nullptr) return decline();
    r.error = errno;
    r.step = USYNC_STEP_OPEN_SRC;
    return r;
  }
  if (const int err = t.check_source(st); err != 0) {
    if (would_block != nullptr) return decline();
    r.error = err;
    r.step = USYNC_STEP_CHANGED;
    return r;
  }
  // The first chunk, read before the destination is touched: with
  // RWF_NOWAIT it comes only from the page cache (a miss returns EAGAIN and
  // starts readahead, which the ring's read then finds under way).  A short
  // read may be a partly cached file: declined too.
  ssize_t first = -1;
  if (would_block != nullptr) {
    const bool sparse = job.cfg.has(USYNC_SPARSE) && static_cast<uint64_t>(st.st_blocks) * 512 < t.size;
    // Large files are the bulk threads' (copy_in_kernel), but one queued
    // unwalked came here unsized: when cached, it is copied right here, by
    // the same bulk path (a ring would hand it back anyway).
    if (sparse || (t.size >= job.cfg.large_threshold && t.walked)) return decline();
    const size_t want = t.size == 0 ? bufsize : static_cast<size_t>(std::min<uint64_t>(bufsize, t.size));
    iovec iov{buf, want};
    first = preadv2(in.get(), &iov, 1, 0, RWF_NOWAIT);
    if (first < 0 || (t.size == 0 ? first != 0 : static_cast<size_t>(first) != want)) return decline();
  }
  // The copy goes ahead: the caller's task (what finish_file reports, and
  // what a retry checks against) is the file as opened from here on.
  job.sized(t);
  walked.set_stat(st);
  walked.walked = true;
  const int dfd = t.dst_dirfd();
  // An anonymous file (O_TMPFILE) where the filesystem has them: it gets a
  // name only when complete (linkat), and a killed copy leaves nothing.
  // Elsewhere a temporary name, renamed into place.
  // Readable too when it is to be read back (verify).
  const int access = digest != nullptr ? O_RDWR : O_WRONLY;
  std::string name;
  UniqueFd out;
  if (!t.replace) {
    // In a directory still under its temporary name (Dir::tmp): the file is
    // made under its own name.  Taken (another run into the same directory):
    // made as any other file, then put in place of that one.
    out.reset(open_waiting(job, [&] {
      return openat(dfd, t.dst_rel(), access | O_CREAT | O_EXCL | O_CLOEXEC, job.cfg.create_mode(t.mode));
    }));
    if (!out.valid() && errno == EEXIST) t.replace = true;
  }
  if (t.replace && job.tmpfile_ok.load(std::memory_order_relaxed)) {
    // A pair's destination may be a whole path (dfd AT_FDCWD, see PairDirs):
    // the file is made in its directory.
    char parent[PATH_MAX];
    const char* in_dir = ".";  // a tree's directory, or a pair's "name" (relative to dfd)
    const std::string_view rel(t.dst_rel());
    const size_t slash = t.dir == nullptr ? rel.rfind('/') : std::string_view::npos;
    if (slash != std::string_view::npos && slash >= sizeof parent) {
      in_dir = nullptr;  // longer than a path can be: the temporary name fails as it should
    } else if (slash != std::string_view::npos) {
      const size_t len = slash == 0 ? 1 : slash;  // "/name": the root
      std::memcpy(parent, rel.data(), len);
      parent[len] = '\0';
      in_dir = parent;
    }
    if (in_dir != nullptr) {
      out.reset(open_waiting(
          job, [&] { return openat(dfd, in_dir, O_TMPFILE | access | O_CLOEXEC, job.cfg.create_mode(t.mode)); }));
      if (!out.valid() && tmpfile_refused(errno))
        job.tmpfile_ok.store(false, std::memory_order_relaxed);
    }
  }
  const bool anonymous = out.valid() && t.replace;
  const bool direct = out.valid() && !t.replace;
  if (!out.valid()) {
    try {
      name = t.create_name();
    } catch (...) {
      r.error = ENOMEM;
      r.step = USYNC_STEP_OPEN_DST;
      return r;
    }
    out.reset(open_waiting(job, [&] {
      return openat(dfd, name.c_str(), access | O_CREAT | O_EXCL | O_CLOEXEC, job.cfg.create_mode(t.mode));
    }));
  }
  if (!out.valid()) {
    r.error = errno;
    r.step = USYNC_STEP_OPEN_DST;
    return r;
  }
  auto fail = [&](int step) {
    r.error = errno != 0 ? errno : EIO;
    r.step = step;
    if (direct) {
      // Made under its own name: removed only while that name is still this
      // file (another run that took the directory over may have put its
      // complete copy there meanwhile).
      struct stat mine {}, there {};
      if (fstat(out.get(), &mine) == 0 && fstatat(dfd, t.dst_rel(), &there, AT_SYMLINK_NOFOLLOW) == 0 &&
          mine.st_dev == there.st_dev && mine.st_ino == there.st_ino)
        unlinkat(dfd, t.dst_rel(), 0);
      out.reset();
      return r;
    }
    out.reset();
    if (!anonymous) unlinkat(dfd, name.c_str(), 0);
    return r;
  };

  int kernel = 0;
  uint64_t length = 0;  // the file's size when it is a sparse copy (r.bytes: its data)
  if (job.cfg.has(USYNC_SPARSE) && static_cast<uint64_t>(st.st_blocks) * 512 < t.size) {
    int step = USYNC_STEP_NONE;
    const int err = copy_sparse(job, t, in.get(), out.get(), buf, bufsize, md5, digest, &r.bytes, &length, &step);
    if (err > 0) {
      errno = err;
      return fail(step);
    }
    if (err == 0) kernel = 1;  // done; -1: copied whole below
  }
  // The kernel-side copies never show the bytes: hashing reads and writes.
  // Not only large files: from 64 KiB on, one copy of the bytes in the
  // kernel (copy_file_range within a filesystem, sendfile between two)
  // beats read/write's two (2000 x 256 KiB, page cache or tmpfs into a
  // tmpfs: 0.14 -> 0.12 s; 6000 x 64 KiB: 0.15 -> 0.13 s).
  constexpr uint64_t kKernelCopyFrom = 64u << 10;
  if (kernel == 0 && md5 == nullptr && digest == nullptr &&
      t.size >= std::min<uint64_t>(job.cfg.large_threshold, kKernelCopyFrom)) {
    kernel = copy_in_kernel(job, t, in.get(), out.get(), &r.bytes);
    if (kernel < 0) return fail(errno == ECANCELED ? USYNC_STEP_CANCELED : USYNC_STEP_WRITE);
  }
  if (kernel == 0) {
    // The file as opened: t.size bytes (it may have shrunk since: a short
    // read is its end).  A size of 0 (files in /proc) means: read to EOF.
    const bool until_eof = t.size == 0;
    uint64_t off = 0;
    while (until_eof || off < t.size) {
      if (job.cancelled()) {
        errno = ECANCELED;
        return fail(USYNC_STEP_CANCELED);
      }
      const size_t want = until_eof ? bufsize : static_cast<size_t>(std::min<uint64_t>(bufsize, t.size - off));
      ssize_t n;
      if (first >= 0) {  // read already, before the destination was created
        n = first;
        first = -1;
      } else {
        // After a first pread the file offset is still 0.
        n = would_block != nullptr ? ::pread(in.get(), buf, want, static_cast<off_t>(off)) : ::read(in.get(), buf, want);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail(USYNC_STEP_READ);
      }
      if (n == 0) break;
      off += static_cast<uint64_t>(n);
      if (md5 != nullptr) md5->update(buf, static_cast<size_t>(n));
      if (digest != nullptr) digest->update(buf, static_cast<size_t>(n));
      if (!write_all(job, out.get(), buf, static_cast<size_t>(n), &r.bytes)) return fail(USYNC_STEP_WRITE);
      if (!until_eof && static_cast<size_t>(n) < want) break;  // shrank
    }
  }
  if (test_seams.after_read_src != nullptr) test_seams.after_read_src(in.get());
  // The source stays open until the copy is published: its xattrs and
  // ACLs are read through it.
  int step = USYNC_STEP_NONE;
  if (anonymous) {
    if (const int err = publish_anonymous(job, t, in.get(), out.get(), digest, length != 0 ? length : r.bytes, buf, bufsize, &step); err != 0) {
      errno = err;
      return fail(step);
    }
    note_stats(job, in.get(), out.get(), r);
    if (::close(out.release()) != 0) {
      r.error = errno;  // already published: a write-back error of a local filesystem
      r.step = USYNC_STEP_CLOSE;
      return r;
    }
  } else if (direct) {
    // Sealed first: with USYNC_FSYNC the bytes are durable before the times
    // that make a re-run's quick check take the file as complete.
    int err = seal_file(job, out.get(), digest, length != 0 ? length : r.bytes, buf, bufsize, &step);
    if (err == 0) err = apply_meta(job, t, in.get(), out.get(), &step);
    if (err != 0) {
      errno = err;
      return fail(step);
    }
    note_stats(job, in.get(), out.get(), r);
    if (::close(out.release()) != 0) return fail(USYNC_STEP_CLOSE);
  } else {
    if (const int err = seal_file(job, out.get(), digest, length != 0 ? length : r.bytes, buf, bufsize, &step); err != 0) {
      errno = err;
      return fail(step);
    }
    if (::close(out.release()) != 0) return fail(USYNC_STEP_CLOSE);
    if (const int err = finalize_file(job, t, name, &step, in.get()); err != 0) {
      r.error = err;
      r.step = step;
      return r;
    }
    note_stats(job, in.get(), -1, r);  // the copy was closed before its times were set
  }
  if (md5 != nullptr) {
    md5->final(r.md5);
    r.has_md5 = true;
  }
  return r;
}

bool copy_if_cached(Job& job, FileTask& t, char* buf, size_t bufsize, Md5* md5, Digest* digest,
                    StagedFiles* staged) noexcept {
  if (md5 != nullptr) {
    if (staged != nullptr)
      staged->start(*md5, t);
    else
      md5->reset();
  }
  bool would_block = false;
  const FileResult r = copy_file_sync(job, t, buf, bufsize, md5, digest, &would_block);
  if (would_block) {
    job.note_probe_miss();
    return false;
  }
  if (r.error == 0) job.counters.files_inline.fetch_add(1, std::memory_order_relaxed);
  if (staged != nullptr)
    staged->finish(job, t, r, md5);
  else
    job.finish_file(t, r);
  return true;
}

namespace {

// Each thread's staging arena, kept from one call to the next (a pair batch
// of rclone's runs this for every 50-odd files).  A copy call nested in a
// callback of another on the same thread finds it taken and makes its own.
struct ThreadLanes {
  std::unique_ptr<Md5Lanes> lanes;
  bool taken = false;
};
thread_local ThreadLanes tls_lanes;

}  // namespace

StagedFiles::~StagedFiles() {
  if (lanes_ == nullptr) return;
  if (lanes_ == tls_lanes.lanes.get())
    tls_lanes.taken = false;
  else
    delete lanes_;
}

void StagedFiles::start(Md5& md5, const FileTask& t) noexcept {
  if (hashing_ && t.size <= kSlotBytes && lanes_ == nullptr) {  // the first small file
    if (!tls_lanes.taken) {
      if (!tls_lanes.lanes) tls_lanes.lanes.reset(new (std::nothrow) Md5Lanes(kSlots, kSlotBytes));
      if (tls_lanes.lanes && tls_lanes.lanes->ok()) {
        lanes_ = tls_lanes.lanes.get();
        tls_lanes.taken = true;
      }
    } else {
      std::unique_ptr<Md5Lanes> own(new (std::nothrow) Md5Lanes(kSlots, kSlotBytes));
      if (own && own->ok()) lanes_ = own.release();
    }
    if (lanes_ == nullptr) hashing_ = false;  // out of memory: one at a time
  }
  if (hashing_ && t.size <= kSlotBytes)
    md5.reset(lanes_->slot(n_), lanes_->slot_bytes());
  else
    md5.reset();
}

void StagedFiles::finish(Job& job, FileTask& t, const FileResult& r, const Md5* md5) noexcept {
  if (md5 == nullptr || !md5->staged()) {
    job.finish_file(t, r);  // the staged ones may wait: nothing depends on the order
    return;
  }
  lens_[n_] = static_cast<uint32_t>(md5->staged_len());
  files_[n_++] = {&t, r};
  if (n_ == kSlots) finish_all(job);
}

void StagedFiles::finish_all(Job& job) noexcept {
  if (n_ == 0) return;
  uint8_t digests[kSlots][16];
  lanes_->hash(n_, lens_, digests);
  for (size_t k = 0; k < n_; ++k) {
    std::memcpy(files_[k].r.md5, digests[k], 16);
    job.finish_file(*files_[k].t, files_[k].r);
  }
  n_ = 0;
}

void run_sync_worker(Job& job, WorkQueue<FileTask>& q, const std::function<void()>& after_file) noexcept {
  const size_t size = job.chunk;
  std::unique_ptr<char[]> buf(new (std::nothrow) char[size]);
  std::unique_ptr<Md5> md5;
  if (job.cfg.has(USYNC_HASH_MD5)) md5.reset(new (std::nothrow) Md5);
  std::unique_ptr<Digest> digest;
  if (job.cfg.has(USYNC_VERIFY)) digest.reset(new (std::nothrow) Digest);
  // Small files' digests, many at a time (MD5 costs more than their copy).
  StagedFiles staged(md5 != nullptr);
  std::vector<FileTask> batch;
  while (q.pop(batch, true)) {
    for (FileTask& t : batch) {
      if (job.cancelled()) {
        job.abandon_file(t);
        continue;
      }
      if (!buf) {
        job.finish_file(t, FileResult{ENOMEM, USYNC_STEP_READ});
        continue;
      }
      if (t.existing && up_to_date(job, t)) {
        FileResult skip;
        skip.skipped = true;
        job.finish_file(t, skip);
        continue;
      }
      if (md5) staged.start(*md5, t);
      staged.finish(job, t, copy_file_sync(job, t, buf.get(), size, md5.get(), digest.get()), md5.get());
      if (after_file) after_file();
    }
    staged.finish_all(job);  // before the batch's tasks go, and before the worker may wait
    batch.clear();
  }
}

}  // namespace usync
