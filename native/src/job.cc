#include "job.h"

#include "hardlinks.h"
#include "meta.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>

#include "durable.h"

namespace usync {

uint64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

bool read_umask(mode_t* out) noexcept {
  FILE* f = std::fopen("/proc/self/status", "re");
  if (f == nullptr) return false;
  char line[256];
  bool found = false;
  while (!found && std::fgets(line, sizeof line, f) != nullptr) {
    unsigned m = 0;
    if (std::sscanf(line, "Umask: %o", &m) == 1) {
      *out = static_cast<mode_t>(m);
      found = true;
    }
  }
  std::fclose(f);
  return found;
}

namespace {

// Whether files created in the directory open at dfd get the bits they are
// created with less the umask, and nothing else decides: a local POSIX
// filesystem (elsewhere a server, mount options or a FUSE daemon may) and
// no default ACL, whose entries would take the umask's place.
bool creates_exact_modes(int dfd) noexcept {
  struct statfs sf {};
  if (fstatfs(dfd, &sf) != 0) return false;
  switch (static_cast<unsigned long>(sf.f_type)) {
    case TMPFS_MAGIC:
    case EXT4_SUPER_MAGIC:  // ext2 and ext3 too
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
      break;
    default:
      return false;
  }
  if (fgetxattr(dfd, "system.posix_acl_default", nullptr, 0) >= 0) return false;
  return errno == ENODATA || errno == EOPNOTSUPP;
}

}  // namespace

bool Job::mode_as_created(const FileTask& t) const noexcept {
  const mode_t want = t.mode & 07777;
  // Set-id and sticky bits (chown clears them), an umask that takes bits
  // away, a mode not the source's: fchmod, as before.  -A is no exception:
  // a directory gets its ACLs when it is settled, after its last file, and
  // a file's own access ACL (copied before this) encodes the source's mode.
  if (t.dir == nullptr || !umask_known || (want & 07000) != 0 || (cfg.create_mode(t.mode) & ~umask_bits) != want)
    return false;
  int8_t exact = t.dir->exact_modes.load(std::memory_order_relaxed);
  if (exact < 0) {
    exact = creates_exact_modes(t.dst_dirfd()) ? 1 : 0;
    t.dir->exact_modes.store(exact, std::memory_order_relaxed);
  }
  return exact == 1;
}

void Counters::reset() noexcept {
  for (auto* c : {&files_found, &bytes_found, &files_done, &bytes_done, &files_failed, &files_excluded, &files_skipped, &temps_removed, &entries_deleted,
                  &files_verified, &bytes_verified, &links_created, &files_inline, &files_unsized, &bytes_copied, &dirs_created,
                  &symlinks_created, &specials_created, &start_ns, &end_ns})
    c->store(0, std::memory_order_relaxed);
  walk_done.store(0, std::memory_order_relaxed);
  engine.store(0, std::memory_order_relaxed);
  workers.store(0, std::memory_order_relaxed);
  queue_depth.store(0, std::memory_order_relaxed);
  fd_budget.store(0, std::memory_order_relaxed);
  buffer_bytes.store(0, std::memory_order_relaxed);
}

void Counters::snapshot(usync_stats* s) const noexcept {
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s->files_found = ld(files_found);
  s->bytes_found = ld(bytes_found);
  s->files_done = ld(files_done);
  s->bytes_done = ld(bytes_done);
  s->files_failed = ld(files_failed);
  s->files_excluded = ld(files_excluded);
  s->files_skipped = ld(files_skipped);
  s->temps_removed = ld(temps_removed);
  s->entries_deleted = ld(entries_deleted);
  s->files_verified = ld(files_verified);
  s->bytes_verified = ld(bytes_verified);
  s->links_created = ld(links_created);
  s->files_inline = ld(files_inline);
  s->files_unsized = ld(files_unsized);
  s->bytes_copied = ld(bytes_copied);
  s->dirs_created = ld(dirs_created);
  s->symlinks_created = ld(symlinks_created);
  s->specials_created = ld(specials_created);
  const uint64_t start = ld(start_ns), end = ld(end_ns);
  s->elapsed_ns = start == 0 ? 0 : (end != 0 ? end : now_ns()) - start;
  s->walk_done = walk_done.load(std::memory_order_relaxed);
  s->engine = engine.load(std::memory_order_relaxed);
  s->workers = workers.load(std::memory_order_relaxed);
  s->queue_depth = queue_depth.load(std::memory_order_relaxed);
  s->fd_budget = fd_budget.load(std::memory_order_relaxed);
  s->buffer_bytes = buffer_bytes.load(std::memory_order_relaxed);
}

int FileTask::src_dirfd() const noexcept { return dir != nullptr ? dir->src.get() : pair_src_fd; }
int FileTask::dst_dirfd() const noexcept { return dir != nullptr ? dir->dst.get() : pair_dst_fd; }
// O_NONBLOCK: a FIFO or device swapped in after the walker's stat must not
// block the open (it changes nothing for a regular file); check_source()
// then refuses it before anything is read.
// O_NOCTTY: a source queued without a stat (a pair with a size, or a tree's
// file known by its d_type alone) that became a terminal meanwhile must not
// become the process's controlling terminal.
int FileTask::src_open_flags() const noexcept {
  return O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (dir != nullptr && !follow ? O_NOFOLLOW : 0);
}

int FileTask::open_src_error(int err, int* step) const noexcept {
  const bool replaced = err == ELOOP && (src_open_flags() & O_NOFOLLOW) != 0;
  *step = replaced ? USYNC_STEP_CHANGED : USYNC_STEP_OPEN_SRC;
  return replaced ? ESTALE : err;
}

void FileTask::set_stat(const struct stat& st) noexcept {
  size = static_cast<uint64_t>(st.st_size);
  mode = st.st_mode;
  uid = st.st_uid;
  gid = st.st_gid;
  atime = st.st_atim;
  mtime = st.st_mtim;
  dev = st.st_dev;
  ino = st.st_ino;
}

int FileTask::check_source(const struct stat& st) noexcept {
  // A pair queued with its caller's size only: what a stat first would
  // have said (usync_pair.size).
  if (!walked && dir == nullptr && !S_ISREG(st.st_mode)) return S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
  if (!S_ISREG(st.st_mode) || (walked && (st.st_dev != dev || st.st_ino != ino))) return ESTALE;
  set_stat(st);
  return 0;
}

namespace {
// 64 random bits per process: temporary names cannot be guessed, and do not
// repeat across runs (a container's PID is 1 every time).
uint64_t temp_prefix() noexcept {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != sizeof v) v = now_ns() ^ (static_cast<uint64_t>(getpid()) << 32);
  return v;
}
}  // namespace

std::string temp_name() {
  static const uint64_t prefix = temp_prefix();
  static std::atomic<uint64_t> seq{0};
  char tmp[64];
  std::snprintf(tmp, sizeof tmp, ".usync-%016llx-%llu.tmp", static_cast<unsigned long long>(prefix),
                static_cast<unsigned long long>(seq.fetch_add(1, std::memory_order_relaxed)));
  return tmp;
}

std::string FileTask::create_name() const {
  const std::string_view rel(dst_rel());
  if (!replace) return std::string(rel);
  const std::string tmp = temp_name();
  const size_t slash = rel.rfind('/');
  if (slash == std::string_view::npos) return tmp;
  return std::string(rel.substr(0, slash + 1)) + tmp;
}

Job::Job(const Config& c, Counters& k, std::atomic<bool>& cancel, int kind)
    : cfg(c), counters(k), engine_kind(kind), cancel_(cancel) {}

void Job::stop() noexcept {
  stop_.store(true, std::memory_order_relaxed);
  small_q.close();
  large_q.close();
  dirs_cv_.notify_all();
}

std::string Job::join(const Dir* d, std::string_view root, std::string_view name) const {
  // Collect components leaf-to-root, then assemble.
  std::vector<std::string_view> parts;
  for (const Dir* p = d; p != nullptr && p->parent != nullptr; p = p->parent) parts.push_back(p->name);
  std::string out(root);
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!out.empty() && out.back() != '/') out += '/';
    out += *it;
  }
  if (!name.empty()) {
    if (!out.empty() && out.back() != '/') out += '/';
    out += name;
  }
  return out;
}

std::string Job::src_path(const Dir* d, std::string_view name) const {
  return d == nullptr ? std::string(name) : join(d, src_root, name);
}
std::string Job::dst_path(const Dir* d, std::string_view name) const {
  return d == nullptr ? std::string(name) : join(d, dst_root, name);
}
std::string Job::rel_path(const Dir* d, std::string_view name) const { return join(d, "", name); }

void Job::report(const Dir* d, std::string_view src_name, std::string_view dst_name, int err, int step) noexcept {
  counters.files_failed.fetch_add(1, std::memory_order_relaxed);
  if (cfg.error_cb != nullptr) {
    std::string s, t;
    try {
      s = src_path(d, src_name);
      t = dst_path(d, dst_name);
    } catch (...) {  // no memory for the paths: still report the failure
    }
    usync_file_error e{s.c_str(), t.c_str(), err, step};
    std::lock_guard lk(cb_mu_);
    cfg.error_cb(cfg.cb_user, &e);
  }
  if (cfg.has(USYNC_FAIL_FAST) && step != USYNC_STEP_CANCELED) stop();
}

void Job::deleted(const Dir* d, std::string_view name, mode_t mode) noexcept {
  counters.entries_deleted.fetch_add(1, std::memory_order_relaxed);
  if (cfg.delete_cb == nullptr) return;
  std::string path;
  try {
    path = dst_path(d, name);
  } catch (...) {
  }
  const usync_deletion del{path.c_str(), static_cast<uint32_t>(mode)};
  std::lock_guard lk(cb_mu_);
  cfg.delete_cb(cfg.cb_user, &del);
}

void Job::file_done_cb(const Dir* d, std::string_view src_name, std::string_view dst_name, uint64_t bytes,
                       const uint8_t* md5, mode_t mode) noexcept {
  if (cfg.file_done_cb == nullptr) return;
  std::string s, t;
  try {
    s = src_path(d, src_name);
    t = dst_path(d, dst_name);
  } catch (...) {
  }
  usync_file_done fd{};
  fd.src_path = s.c_str();
  fd.dst_path = t.c_str();
  fd.bytes = bytes;
  fd.mode = mode;
  if (md5 != nullptr) {
    fd.has_md5 = 1;
    std::memcpy(fd.md5, md5, 16);
  }
  std::lock_guard lk(cb_mu_);
  cfg.file_done_cb(cfg.cb_user, &fd);
}

void Job::progress_cb(const usync_stats& s) noexcept {
  if (cfg.progress_cb == nullptr) return;
  std::lock_guard lk(cb_mu_);
  cfg.progress_cb(cfg.cb_user, &s);
}

bool stat_of(int fd, usync_file_stat* out) noexcept {
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) return false;
  out->size = static_cast<uint64_t>(st.st_size);
  out->mtime_sec = st.st_mtim.tv_sec;
  out->mtime_nsec = st.st_mtim.tv_nsec;
  return true;
}

void note_stats(const Job& job, int src_fd, int dst_fd, FileResult& r) noexcept {
  if (job.results == nullptr) return;
  if (src_fd >= 0) r.has_src_stat = stat_of(src_fd, &r.src_stat);
  if (dst_fd >= 0) r.has_dst_stat = stat_of(dst_fd, &r.dst_stat);
}

void Job::finish_file(FileTask& t, const FileResult& r) noexcept {
  if (!t.walked) {
    counters.files_unsized.fetch_sub(1, std::memory_order_relaxed);  // never opened
    // A pair queued with its caller's size whose source was no regular file
    // (or none at all) when opened: not found, as its stat would have said.
    const bool none = r.step == USYNC_STEP_CHANGED ||
                      (r.step == USYNC_STEP_OPEN_SRC && (r.error == ENOENT || r.error == ENOTDIR ||
                                                         r.error == ELOOP || r.error == ENAMETOOLONG));
    if (t.dir == nullptr && none) counters.files_found.fetch_sub(1, std::memory_order_relaxed);
  }
  if (results != nullptr && t.pair < results->size()) {
    usync_result& out = (*results)[t.pair];
    // A copy whose metadata failed (report_metadata) stays a failure.
    const bool meta_failed = r.error == 0 && out.error != 0 && out.step == USYNC_STEP_METADATA;
    if (!meta_failed) {
      out.error = r.error;
      out.step = r.step;
    }
    out.bytes = r.bytes;
    out.has_md5 = r.has_md5 && r.error == 0 && !meta_failed ? 1 : 0;
    if (out.has_md5) std::memcpy(out.md5, r.md5, 16);
    const bool ok = r.error == 0 && !meta_failed && !r.skipped;
    out.has_src_stat = ok && r.has_src_stat ? 1 : 0;
    out.has_dst_stat = ok && r.has_dst_stat ? 1 : 0;
    out.src_stat = out.has_src_stat ? r.src_stat : usync_file_stat{};
    out.dst_stat = out.has_dst_stat ? r.dst_stat : usync_file_stat{};
  }
  if (r.skipped) {
    counters.files_skipped.fetch_add(1, std::memory_order_relaxed);
  } else if (r.error == 0) {
    counters.files_done.fetch_add(1, std::memory_order_relaxed);
    counters.bytes_copied.fetch_add(r.bytes, std::memory_order_relaxed);
    file_done_cb(t.dir, t.src_name, t.dst_name, r.bytes, r.has_md5 ? r.md5 : nullptr, t.mode);
  } else if (r.step == USYNC_STEP_CANCELED && cancelled()) {
    // Abandoned because the job is stopping: not a failure of this file.
  } else {
    report(t.dir, t.src_name, t.dst_name, r.error, r.step);
  }
  if (t.link_leader && links != nullptr) links->leader_done(t, r.skipped ? 0 : r.error, r.step);
  files_outstanding.fetch_sub(1, std::memory_order_relaxed);
  if (t.dir != nullptr) {
    unpin_dir(t.dir);
    release_dir(t.dir);
  }
}

void Job::abandon_file(FileTask& t) noexcept {
  if (!t.walked) counters.files_unsized.fetch_sub(1, std::memory_order_relaxed);
  if (results != nullptr && t.pair < results->size()) {
    (*results)[t.pair].error = ECANCELED;
    (*results)[t.pair].step = USYNC_STEP_CANCELED;
  }
  if (t.link_leader && links != nullptr) links->leader_done(t, ECANCELED, USYNC_STEP_CANCELED);
  files_outstanding.fetch_sub(1, std::memory_order_relaxed);
  if (t.dir != nullptr) {
    unpin_dir(t.dir);
    release_dir(t.dir);
  }
}

Dir* Job::new_dir(Dir* parent) {
  Dir* d = new Dir;
  d->parent = parent;
  return d;
}

void Job::unpin_dir(Dir* d) noexcept {
  if (d->pins.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // The walker may be waiting for a directory whose descriptors it can close.
  {
    std::lock_guard lk(dirs_mu_);
    pin_dropped_ = true;
  }
  dirs_cv_.notify_all();
}

void Job::release_dir(Dir* d) noexcept {
  if (d->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  {
    std::lock_guard lk(dirs_mu_);  // an intrusive list: nothing to allocate
    d->settle_next = settled_;
    settled_ = d;
  }
  dirs_cv_.notify_all();
}

bool Job::take_settled(std::vector<Dir*>* out, std::chrono::milliseconds wait) {
  std::unique_lock lk(dirs_mu_);
  if (settled_ == nullptr && wait.count() > 0)
    dirs_cv_.wait_for(lk, wait, [&] { return settled_ != nullptr; });
  if (settled_ == nullptr) return false;
  for (Dir* d = settled_; d != nullptr; d = d->settle_next) out->push_back(d);
  settled_ = nullptr;
  return true;
}

void Job::wait_unpinned(std::chrono::milliseconds wait) {
  std::unique_lock lk(dirs_mu_);
  dirs_cv_.wait_for(lk, wait, [&] { return pin_dropped_; });
  pin_dropped_ = false;
}

namespace {

bool needs_opening(const struct stat& st) noexcept {
  static const uid_t me = geteuid();
  return me != 0 && S_ISDIR(st.st_mode) && st.st_uid == me && (st.st_mode & S_IRWXU) != S_IRWXU;
}

}  // namespace

bool open_up_dir(int fd, mode_t* before) noexcept {
  struct stat st {};
  if (fstat(fd, &st) != 0 || !needs_opening(st) || fchmod(fd, (st.st_mode & 07777) | S_IRWXU) != 0) return false;
  *before = st.st_mode & 07777;
  return true;
}

bool open_up_dir_at(int dfd, const char* name, mode_t* before) noexcept {
  struct stat st {};
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !needs_opening(st) ||
      chmod_nofollow(dfd, name, (st.st_mode & 07777) | S_IRWXU) != 0)
    return false;
  *before = st.st_mode & 07777;
  return true;
}

int chmod_nofollow(int dfd, const char* name, mode_t mode) noexcept {
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
  // fchmodat2 (6.6+) refuses symlinks with AT_SYMLINK_NOFOLLOW.
  if (syscall(SYS_fchmodat2, dfd, name, mode, AT_SYMLINK_NOFOLLOW) == 0) return 0;
  if (errno != ENOSYS) return -1;
  // Older kernels: pin the inode without following, check it, chmod by fd path.
  const int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st {};
  int ret = fstat(fd, &st);
  if (ret == 0 && S_ISLNK(st.st_mode)) {
    errno = ELOOP;
    ret = -1;
  }
  if (ret == 0) {
    char proc[64];
    std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ret = chmod(proc, mode);
  }
  const int saved = errno;
  close(fd);
  errno = saved;
  return ret;
}

bool same_time(const timespec& dst, const timespec& src, long granularity) noexcept {
  if (dst.tv_sec != src.tv_sec) return false;
  // A destination without sub-second times (some network and FUSE
  // filesystems) stored the seconds only.
  if (dst.tv_nsec == src.tv_nsec || dst.tv_nsec == 0) return true;
  return granularity > 1 && dst.tv_nsec == src.tv_nsec - src.tv_nsec % granularity;
}

long time_granularity(int fd) noexcept {
  struct statfs sf {};
  if (fd < 0 || fstatfs(fd, &sf) != 0) return 1;
  switch (static_cast<unsigned long>(sf.f_type)) {
    case 0x2011BAB0UL:  // exFAT
      return 10'000'000;
    case 0x7366746eUL:  // NTFS (ntfs3)
    case 0x5346544eUL:  // NTFS (ntfs)
    case 0xFF534D42UL:  // CIFS
    case 0xFE534D42UL:  // SMB2
    case 0x517BUL:      // SMB
      return 100;
    default:
      return 1;
  }
}

namespace {

bool older(const timespec& a, const timespec& b) noexcept {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

// Whether the two open files hold the same `size` bytes.
bool same_bytes(int a, int b, uint64_t size) noexcept {
  constexpr size_t kBuf = 64 * 1024;
  std::unique_ptr<char[]> x(new (std::nothrow) char[kBuf]), y(new (std::nothrow) char[kBuf]);
  if (!x || !y) return false;
  for (uint64_t off = 0; off < size;) {
    const auto want = static_cast<size_t>(std::min<uint64_t>(kBuf, size - off));
    const ssize_t n = pread(a, x.get(), want, static_cast<off_t>(off));
    if (n <= 0 || pread(b, y.get(), static_cast<size_t>(n), static_cast<off_t>(off)) != n ||
        std::memcmp(x.get(), y.get(), static_cast<size_t>(n)) != 0)
      return false;
    off += static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace

bool wait_for_descriptor(const Job& job, int err, uint32_t* waited_ms) noexcept {
  constexpr uint32_t kMaxWaitMs = 5'000;
  if ((err != EMFILE && err != ENFILE) || job.cancelled() || job.fd_wait_gave_up.load(std::memory_order_relaxed))
    return false;
  if (*waited_ms >= kMaxWaitMs) {
    job.fd_wait_gave_up.store(true, std::memory_order_relaxed);
    return false;
  }
  uint32_t ms = 1;
  while (ms < 50 && ms * 2 <= *waited_ms) ms *= 2;
  ms = std::min<uint32_t>(ms, 50);
  const timespec ts{0, static_cast<long>(ms) * 1'000'000};
  nanosleep(&ts, nullptr);
  *waited_ms += ms;
  return true;
}

bool up_to_date(const Job& job, const FileTask& t) noexcept {
  if (!t.existing || job.cfg.has(USYNC_IGNORE_TIMES)) return false;
  const int dfd = t.dst_dirfd();
  struct stat d {};
  if (fstatat(dfd, t.dst_rel(), &d, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(d.st_mode)) return false;
  // Newer in DST: kept, unless a killed run wrote it (its times are the
  // source's only once it is complete).
  if (job.cfg.has(USYNC_UPDATE) && older(t.mtime, d.st_mtim) && !(t.dir != nullptr && t.dir->resumed))
    return true;
  if (static_cast<uint64_t>(d.st_size) != t.size) return false;
  bool same;
  if (job.cfg.has(USYNC_CHECKSUM)) {
    UniqueFd a(openat(t.src_dirfd(), t.src_rel(), t.src_open_flags()));
    UniqueFd b(openat(dfd, t.dst_rel(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat as {};
    same = a.valid() && b.valid() && fstat(a.get(), &as) == 0 && S_ISREG(as.st_mode) &&
           same_bytes(a.get(), b.get(), t.size);
  } else {
    same = same_time(d.st_mtim, t.mtime, job.dst_time_ns);  // files keep their mtime in every mode
  }
  if (same && !job.dry_run()) {  // the bytes are there: bring the metadata along
    const char* name = t.dst_rel();
    if (wants_extra_meta(job)) {
      if (const int e = sync_extra_meta(job, t.src_place(), Place{dfd, name}, t.mode, t.uid, t.gid); e != 0)
        report_metadata(job, t.dir, t.dst_name, e);
      if (fstatat(dfd, name, &d, AT_SYMLINK_NOFOLLOW) != 0) d.st_mode = ~t.mode;  // chown clears setuid bits
    }
    if (job.preserve() && (d.st_mode & 07777) != (t.mode & 07777) && chmod_nofollow(dfd, name, t.mode & 07777) != 0)
      report_metadata(job, t.dir, t.dst_name, errno);
    if (!same_time(d.st_mtim, t.mtime, job.dst_time_ns)) {
      const timespec ts[2] = {job.cfg.file_atime(t.atime, t.mtime), t.mtime};
      if (utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW) != 0) report_metadata(job, t.dir, t.dst_name, errno);
    }
  }
  return same;
}

namespace {
constexpr std::string_view kTempPrefix = ".usync-";
constexpr std::string_view kDirTempPrefix = ".usync-dir-";
constexpr std::string_view kTempSuffix = ".tmp";
}  // namespace

bool is_temporary(const char* name) noexcept {
  if (!dir_temp_target(name).empty()) return true;
  // temp_name's form: .usync-<16 lowercase hex digits>-<decimal>.tmp
  const std::string_view n(name);
  if (!n.starts_with(kTempPrefix) || !n.ends_with(kTempSuffix)) return false;
  const std::string_view mid = n.substr(kTempPrefix.size(), n.size() - kTempPrefix.size() - kTempSuffix.size());
  if (mid.size() < 18 || mid[16] != '-') return false;
  for (size_t i = 0; i < mid.size(); ++i) {
    const char c = mid[i];
    const bool ok = i < 16 ? (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') : i == 16 || (c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string dir_temp_name(std::string_view name) {
  if (kDirTempPrefix.size() + name.size() + kTempSuffix.size() > NAME_MAX) return {};
  std::string tmp;
  tmp.reserve(kDirTempPrefix.size() + name.size() + kTempSuffix.size());
  tmp.append(kDirTempPrefix).append(name).append(kTempSuffix);
  return tmp;
}

std::string_view dir_temp_target(const char* name) noexcept {
  const std::string_view n(name);
  if (n.size() <= kDirTempPrefix.size() + kTempSuffix.size() || !n.starts_with(kDirTempPrefix) ||
      !n.ends_with(kTempSuffix))
    return {};
  return n.substr(kDirTempPrefix.size(), n.size() - kDirTempPrefix.size() - kTempSuffix.size());
}

int list_dir(int fd, const std::function<void(const char*, unsigned char)>& fn) noexcept {
  constexpr size_t kBuf = 32 * 1024;
  try {
    std::unique_ptr<char[]> buf(new char[kBuf]);
    if (lseek(fd, 0, SEEK_SET) < 0) return errno;
    for (;;) {
      const long n = syscall(SYS_getdents64, fd, buf.get(), kBuf);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (n == 0) return 0;
      for (long off = 0; off < n;) {
        const auto* e = reinterpret_cast<const dirent64*>(buf.get() + off);
        off += e->d_reclen;
        const char* name = e->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        fn(name, e->d_type);
      }
    }
  } catch (...) {
    return ENOMEM;
  }
}

namespace {

// rel below dfd one component at a time, each opened from the last with
// O_NOFOLLOW: openat2's RESOLVE_NO_SYMLINKS where openat2 is refused (before
// Linux 5.6, or a seccomp policy).  rel's names come from listings: never
// "..".
int open_components(int dfd, const std::string& rel) noexcept {
  int cur = -1;
  for (size_t pos = 0;;) {
    const size_t slash = rel.find('/', pos);
    const std::string part = rel.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    const int fd = openat(cur < 0 ? dfd : cur, part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cur >= 0) {
      const int err = errno;
      close(cur);
      errno = err;
    }
    if (fd < 0 || slash == std::string::npos) return fd;
    cur = fd;
    pos = slash + 1;
  }
}

// The directory rel below dfd, reached without following a symlink or
// leaving dfd's mount, for reading its names.  Short of descriptors, it
// waits a little (at most ~0.1 s, holding none of its own meanwhile): the
// copy's threads close theirs soon, but one of them may be waiting for
// this thread to go on.
int open_below(int dfd, const std::string& rel) noexcept {
  open_how how{};
  how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  for (int ms = 1;; ms *= 2) {
    int fd = static_cast<int>(syscall(SYS_openat2, dfd, rel.c_str(), &how, sizeof how));
    if (fd < 0 && (errno == ENOSYS || errno == EPERM)) fd = open_components(dfd, rel);
    if (fd >= 0 || (errno != EMFILE && errno != ENFILE) || ms > 64) return fd;
    const timespec ts{0, ms * 1'000'000L};
    nanosleep(&ts, nullptr);
  }
}

// Removes the entry name in dfd, a whole tree if it is a directory (never
// following a symlink, never leaving dfd).  Returns whether it is gone.
// However deep a killed run's leftover is, it holds one descriptor of the
// tree at a time: each directory is opened by its path below dfd, its
// names read whole, its files removed, and it is closed before a
// directory in it is entered or it is removed from its reopened parent.
bool remove_entry(int dfd, const char* name) noexcept {
  if (unlinkat(dfd, name, 0) == 0) return true;
  if (errno != EISDIR) return false;
  constexpr size_t kMaxDepth = 1024;
  struct Level {
    size_t path_len;  // of path, up to and with this level's name
    std::vector<std::string> subdirs;  // left to enter
    bool listed = false;
  };
  try {
    std::string path = name;
    std::vector<Level> levels{Level{path.size(), {}, false}};
    while (!levels.empty()) {
      Level& l = levels.back();
      path.resize(l.path_len);
      if (!l.listed) {
        l.listed = true;
        // One that cannot be opened or listed (a mount point, no descriptor
        // free) stays, and so do its parents; its siblings still go.
        UniqueFd cur(open_below(dfd, path));
        std::vector<std::string> names;
        if (cur.valid() && list_dir(cur.get(), [&](const char* c, unsigned char) { names.emplace_back(c); }) == 0) {
          for (std::string& c : names)
            if (unlinkat(cur.get(), c.c_str(), 0) != 0 && errno == EISDIR) l.subdirs.push_back(std::move(c));
        } else if (levels.size() == 1) {
          return false;
        } else {
          levels.pop_back();
          continue;
        }
      }
      if (!l.subdirs.empty() && levels.size() < kMaxDepth && path.size() + 1 + l.subdirs.back().size() < PATH_MAX) {
        path.append("/").append(l.subdirs.back());
        l.subdirs.pop_back();
        levels.push_back(Level{path.size(), {}, false});
        continue;
      }
      // Empty now, or keeps what could not be entered (its removal fails).
      const size_t slash = path.rfind('/');
      levels.pop_back();
      if (levels.empty()) return unlinkat(dfd, name, AT_REMOVEDIR) == 0;
      UniqueFd parent(open_below(dfd, path.substr(0, slash)));
      if (!parent.valid()) return false;
      unlinkat(parent.get(), path.c_str() + slash + 1, AT_REMOVEDIR);
    }
  } catch (...) {
  }
  return false;
}

}  // namespace

void remove_temporaries(const Job& job, int dfd, const std::function<bool(const char*, const char*)>& keep) noexcept {
  // Listed first (through a descriptor of its own: dfd's offset is the
  // walker's), removed after: the listing's descriptor is not held while
  // a leftover tree goes.
  std::vector<std::string> temps;
  try {
    UniqueFd list(open_below(dfd, "."));
    if (!list.valid()) return;
    list_dir(list.get(), [&](const char* name, unsigned char) {
      if (is_temporary(name)) temps.emplace_back(name);
    });
  } catch (...) {
    return;
  }
  for (const std::string& t : temps) {
    const char* name = t.c_str();
    if (keep) {
      std::string final_name;
      const std::string_view target = dir_temp_target(name);
      try {
        final_name = target;
      } catch (...) {
        continue;  // keep it: this run may take it over
      }
      if (keep(name, target.empty() ? nullptr : final_name.c_str())) continue;
    }
    if (remove_entry(dfd, name))
      job.counters.temps_removed.fetch_add(1, std::memory_order_relaxed);
  }
}

int rename_noreplace(int dfd, const char* from, const char* to) noexcept {
  if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -1;
  if (linkat(dfd, from, dfd, to, 0) == 0) {
    unlinkat(dfd, from, 0);
    return 0;
  }
  if (errno == EEXIST || (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS)) return -1;
  // Neither (some FUSE filesystems): as exclusive as a check can make it.
  struct stat st {};
  if (fstatat(dfd, to, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    errno = EEXIST;
    return -1;
  }
  if (errno != ENOENT) return -1;
  return renameat(dfd, from, dfd, to);
}

int settle_entry(const Job& job, int dfd, const char* written, const char* final_name, mode_t mode,
                 const timespec& atime, const timespec& mtime, const SourceMeta& meta, int* step,
                 bool exclusive) noexcept {
  int err = 0;
  // Owners, xattrs, ACLs that could not all be applied are reported, and the
  // entry gets no times: it never looks complete, so a re-run tries again.
  bool incomplete = false;
  if (meta.src.valid() && wants_extra_meta(job)) {
    if (const int e = sync_extra_meta(job, meta.src, Place{dfd, written}, mode, meta.uid, meta.gid); e != 0) {
      report_metadata(job, meta.dir, meta.name, e, meta.pair);
      incomplete = true;
    }
  }
  // Times in every mode (the quick check of a re-run compares them); the
  // mode with -p.  Symlinks have no mode of their own on Linux; and a
  // symlink swapped in for `written` (a destination directory another user
  // can write) must not be followed.
  const timespec ts[2] = {atime, mtime};
  if (err == 0 && ((job.preserve() && !S_ISLNK(mode) && chmod_nofollow(dfd, written, mode & 07777) != 0) ||
                   (!incomplete && utimensat(dfd, written, ts, AT_SYMLINK_NOFOLLOW) != 0))) {
    err = errno;
    *step = USYNC_STEP_METADATA;
  }
  if (err == 0 && final_name != nullptr &&
      (exclusive ? rename_noreplace(dfd, written, final_name) : renameat(dfd, written, dfd, final_name)) != 0) {
    err = errno;
    *step = USYNC_STEP_RENAME;
  }
  if (err != 0) unlinkat(dfd, written, 0);
  return err;
}

void report_metadata(const Job& job, const Dir* d, std::string_view name, int err, uint32_t pair) noexcept {
  // Jobs are never const objects: the const is the callers' promise not to
  // change the job's plan, and a report only counts and calls back.
  const_cast<Job&>(job).report(d, name, name, err, USYNC_STEP_METADATA);
  // The pair's result is written once, by this thread, later in finish_file
  // (which keeps this failure).
  if (job.results != nullptr && pair < job.results->size() && (*job.results)[pair].error == 0) {
    (*job.results)[pair].error = err;
    (*job.results)[pair].step = USYNC_STEP_METADATA;
  }
}

int finalize_file(const Job& job, const FileTask& t, const std::string& written, int* step, int src_fd) noexcept {
  // The source (only read for xattrs and ACLs): the file copied, when it is
  // still open.
  const SourceMeta meta{src_fd >= 0 ? Place{src_fd, ""} : t.src_place(), t.uid, t.gid, t.dir, t.dst_name, t.pair};
  const int err = settle_entry(job, t.dst_dirfd(), written.c_str(), t.replace ? t.dst_rel() : nullptr, t.mode,
                               job.cfg.file_atime(t.atime, t.mtime), t.mtime, meta, step, t.exclusive);
  return err != 0 ? err : sync_pair_parent(job, t, step);
}

}  // namespace usync
