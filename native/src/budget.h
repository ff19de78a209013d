// Resource budgets of one copy call: descriptors and pinned buffer memory are
// budgets the engine fits itself into before the kernel says no, not products
// of the options.  One function decides, with its reasons in one place.
#pragma once

#include <cstddef>
#include <cstdint>

#include "job.h"

namespace usync {

struct Budget {
  uint32_t workers = 1;       // rings (io_uring) or threads (sync)
  uint32_t bulk_threads = 0;  // io_uring: threads copying large files (0: the rings do)
  uint32_t queue_depth = 1;   // io_uring: files in flight per ring
  size_t dir_pairs = 4;       // directories whose (src, dst) descriptors may be open
  uint64_t fd_budget = 0;     // descriptors this call allows itself
  uint32_t chunk = 0;         // bytes per I/O buffer (the asked chunk, less if the budget needs)
  uint64_t buffer_bytes = 0;  // I/O buffers of all rings and threads together
  bool inline_copies = false; // io_uring: rings' threads may copy cached files themselves (adaptive)
  uint32_t prefetch_threads = 0;  // adaptive: threads (one descriptor each) warming a cold tree's metadata
  // io_uring: one ring (its descriptor and a file's two) fits beside the
  // directories, with the slack; false: the call runs synchronous threads,
  // which need one descriptor fewer (Engine::run).
  bool ring_fits = true;
};

// limit: the RLIMIT_NOFILE soft limit; in_use: descriptors open now (the
// caller's).  want_workers: rings or threads asked for; max_bulk: most bulk
// threads (io_uring) the call can use; held_pairs: directory pairs already
// open among in_use that the walker's cache counts as its own (a tree's
// root).  A budget of 0 bulk threads on the rings: there was no room for
// one beside a ring, and the rings copy the large files.
Budget plan_budget(const Config& cfg, bool uring, uint32_t want_workers, uint64_t limit, uint64_t in_use,
                   uint32_t max_bulk = UINT32_MAX, uint32_t held_pairs = 0) noexcept;

// The current soft RLIMIT_NOFILE (a large number when unlimited) and the
// number of descriptors this process has open with numbers below `below`
// (the limit bounds the numbers a new descriptor may get: one numbered
// above it, inherited say, takes none of them).
uint64_t nofile_limit() noexcept;
uint64_t open_fd_count(uint64_t below = UINT64_MAX) noexcept;

}  // namespace usync
