#include "mirror.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <type_traits>
#include <unordered_map>

namespace usync {
namespace {

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
// Every name in the directory open at fd but . and .., read from its start.
// Returns 0 or an errno.  (Read whole before anything in it is removed:
// removing entries while listing them is allowed but not portable.)
template <typename Out>
int read_names(int fd, Out* out) noexcept {
  return list_dir(fd, [out](const char* name, unsigned char type) {
    if constexpr (std::is_same_v<Out, std::vector<SourceName>>)
      out->push_back(SourceName{name, type});
    else
      out->emplace_back(name);
  });
}

// Removes entries below one directory of the walk, d, reporting each.
// protect: entries an exclude pattern matches stay, wherever they are in a
// removed tree (rsync's rule), and so do the directories that lead to them.
// rel: d's root-relative path, for the patterns.
class Remover {
 public:
  Remover(Job& job, const Dir* d, const std::string& rel, uint64_t root_mnt, bool protect)
      : job_(job), d_(d), rel_(rel), root_mnt_(root_mnt), protect_(protect) {
    // Descriptors held open while descending (the walker's budget allows
    // about four per cached directory pair); deeper levels reopen through "..".
    keep_open_ = std::clamp<size_t>(job.dir_pairs / 4, 1, 32);  // reserved by plan_budget
  }

  // Removes name (stat st, not followed) from the destination directory dfd.
  void remove(int dfd, const std::string& name, const struct stat& st) {
    if (S_ISDIR(st.st_mode))
      remove_tree(dfd, name, st);
    else
      unlink_one(dfd, name.c_str(), name, st.st_mode, 0);
  }

 private:
  struct Frame {
    UniqueFd fd;
    dev_t dev;
    ino_t ino;
    mode_t mode;
    std::string name;  // in its parent
    std::string path;  // below d_, for messages
    std::vector<std::string> names;
    size_t next = 0;
    bool failed = false;  // something in it could not be removed: neither can it
    bool kept = false;    // something in it is excluded, and stays: so does it
    bool opened_up = false;  // given its owner's rwx to be emptied (open_up_dir)
  };

  void fail(const std::string& path, int err) { job_.report(d_, path, path, err, USYNC_STEP_DELETE); }

  // Unlinks (flags: 0 or AT_REMOVEDIR) one entry; in a dry run only reports
  // it.  Returns whether it is gone (or would be).
  bool unlink_one(int dfd, const char* name, const std::string& path, mode_t mode, int flags) {
    if (!job_.dry_run() && unlinkat(dfd, name, flags) != 0) {
      if (errno == ENOENT) return true;  // removed meanwhile
      fail(path, errno);
      return false;
    }
    job_.deleted(d_, path, mode);
    return true;
  }

  // Opens the directory name in pfd (which must still be st), on the
  // destination's mount, and lists it as a new frame.
  // Short of descriptors for a moment (the copy's threads hold theirs),
  // its opens wait for one (open_waiting).
  bool push(int pfd, const std::string& name, const std::string& path, const struct stat& st) {
    auto open_dir = [&] { return open_waiting(job_, [&] { return openat(pfd, name.c_str(), kDirFlags); }); };
    UniqueFd fd(open_dir());
    mode_t before = 0;
    bool opened_up = false;
    if (!fd.valid() && errno == EACCES && !job_.dry_run() && open_up_dir_at(pfd, name.c_str(), &before)) {
      opened_up = true;  // a 0000 directory of our own
      fd.reset(open_dir());
    }
    struct stat now {};
    if (!fd.valid()) {
      fail(path, errno == ELOOP ? ENOTDIR : errno);
      return false;
    }
    if (fstat(fd.get(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
      fail(path, ESTALE);  // replaced since it was looked at
      return false;
    }
    if (root_mnt_ != 0 && mount_id(fd.get()) != root_mnt_) {
      fail(path, EXDEV);  // a mount point: never emptied
      return false;
    }
    // Without privilege, a read-only directory of our own is opened up to
    // be emptied (its mode is put back if something in it stays).
    if (!opened_up && !job_.dry_run()) opened_up = open_up_dir(fd.get(), &before);
    const mode_t mode = opened_up ? (now.st_mode & S_IFMT) | before : now.st_mode;
    Frame f{std::move(fd), now.st_dev, now.st_ino, mode, name, path, {}, 0, false, false, opened_up};
    if (const int err = read_names(f.fd.get(), &f.names); err != 0) {
      fail(path, err);
      return false;
    }
    frames_.push_back(std::move(f));
    return true;
  }

  // Puts back the mode of every directory still listed that push() opened
  // up (removal stopped: cancelled, or the tree moved).
  void close_opened() noexcept {
    for (Frame& f : frames_)
      if (f.opened_up && f.fd.valid()) fchmod(f.fd.get(), f.mode & 07777);
    frames_.clear();
  }

  void remove_tree(int dfd, const std::string& name, const struct stat& st) {
    frames_.clear();
    if (!push(dfd, name, name, st)) return;
    while (!frames_.empty()) {
      if (job_.cancelled()) {
        close_opened();
        return;
      }
      Frame& f = frames_.back();
      if (f.next < f.names.size()) {
        const std::string& n = f.names[f.next++];
        std::string path = f.path + "/" + n;
        struct stat cst {};
        if (fstatat(f.fd.get(), n.c_str(), &cst, AT_SYMLINK_NOFOLLOW) != 0) {
          if (errno != ENOENT) {
            fail(path, errno);
            f.failed = true;
          }
          continue;
        }
        if (protect_ && job_.cfg.filter.excluded(rel_.empty() ? path : rel_ + "/" + path, n, S_ISDIR(cst.st_mode))) {
          f.kept = true;
          continue;
        }
        if (!S_ISDIR(cst.st_mode)) {
          if (!unlink_one(f.fd.get(), n.c_str(), path, cst.st_mode, 0)) f.failed = true;
          continue;
        }
        const size_t depth = frames_.size();
        if (!push(f.fd.get(), n, path, cst)) {
          f.failed = true;
          continue;
        }
        if (depth >= keep_open_) frames_[depth - 1].fd.reset();  // reopened through ".." later
        continue;
      }
      // f is empty now (or keeps what could not be removed): remove it.
      Frame done = std::move(frames_.back());
      frames_.pop_back();
      int pfd = dfd;
      if (!frames_.empty()) {
        Frame& p = frames_.back();
        if (!p.fd.valid()) {
          UniqueFd up(open_waiting(job_, [&] { return openat(done.fd.get(), "..", kDirFlags); }));
          struct stat pst {};
          if (!up.valid() || fstat(up.get(), &pst) != 0 || pst.st_dev != p.dev || pst.st_ino != p.ino) {
            // Out of descriptors, or the tree was moved while being removed: stop.
            fail(p.path, up.valid() ? ESTALE : errno);
            if (done.opened_up && done.fd.valid()) fchmod(done.fd.get(), done.mode & 07777);
            close_opened();
            return;
          }
          p.fd = std::move(up);
        }
        pfd = p.fd.get();
      }
      const bool stays = done.failed || done.kept;
      if (stays && done.opened_up && done.fd.valid()) fchmod(done.fd.get(), done.mode & 07777);
      done.fd.reset();
      const bool gone = !stays && unlink_one(pfd, done.name.c_str(), done.path, done.mode, AT_REMOVEDIR);
      if (!gone && !stays && done.opened_up)  // emptied, yet not removed: its mode back
        if (UniqueFd again(openat(pfd, done.name.c_str(), kDirFlags)); again.valid()) fchmod(again.get(), done.mode & 07777);
      if (!gone && !frames_.empty()) (done.kept && !done.failed ? frames_.back().kept : frames_.back().failed) = true;
    }
  }

  Job& job_;
  const Dir* d_;
  const std::string& rel_;
  uint64_t root_mnt_;
  bool protect_;
  size_t keep_open_ = 1;
  std::vector<Frame> frames_;
};

}  // namespace

uint64_t mount_id(int fd) noexcept {
#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif
  struct statx stx {};
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) != 0) return 0;
  return (stx.stx_mask & STATX_MNT_ID) != 0 ? stx.stx_mnt_id : 0;
}

void delete_extras(Job& job, const Dir* d, std::vector<SourceName>& names, const std::string& rel,
                   uint64_t root_mnt, bool everything) noexcept {
  try {
    const int dfd = d->dst.get();
    if (dfd < 0) return;
    if (root_mnt != 0 && mount_id(dfd) != root_mnt) {
      job.report(d, "", "", EXDEV, USYNC_STEP_DELETE);  // another mount: not mirrored
      return;
    }
    std::vector<SourceName> have;  // with d_type: most entries need no stat
    if (const int err = read_names(dfd, &have); err != 0) {
      job.report(d, "", "", err, USYNC_STEP_DELETE);
      return;
    }
    std::unordered_map<std::string_view, size_t> src;  // name -> index in names
    src.reserve(names.size());
    for (size_t i = 0; i < names.size(); ++i) src.emplace(names[i].name, i);
    // Which source names the destination has, before anything is removed
    // (nothing below can fail half way through this).
    for (SourceName& s : names) s.in_dst = false;
    for (const SourceName& h : have)
      if (const auto it = src.find(h.name); it != src.end()) names[it->second].in_dst = true;
    const bool filtering = !job.cfg.filter.empty();
    const bool delete_excluded = everything || job.cfg.has(USYNC_DELETE_EXCLUDED);
    Remover remover(job, d, rel, root_mnt, filtering && !delete_excluded);
    for (const SourceName& h : have) {
      const std::string& n = h.name;
      if (job.cancelled()) return;
      if (is_temporary(n.c_str())) continue;  // ours, maybe of a run still writing
      struct stat st {};
      bool stated = false;
      if (h.type == DT_UNKNOWN) {
        if (fstatat(dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
        stated = true;
      }
      const bool is_dir = stated ? S_ISDIR(st.st_mode) : h.type == DT_DIR;
      const bool excluded = filtering && job.cfg.filter.excluded(rel.empty() ? n : rel + "/" + n, n, is_dir);
      if (excluded && !delete_excluded) continue;  // protected
      if (!excluded) {
        const auto it = src.find(n);
        if (it != src.end()) {
          const unsigned char type = names[it->second].type;
          bool src_dir = type == DT_DIR;
          // -L copies a symlink as what it leads to.
          const bool follow = job.cfg.has(USYNC_COPY_LINKS);
          if (type == DT_UNKNOWN || (follow && type == DT_LNK)) {
            // What the source entry is cannot be told (a dangling -L link,
            // an unsearchable directory): keep the copy; the walk reports it.
            struct stat ss {};
            if (fstatat(d->src.get(), n.c_str(), &ss, follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0) continue;
            src_dir = S_ISDIR(ss.st_mode);
          }
          if (src_dir == is_dir) continue;  // the copy goes there
        }
      }
      if (!stated && fstatat(dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      remover.remove(dfd, n, st);
    }
  } catch (...) {
    job.report(d, "", "", ENOMEM, USYNC_STEP_DELETE);
  }
}

}  // namespace usync
