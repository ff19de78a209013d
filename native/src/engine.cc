#include "engine.h"

#include "hardlinks.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>
#include <string_view>
#include <thread>
#include <unordered_set>

#include "budget.h"
#include "durable.h"
#include "ring.h"
#include "sync_copy.h"
#include "uring_worker.h"
#include "walker.h"

namespace usync {
namespace {

unsigned cpu_count() noexcept {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

// More descriptors for wide trees: raise the soft limit to the hard one.
void raise_nofile() noexcept {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// The copy calls running on this thread (the caller's thread, where
// progress_cb runs, and where a batch may be copied), innermost first, to
// refuse a call from a callback of any of them: engine A's callback may
// call engine B, whose callback must not call A again (A's run_mu_ is held
// on this very thread).
struct CallingScope;
thread_local const CallingScope* tls_calling = nullptr;

struct CallingScope {
  explicit CallingScope(const Engine* e) noexcept : engine(e), outer(tls_calling) { tls_calling = this; }
  ~CallingScope() { tls_calling = outer; }
  CallingScope(const CallingScope&) = delete;
  CallingScope& operator=(const CallingScope&) = delete;
  static bool running(const Engine* e) noexcept {
    for (const CallingScope* c = tls_calling; c != nullptr; c = c->outer)
      if (c->engine == e) return true;
    return false;
  }
  const Engine* engine;
  const CallingScope* outer;  // a call on another engine from a callback nests
};

bool env_force_sync() noexcept {
  const char* v = std::getenv("URING_SYNC_FORCE_SYNC");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

// Whether the directory open at fd, or any directory above it up to the
// filesystem root (through "..", so across bind mounts and symlinks as the
// kernel resolved them), is (dev, ino).  Returns 0 or an errno: a chain that
// cannot be followed is a refusal, never a skipped check.
int within(int fd, dev_t dev, ino_t ino, bool* inside) noexcept {
  *inside = false;
  UniqueFd cur(openat(fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cur.valid()) return errno;
  struct stat st {};
  if (fstat(cur.get(), &st) != 0) return errno;
  for (int depth = 0; depth < 1 << 16; ++depth) {
    if (st.st_dev == dev && st.st_ino == ino) {
      *inside = true;
      return 0;
    }
    UniqueFd up(openat(cur.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!up.valid()) return errno;
    struct stat pst {};
    if (fstat(up.get(), &pst) != 0) return errno;
    if (pst.st_dev == st.st_dev && pst.st_ino == st.st_ino) return 0;  // the root
    cur = std::move(up);
    st = pst;
  }
  return ELOOP;
}

// The nearest existing directory at or above path (lexically), opened.
UniqueFd open_existing_ancestor(const std::string& path) {
  std::string p = path;
  for (;;) {
    UniqueFd fd(open(p.empty() ? "." : p.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (fd.valid() || (errno != ENOENT && errno != ENOTDIR) || p.empty() || p == "/") return fd;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    const size_t slash = p.rfind('/');
    p = slash == std::string::npos ? std::string() : (slash == 0 ? std::string("/") : p.substr(0, slash));
  }
}

bool inside(const std::string& a, const std::string& b) {  // a == b or a under b
  if (a.size() < b.size() || a.compare(0, b.size(), b) != 0) return false;
  return a.size() == b.size() || a[b.size()] == '/' || b == "/";
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\\' && i + 3 < in.size()) {
      const int v = (in[i + 1] - '0') * 64 + (in[i + 2] - '0') * 8 + (in[i + 3] - '0');
      out += static_cast<char>(v);
      i += 3;
    } else {
      out += in[i];
    }
  }
  return out;
}

// Where the directory open at fd lies inside its filesystem: the root of its
// mount within that filesystem (a bind mount shows only a subtree), joined
// with its path below the mount point.  Two directories of one filesystem
// nest exactly when these paths do, whatever bind mounts lead to them.
// "" when it cannot be told (no /proc, a path longer than PATH_MAX).
std::string fs_path(int fd) {
  struct statx sx {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) != 0 || (sx.stx_mask & STATX_MNT_ID) == 0) return {};
  char proc[64];
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  std::string path(PATH_MAX, '\0');
  const ssize_t n = readlink(proc, path.data(), path.size());
  if (n <= 0 || static_cast<size_t>(n) >= path.size()) return {};
  path.resize(static_cast<size_t>(n));
  if (path.empty() || path[0] != '/') return {};
  FILE* f = std::fopen("/proc/self/mountinfo", "re");
  if (f == nullptr) return {};
  std::string result;
  char* line = nullptr;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    unsigned long long id = 0;
    char root[4096], mnt[4096];
    if (std::sscanf(line, "%llu %*u %*u:%*u %4095s %4095s", &id, root, mnt) != 3 || id != sx.stx_mnt_id) continue;
    const std::string r = unescape_mountinfo(root), m = unescape_mountinfo(mnt);
    if (!inside(path, m)) break;
    const std::string below = m == "/" ? path : path.substr(m.size());
    result = r == "/" ? (below.empty() ? "/" : below) : r + below;
    break;
  }
  std::free(line);
  std::fclose(f);
  return result;
}

// Whether directory a (open at fa) is directory b (open at fb) or lies
// inside it by the filesystem paths above, on one filesystem.
bool nested_in_filesystem(int fa, const struct stat& a, int fb, const struct stat& b) {
  if (a.st_dev != b.st_dev) return false;
  const std::string pa = fs_path(fa), pb = fs_path(fb);
  return !pa.empty() && !pb.empty() && inside(pa, pb);
}

// Refuses copying a directory into itself, into its own subtree, or over an
// ancestor of it, by identity.  Returns 0, ELOOP (overlap) or the errno that
// kept the check from being made.
int check_overlap(int src_fd, const std::string& dst) {
  struct stat s {};
  if (fstat(src_fd, &s) != 0) return errno;
  UniqueFd d = open_existing_ancestor(dst);
  if (!d.valid()) return errno;
  bool inside = false;
  if (const int err = within(d.get(), s.st_dev, s.st_ino, &inside); err != 0) return err;
  if (inside) return ELOOP;
  // A bind mount of a directory of SRC: going up through ".." leaves SRC at
  // the mount, but in the filesystem the place is still inside SRC.
  struct stat a {};
  if (fstat(d.get(), &a) != 0) return errno;
  if (nested_in_filesystem(d.get(), a, src_fd, s)) return ELOOP;
  // DST (if it exists) must not contain SRC either.
  UniqueFd whole(open(dst.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!whole.valid()) return 0;
  struct stat ds {};
  if (fstat(whole.get(), &ds) != 0) return errno;
  if (const int err = within(src_fd, ds.st_dev, ds.st_ino, &inside); err != 0) return err;
  return inside || nested_in_filesystem(src_fd, s, whole.get(), ds) ? ELOOP : 0;
}

std::string base_name(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  const size_t slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

// mkdir -p for the parents of a path; returns 0 or errno.
int make_parents(const std::string& path) {
  size_t end = path.size();
  while (end > 1 && path[end - 1] == '/') --end;  // "dst/": the parents of dst, not dst
  const size_t slash = path.rfind('/', end - 1);
  if (slash == std::string::npos || slash == 0) return 0;
  std::error_code ec;
  std::filesystem::create_directories(path.substr(0, slash), ec);
  return ec ? ec.value() : 0;
}

// The temporary path a new destination root is built under: the
// directory temporary (dir_temp_name) of its last component, beside it.
// "" when there is none (a name too long, or none: "/", ".", "..").
std::string temp_path_beside(const std::string& path) {
  std::string s = path;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  const size_t slash = s.rfind('/');
  const std::string base = slash == std::string::npos ? s : s.substr(slash + 1);
  if (base.empty() || base == "." || base == ".." || base == "/") return {};
  const std::string tmp = dir_temp_name(base);
  if (tmp.empty()) return {};
  return slash == std::string::npos ? tmp : s.substr(0, slash + 1) + tmp;
}

// io_uring, a pair batch that one ring would copy: the calling thread, which
// only waits otherwise, first copies the files it finds in the page cache,
// as a ring's thread would (copy_file_sync's probe declines, having done
// nothing, where it would wait for the device).  From the first file that
// would wait on, the rest go to the ring, which probes them itself.  Returns
// how many of feed's first files it finished (copied or failed).
size_t copy_cached_on_caller(Job& job, std::vector<FileTask>& feed, const std::function<void()>& after_file) noexcept {
  std::unique_ptr<char[]> buf(new (std::nothrow) char[job.chunk]);
  std::unique_ptr<Md5> md5;
  std::unique_ptr<Digest> digest;
  if (job.cfg.has(USYNC_HASH_MD5)) md5.reset(new (std::nothrow) Md5);
  if (job.cfg.has(USYNC_VERIFY)) digest.reset(new (std::nothrow) Digest);
  if (!buf || (job.cfg.has(USYNC_HASH_MD5) && (!md5 || !md5->ok())) ||
      (job.cfg.has(USYNC_VERIFY) && (!digest || !digest->ok())))
    return 0;  // the ring's thread copies them all
  StagedFiles staged(md5 != nullptr);  // their MD5s many at a time
  size_t n = 0;
  for (; n < feed.size() && !job.cancelled(); ++n) {
    if (!copy_if_cached(job, feed[n], buf.get(), job.chunk, md5.get(), digest.get(), &staged)) {
      feed[n].probed = true;
      break;
    }
    after_file();
  }
  staged.finish_all(job);  // before the ring takes the rest
  return n;
}

// The directories of a call's pairs, each opened once (O_PATH: no
// permission on the directory itself is needed, as for a path): a file is
// then opened, created and named relative to its directory's descriptor,
// one path walk per directory and call instead of three per file.  Pairs
// come grouped by directory (rclone's batches list a directory at a time),
// so the last few directories are kept, the newest looked at first; past
// kMax, or where a directory cannot be opened, a pair keeps its paths.
// Lives until the call's files are done.
class PairDirs {
 public:
  explicit PairDirs(bool on) noexcept : on_(on) {}

  // The descriptor of path's directory, and in *leaf the offset of its
  // last component in path; AT_FDCWD and 0 to use the whole path.
  int dir_of(std::string_view path, uint16_t* leaf) noexcept {
    *leaf = 0;
    const size_t slash = path.rfind('/');
    if (!on_ || slash == std::string_view::npos || slash + 1 > UINT16_MAX) return AT_FDCWD;
    const std::string_view name = path.substr(slash + 1);
    // "a/" names the directory itself, "a/." and "a/.." others: left to
    // the whole path.
    if (name.empty() || name == "." || name == "..") return AT_FDCWD;
    const std::string_view dir = slash == 0 ? std::string_view("/") : path.substr(0, slash);
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      if (it->path != dir) continue;
      if (!it->fd.valid()) return AT_FDCWD;
      *leaf = static_cast<uint16_t>(slash + 1);
      return it->fd.get();
    }
    if (dirs_.size() >= kMax) return AT_FDCWD;
    try {
      Entry e{std::string(dir), UniqueFd()};
      e.fd.reset(open(e.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      dirs_.push_back(std::move(e));
    } catch (...) {
      return AT_FDCWD;
    }
    if (!dirs_.back().fd.valid()) return AT_FDCWD;
    *leaf = static_cast<uint16_t>(slash + 1);
    return dirs_.back().fd.get();
  }

 private:
  static constexpr size_t kMax = 16;
  struct Entry {
    std::string path;
    UniqueFd fd;
  };
  std::vector<Entry> dirs_;
  bool on_;
};

}  // namespace

int Engine::create(const usync_options* in, Engine** out) noexcept {
  if (out == nullptr) return -EINVAL;
  *out = nullptr;
  usync_options o;
  usync_options_init(&o);
  if (in != nullptr) {
    // Fields up to cb_user exist in every version; take only the part of the
    // struct the caller says it has, defaults for the rest.
    constexpr size_t kFirstVersion = offsetof(usync_options, cb_user) + sizeof(void*);
    if (in->struct_size < kFirstVersion) return -EINVAL;
    std::memcpy(&o, in, std::min<size_t>(in->struct_size, sizeof o));
    o.struct_size = sizeof o;
  }
  if ((o.flags & ~USYNC_KNOWN_FLAGS) != 0) return -EINVAL;
  Engine* e = new (std::nothrow) Engine;
  if (e == nullptr) return -ENOMEM;
  try {
    Config& c = e->cfg_;
    c.flags = o.flags;
    if (c.has(USYNC_DELETE_EXCLUDED)) c.flags |= USYNC_DELETE;  // as rsync's --delete-excluded
    const unsigned cpus = cpu_count();
    if (o.workers > 1024 || o.queue_depth > 4096 || o.iowq_max_workers > 1024) throw EINVAL;
    if (o.chunk_size != 0 && (o.chunk_size < 4096 || o.chunk_size > (64u << 20))) throw EINVAL;
    if (o.buffer_budget != 0 && o.buffer_budget < 4096) throw EINVAL;
    c.workers = o.workers != 0 ? o.workers : std::max(2u, std::min(cpus, 16u));
    c.sync_workers = o.workers != 0 ? o.workers : std::max(4u, std::min(cpus * 4, 64u));
    c.workers_auto = o.workers == 0;
    c.queue_depth = o.queue_depth != 0 ? o.queue_depth : 128;
    c.chunk_size = o.chunk_size != 0 ? o.chunk_size : 128 * 1024;
    c.iowq_max_workers = o.iowq_max_workers != 0 ? o.iowq_max_workers : 4;
    c.progress_interval_ms = o.progress_interval_ms != 0 ? o.progress_interval_ms : 200;
    c.idle_timeout_ms = o.idle_timeout_ms != 0 ? o.idle_timeout_ms : 5000;
    c.buffer_budget = o.buffer_budget != 0 ? o.buffer_budget : (128u << 20);
    c.large_threshold = std::max<uint64_t>(1u << 20, uint64_t{c.chunk_size} * 4);
    if (o.file_mode > 0777) throw EINVAL;
    c.file_mode = o.file_mode;
    if (o.exclude_count > 0 && o.excludes == nullptr) throw EINVAL;
    for (size_t i = 0; i < o.exclude_count; ++i)
      if (o.excludes[i] == nullptr || !c.filter.add(o.excludes[i])) throw EINVAL;
    c.error_cb = o.error_cb;
    c.file_done_cb = o.file_done_cb;
    c.progress_cb = o.progress_cb;
    c.delete_cb = o.delete_cb;
    c.cb_user = o.cb_user;
    const bool sync = (o.flags & USYNC_FORCE_SYNC) != 0 || env_force_sync();
    int err = 0;
    e->kind_ = (!sync && uring_available(&err)) ? USYNC_ENGINE_URING : USYNC_ENGINE_SYNC;
    if (!sync && e->kind_ == USYNC_ENGINE_SYNC && (o.flags & USYNC_ANNOUNCE_FALLBACK) != 0) {
      std::fprintf(stderr, "uring-sync: io_uring unavailable (%s); using the synchronous engine\n",
                   std::strerror(-err));
      e->announced_ = true;
    }
    e->pid_ = getpid();
    e->pool_ = std::make_unique<ThreadPool>(std::chrono::milliseconds(c.idle_timeout_ms));
  } catch (int err) {
    delete e;
    return -err;
  } catch (...) {
    delete e;
    return -ENOMEM;
  }
  if ((o.flags & USYNC_RAISE_NOFILE) != 0) raise_nofile();
  *out = e;
  return 0;
}

Engine::~Engine() {
  // A forked child has none of the threads, and their mutexes and condition
  // variables may be in any state: neither join nor destroy them.
  if (pool_ && getpid() != pid_) static_cast<void>(pool_.release());
}

int Engine::refuse_call() const noexcept {
  if (getpid() != pid_) return -ECHILD;
  if (CallingScope::running(this) || pool_->on_pool_thread()) return -EDEADLK;
  return 0;
}

void Engine::cancel() noexcept {
  cancel_.store(true, std::memory_order_relaxed);
  std::lock_guard lk(job_mu_);
  if (current_ != nullptr) current_->stop();  // wakes threads blocked on the queues
}

void Engine::begin() {
  counters_.reset();
  counters_.start_ns.store(now_ns(), std::memory_order_relaxed);
  cancel_.store(false, std::memory_order_relaxed);
}

void Engine::report_progress(Job& job) {
  if (cfg_.progress_cb == nullptr) return;
  usync_stats s{};
  counters_.snapshot(&s);
  job.progress_cb(s);
}

int Engine::finish(Job& job) {
  counters_.end_ns.store(now_ns(), std::memory_order_relaxed);
  report_progress(job);
  if (job.user_cancelled()) return -ECANCELED;
  return counters_.files_failed.load(std::memory_order_relaxed) > 0 ? -EIO : 0;
}

int Engine::kind_for(const char* path) const noexcept {
  if (kind_ != USYNC_ENGINE_URING || cfg_.has(USYNC_FORCE_URING)) return kind_;
  struct statfs sf {};
  if (statfs(path, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)) return USYNC_ENGINE_SYNC;
  return kind_;
}

// io_uring sends every create to io-wq, where it costs a handoff, and two
// io-wq workers creating in one directory contend for its lock (measured,
// cold 100K x 4 KiB: -19% CPU and -16% time into ext4, -9% CPU into a
// tmpfs).  On a local disk or in memory a create or a buffered write
// seldom waits (dirty-page throttling, a cold directory block, a full
// journal), and never for a server.  Elsewhere (NFS, FUSE, SMB, ...) a
// create waits for a round trip, and io-wq runs many at once.  The
// filesystems listed were measured or are local by construction; any other,
// or one mounted -o sync, keeps the ring's creates.  One filesystem is
// asked per call: the tree's root, or the first pair's destination.
bool local_writes(int fd, const std::string& path) {
  struct statfs sf {};
  if (fd < 0) {
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
    if (statfs(dir.c_str(), &sf) != 0) return false;
  } else if (fstatfs(fd, &sf) != 0) {
    return false;
  }
  if (sf.f_flags & ST_SYNCHRONOUS) return false;  // mounted -o sync: every write waits for the device
  switch (static_cast<unsigned long>(sf.f_type)) {
    case TMPFS_MAGIC:
    case RAMFS_MAGIC:
    case EXT4_SUPER_MAGIC:  // ext2 and ext3 too
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case F2FS_SUPER_MAGIC: return true;
    default: return false;
  }
}

int Engine::run(Job& job, Dir* root, std::vector<FileTask>* feed) {
  {
    std::lock_guard lk(job_mu_);
    current_ = &job;
    if (cancel_.load(std::memory_order_relaxed)) job.stop();
  }
  bool uring = job.engine_kind == USYNC_ENGINE_URING;
  uint32_t workers = 0;
  uint32_t max_bulk = UINT32_MAX;
  bool no_workers = false;  // no ring (io_uring) or no thread at all (sync)
  uint64_t small = 0, large = 0;
  Budget budget;
  // Fit descriptors and pinned memory to what this process has.
  // A tree's root pair is open already (and counted among those in use):
  // the walker's cache counts it as one of its pairs.
  const uint64_t limit = nofile_limit();
  const uint64_t in_use = open_fd_count(limit);
  auto plan = [&] {
    workers = uring ? cfg_.workers : cfg_.sync_workers;
    // Chosen for a tmpfs source: no device latency to hide, so about two
    // threads per CPU keep the cores busy without piling onto directory locks.
    if (!uring && kind_ == USYNC_ENGINE_URING && cfg_.workers_auto)
      workers = std::max(2u, std::min(cpu_count() * 2, workers));
    // A pair copy knows its work: no more threads than it has batches for
    // (small files are queued 64 to a batch, large ones one each; with
    // io_uring large ones go to the bulk threads, and no small file needs no
    // ring).  A tree is not known before it is walked.
    max_bulk = UINT32_MAX;
    no_workers = false;
    small = large = 0;
    if (feed != nullptr) {
      for (const FileTask& t : *feed) ++(t.size >= cfg_.large_threshold ? large : small);
      const uint64_t small_batches = (small + 63) / 64;
      const uint64_t batches = uring ? small_batches : small_batches + large;
      workers = static_cast<uint32_t>(std::min<uint64_t>(workers, std::max<uint64_t>(1, batches)));
      no_workers = uring ? small == 0 : batches == 0;
      if (uring) max_bulk = static_cast<uint32_t>(std::min<uint64_t>(large, UINT32_MAX));
    }
    budget = plan_budget(cfg_, uring, workers, limit, in_use, max_bulk, root != nullptr ? 1 : 0);
  };
  plan();
  if (uring && !budget.ring_fits) {
    // Too few descriptors for even one ring beside the directories: plain
    // threads need one fewer, and complete where a ring could not.
    uring = false;
    job.engine_kind = USYNC_ENGINE_SYNC;
    plan();
  }
  // No room for a bulk thread beside a ring: the ring takes the large files
  // too (and so is needed for a batch of nothing else).
  const bool bulk_path = uring && budget.bulk_threads > 0;
  job.large_on_rings = uring && !bulk_path && max_bulk > 0;
  if (job.large_on_rings && large > 0) no_workers = false;
  workers = no_workers ? 0 : budget.workers;
  job.dir_pairs = budget.dir_pairs;
  job.ring_depth = budget.queue_depth;
  job.chunk = budget.chunk;
  job.inline_copies = budget.inline_copies;
  job.dst_ops_inline = uring && !test_seams.dst_ops_on_ring &&
                       (root != nullptr ? local_writes(job.dst_root_fd, {})
                                        : feed != nullptr && !feed->empty() && local_writes(-1, (*feed)[0].dst_name));
  job.prefetch_threads = budget.prefetch_threads;
  // A batch copied on the calling thread (below) has no caller waiting to
  // report progress: the copying thread does, between files.
  auto last_progress = std::chrono::steady_clock::now();
  const std::function<void()> progress_between = [&] {
    if (cfg_.progress_cb == nullptr) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_progress < std::chrono::milliseconds(cfg_.progress_interval_ms)) return;
    last_progress = now;
    report_progress(job);
  };
  // A pair batch of one worker's files (at most 64 small ones: "small" and
  // "large" by the caller's size where it gave one, usync_pair.size) starts
  // on the calling thread, which only waits otherwise.  io_uring: what is
  // cached needs no ring and no thread switch (the adaptive engine; not with
  // USYNC_FORCE_URING, whose budget has no inline copies).
  const bool one_batch = feed != nullptr && root == nullptr && workers == 1 && large == 0 && small > 0 && small <= 64;
  if (uring && one_batch && job.inline_copies) {
    const size_t done = copy_cached_on_caller(job, *feed, progress_between);
    feed->erase(feed->begin(), feed->begin() + static_cast<std::ptrdiff_t>(done));
    small -= done;
    if (feed->empty()) {
      workers = 0;
      no_workers = true;
    }
  }
  counters_.engine.store(static_cast<uint32_t>(job.engine_kind), std::memory_order_relaxed);
  counters_.workers.store(workers, std::memory_order_relaxed);
  counters_.queue_depth.store(uring ? budget.queue_depth : 0, std::memory_order_relaxed);
  counters_.fd_budget.store(static_cast<uint32_t>(std::min<uint64_t>(budget.fd_budget, UINT32_MAX)),
                            std::memory_order_relaxed);
  counters_.buffer_bytes.store(
      no_workers ? uint64_t{budget.bulk_threads} * budget.chunk : budget.buffer_bytes, std::memory_order_relaxed);
  std::mutex mu;
  std::condition_variable cv;
  size_t running = 0;
  std::atomic<uint32_t> fell_back{0};
  std::atomic<int> fallback_err{0};  // -errno of the first ring that could not be set up
  // Each thread body runs on a thread of the engine's pool; this call waits
  // until every one has ended and its thread is idle again.
  auto spawn = [&](auto fn, bool ring = false) {
    {
      std::lock_guard lk(mu);
      ++running;
    }
    try {
      pool_->run(
          fn,
          [&] {
            std::lock_guard lk(mu);
            --running;
            cv.notify_all();
          },
          ring);
    } catch (...) {
      std::lock_guard lk(mu);
      --running;  // never started: nothing will count it down
      throw;
    }
  };
  // Queues the pairs in batches and closes the queues.
  auto queue_feed = [&] {
    std::vector<FileTask> small, large;
    auto flush = [&](std::vector<FileTask>& batch, WorkQueue<FileTask>& q) {
      if (!q.push(batch)) {
        for (FileTask& a : batch) job.abandon_file(a);
        batch.clear();
      }
    };
    // Threads may be running: nothing may escape from here before they
    // end, so a failed allocation abandons what was not queued.
    size_t next = 0;
    try {
      while (next < feed->size()) {
        FileTask& t = (*feed)[next];
        const bool big = t.size >= cfg_.large_threshold;
        std::vector<FileTask>& batch = big ? large : small;
        batch.push_back(std::move(t));  // strong guarantee: t stays if this throws
        ++next;
        // Large files one per batch, so that threads share them out.
        if (big || batch.size() >= 64) flush(batch, big && bulk_path ? job.large_q : job.small_q);
      }
      flush(small, job.small_q);
    } catch (...) {
      job.stop();
      for (auto* batch : {&small, &large})
        for (FileTask& a : *batch) job.abandon_file(a);
      for (; next < feed->size(); ++next) job.abandon_file((*feed)[next]);
      job.report(nullptr, "", "", ENOMEM, USYNC_STEP_NONE);
    }
    job.small_q.close();
    job.large_q.close();
  };
  // A batch that fits the queues is queued before the threads start: they
  // find their files at once instead of being woken for them.
  const bool prefed = feed != nullptr && (bulk_path ? small <= job.small_q.capacity() && large <= job.large_q.capacity()
                                                    : small + large <= job.small_q.capacity());
  if (prefed) queue_feed();
  // A batch of small files that one synchronous worker would copy is copied
  // on the calling thread, which only waits otherwise: handing it to a pool
  // thread and waking the caller when it is done cost two thread switches
  // (on a VM ~70 us per call, what copying a dozen small files costs).  Large
  // files keep their threads (and the caller's progress callbacks while they
  // are copied).
  const bool on_caller = !uring && prefed && one_batch;
  bool walker_started = false;
  try {
    if (on_caller) {
      run_sync_worker(job, job.small_q, progress_between);  // the one worker (usync_stats.workers 1)
    } else if (uring) {
      for (uint32_t i = 0; i < workers; ++i)
        spawn(
            [&] {
              bool fb = false;
              const int why = run_uring_worker(job, &fb);
              if (fb) {
                fell_back.fetch_add(1);
                int none = 0;
                fallback_err.compare_exchange_strong(none, why);
              }
            },
            true);
      for (uint32_t i = 0; i < budget.bulk_threads; ++i) spawn([&] { run_sync_worker(job, job.large_q); });
    } else {
      for (uint32_t i = 0; i < workers; ++i) spawn([&] { run_sync_worker(job, job.small_q); });
    }
    if (root != nullptr) {
      spawn([&] { run_walker(job, root, bulk_path); });
      walker_started = true;
    }
  } catch (...) {
    job.stop();  // could not start every thread: let the started ones drain
    job.report(nullptr, job.src_root, job.dst_root, EAGAIN, USYNC_STEP_NONE);
    // What was queued for threads that never started is abandoned (the
    // started ones, stopping too, may take some of it meanwhile).
    std::vector<FileTask> left;
    for (WorkQueue<FileTask>* q : {&job.small_q, &job.large_q})
      while (q->pop(left, false)) {
        for (FileTask& t : left) job.abandon_file(t);
        left.clear();
      }
  }
  if (root != nullptr && !walker_started) {
    // Nothing was walked: drop the root (and the empty directory made for it).
    job.small_q.close();
    job.large_q.close();
    if (root->fresh) rmdir((root->tmp.empty() ? job.dst_root : root->tmp).c_str());
    delete root;
  }
  if (feed != nullptr && !prefed) queue_feed();
  {
    std::unique_lock lk(mu);
    const auto interval = std::chrono::milliseconds(cfg_.progress_interval_ms);
    while (running > 0) {
      if (cv.wait_for(lk, interval, [&] { return running == 0; })) break;
      if (cfg_.progress_cb != nullptr) {
        lk.unlock();
        report_progress(job);
        lk.lock();
      }
    }
  }
  {
    std::lock_guard lk(job_mu_);
    current_ = nullptr;
  }
  if (fell_back == workers && workers > 0 && uring) counters_.engine.store(USYNC_ENGINE_SYNC, std::memory_order_relaxed);
  if (fell_back > 0 && cfg_.has(USYNC_ANNOUNCE_FALLBACK) && !announced_.exchange(true))
    std::fprintf(stderr, "uring-sync: could not set up an io_uring on a worker (%s); it used the synchronous engine\n",
                 std::strerror(-fallback_err.load()));
  return finish(job);
}

int Engine::copy_tree(const char* src, const char* dst) noexcept {
  if (src == nullptr || dst == nullptr || *src == '\0' || *dst == '\0') return -EINVAL;
  if (const int ret = refuse_call(); ret != 0) return ret;
  std::lock_guard lk(run_mu_);
  const CallingScope scope(this);
  try {
    return copy_tree_locked(src, dst);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    return -EIO;
  }
}

int Engine::copy_tree_locked(const std::string& src, const std::string& dst_in) {
  begin();
  Job job(cfg_, counters_, cancel_, kind_for(src.c_str()));
  job.umask_known = read_umask(&job.umask_bits);
  // A call that cannot start says which side it could not use (error_cb,
  // as the overlap refusal), then returns the bare -errno.
  auto cannot_start = [&](int err, int step) {
    job.report(nullptr, src, dst_in, err, step);
    finish(job);
    return -err;
  };
  struct stat st {};
  // USYNC_COPY_LINKS follows a SRC that is itself a symlink too (cp -rL,
  // rsync -L): a dangling one cannot start.
  if ((cfg_.has(USYNC_COPY_LINKS) ? stat(src.c_str(), &st) : lstat(src.c_str(), &st)) != 0)
    return cannot_start(errno, USYNC_STEP_STAT);

  if (!S_ISDIR(st.st_mode)) {
    // A single entry: into DST if it is an existing directory, else as DST.
    std::string dst = dst_in;
    struct stat dt {};
    if (stat(dst.c_str(), &dt) == 0 && S_ISDIR(dt.st_mode)) dst += "/" + base_name(src);
    if (stat(dst.c_str(), &dt) == 0 && dt.st_dev == st.st_dev && dt.st_ino == st.st_ino) {
      job.report(nullptr, src, dst, ELOOP, USYNC_STEP_OVERLAP);  // the same file
      return -ELOOP;
    }
    // A symlink onto the very file it points to (`l -> f`, DST f) would
    // replace that file by a link to itself: cp -P refuses it as the same
    // file.  (A DST that is itself another link to it is replaced as usual.)
    struct stat target {}, here {};
    if (S_ISLNK(st.st_mode) && stat(src.c_str(), &target) == 0 && lstat(dst.c_str(), &here) == 0 &&
        here.st_dev == target.st_dev && here.st_ino == target.st_ino) {
      job.report(nullptr, src, dst, ELOOP, USYNC_STEP_OVERLAP);
      return -ELOOP;
    }
    if (S_ISREG(st.st_mode)) {
      std::vector<FileTask> one(1);
      FileTask& t = one[0];
      t.src_name = src;
      t.dst_name = dst;
      t.set_stat(st);
      t.existing = true;  // a re-run finds it there
      job.src_root = src;
      job.dst_root = dst;
      counters_.files_found.store(1, std::memory_order_relaxed);
      counters_.bytes_found.store(t.size, std::memory_order_relaxed);
      counters_.walk_done.store(1, std::memory_order_relaxed);
      if (cfg_.has(USYNC_DRY_RUN)) {
        counters_.files_done.store(1, std::memory_order_relaxed);
        counters_.bytes_done.store(t.size, std::memory_order_relaxed);
        counters_.bytes_copied.store(t.size, std::memory_order_relaxed);
        job.file_done_cb(nullptr, src, dst, t.size, nullptr, t.mode);
        return finish(job);
      }
      if (const int err = make_parents(dst); err != 0) {
        job.report(nullptr, src, dst, err, USYNC_STEP_MKDIR);
        return finish(job);
      }
      job.files_outstanding.store(1);
      return run(job, nullptr, &one);
    }
    counters_.walk_done.store(1, std::memory_order_relaxed);
    if (!cfg_.has(USYNC_DRY_RUN)) {
      int step = USYNC_STEP_NONE;
      struct stat existing {};
      const bool replace = lstat(dst.c_str(), &existing) == 0;
      int err = make_parents(dst);
      if (err == 0)
        err = copy_special(job, AT_FDCWD, src.c_str(), st, AT_FDCWD, dst.c_str(), replace, &step);
      else
        step = USYNC_STEP_MKDIR;
      if (err != 0) job.report(nullptr, src, dst, err, step);
    }
    return finish(job);
  }

  // A directory tree.  Refuse overlapping trees: copying into itself (or
  // into an ancestor) would read what it writes, or write over the source.
  UniqueFd sfd(open(src.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!sfd.valid()) return cannot_start(errno, USYNC_STEP_OPEN_SRC);
  job.src_root = src;
  job.dst_root = dst_in;
  if (const int err = check_overlap(sfd.get(), dst_in); err != 0) {
    job.report(nullptr, src, dst_in, err, USYNC_STEP_OVERLAP);
    finish(job);
    return -err;
  }
  UniqueFd dfd;
  bool fresh = false;
  mode_t made = 0;
  std::string root_tmp;  // a new DST is built under this path beside it (see Dir::tmp)
  if (!cfg_.has(USYNC_DRY_RUN)) {
    struct stat existing {};
    if (lstat(dst_in.c_str(), &existing) != 0) {  // an existing symlink is followed below, like cp
      if (errno != ENOENT) return cannot_start(errno, USYNC_STEP_MKDIR);
      if (const int err = make_parents(dst_in); err != 0) return cannot_start(err, USYNC_STEP_MKDIR);
      const mode_t want = cfg_.has(USYNC_PRESERVE) ? (st.st_mode & 07777) : (st.st_mode & (0777 | S_ISVTX) & ~job.umask_bits);
      made = (want | S_IRWXU) & ~job.umask_bits;
      root_tmp = temp_path_beside(dst_in);
      // EEXIST: a killed run's (taken over), or made meanwhile by someone
      // else (merged into).
      const std::string& as = root_tmp.empty() ? dst_in : root_tmp;
      if (mkdir(as.c_str(), made) == 0)
        fresh = true;
      else if (errno != EEXIST)
        return cannot_start(errno, USYNC_STEP_MKDIR);
      else if (!root_tmp.empty() && (lstat(root_tmp.c_str(), &existing) != 0 || !S_ISDIR(existing.st_mode))) {
        // Not a killed run's directory (a symlink, a file): never followed
        // (it could lead outside DST, or into SRC past the overlap check)
        // nor taken over; DST is made under its own name.
        root_tmp.clear();
        if (mkdir(dst_in.c_str(), made) == 0)
          fresh = true;
        else if (errno != EEXIST)
          return cannot_start(errno, USYNC_STEP_MKDIR);
      }
      if (!root_tmp.empty() && lstat(dst_in.c_str(), &existing) == 0) {
        // DST was made meanwhile (another run named its own): merge into it.
        if (fresh) rmdir(root_tmp.c_str());
        root_tmp.clear();
        fresh = false;
      }
    }
    const std::string& opened = root_tmp.empty() ? dst_in : root_tmp;
    // A temporary is ours, never a symlink to follow (one swapped in since).
    dfd.reset(open(opened.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | (root_tmp.empty() ? 0 : O_NOFOLLOW)));
    if (!dfd.valid()) {
      const int err = errno;
      if (fresh) rmdir(opened.c_str());
      return cannot_start(err, USYNC_STEP_OPEN_DST);
    }
    if (fresh) counters_.dirs_created.fetch_add(1, std::memory_order_relaxed);
    // Every run holds a shared lock on the destination root; one that can
    // briefly make it exclusive knows it is alone and may remove what
    // killed runs left behind (the walker does, under a gate: see
    // Walker::begin_alone).
    flock(dfd.get(), LOCK_SH);
  } else {
    // A dry run reads an existing destination to tell what a real run would
    // do: which files are up to date, what --delete would remove.
    dfd.reset(open(dst_in.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
  struct stat ids {};
  if (fstat(sfd.get(), &ids) != 0) return cannot_start(errno, USYNC_STEP_STAT);
  Dir* root = job.new_dir(nullptr);
  root->src_dev = ids.st_dev;
  root->src_ino = ids.st_ino;
  if ((dfd.valid() ? fstat(dfd.get(), &ids) : stat(dst_in.c_str(), &ids)) == 0) {
    root->dst_dev = job.dst_root_dev = ids.st_dev;
    root->dst_ino = job.dst_root_ino = ids.st_ino;
  }
  root->src = std::move(sfd);
  root->dst = std::move(dfd);
  root->mode = st.st_mode;
  root->uid = st.st_uid;
  root->gid = st.st_gid;
  root->atime = st.st_atim;
  root->mtime = st.st_mtim;
  root->fresh = fresh;
  root->mode_made = made;
  if (!fresh && !cfg_.has(USYNC_DRY_RUN) && root->dst.valid())
    root->opened_up = open_up_dir(root->dst.get(), &root->mode_before);
  root->tmp = std::move(root_tmp);
  root->hidden = !root->tmp.empty();
  root->resumed = !fresh && root->hidden;  // a killed run's, taken over
  job.dst_root_fd = root->dst.get();  // the root is never closed before the job ends
  job.dst_time_ns = test_seams.dst_time_granularity != 0 ? test_seams.dst_time_granularity
                                                          : time_granularity(root->dst.get());
  std::unique_ptr<HardLinks> links;
  if (cfg_.has(USYNC_HARD_LINKS) && !cfg_.has(USYNC_DRY_RUN)) {
    links = std::make_unique<HardLinks>(job);
    job.links = links.get();
  }
  return run(job, root, nullptr);
}

int Engine::copy_files(const usync_pair* pairs, size_t count, usync_result* results) noexcept {
  if ((pairs == nullptr || results == nullptr) && count > 0) return -EINVAL;
  if (const int ret = refuse_call(); ret != 0) return ret;
  std::lock_guard lk(run_mu_);
  const CallingScope scope(this);
  try {
    return copy_files_locked(pairs, count, results);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    return -EIO;
  }
}

int Engine::copy_files_locked(const usync_pair* pairs, size_t count, usync_result* results) {
  begin();
  Job job(cfg_, counters_, cancel_, count > 0 && pairs[0].src != nullptr ? kind_for(pairs[0].src) : kind_);
  std::vector<usync_result> res(count);
  job.results = &res;
  std::vector<FileTask> tasks;
  tasks.reserve(count);
  std::unordered_set<std::string> made;  // parent directories known to exist
  std::unordered_set<std::string_view> dsts;  // destinations named so far
  dsts.reserve(count);
  std::vector<int> dry_errs(cfg_.has(USYNC_DRY_RUN) ? count : 0);  // a dry run's predicted rename failures
  // Destroyed after run(): the files' directory descriptors.  A process
  // short of descriptors keeps its paths.
  PairDirs dirs(!cfg_.has(USYNC_DRY_RUN) && nofile_limit() >= 256);
  for (size_t i = 0; i < count; ++i) {
    usync_result& r = res[i];
    const char* s = pairs[i].src;
    const char* d = pairs[i].dst;
    if (s == nullptr || d == nullptr || *s == '\0' || *d == '\0') {
      r.error = EINVAL;
      // The side that has no path is the one at fault.
      r.step = s == nullptr || *s == '\0' ? USYNC_STEP_OPEN_SRC : USYNC_STEP_OPEN_DST;
      job.report(nullptr, s != nullptr ? s : "", d != nullptr ? d : "", r.error, r.step);
      continue;
    }
    // Caller bugs told by the paths alone (a dry run says the same): a file
    // onto itself (cp: "are the same file"; a copy would replace it with
    // itself), and a destination an earlier pair names (whose copy this one
    // would silently replace, or not, by which finishes last).
    if (std::strcmp(s, d) == 0) {
      r.error = ELOOP;
      r.step = USYNC_STEP_OVERLAP;
      job.report(nullptr, s, d, r.error, r.step);
      continue;
    }
    if (!dsts.insert(std::string_view(d)).second) {
      r.error = EINVAL;
      r.step = USYNC_STEP_OPEN_DST;
      job.report(nullptr, s, d, r.error, r.step);
      continue;
    }
    // The directory the copy goes into, and whether an earlier pair of this
    // call made or found it.
    const std::string_view dst_path(d);
    const size_t slash = dst_path.rfind('/');
    std::string parent;
    if (slash != std::string_view::npos && slash > 0) parent.assign(dst_path.substr(0, slash));
    const bool parent_known = parent.empty() || made.count(parent) != 0;
    // A pair with its caller's size is not looked up here (one path walk
    // fewer per file): the worker's open and fstat decide (usync_pair.size).
    // Except the first into a directory not known yet: a source that is
    // gone must not leave the directories made for it behind.
    const bool sized =
        pairs[i].size != 0 && parent_known && !cfg_.has(USYNC_DRY_RUN) && !cfg_.has(USYNC_SPARSE);
    struct stat st {};
    if (sized)
      ;
    else if (stat(s, &st) != 0)
      r.error = errno;
    else if (!S_ISREG(st.st_mode))
      r.error = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    if (r.error != 0) {
      r.step = USYNC_STEP_STAT;
      job.report(nullptr, s, d, r.error, r.step);
      continue;
    }
    if (cfg_.has(USYNC_DRY_RUN)) {
      // What a real run would meet at the destination, as far as an lstat
      // tells for certain (nothing is made): a parent that is no directory
      // (make_parents fails), or a name it may not take (the rename fails).
      struct stat ds {};
      if (lstat(d, &ds) == 0) {
        if (cfg_.has(USYNC_NO_REPLACE))
          dry_errs[i] = EEXIST;
        else if (S_ISDIR(ds.st_mode))
          dry_errs[i] = EISDIR;
      } else if (errno == ENOTDIR) {
        r.error = ENOTDIR;
        r.step = USYNC_STEP_MKDIR;
        job.report(nullptr, s, d, r.error, r.step);
        continue;
      }
    }
    FileTask t;
    t.src_name = s;
    t.dst_name = d;
    if (!parent_known && !cfg_.has(USYNC_DRY_RUN)) {  // a dry run makes nothing
      if (const int err = make_parents(t.dst_name); err != 0) {
        r.error = err;
        r.step = USYNC_STEP_MKDIR;
        job.report(nullptr, s, d, err, r.step);
        continue;
      }
      made.insert(std::move(parent));
    }
    t.pair_src_fd = dirs.dir_of(t.src_name, &t.src_leaf);
    t.pair_dst_fd = dirs.dir_of(t.dst_name, &t.dst_leaf);
    if (sized) {
      // Queued unwalked: its size (for bytes_found) and everything else
      // come from the opened descriptor (Job::sized); the caller's size
      // only routes it, small or large.
      t.walked = false;
      t.size = pairs[i].size;
      counters_.files_unsized.fetch_add(1, std::memory_order_relaxed);
    } else {
      t.set_stat(st);
      counters_.bytes_found.fetch_add(t.size, std::memory_order_relaxed);
    }
    t.pair = static_cast<uint32_t>(i);
    t.replace = true;
    t.exclusive = cfg_.has(USYNC_NO_REPLACE);
    counters_.files_found.fetch_add(1, std::memory_order_relaxed);
    tasks.push_back(std::move(t));
  }
  counters_.walk_done.store(1, std::memory_order_relaxed);
  job.files_outstanding.store(tasks.size());
  int ret;
  if (cfg_.has(USYNC_DRY_RUN)) {
    for (FileTask& t : tasks) {
      job.add_bytes(t.size);
      const int err = dry_errs[t.pair];
      job.finish_file(t, FileResult{err, err != 0 ? USYNC_STEP_RENAME : USYNC_STEP_NONE, err != 0 ? 0 : t.size});
    }
    ret = finish(job);
  } else {
    ret = run(job, nullptr, &tasks);
  }
  for (size_t i = 0; i < count; ++i) results[i] = res[i];
  return ret;
}

}  // namespace usync
