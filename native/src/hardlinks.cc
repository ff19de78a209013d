#include "hardlinks.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <new>

#include "md5.h"
#include "sync_copy.h"

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

// Errors of a destination name rather than of the file: what is in the way
// there, or what its directory refuses.  Another path of the same inode may
// well be made.
bool name_error(int error, int step) noexcept {
  if (step == USYNC_STEP_CANCELED) return false;
  switch (error) {
    case EISDIR:
    case ENOTDIR:
    case EEXIST:
    case ENOTEMPTY:
    case EACCES:
    case EPERM:
    case ENAMETOOLONG:
    case ELOOP:
    case EROFS:
      return step == USYNC_STEP_OPEN_DST || step == USYNC_STEP_RENAME || step == USYNC_STEP_MKDIR;
    default:
      return false;
  }
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
        if (name_error(g.error, g.step) && !job_.cancelled()) {
          // The copy failed for its destination name, before this path
          // was walked: this path is the group's next try.
          g.state = State::kCopying;
          return false;
        }
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
    link(dir_rel, leaf, d, name, st.st_mode, Key{st.st_dev, st.st_ino});
  return true;
}

void HardLinks::leader_done(const FileTask& t, int error, int step) noexcept {
  const Key key{t.dev, t.ino};
  std::vector<Waiter> waiters;
  std::string dir_rel, leaf;
  bool stopping = false;
  std::string leader_name;
  // The copy that the group's links will point at: the leader's, or a
  // promoted waiter's, whose directory is released below before the links
  // are made (so its path is taken while it is held).
  bool promoted = false;
  std::string promoted_rel;
  try {
    leader_name = t.dst_name;
  } catch (...) {
    error = error != 0 ? error : ENOMEM;
  }
  // The leader's own destination name was the trouble (something in the
  // way, a name the directory refuses): the file itself is fine, so the
  // next path of the group is copied instead and the others link to it.
  while (error != 0 && name_error(error, step) && !job_.cancelled()) {
    Waiter w{};
    {
      std::lock_guard lk(mu_);
      auto it = groups_.find(key);
      if (it == groups_.end() || it->second.waiters.empty()) break;
      w = std::move(it->second.waiters.front());
      it->second.waiters.erase(it->second.waiters.begin());
    }
    int wstep = USYNC_STEP_NONE;
    const int werr = copy_waiter(w, key, &wstep);
    if (werr == 0) {
      try {
        promoted_rel = job_.rel_path(w.dir, "");
        leader_name = std::move(w.name);
        promoted = true;
        error = 0;
      } catch (...) {
        error = ENOMEM;
        step = USYNC_STEP_LINK;
      }
    } else {
      job_.report(w.dir, w.name, w.name, werr, wstep);
      error = werr;
      step = wstep;
    }
    job_.unpin_dir(w.dir);
    job_.release_dir(w.dir);
  }
  {
    std::lock_guard lk(mu_);
    auto it = groups_.find(key);
    if (it == groups_.end()) return;
    Group& g = it->second;
    waiters.swap(g.waiters);
    if (error == 0) {
      try {
        g.dir_rel = promoted ? promoted_rel : job_.rel_path(t.dir, "");
        g.leaf = leader_name;
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
      link(dir_rel, leaf, w.dir, w.name, w.mode, key);
    else if (!stopping && !job_.cancelled())
      job_.report(w.dir, w.name, w.name, error, step);
    job_.unpin_dir(w.dir);
    job_.release_dir(w.dir);
  }
}

int HardLinks::copy_waiter(const Waiter& w, const Key& key, int* step) noexcept {
  FileTask t;
  try {
    t.dir = w.dir;
    t.src_name = w.name;
    t.dst_name = w.name;
  } catch (...) {
    *step = USYNC_STEP_NONE;
    return ENOMEM;
  }
  struct stat st {};
  if (fstatat(w.dir->src.get(), w.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    *step = USYNC_STEP_STAT;
    return errno;
  }
  if (!S_ISREG(st.st_mode) || st.st_dev != key.dev || st.st_ino != key.ino) {
    *step = USYNC_STEP_CHANGED;
    return ESTALE;
  }
  t.set_stat(st);
  t.existing = !w.dir->fresh;
  // A file to copy after all (a link was counted as nothing to copy).
  job_.counters.files_found.fetch_add(1, std::memory_order_relaxed);
  job_.counters.bytes_found.fetch_add(t.size, std::memory_order_relaxed);
  if (t.existing && up_to_date(job_, t)) {
    job_.counters.files_skipped.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  std::unique_ptr<char[]> buf(new (std::nothrow) char[job_.chunk]);
  std::unique_ptr<Md5> md5;
  if (job_.cfg.has(USYNC_HASH_MD5)) md5.reset(new (std::nothrow) Md5);
  if (!buf || (job_.cfg.has(USYNC_HASH_MD5) && !md5)) {
    *step = USYNC_STEP_READ;
    return ENOMEM;
  }
  const FileResult r = copy_file_sync(job_, t, buf.get(), job_.chunk, md5.get());
  if (r.error != 0) {
    *step = r.step;
    return r.error;
  }
  job_.counters.files_done.fetch_add(1, std::memory_order_relaxed);
  job_.counters.bytes_copied.fetch_add(r.bytes, std::memory_order_relaxed);
  job_.file_done_cb(t.dir, t.src_name, t.dst_name, r.bytes, r.has_md5 ? r.md5 : nullptr, t.mode);
  return 0;
}

void HardLinks::link(const std::string& dir_rel, const std::string& leaf, Dir* d, const std::string& name,
                     mode_t mode, const Key& key) noexcept {
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
  if ((err == EMLINK || err == EPERM || err == EOPNOTSUPP) && S_ISREG(mode) && !job_.cancelled()) {
    // The destination refuses the link for the inode (its copy has as many
    // links as the filesystem allows; a filesystem without hard links, as
    // FAT): the path gets a copy of its own, as rsync makes it, and the
    // link that could not be kept is still reported.
    int step = USYNC_STEP_NONE, copied;
    try {
      copied = copy_waiter(Waiter{d, name, mode}, key, &step);
    } catch (...) {
      copied = ENOMEM;
    }
    if (copied != 0)
      job_.report(d, name, name, copied, step);
    else
      job_.report(d, name, name, err, USYNC_STEP_LINK);
    return;
  }
  if (err != 0) {
    job_.report(d, name, name, err, USYNC_STEP_LINK);
    return;
  }
  job_.counters.links_created.fetch_add(1, std::memory_order_relaxed);
  if (job_.cfg.has(USYNC_REPORT_ALL)) job_.file_done_cb(d, name, name, 0, nullptr, mode);
}

}  // namespace usync
