// Metadata prefetch for cold trees.  The walker lists one directory at a
// time and stats each entry: on a cold disk every listing and every inode
// table block is a device round trip, one after the other.  A Prefetcher
// walks the same tree ahead of it on a few threads — getdents64 and fstatat
// only, nothing kept — so that the walker's own listing and stats find the
// dentries and inodes already in memory and the device sees many requests
// at once.  It is only a hint: whatever it skips or gets wrong, the walker
// still does everything itself, exactly as without it.
//
// It never leaves the tree: directories are opened below the source root
// with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV), so
// no symlink and no mount point is followed.  It holds one directory
// descriptor per thread, and a bounded stack of relative paths.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "unique_fd.h"

namespace usync {

class Prefetcher {
 public:
  // Starts `threads` threads walking from the directory open at root_fd
  // (duplicated).  Starts none if that fails.
  Prefetcher(int root_fd, unsigned threads) noexcept;
  // Stops the threads (they finish the directory they are in) and joins them.
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Directories listed so far (for tests).
  size_t listed() const noexcept;

 private:
  void run() noexcept;
  void list(const std::string& rel, char* buf, size_t size) noexcept;

  static constexpr size_t kMaxPending = 1 << 16;  // paths waiting; beyond it, subtrees are left to the walker

  UniqueFd root_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> stack_;  // relative paths, depth first (the walker's order)
  unsigned busy_ = 0;
  bool stop_ = false;
  size_t listed_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace usync
