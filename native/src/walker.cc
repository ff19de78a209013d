#include "walker.h"

#include "hardlinks.h"
#include "meta.h"
#include "mirror.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "durable.h"
#include "prefetch.h"

namespace usync {
namespace {

constexpr size_t kBatch = 1024;          // files per queued batch (one directory)
constexpr size_t kDentsBuf = 64 * 1024;  // getdents64 buffer
// A directory's listing is sorted by inode a window of this many bytes of
// records at a time (list()): about 128K names of 16 bytes.
constexpr size_t kListWindow = 4 << 20;
constexpr uint64_t kSparseMin = 64 * 1024;  // -S: unallocated bytes that make a file worth probing for holes
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

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
  bool no_list = false;  // another filesystem under -x: made empty, not read
};

// Walks depth-first and owns every Dir's descriptors: a cache of at most
// job.dir_pairs open (src, dst) pairs, least recently used closed first when
// nothing pins them, reopened through the ancestors (checking that each is
// still the directory it was) when needed again — the way bfs's bftw_cache
// does.  Also settles finished directories, so no other thread ever opens a
// directory.
class Walker {
 public:
  Walker(Job& job, bool route_large)
      : job_(job),
        route_large_(route_large),
        follow_(job.cfg.has(USYNC_COPY_LINKS)),
        unwalked_ok_(!job.dry_run() && job.links == nullptr && !job.cfg.has(USYNC_SPARSE)) {}

  void run(Dir* root) {
    root_ = root;
    root->pins.fetch_add(1, std::memory_order_relaxed);  // never closed
    lru_push(root);
    root->resumed = root->resumed && leftover(-1, root->tmp, root->dst_dev, root->dst_ino);
    if ((job_.cfg.has(USYNC_DELETE) || root->resumed) && root->dst.valid()) root_mnt_ = mount_id(root->dst.get());
    if (!job_.dry_run() && !root->fresh && root->dst.valid()) clean(root);
    list(root);
    maybe_prefetch();
    while (!stack_.empty() && !job_.cancelled()) {
      settle_ready(std::chrono::milliseconds(0));
      PendingDir p = std::move(stack_.back());
      stack_.pop_back();
      if (Dir* d = open_child(p)) {
        if (p.no_list)
          job_.release_dir(d);  // the listing's hold: there is none
        else
          list(d);
      }
      maybe_prefetch();
    }
    prefetch_.reset();  // the walk is over: nothing left to warm
    // Cancelled: release what was never opened.
    for (PendingDir& p : stack_) job_.release_dir(p.parent);
    stack_.clear();
    job_.counters.walk_done.store(1, std::memory_order_relaxed);
    job_.small_q.close();
    job_.large_q.close();
    while (!root_done_) settle_ready(std::chrono::milliseconds(50));
  }

 private:
  // A ring found files of this tree out of the page cache: from then on
  // the tree is walked ahead on threads too (prefetch.h), so that this
  // thread's listings and stats stop waiting for the device one by one.
  void maybe_prefetch() noexcept {
    if (prefetch_ || job_.prefetch_threads == 0 || stack_.empty() ||
        !job_.cold_seen.load(std::memory_order_relaxed))
      return;
    try {
      prefetch_ = std::make_unique<Prefetcher>(root_->src.get(), job_.prefetch_threads);
    } catch (...) {
    }
  }

  // ---- the descriptor cache
  void lru_push(Dir* d) noexcept {  // as most recently used
    d->lru_prev = lru_tail_;
    d->lru_next = nullptr;
    (lru_tail_ != nullptr ? lru_tail_->lru_next : lru_head_) = d;
    lru_tail_ = d;
    d->cached = true;
    ++open_;
  }
  void lru_remove(Dir* d) noexcept {
    (d->lru_prev != nullptr ? d->lru_prev->lru_next : lru_head_) = d->lru_next;
    (d->lru_next != nullptr ? d->lru_next->lru_prev : lru_tail_) = d->lru_prev;
    d->lru_prev = d->lru_next = nullptr;
    d->cached = false;
    --open_;
  }
  void close_fds(Dir* d) noexcept {
    if (d->cached) lru_remove(d);
    d->src.reset();
    d->dst.reset();
  }
  static void pin(Dir* d) noexcept { d->pins.fetch_add(1, std::memory_order_relaxed); }
  static void unpin(Dir* d) noexcept { d->pins.fetch_sub(1, std::memory_order_acq_rel); }

  // Closes least recently used, unpinned directories until one more fits.
  // Pinned ones belong to queued files, which the workers finish.
  void make_room() {
    while (open_ >= job_.dir_pairs) {
      Dir* victim = nullptr;
      for (Dir* x = lru_head_; x != nullptr; x = x->lru_next)
        if (x != root_ && x->pins.load(std::memory_order_acquire) == 0) {
          victim = x;
          break;
        }
      if (victim != nullptr) {
        close_fds(victim);
        continue;
      }
      job_.wait_unpinned(std::chrono::milliseconds(20));
    }
  }

  // Removes what killed runs left in the destination directory dfd, when
  // no other run writes into this destination now: this run's shared lock
  // on the destination root converts to an exclusive one only then.
  // A directory that a killed run was building under its temporary name
  // stays when this walk will take it over: its source is still a
  // directory to copy and nothing else has taken its name since.
  void clean(Dir* d) {
    if (begin_alone()) {
      const int sfd = d->src.get(), dfd = d->dst.get();
      remove_temporaries(job_, dfd, [&](const char* temp, const char* name) {
        struct stat st {};
        // Named so in the source too: a copy (or the source cannot tell).
        if (sfd < 0 || fstatat(sfd, temp, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) return true;
        // (Exclude patterns do not protect a name of our forms: a common
        // one such as '.*' or '*.tmp' would keep every leftover for good.)
        if (name == nullptr) return false;  // a file's: stale
        // Another run's new root (each run holds a shared lock on its root):
        // a destination nested in this one.
        UniqueFd in_use(openat(dfd, temp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (in_use.valid() && flock(in_use.get(), LOCK_EX | LOCK_NB) != 0) return true;
        in_use.reset();
        if (!hiding() || sfd < 0) return false;
        if (fstatat(sfd, name, &st, follow_ ? 0 : AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) return false;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) return false;
        if (fstatat(dfd, temp, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) return false;
        if (job_.cfg.filter.empty()) return true;
        const std::string rel = job_.rel_path(d, name);
        return !job_.cfg.filter.excluded(rel, name, true);
      });
      end_alone();
    }
  }

  // Whether no other run writes into this destination now.  Every run
  // holds a shared flock on its root, and this run's converts to an
  // exclusive one only when no other holds one.  A failed conversion drops
  // the lock for a moment, so conversions are made under an exclusive flock
  // on the root's parent directory (the gate: opened for the probe only,
  // so that a run needs no descriptor more all along), waited for briefly:
  // a run that does not get it (another run's removals, a destination
  // nested in another run's, "/", which is its own parent) is not alone.
  // On true the root's lock is exclusive and the gate held until
  // end_alone().
  bool begin_alone() {
    const int lock = root_->dst.get();
    gate_.reset(openat(lock, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat g {}, r {};
    if (!gate_.valid() || fstat(gate_.get(), &g) != 0 || fstat(lock, &r) != 0 ||
        (g.st_dev == r.st_dev && g.st_ino == r.st_ino)) {
      gate_.reset();
      return false;
    }
    for (int tries = 0; flock(gate_.get(), LOCK_EX | LOCK_NB) != 0; ++tries) {
      if (errno != EWOULDBLOCK || tries >= 50) {
        gate_.reset();
        return false;
      }
      usleep(1000);
    }
    if (flock(lock, LOCK_EX | LOCK_NB) == 0) return true;
    flock(lock, LOCK_SH);  // back to shared (the failed conversion dropped it), still under the gate
    gate_.reset();         // closing it releases the gate
    return false;
  }
  void end_alone() {
    flock(root_->dst.get(), LOCK_SH);
    gate_.reset();
  }

  // A directory found under its temporary name (tmp in pfd, opened as
  // dev/ino) is a killed run's leftover (Dir::resumed) only when no other
  // run writes into this destination and it still has that name: a run
  // that made it and is live may be building it still, and one that
  // finished it since has named it.  Otherwise it is merged into, nothing
  // removed.  pfd -1: tmp is a path (a new root, beside DST).
  bool leftover(int pfd, const std::string& tmp, dev_t dev, ino_t ino) {
    if (!begin_alone()) return false;
    const bool still = named(pfd, tmp, dev, ino);
    end_alone();
    return still;
  }

  // At the removals: whether d, taken over, is a leftover still (see
  // leftover); true for a directory inside one (it has no name of its own
  // to check), whose removals begin_alone guards.
  bool still_leftover(const Dir* d) {
    if (d->tmp.empty()) return true;
    if (d->parent == nullptr) return named(-1, d->tmp, d->dst_dev, d->dst_ino);
    const UniqueFd up(openat(d->dst.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return up.valid() && named(up.get(), d->tmp, d->dst_dev, d->dst_ino);
  }

  // Whether name in pfd (a path when pfd is -1) is the inode dev/ino.
  static bool named(int pfd, const std::string& name, dev_t dev, ino_t ino) noexcept {
    struct stat st {};
    return (pfd < 0 ? lstat(name.c_str(), &st) : fstatat(pfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW)) == 0 &&
           st.st_dev == dev && st.st_ino == ino;
  }

  // New directories are built under temporary names (Dir::tmp) except
  // under -H, whose links find their targets by path.
  bool hiding() const noexcept { return job_.links == nullptr; }

  // Opens name in parent fd as a directory and checks that it is (dev, ino)
  // when want_ino != 0.  follow: a symlink there is followed (-L sources).
  // Short of descriptors for a moment, waits for one (open_waiting).
  // Returns the fd or -errno.
  int open_dir_at(int pfd, const char* name, dev_t* dev, ino_t* ino, bool follow = false) const noexcept {
    if (pfd < 0) return -EBADF;
    const int fd = open_waiting(job_, [&] { return openat(pfd, name, follow ? kDirFlags & ~O_NOFOLLOW : kDirFlags); });
    if (fd < 0) return -(errno == ELOOP ? ENOTDIR : errno);
    struct stat st {};
    if (fstat(fd, &st) != 0) {
      const int err = errno;
      close(fd);
      return -err;
    }
    if (*ino != 0 && (st.st_dev != *dev || st.st_ino != *ino)) {
      close(fd);
      return -ESTALE;  // renamed or replaced since it was walked
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    return fd;
  }

  // Makes d's descriptors open (those that can be), reopening from the
  // nearest cached ancestor down.  Returns 0 or the first errno.
  int ensure_open(Dir* d) {
    if (d->cached) {  // touch: most recently used
      lru_remove(d);
      lru_push(d);
      return 0;
    }
    std::vector<Dir*> chain;
    for (Dir* x = d; !x->cached; x = x->parent) chain.push_back(x);  // the root is always cached
    int first = 0;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      Dir* x = *it;
      Dir* p = x->parent;
      pin(p);
      make_room();
      int fd = open_dir_at(p->src.get(), x->name.c_str(), &x->src_dev, &x->src_ino, follow_);
      if (fd >= 0) x->src.reset(fd);
      int err = fd < 0 ? -fd : 0;
      // A dry run reads the destination only to show what --delete would
      // remove (dst_ino is set when it was there).
      if (!job_.dry_run() || x->dst_ino != 0) {
        fd = open_dir_at(p->dst.get(), (x->tmp.empty() ? x->name : x->tmp).c_str(), &x->dst_dev, &x->dst_ino);
        if (fd == -ENOENT && !x->tmp.empty()) {
          // Another run into this destination, which took the directory
          // over too, gave it its name first (the same inode, checked).
          fd = open_dir_at(p->dst.get(), x->name.c_str(), &x->dst_dev, &x->dst_ino);
          if (fd >= 0) x->tmp.clear();
        }
        if (fd >= 0) x->dst.reset(fd);
        if (err == 0 && fd < 0) err = -fd;
      }
      unpin(p);
      lru_push(x);
      if (first == 0) first = err;
    }
    return first;
  }

  // ---- settling finished directories
  void settle_ready(std::chrono::milliseconds wait) {
    std::vector<Dir*> ready;
    while (job_.take_settled(&ready, wait)) {
      for (Dir* d : ready) settle(d);
      ready.clear();
      wait = std::chrono::milliseconds(0);
    }
  }

  // Everything under d is done: give it its metadata and then (if it was
  // built under a temporary one) its name, close it, release its parent.
  void settle(Dir* d) {
    if (!job_.dry_run()) {
      pin(d);
      const int err = ensure_open(d);
      if (!d->dst.valid()) {
        job_.report(d, "", "", err != 0 ? err : EBADF, USYNC_STEP_METADATA);
      } else {
        // Also after a cancel: a directory left at 0700 would be a surprise.
        // Without -p: the source's bits and the sticky bit, less the umask
        // (as cp -r); a directory that existed keeps its mode (the one it had
        // before this job opened it up).  Nothing is written when it is
        // already right (a re-run changes no ctime).
        mode_t want = job_.preserve() ? (d->mode & 07777) : (d->mode & (0777 | S_ISVTX) & ~job_.umask_bits);
        const bool set_mode = d->fresh || d->resumed || job_.preserve() || d->opened_up;
        if (d->opened_up && !d->fresh && !d->resumed && !job_.preserve()) want = d->mode_before;
        struct stat now {};
        bool known = !d->fresh && fstat(d->dst.get(), &now) == 0;
        if (wants_extra_meta(job_)) {
          // The source is read for them: one that could not be reopened
          // (err says why) has none to give, and its descriptor is not there
          // to be read through.
          const int e = !d->src.valid() ? (err != 0 ? err : EBADF)
                                        : sync_extra_meta(job_, Place{d->src.get(), ""}, Place{d->dst.get(), ""},
                                                          d->mode, d->uid, d->gid);
          if (e != 0) job_.report(d, "", "", e, USYNC_STEP_METADATA);
          known = fstat(d->dst.get(), &now) == 0;  // an ACL sets group bits
        }
        const mode_t have = known ? now.st_mode & 07777 : (d->fresh ? d->mode_made : ~want);
        if (set_mode && have != want) {
          if (fchmod(d->dst.get(), want) != 0) job_.report(d, "", "", errno, USYNC_STEP_METADATA);
        }
        const bool times_right = known && same_time(now.st_mtim, d->mtime, job_.dst_time_ns);
        if (job_.preserve() && !times_right) {
          const timespec ts[2] = {d->atime, d->mtime};
          if (futimens(d->dst.get(), ts) != 0) job_.report(d, "", "", errno, USYNC_STEP_METADATA);
        }
        // USYNC_FSYNC: every entry of d is in place (its files were synced
        // before their rename or link): make the names durable.  A root
        // this job created needs its own name in its parent synced too.
        if (job_.cfg.has(USYNC_FSYNC))
          if (const int e = sync_fd(d->dst.get(), true); e != 0) job_.report(d, "", "", e, USYNC_STEP_FSYNC);
        const bool renamed = !d->tmp.empty();
        if (renamed) publish_dir(d);
        if (job_.cfg.has(USYNC_FSYNC) && d->parent == nullptr && (d->fresh || renamed))
          if (const int e = sync_dir_path(job_.dst_root.c_str(), true); e != 0)
            job_.report(d, "", "", e, USYNC_STEP_FSYNC);
      }
      unpin(d);
    }
    Dir* parent = d->parent;
    close_fds(d);
    delete d;
    if (parent != nullptr)
      job_.release_dir(parent);
    else
      root_done_ = true;
  }

  // Renames the settled directory d from its temporary name to its own
  // (never over something that took that name meanwhile: then it stays
  // under the temporary name, and says so).  Its parent, which it still
  // holds, syncs the name with its own entries (USYNC_FSYNC).
  void publish_dir(Dir* d) {
    Dir* parent = d->parent;
    if (parent == nullptr) {  // a new destination root: tmp is a path beside it
      std::string root = job_.dst_root;
      while (root.size() > 1 && root.back() == '/') root.pop_back();  // a link to "dst/" fails (FUSE, NFS)
      const char* to = root.c_str();
      int err = rename_noreplace(AT_FDCWD, d->tmp.c_str(), to) == 0 ? 0 : errno;
      struct stat st {};
      if (err == ENOENT && stat(to, &st) == 0 && st.st_dev == d->dst_dev && st.st_ino == d->dst_ino) err = 0;
      if (err != 0)
        job_.report(d, "", "", err, USYNC_STEP_RENAME);
      else
        d->tmp.clear();
      return;
    }
    pin(parent);
    int err = ensure_open(parent);
    if (parent->dst.valid()) {
      err = rename_noreplace(parent->dst.get(), d->tmp.c_str(), d->name.c_str()) == 0 ? 0 : errno;
      struct stat st {};
      if (err == ENOENT && fstatat(parent->dst.get(), d->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          st.st_dev == d->dst_dev && st.st_ino == d->dst_ino)
        err = 0;  // another run that took it over too named it first
    } else if (err == 0) {
      err = EBADF;
    }
    unpin(parent);
    if (err != 0)
      job_.report(d, "", "", err, USYNC_STEP_RENAME);
    else
      d->tmp.clear();
  }

  // ---- walking
  Dir* open_child(PendingDir& p) {
    Dir* parent = p.parent;
    const int perr = ensure_open(parent);
    pin(parent);
    Dir* d = open_child_pinned(p, parent, perr);
    unpin(parent);
    if (d == nullptr) job_.release_dir(parent);
    return d;
  }

  Dir* open_child_pinned(PendingDir& p, Dir* parent, int perr) {
    if (!parent->src.valid() || (!job_.dry_run() && !parent->dst.valid())) {
      job_.report(parent, p.name, p.name, perr != 0 ? perr : EBADF, USYNC_STEP_OPEN_SRC);
      return nullptr;
    }
    make_room();
    dev_t sdev = 0;
    ino_t sino = 0;
    const int sfd = open_dir_at(parent->src.get(), p.name.c_str(), &sdev, &sino, follow_);
    if (sfd < 0) {
      job_.report(parent, p.name, p.name, -sfd, USYNC_STEP_OPEN_SRC);
      return nullptr;
    }
    UniqueFd src(sfd);
    // Never walk into the destination (a bind mount or an alias of it inside
    // the source would copy the copy forever), nor into a directory's own
    // ancestor (a filesystem loop made with bind mounts).
    if (sdev == job_.dst_root_dev && sino == job_.dst_root_ino) {
      job_.report(parent, p.name, p.name, ELOOP, USYNC_STEP_OVERLAP);
      return nullptr;
    }
    for (const Dir* a = parent; a != nullptr; a = a->parent)
      if (a->src_dev == sdev && a->src_ino == sino) {
        job_.report(parent, p.name, p.name, ELOOP, USYNC_STEP_OPEN_SRC);
        return nullptr;
      }
    UniqueFd dst;
    dev_t ddev = 0;
    ino_t dino = 0;
    bool fresh = false;
    mode_t made = 0;
    bool opened_up = false;  // see Dir::opened_up
    mode_t mode_before = 0;
    std::string tmp;  // the temporary name it is built under
    if (!job_.dry_run()) {
      // A new directory is made under a temporary name (unless an ancestor
      // already is), with its final permission bits plus what the owner
      // needs to fill them, and renamed when settled; so its files can be
      // made straight under their names (O_EXCL), and yet nobody sees a file
      // that is not whole under its name.  A killed run leaves the temporary
      // directory, and the next run takes it over and finishes it.  An
      // existing directory is merged into (after removing what killed runs
      // left there); each file in it arrives whole (an anonymous file or a
      // temporary name, then a link or rename).
      const mode_t want =
          job_.preserve() ? (p.st.st_mode & 07777) : (p.st.st_mode & (0777 | S_ISVTX) & ~job_.umask_bits);
      made = (want | S_IRWXU) & ~job_.umask_bits;
      const int pfd = parent->dst.get();
      if (!parent->hidden && hiding()) {
        tmp = dir_temp_name(p.name);
        struct stat there {};
        // Into a directory that existed, the name may be taken: merge.
        if (!tmp.empty() && !parent->fresh && fstatat(pfd, p.name.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0)
          tmp.clear();
        // The source has an entry of that very name (whose copy is not a
        // leftover to take over): this one is made under its own name.
        // (After the check above: a re-run's existing directories pay no
        // lookup for it.)
        if (!tmp.empty() && (fstatat(parent->src.get(), tmp.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT))
          tmp.clear();
      }
      if (mkdirat(pfd, (tmp.empty() ? p.name : tmp).c_str(), made) == 0) {
        fresh = true;
        struct stat there {};
        if (!tmp.empty() && !parent->fresh && fstatat(pfd, p.name.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0) {
          // Another run into this destination named its own meanwhile: merge into that.
          unlinkat(pfd, tmp.c_str(), AT_REMOVEDIR);
          tmp.clear();
          fresh = false;
        }
      } else if (errno != EEXIST) {
        job_.report(parent, p.name, p.name, errno, USYNC_STEP_MKDIR);
        return nullptr;
      }
      if (fresh) job_.counters.dirs_created.fetch_add(1, std::memory_order_relaxed);
      std::string made_as = tmp.empty() ? p.name : tmp;
      // ENOTDIR: something that is not a directory is in the way (a symlink
      // there is never followed).
      int dfd = open_dir_at(pfd, made_as.c_str(), &ddev, &dino);
      if (dfd == -ENOENT && !tmp.empty()) {
        // Another run has named it since: it made it, or took over the one
        // made here and filled it first.  Merge into it under its name.
        tmp.clear();
        made_as = p.name;
        fresh = false;
        dfd = open_dir_at(pfd, made_as.c_str(), &ddev, &dino);
      }
      if (dfd == -EACCES && !fresh && open_up_dir_at(pfd, made_as.c_str(), &mode_before)) {
        opened_up = true;  // a 0000 copy of our own
        dfd = open_dir_at(pfd, made_as.c_str(), &ddev, &dino);
      }
      if (dfd < 0) {
        job_.report(parent, p.name, p.name, -dfd, USYNC_STEP_MKDIR);
        if (fresh) unlinkat(pfd, made_as.c_str(), AT_REMOVEDIR);
        if (opened_up) chmod_nofollow(pfd, made_as.c_str(), mode_before);
        return nullptr;
      }
      dst.reset(dfd);
      if (!fresh && !opened_up) opened_up = open_up_dir(dfd, &mode_before);
    } else {
      // A dry run reads the destination where it exists (read-only): files
      // already up to date are not listed, and --delete shows what would go.
      if (parent->dst.valid()) {
        const int dfd = open_dir_at(parent->dst.get(), p.name.c_str(), &ddev, &dino);
        if (dfd >= 0) dst.reset(dfd);
      }
      fresh = !dst.valid();
      if (fresh) job_.counters.dirs_created.fetch_add(1, std::memory_order_relaxed);
    }
    Dir* d = job_.new_dir(parent);
    d->name = std::move(p.name);
    d->src = std::move(src);
    d->dst = std::move(dst);
    d->src_dev = sdev;
    d->src_ino = sino;
    d->dst_dev = ddev;
    d->dst_ino = dino;
    d->mode = p.st.st_mode;
    d->uid = p.st.st_uid;
    d->gid = p.st.st_gid;
    d->atime = p.st.st_atim;
    d->mtime = p.st.st_mtim;
    d->fresh = fresh;
    d->mode_made = made;
    d->opened_up = opened_up;
    d->mode_before = mode_before;
    d->tmp = std::move(tmp);
    d->hidden = parent->hidden || !d->tmp.empty();
    d->resumed = !fresh && !job_.dry_run() &&
                 ((!d->tmp.empty() && leftover(parent->dst.get(), d->tmp, ddev, dino)) || parent->resumed);
    lru_push(d);
    if (!job_.dry_run() && !fresh) clean(d);
    if (job_.cfg.has(USYNC_REPORT_ALL) && fresh)
      job_.file_done_cb(parent, d->name, d->name, 0, nullptr, d->mode);
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
  // own hold on d.  With --delete, into a destination directory that
  // existed, the whole listing comes first, then the removals, then the
  // entries (see mirror.h).
  void list(Dir* d) {
    pin(d);
    const int sfd = d->src.get();
    std::string rel;  // d's root-relative path, only when patterns need it
    const bool filtering = !job_.cfg.filter.empty();
    const bool mirror = (job_.cfg.has(USYNC_DELETE) || d->resumed) && d->dst.valid() && !d->fresh;
    if (filtering || mirror) rel = job_.rel_path(d, "");
    std::vector<FileTask> small;
    Sizing sizing;
    std::vector<SourceName> names;  // mirror: the whole listing
    bool complete = true;
    // The listing is read a window at a time (the whole directory, up to
    // kListWindow bytes of records) and its entries are handled in inode
    // order, not in the directory's hash order: a disk filesystem places a
    // directory's inodes, and the data of files written one after another,
    // in that order, so the rings' opens and reads then come to the device
    // sorted, and the block layer merges neighbouring reads into one.
    // Measured, 100K x 4 KiB cold from ext4: 9K device reads instead of
    // 99K, and 1.40 s instead of 1.53 s (5 interleaved runs, medians).
    for (bool end = false; !end;) {
      size_t used = 0;
      while (used + kDentsBuf <= dents_size_ || grow_dents(used)) {
        const long n = syscall(SYS_getdents64, sfd, dents_.get() + used, dents_size_ - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          job_.report(d, "", "", errno, USYNC_STEP_READDIR);
          complete = false;
        }
        if (n <= 0 || job_.cancelled()) {
          complete = complete && n == 0;
          end = true;
          break;
        }
        used += static_cast<size_t>(n);
      }
      order_.clear();
      for (size_t off = 0; off < used;) {
        auto* e = reinterpret_cast<linux_dirent64*>(dents_.get() + off);
        off += e->d_reclen;
        const char* name = e->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        order_.push_back(e);
      }
      std::sort(order_.begin(), order_.end(),
                [](const linux_dirent64* a, const linux_dirent64* b) { return a->d_ino < b->d_ino; });
      for (const linux_dirent64* e : order_) {
        if (mirror) {
          names.push_back(SourceName{.name = e->d_name, .type = e->d_type});
          continue;
        }
        entry(d, e->d_name, e->d_type, filtering, rel, small, sizing);
        if (small.size() >= kBatch) flush(small, job_.small_q);
      }
    }
    if (mirror) {
      // A listing cut short would look like missing entries: delete nothing.
      // A directory taken over under its temporary name is emptied of what
      // the source lacks only while no other run writes into this
      // destination (begin_alone: the root's lock is exclusive through the
      // removals): the run that made it may still be
      // building it, from another source, and what it wrote is not a killed
      // run's leftover.  --delete removes it anyway, as asked.
      if (complete && d->resumed && !job_.cfg.has(USYNC_DELETE)) {
        if (begin_alone()) {
          if (still_leftover(d)) delete_extras(job_, d, names, rel, root_mnt_, true);
          end_alone();
        }
      } else if (complete) {
        delete_extras(job_, d, names, rel, root_mnt_, d->resumed);
      }
      for (const SourceName& s : names) {
        if (job_.cancelled()) break;
        entry(d, s.name.c_str(), s.type, filtering, rel, small, sizing, s.in_dst);
        if (small.size() >= kBatch) flush(small, job_.small_q);
      }
    }
    flush(small, job_.small_q);
    unpin(d);
    job_.release_dir(d);
  }

  // The regular files of one directory listing seen so far, for queuing
  // them unwalked (see entry()).
  struct Sizing {
    unsigned walked = 0;  // stat'ed, all smaller than large_threshold
    bool large = false;   // one was not
  };
  // Files stat'ed in each directory before the rest may be queued unwalked:
  // 8, or 2 while the last kTrustedStreak files stat'ed in the tree were all
  // small (a tree of small directories, a source tree say, then saves most
  // of its stats too).
  static constexpr unsigned kSizedFirst = 8;
  static constexpr unsigned kSizedFirstTrusted = 2;
  static constexpr unsigned kTrustedStreak = 256;
  unsigned sized_first() noexcept {
    // A file queued unwalked was large after all: trust starts over.
    if (job_.unwalked_large.load(std::memory_order_relaxed)) {
      job_.unwalked_large.store(false, std::memory_order_relaxed);
      small_streak_ = 0;
    }
    return small_streak_ >= kTrustedStreak ? kSizedFirstTrusted : kSizedFirst;
  }

  // d_type from getdents is only a hint; the fstatat here is authoritative.
  // in_dst false: the destination directory, listed whole, lacked the name
  // (SourceName::in_dst): its file needs no quick check.
  //
  // A regular file with nothing at its destination (a new directory, or a
  // name the listed destination lacks) needs no quick check, and the worker
  // stats the descriptor it opens anyway: such a file is queued on d_type
  // alone (FileTask::walked false), which saves a lookup by name per file.
  // Its size is then unknown here, so it cannot be routed to the bulk path:
  // this is done only once the directory's first regular files (sized_first)
  // were all small (a directory of large files keeps every stat), and not
  // where the walker's stat decides something (dry runs, -H, -S).
  void entry(Dir* d, const char* name, unsigned char type, bool filtering, const std::string& rel,
             std::vector<FileTask>& small, Sizing& sizing, bool in_dst = true) {
    if (type == DT_REG && unwalked_ok_ && (d->fresh || !in_dst) && !sizing.large &&
        sizing.walked >= sized_first()) {
      if (filtering && excluded(rel, name, false)) return;
      job_.counters.files_found.fetch_add(1, std::memory_order_relaxed);
      job_.counters.files_unsized.fetch_add(1, std::memory_order_relaxed);
      FileTask t;
      t.walked = false;
      queue_file(d, name, std::move(t), false, small);
      return;
    }
    struct stat st {};
    if (fstatat(d->src.get(), name, &st, follow_ ? 0 : AT_SYMLINK_NOFOLLOW) != 0) {
      // Vanished between listing and stat (or, under -L, a dangling or
      // looping symlink): nothing to copy, but say so.
      job_.report(d, name, name, errno, USYNC_STEP_STAT);
      return;
    }
    const bool is_dir = S_ISDIR(st.st_mode);
    if (filtering && excluded(rel, name, is_dir)) return;
    if (is_dir) {
      d->pending.fetch_add(1, std::memory_order_relaxed);
      const bool other_fs = job_.cfg.has(USYNC_ONE_FILE_SYSTEM) && st.st_dev != root_->src_dev;
      stack_.push_back(PendingDir{d, name, st, other_fs});
      return;
    }
    if (S_ISREG(st.st_mode)) {
      job_.counters.files_found.fetch_add(1, std::memory_order_relaxed);
      job_.counters.bytes_found.fetch_add(static_cast<uint64_t>(st.st_size), std::memory_order_relaxed);
      if (job_.dry_run()) {
        if (d->dst.valid()) {  // would a real run skip it?
          FileTask t;
          t.dir = d;
          t.src_name = name;
          t.dst_name = t.src_name;
          t.set_stat(st);
          t.existing = true;
          t.follow = follow_;
          if (up_to_date(job_, t)) {
            job_.counters.files_skipped.fetch_add(1, std::memory_order_relaxed);
            return;
          }
        }
        job_.counters.files_done.fetch_add(1, std::memory_order_relaxed);
        job_.counters.bytes_copied.fetch_add(static_cast<uint64_t>(st.st_size), std::memory_order_relaxed);
        job_.add_bytes(static_cast<uint64_t>(st.st_size));
        job_.file_done_cb(d, name, name, static_cast<uint64_t>(st.st_size), nullptr, st.st_mode);
        return;
      }
      // -H: a later path of an inode already met is linked, not copied.
      const bool leader = job_.links != nullptr && st.st_nlink > 1;
      if (leader && job_.links->walked(d, name, st)) return;
      FileTask t;
      t.link_leader = leader;
      t.set_stat(st);
      t.existing = !d->fresh && in_dst;
      // -S: files that may have holes (64 KiB or more unallocated) go where
      // they are copied segment by segment.
      const bool sparse = job_.cfg.has(USYNC_SPARSE) &&
                          static_cast<uint64_t>(st.st_blocks) * 512 + kSparseMin <= static_cast<uint64_t>(st.st_size);
      const bool large = t.size >= job_.cfg.large_threshold;
      if (large) {
        sizing.large = true;
        small_streak_ = 0;
      } else {
        ++sizing.walked;
        if (small_streak_ < kTrustedStreak) ++small_streak_;
      }
      queue_file(d, name, std::move(t), large || sparse, small);
      return;
    }
    if (job_.dry_run()) {
      // Listed and counted only if a real run would write it.
      if (d->dst.valid() && special_up_to_date(job_, d->src.get(), name, st, d->dst.get(), name)) return;
      (S_ISLNK(st.st_mode) ? job_.counters.symlinks_created : job_.counters.specials_created)
          .fetch_add(1, std::memory_order_relaxed);
      if (job_.cfg.has(USYNC_REPORT_ALL)) job_.file_done_cb(d, name, name, 0, nullptr, st.st_mode);
      return;
    }
    // -H: symlinks, FIFOs, sockets and devices keep their hard links too
    // (as cp -a and rsync -aH): a later path of the inode is linked to the
    // first one's copy, which is made here, at once (no waiting paths).
    const bool leader = job_.links != nullptr && st.st_nlink > 1;
    if (leader && job_.links->walked(d, name, st)) return;
    int step = USYNC_STEP_NONE;
    bool wrote = false;
    const int err = copy_special(job_, d->src.get(), name, st, d->dst.get(), name, !d->fresh, &step, &wrote, d);
    if (err != 0)
      job_.report(d, name, name, err, step);
    else if (wrote && job_.cfg.has(USYNC_REPORT_ALL))
      job_.file_done_cb(d, name, name, 0, nullptr, st.st_mode);
    if (leader) {
      FileTask t;
      t.dir = d;
      t.dst_name = name;
      t.set_stat(st);
      job_.links->leader_done(t, err, step);
    }
  }

  // Whether an exclude pattern drops the entry (then counted).
  bool excluded(const std::string& rel, const char* name, bool is_dir) {
    const std::string path = rel.empty() ? std::string(name) : rel + "/" + name;
    if (!job_.cfg.filter.excluded(path, name, is_dir)) return false;
    job_.counters.files_excluded.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // Queues regular file `name` of d: alone when large (its own batch), else
  // into the directory's batch.
  void queue_file(Dir* d, const char* name, FileTask t, bool large, std::vector<FileTask>& small) {
    t.dir = d;
    t.src_name = name;
    t.dst_name = t.src_name;
    // Hidden (its own or an ancestor's temporary name): made in place.  A
    // taken-over directory's files too, where they are missing; one that a
    // killed run left partial is found there (EEXIST) and replaced.
    t.replace = !d->hidden;
    t.follow = follow_;
    d->pending.fetch_add(1, std::memory_order_relaxed);
    pin(d);
    job_.files_outstanding.fetch_add(1, std::memory_order_relaxed);
    if (large) {
      // One batch per large file, so that several threads copy large
      // files side by side instead of one thread taking them all.
      std::vector<FileTask> one;
      one.push_back(std::move(t));
      flush(one, route_large_ ? job_.large_q : job_.small_q);
    } else {
      small.push_back(std::move(t));
    }
  }

  Job& job_;
  bool route_large_;
  bool follow_;  // -L: symlinks in the source are followed
  UniqueFd gate_;  // begin_alone's gate, held until end_alone
  bool unwalked_ok_;  // files may be queued without a stat (entry())
  unsigned small_streak_ = 0;  // small regular files stat'ed in a row, up to kTrustedStreak (sized_first())
  Dir* root_ = nullptr;
  uint64_t root_mnt_ = 0;  // mount of the destination root (--delete stays on it)
  bool root_done_ = false;
  Dir* lru_head_ = nullptr;
  Dir* lru_tail_ = nullptr;
  size_t open_ = 0;  // directories with descriptors open
  std::vector<PendingDir> stack_;
  // The listing's window (list()): kDentsBuf bytes, grown while a directory
  // needs more, up to kListWindow.
  std::unique_ptr<char[]> dents_{new char[kDentsBuf]};
  size_t dents_size_ = kDentsBuf;
  std::vector<const linux_dirent64*> order_;  // the window's entries, in inode order

  // Doubles the listing's window, keeping its first `used` bytes; false at
  // kListWindow (or without memory): the window is then handled as it is.
  bool grow_dents(size_t used) noexcept {
    if (dents_size_ >= kListWindow) return false;
    const size_t size = std::min(dents_size_ * 2, kListWindow);
    std::unique_ptr<char[]> bigger(new (std::nothrow) char[size]);
    if (!bigger) return false;
    std::memcpy(bigger.get(), dents_.get(), used);
    dents_ = std::move(bigger);
    dents_size_ = size;
    return true;
  }
  std::unique_ptr<Prefetcher> prefetch_;  // started by maybe_prefetch
};

}  // namespace

namespace {

// A symlink's target, read in full.  Returns 0 or an errno.
int read_link(int dfd, const char* name, size_t hint, std::string* out) noexcept {
  try {
    out->resize(std::max<size_t>(hint, 255) + 1);
    for (;;) {
      const ssize_t n = readlinkat(dfd, name, out->data(), out->size());
      if (n < 0) return errno;
      if (static_cast<size_t>(n) < out->size()) {
        out->resize(static_cast<size_t>(n));
        return 0;
      }
      out->resize(out->size() * 2);
    }
  } catch (...) {
    return ENOMEM;
  }
}

// Whether the entry at (dfd, dname) is the same kind of entry as the source
// entry st (a symlink with this target, a device with the same number);
// *ex receives its stat.  -I (USYNC_IGNORE_TIMES) trusts nothing there.
bool same_special(const Job& job, const struct stat& st, const std::string& target, int dfd, const char* dname,
                  struct stat* ex) noexcept {
  if (job.cfg.has(USYNC_IGNORE_TIMES) || fstatat(dfd, dname, ex, AT_SYMLINK_NOFOLLOW) != 0 ||
      (ex->st_mode & S_IFMT) != (st.st_mode & S_IFMT))
    return false;
  if (S_ISLNK(st.st_mode)) {
    std::string have;
    return read_link(dfd, dname, static_cast<size_t>(ex->st_size), &have) == 0 && have == target;
  }
  return !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) || ex->st_rdev == st.st_rdev;
}

// Whether ex (a same_special entry) has st's time, and -p's mode.
bool special_meta_right(const Job& job, const struct stat& st, const struct stat& ex) noexcept {
  return same_time(ex.st_mtim, st.st_mtim, job.dst_time_ns) &&
         (!job.preserve() || S_ISLNK(st.st_mode) || (ex.st_mode & 07777) == (st.st_mode & 07777));
}

}  // namespace

bool special_up_to_date(const Job& job, int sfd, const char* name, const struct stat& st, int dfd,
                        const char* dname) noexcept {
  std::string target;
  if (S_ISLNK(st.st_mode) && read_link(sfd, name, static_cast<size_t>(st.st_size), &target) != 0) return false;
  struct stat ex {};
  return same_special(job, st, target, dfd, dname, &ex) && special_meta_right(job, st, ex);
}

int copy_special(const Job& job, int sfd, const char* name, const struct stat& st, int dfd, const char* dname,
                 bool replace, int* step, bool* wrote, const Dir* dir) noexcept {
  *step = S_ISLNK(st.st_mode) ? USYNC_STEP_SYMLINK : USYNC_STEP_MKNOD;
  bool ignored;
  if (wrote == nullptr) wrote = &ignored;
  *wrote = true;
  std::string target;
  if (S_ISLNK(st.st_mode))
    if (const int err = read_link(sfd, name, static_cast<size_t>(st.st_size), &target); err != 0) return err;
  if (replace) {
    // Already there (a re-run)?  Then nothing is written, unless -p finds
    // the time (or mode) different.
    struct stat ex {};
    if (same_special(job, st, target, dfd, dname, &ex)) {
      if (wants_extra_meta(job)) {
        if (const int err = sync_extra_meta(job, Place{sfd, name}, Place{dfd, dname}, st.st_mode, st.st_uid, st.st_gid);
            err != 0) {
          *step = USYNC_STEP_METADATA;
          return err;
        }
        if (fstatat(dfd, dname, &ex, AT_SYMLINK_NOFOLLOW) != 0) ex.st_mode = ~st.st_mode;  // chown clears setuid
      }
      if (special_meta_right(job, st, ex)) {
        *wrote = false;
        return 0;
      }
      // The entry is right but for its metadata: fix that in place.
      const timespec ts[2] = {st.st_atim, st.st_mtim};
      if ((job.preserve() && !S_ISLNK(st.st_mode) && chmod_nofollow(dfd, dname, st.st_mode & 07777) != 0) ||
          utimensat(dfd, dname, ts, AT_SYMLINK_NOFOLLOW) != 0) {
        *step = USYNC_STEP_METADATA;
        return errno;
      }
      return 0;
    }
  }
  std::string tmp;
  const char* target_name = dname;
  if (replace) {
    FileTask t;
    t.dst_name = dname;
    try {
      tmp = t.create_name();
    } catch (...) {
      return ENOMEM;
    }
    target_name = tmp.c_str();
  }
  const int made = S_ISLNK(st.st_mode) ? symlinkat(target.c_str(), dfd, target_name)
                                        : mknodat(dfd, target_name, st.st_mode & (S_IFMT | 0777), st.st_rdev);
  if (made != 0) {
    // In a directory this run made, only another run into the same
    // destination makes names: compared, and replaced if it differs, as on
    // a re-run (a regular file's taken name is replaced too).
    if (errno == EEXIST && !replace) return copy_special(job, sfd, name, st, dfd, dname, true, step, wrote, dir);
    return errno;
  }
  const SourceMeta meta{Place{sfd, name}, st.st_uid, st.st_gid, dir, dname};
  const int err = settle_entry(job, dfd, target_name, replace ? dname : nullptr, st.st_mode, st.st_atim, st.st_mtim,
                               meta, step);
  if (err == 0)  // else it was removed: not made
    (S_ISLNK(st.st_mode) ? job.counters.symlinks_created : job.counters.specials_created)
        .fetch_add(1, std::memory_order_relaxed);
  return err;
}

void run_walker(Job& job, Dir* root, bool route_large) noexcept {
  try {
    Walker w(job, route_large);
    w.run(root);
  } catch (...) {
    job.report(nullptr, job.src_root, job.dst_root, ENOMEM, USYNC_STEP_READDIR);
    job.stop();
    job.counters.walk_done.store(1, std::memory_order_relaxed);
    job.small_q.close();
    job.large_q.close();
  }
}

}  // namespace usync
