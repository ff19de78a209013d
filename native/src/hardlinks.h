// Hard links (-H): every group of source paths that share one inode becomes
// one inode in the copy.
//
// The first path of a group the walker meets (the leader) is copied like any
// file; the others wait for it and are then made with linkat, on the thread
// that finishes the leader, or on the walker when the leader is already
// done.  No file is copied twice, whichever rings or threads run.  A waiting
// link holds its directory (pending count and pin) so that the directory is
// neither settled nor closed before the link exists.
//
// The leader's copy is found again through its path below the destination
// root, opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): nothing
// planted in the destination can redirect a link.  A group is forgotten as
// soon as all its st_nlink paths were walked, so memory holds only groups
// with paths still to come (or outside the tree).
#pragma once

#include <sys/stat.h>

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "job.h"

namespace usync {

class HardLinks {
 public:
  explicit HardLinks(Job& job) : job_(job) {}

  // Walker thread: the entry `name` in d (stat st, st_nlink > 1; a regular
  // file, or a symlink, FIFO, socket or device, which the walker makes at
  // once and then reports through leader_done).  Returns false when it is
  // the first of its group: the caller copies it (a regular file's task is
  // marked link_leader).  Returns true when it is handled here
  // (linked now, or queued until the leader is done).
  bool walked(Dir* d, const char* name, const struct stat& st);

  // Any thread: the leader t finished; error 0 means its copy is under its
  // final name (copied, or already up to date).  Makes the waiting links.
  // When the leader could not be made under its own destination name (an
  // error of that name, not of the file), a waiting path is copied instead,
  // on this thread, and becomes the group's copy.
  void leader_done(const FileTask& t, int error, int step) noexcept;

 private:
  struct Key {
    dev_t dev;
    ino_t ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept { return std::hash<uint64_t>()(k.ino * 0x9e3779b97f4a7c15ull ^ k.dev); }
  };
  struct Waiter {
    Dir* dir;
    std::string name;
    mode_t mode;
  };
  enum class State { kCopying, kDone, kFailed };
  struct Group {
    nlink_t expected = 0;  // st_nlink: paths to expect
    nlink_t seen = 0;      // paths walked so far
    State state = State::kCopying;
    int error = 0, step = 0;     // kFailed
    std::string dir_rel, leaf;   // kDone: the leader's copy below the destination root
    std::vector<Waiter> waiters;
  };

  // Copies waiter w as the group's file (the leader failed).  Returns 0 or
  // an errno and sets *step; reports nothing.
  int copy_waiter(const Waiter& w, const Key& key, int* step) noexcept;

  // Links name in d to the group's copy (of the inode key), or copies it
  // where the destination refuses the link; reports a failure.
  void link(const std::string& dir_rel, const std::string& leaf, Dir* d, const std::string& name, mode_t mode,
            const Key& key) noexcept;

  Job& job_;
  std::mutex mu_;
  std::unordered_map<Key, Group, KeyHash> groups_;
};

}  // namespace usync
