#include "walker.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

namespace usync {
namespace {

constexpr size_t kBatch = 1024;          // files per queued batch (one directory)
constexpr size_t kDentsBuf = 64 * 1024;  // getdents64 buffer

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

struct PendingDir {
  Dir* parent;
  std::string name;
  struct stat st;
};

class Walker {
 public:
  Walker(Job& job, bool route_large) : job_(job), route_large_(route_large) {}

  void run(Dir* root) {
    list(root);
    while (!stack_.empty() && !job_.cancelled()) {
      PendingDir p = std::move(stack_.back());
      stack_.pop_back();
      job_.wait_open_dirs();
      if (Dir* d = open_child(p)) list(d);
    }
    // Cancelled: release what was never opened.
    for (PendingDir& p : stack_) job_.release_dir(p.parent);
    stack_.clear();
  }

 private:
  Dir* open_child(PendingDir& p) {
    Dir* parent = p.parent;
    UniqueFd src(openat(parent->src.get(), p.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!src.valid()) {
      job_.report(parent, p.name, p.name, errno, USYNC_STEP_OPEN_SRC);
      job_.release_dir(parent);
      return nullptr;
    }
    UniqueFd dst;
    bool fresh = false;
    std::string tmp;
    if (!job_.dry_run()) {
      // Inside a new directory (itself still under a temporary name) the
      // final name is safe; where the parent existed, build under a
      // temporary name unless the directory is already there (merge).
      const char* make = p.name.c_str();
      struct stat existing {};
      if (!parent->fresh && fstatat(parent->dst.get(), make, &existing, AT_SYMLINK_NOFOLLOW) != 0) {
        tmp = temp_name();
        make = tmp.c_str();
      }
      if (parent->fresh || !tmp.empty()) {
        if (mkdirat(parent->dst.get(), make, 0700) == 0) {
          fresh = true;
          job_.counters.dirs_created.fetch_add(1, std::memory_order_relaxed);
        } else if (errno != EEXIST || !tmp.empty()) {
          job_.report(parent, p.name, p.name, errno, USYNC_STEP_MKDIR);
          job_.release_dir(parent);
          return nullptr;
        }
      }
      dst.reset(openat(parent->dst.get(), make, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dst.valid()) {
        // ENOTDIR / ELOOP: something that is not a directory is in the way
        // (a symlink there is never followed).
        const int err = (errno == ELOOP) ? ENOTDIR : errno;
        job_.report(parent, p.name, p.name, err, USYNC_STEP_MKDIR);
        job_.release_dir(parent);
        return nullptr;
      }
    } else {
      job_.counters.dirs_created.fetch_add(1, std::memory_order_relaxed);
    }
    Dir* d = job_.new_dir(parent);
    d->name = std::move(p.name);
    d->src = std::move(src);
    d->dst = std::move(dst);
    d->mode = p.st.st_mode;
    d->atime = p.st.st_atim;
    d->mtime = p.st.st_mtim;
    d->fresh = fresh;
    d->tmp_name = std::move(tmp);
    return d;
  }

  void flush(std::vector<FileTask>& batch, WorkQueue<FileTask>& q) {
    if (batch.empty()) return;
    if (!q.push(batch)) {  // closed: the job was cancelled
      for (FileTask& t : batch) job_.abandon_file(t);
      batch.clear();
    }
  }

  // Lists d, queues its files and subdirectories, then drops the listing's
  // own hold on d.
  void list(Dir* d) {
    const int sfd = d->src.get();
    std::string rel;  // d's root-relative path, only when patterns need it
    const bool filtering = !job_.cfg.filter.empty();
    if (filtering) rel = job_.rel_path(d, "");
    std::vector<FileTask> small;
    for (;;) {
      const long n = syscall(SYS_getdents64, sfd, dents_.get(), kDentsBuf);
      if (n < 0) {
        if (errno == EINTR) continue;
        job_.report(d, "", "", errno, USYNC_STEP_READDIR);
        break;
      }
      if (n == 0 || job_.cancelled()) break;
      for (long off = 0; off < n;) {
        auto* e = reinterpret_cast<linux_dirent64*>(dents_.get() + off);
        off += e->d_reclen;
        const char* name = e->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        entry(d, name, filtering, rel, small);
        if (small.size() >= kBatch) flush(small, job_.small_q);
      }
    }
    flush(small, job_.small_q);
    job_.release_dir(d);
  }

  // d_type from getdents is only a hint; the fstatat here is authoritative.
  void entry(Dir* d, const char* name, bool filtering, const std::string& rel, std::vector<FileTask>& small) {
    struct stat st {};
    if (fstatat(d->src.get(), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      // Vanished between listing and stat: nothing to copy, but say so.
      job_.report(d, name, name, errno, USYNC_STEP_STAT);
      return;
    }
    const bool is_dir = S_ISDIR(st.st_mode);
    if (filtering) {
      const std::string path = rel.empty() ? std::string(name) : rel + "/" + name;
      if (job_.cfg.filter.excluded(path, name, is_dir)) {
        job_.counters.files_excluded.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
    if (is_dir) {
      d->pending.fetch_add(1, std::memory_order_relaxed);
      stack_.push_back(PendingDir{d, name, st});
      return;
    }
    if (S_ISREG(st.st_mode)) {
      job_.counters.files_found.fetch_add(1, std::memory_order_relaxed);
      job_.counters.bytes_found.fetch_add(static_cast<uint64_t>(st.st_size), std::memory_order_relaxed);
      if (job_.dry_run()) {
        job_.counters.files_done.fetch_add(1, std::memory_order_relaxed);
        job_.add_bytes(static_cast<uint64_t>(st.st_size));
        job_.file_done_cb(d, name, name, static_cast<uint64_t>(st.st_size), nullptr);
        return;
      }
      FileTask t;
      t.dir = d;
      t.src_name = name;
      t.dst_name = t.src_name;
      t.size = static_cast<uint64_t>(st.st_size);
      t.mode = st.st_mode;
      t.atime = st.st_atim;
      t.mtime = st.st_mtim;
      t.replace = !d->fresh;
      d->pending.fetch_add(1, std::memory_order_relaxed);
      job_.files_outstanding.fetch_add(1, std::memory_order_relaxed);
      if (t.size >= job_.cfg.large_threshold) {
        // One batch per large file, so that several threads copy large
        // files side by side instead of one thread taking them all.
        std::vector<FileTask> one;
        one.push_back(std::move(t));
        flush(one, route_large_ ? job_.large_q : job_.small_q);
      } else {
        small.push_back(std::move(t));
      }
      return;
    }
    if (job_.dry_run()) return;
    int step = USYNC_STEP_NONE;
    if (const int err = copy_special(job_, d->src.get(), name, st, d->dst.get(), name, !d->fresh, &step); err != 0)
      job_.report(d, name, name, err, step);
  }

  Job& job_;
  bool route_large_;
  std::vector<PendingDir> stack_;
  std::unique_ptr<char[]> dents_{new char[kDentsBuf]};
};

}  // namespace

int copy_special(const Job& job, int sfd, const char* name, const struct stat& st, int dfd, const char* dname,
                 bool replace, int* step) noexcept {
  std::string tmp;
  const char* target_name = dname;
  if (replace) {
    FileTask t;
    t.dst_name = dname;
    t.replace = true;
    try {
      tmp = t.create_name();
    } catch (...) {
      *step = USYNC_STEP_SYMLINK;
      return ENOMEM;
    }
    target_name = tmp.c_str();
  }
  if (S_ISLNK(st.st_mode)) {
    *step = USYNC_STEP_SYMLINK;
    std::string target(static_cast<size_t>(st.st_size > 0 ? st.st_size : 255) + 1, '\0');
    for (;;) {
      const ssize_t n = readlinkat(sfd, name, target.data(), target.size());
      if (n < 0) return errno;
      if (static_cast<size_t>(n) < target.size()) {
        target.resize(static_cast<size_t>(n));
        break;
      }
      target.resize(target.size() * 2);
    }
    if (symlinkat(target.c_str(), dfd, target_name) != 0) return errno;
    job.counters.symlinks_created.fetch_add(1, std::memory_order_relaxed);
  } else {
    *step = USYNC_STEP_MKNOD;
    if (mknodat(dfd, target_name, st.st_mode & (S_IFMT | 0777), st.st_rdev) != 0) return errno;
    job.counters.specials_created.fetch_add(1, std::memory_order_relaxed);
  }
  return settle_entry(job, dfd, target_name, replace ? dname : nullptr, st.st_mode, st.st_atim, st.st_mtim, step);
}

void run_walker(Job& job, Dir* root, bool route_large) noexcept {
  try {
    Walker w(job, route_large);
    w.run(root);
  } catch (...) {
    job.report(nullptr, job.src_root, job.dst_root, ENOMEM, USYNC_STEP_READDIR);
    job.stop();
  }
  job.counters.walk_done.store(1, std::memory_order_relaxed);
  job.small_q.close();
  job.large_q.close();
}

}  // namespace usync
