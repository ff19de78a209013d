#include "hardlinks.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace usync {
namespace {

// The directory dir_rel below root (root itself when empty), reached without
// following any symlink and without leaving root.  Returns an O_PATH fd or -1.
int open_beneath(int root, const std::string& dir_rel) noexcept {
  if (dir_rel.empty()) return fcntl(root, F_DUPFD_CLOEXEC, 0);
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, root, dir_rel.c_str(), &how, sizeof how));
}

}  // namespace

bool HardLinks::walked(Dir* d, const char* name, const struct stat& st) {
  std::string dir_rel, leaf;
  int err = 0, step = 0;
  {
    std::lock_guard lk(mu_);
    auto [it, first] = groups_.try_emplace(Key{st.st_dev, st.st_ino});
    Group& g = it->second;
    ++g.seen;
    if (first) {
      g.expected = st.st_nlink;
      return false;  // the leader: copied like any file
    }
    switch (g.state) {
      case State::kCopying:
        g.waiters.push_back(Waiter{d, name, st.st_mode});
        d->pending.fetch_add(1, std::memory_order_relaxed);
        d->pins.fetch_add(1, std::memory_order_relaxed);
        return true;
      case State::kFailed:
        err = g.error;
        step = g.step;
        if (g.seen >= g.expected) groups_.erase(it);
        break;
      case State::kDone:
        dir_rel = g.dir_rel;
        leaf = g.leaf;
        if (g.seen >= g.expected) groups_.erase(it);
        break;
    }
  }
  if (err != 0)
    job_.report(d, name, name, err, step);  // the same inode as a failed copy: it fails alike
  else
    link(dir_rel, leaf, d, name, st.st_mode);
  return true;
}

void HardLinks::leader_done(const FileTask& t, int error, int step) noexcept {
  std::vector<Waiter> waiters;
  std::string dir_rel, leaf;
  bool stopping = false;
  {
    std::lock_guard lk(mu_);
    auto it = groups_.find(Key{t.dev, t.ino});
    if (it == groups_.end()) return;
    Group& g = it->second;
    waiters.swap(g.waiters);
    if (error == 0) {
      try {
        g.dir_rel = job_.rel_path(t.dir, "");
        g.leaf = t.dst_name;
        g.state = State::kDone;
      } catch (...) {
        error = ENOMEM;
        step = USYNC_STEP_LINK;
      }
    }
    if (error != 0) {
      g.state = State::kFailed;
      g.error = error;
      g.step = step;
      stopping = step == USYNC_STEP_CANCELED;
    }
    dir_rel = g.dir_rel;
    leaf = g.leaf;
    if (g.seen >= g.expected) groups_.erase(it);
  }
  for (Waiter& w : waiters) {
    if (error == 0)
      link(dir_rel, leaf, w.dir, w.name, w.mode);
    else if (!stopping && !job_.cancelled())
      job_.report(w.dir, w.name, w.name, error, step);
    job_.unpin_dir(w.dir);
    job_.release_dir(w.dir);
  }
}

void HardLinks::link(const std::string& dir_rel, const std::string& leaf, Dir* d, const std::string& name,
                     mode_t mode) noexcept {
  const int dfd = d->dst.get();
  UniqueFd from(open_beneath(job_.dst_root_fd, dir_rel));
  if (!from.valid()) {
    job_.report(d, name, name, errno, USYNC_STEP_LINK);
    return;
  }
  if (!d->fresh) {  // a re-run: already this very link?
    struct stat a {}, b {};
    if (fstatat(dfd, name.c_str(), &a, AT_SYMLINK_NOFOLLOW) == 0 &&
        fstatat(from.get(), leaf.c_str(), &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
      job_.counters.files_skipped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  int err = 0;
  if (linkat(from.get(), leaf.c_str(), dfd, name.c_str(), 0) != 0) {
    err = errno;
    if (err == EEXIST && !d->fresh) {
      // Replace what is there atomically: link under a temporary name, rename over.
      try {
        const std::string tmp = temp_name();
        if (linkat(from.get(), leaf.c_str(), dfd, tmp.c_str(), 0) != 0) {
          err = errno;
        } else if (renameat(dfd, tmp.c_str(), dfd, name.c_str()) != 0) {
          err = errno;
          unlinkat(dfd, tmp.c_str(), 0);
        } else {
          err = 0;
        }
      } catch (...) {
        err = ENOMEM;
      }
    }
  }
  if (err != 0) {
    job_.report(d, name, name, err, USYNC_STEP_LINK);
    return;
  }
  job_.counters.links_created.fetch_add(1, std::memory_order_relaxed);
  if (job_.cfg.has(USYNC_REPORT_ALL)) job_.file_done_cb(d, name, name, 0, nullptr, mode);
}

}  // namespace usync
