#include "budget.h"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>

namespace usync {

Budget plan_budget(const Config& cfg, bool uring, uint32_t want_workers, uint64_t limit, uint64_t in_use,
                   uint32_t max_bulk, uint32_t held_pairs) noexcept {
  Budget b;
  // A little slack for what the walker opens for a moment (the parent of a
  // directory it may clean up, a listing of one).
  constexpr uint64_t kSlack = 2;
  const uint64_t avail = limit > in_use + kSlack ? limit - in_use - kSlack : 0;
  b.fd_budget = avail;
  // Directories: a quarter of what is available in pairs, at most 4096 in
  // all.  Those the caller holds (a tree's root) are open already, counted
  // in in_use; the cache may open at least 3 more (a parent and a child
  // being opened, one being settled).
  held_pairs = std::min<uint32_t>(held_pairs, 4096 - 3);
  const uint64_t more_pairs = std::clamp<uint64_t>(avail / 4, 3, 4096 - held_pairs);
  b.dir_pairs = static_cast<size_t>(held_pairs + more_pairs);
  const uint64_t dir_fds = 2 * more_pairs;
  // Beside the directory cache: --delete's remover keeps a few directories
  // of the tree it removes open (mirror.cc: a quarter of the pairs, 1 to
  // 32), and -H opens the leader's directory for each link it makes.
  // The adaptive engine's metadata prefetch (prefetch.h) holds one
  // descriptor per thread and the root's, where there are plenty.
  b.prefetch_threads = uring && !cfg.has(USYNC_FORCE_URING) && avail >= 256 ? 8 : 0;
  const uint64_t reserve = (cfg.has(USYNC_DELETE) ? std::clamp<uint64_t>(b.dir_pairs / 4, 1, 32) : 0) +
                           (cfg.has(USYNC_HARD_LINKS) ? 1 : 0) + (b.prefetch_threads > 0 ? b.prefetch_threads + 1 : 0);
  const uint64_t taken = dir_fds + reserve;
  // What is left for the files in flight, which is all there is: below one
  // thread's (or ring's) worth the call still runs one, on the slack.
  const uint64_t file_fds = avail > taken ? avail - taken : 0;
  want_workers = std::max(1u, want_workers);
  // Every thread owns at least one 4 KiB buffer: a buffer budget below
  // that for all of them shrinks the threads (bulk threads first, then the
  // rings or synchronous threads) rather than be exceeded.
  const uint64_t min_buffers = std::max<uint64_t>(1, cfg.buffer_budget / 4096);
  // Buffer memory: every thread, and every file in flight on a ring, owns
  // one chunk; all of them together stay within cfg.buffer_budget.  The
  // chunk shrinks (a page multiple, at least 4 KiB) when even one per owner
  // would not fit, then the files in flight per ring do.
  auto fit_chunk = [&](uint64_t owners) {
    const uint64_t share = cfg.buffer_budget / std::max<uint64_t>(1, owners) / 4096 * 4096;
    return static_cast<uint32_t>(std::max<uint64_t>(4096, std::min<uint64_t>(cfg.chunk_size, share)));
  };
  if (!uring) {
    // A thread holds a source and a destination descriptor at a time.
    b.workers = static_cast<uint32_t>(std::min<uint64_t>({want_workers, std::max<uint64_t>(1, file_fds / 2), min_buffers}));
    b.chunk = fit_chunk(b.workers);
    b.buffer_bytes = uint64_t{b.workers} * b.chunk;
    return b;
  }
  // A ring costs its own descriptor plus two per file in flight: the source,
  // and the destination's plain descriptor, from its install (anonymous
  // files) until it is named (while the ring writes it, it is a direct
  // descriptor), or all along when the ring's thread writes it
  // (Job::dst_ops_inline); when adaptive, two more for the cached file its
  // thread copies itself; a bulk thread costs two.
  // With too few descriptors for even one ring, one bulk thread and that
  // copy, the rings copy everything (as --engine=uring); with too few for
  // one ring and one bulk thread, the ring takes the large files too, and
  // its thread copies them as a bulk thread would (Job::large_on_rings).
  uint64_t own = cfg.has(USYNC_FORCE_URING) ? 1 : 3;
  if (own == 3 && file_fds < (own + 2) + 2) own = 1;
  b.inline_copies = own == 3;
  uint32_t w = want_workers, bulk = std::min({w, 4u, max_bulk});
  constexpr uint64_t kPerFile = 2;
  auto need = [&](uint32_t rings, uint32_t threads) {
    return uint64_t{rings} * (own + kPerFile) + uint64_t{threads} * 2;
  };
  while (need(w, bulk) > file_fds && bulk > 1) --bulk;
  while (need(w, bulk) > file_fds && w > 1) --w;
  if (need(w, bulk) > file_fds) bulk = 0;
  // Below even that, a ring would take descriptors the walker's opens wait
  // for, while its own retries wait for theirs (job.h, open_waiting).
  b.ring_fits = need(1, 0) <= file_fds + kSlack;
  while (uint64_t{w} + bulk > min_buffers && bulk > 1) --bulk;
  while (uint64_t{w} + bulk > min_buffers && w > 1) --w;
  const uint64_t per_ring = file_fds > uint64_t{bulk} * 2 ? (file_fds - uint64_t{bulk} * 2) / w : 0;
  uint64_t qd = std::min<uint64_t>(cfg.queue_depth, per_ring > own + kPerFile ? (per_ring - own) / kPerFile : 1);
  b.chunk = fit_chunk(uint64_t{w} + bulk);
  const uint64_t left = cfg.buffer_budget > uint64_t{bulk} * b.chunk ? cfg.buffer_budget - uint64_t{bulk} * b.chunk : 0;
  qd = std::min<uint64_t>(qd, std::max<uint64_t>(1, left / (uint64_t{w} * b.chunk)));
  b.workers = w;
  b.bulk_threads = bulk;
  b.queue_depth = static_cast<uint32_t>(std::max<uint64_t>(1, qd));
  b.buffer_bytes = (uint64_t{w} * b.queue_depth + bulk) * b.chunk;
  return b;
}

uint64_t nofile_limit() noexcept {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur == RLIM_INFINITY) return uint64_t{1} << 20;
  return static_cast<uint64_t>(rl.rlim_cur);
}

uint64_t open_fd_count(uint64_t below) noexcept {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return 64;  // no /proc: assume a busy process
  const int own = dirfd(d);
  uint64_t n = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const uint64_t fd = std::strtoull(e->d_name, nullptr, 10);
    if (fd != static_cast<uint64_t>(own) && fd < below) ++n;
  }
  closedir(d);
  return n;
}

}  // namespace usync
