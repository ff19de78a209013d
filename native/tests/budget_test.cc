// plan_budget: descriptors and buffer memory fitted before the kernel says no.
#include "budget.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace usync {
namespace {

Config Defaults(uint32_t flags = 0) {
  Config c;
  c.flags = flags;
  c.queue_depth = 128;
  c.chunk_size = 128 * 1024;
  c.buffer_budget = 128u << 20;
  return c;
}

// Descriptors one call may hold at once on the rings: a ring, its files in
// flight (each a source and, once installed, an anonymous destination), its
// thread's own copy (adaptive), the bulk threads, the directories.
uint64_t RingFiles(const Budget& b, bool adaptive) {
  return uint64_t{b.workers} * (1 + 2 * uint64_t{b.queue_depth} + (adaptive ? 2 : 0)) + uint64_t{b.bulk_threads} * 2;
}
uint64_t Peak(const Budget& b, bool adaptive) { return RingFiles(b, adaptive) + b.dir_pairs * 2; }

TEST(Budget, AdaptiveRingsKeepTwoDescriptorsForTheirOwnCopies) {
  const Budget b = plan_budget(Defaults(), true, 2, 1 << 20, 10);
  EXPECT_TRUE(b.inline_copies);
  EXPECT_EQ(b.queue_depth, 128u);
  EXPECT_FALSE(plan_budget(Defaults(USYNC_FORCE_URING), true, 2, 1 << 20, 10).inline_copies)
      << "--engine=uring puts every file through the ring";
  for (uint64_t limit : {40, 64, 100, 300, 1024}) {
    for (const uint32_t flags : {0u, uint32_t{USYNC_FORCE_URING}}) {
      const Budget t = plan_budget(Defaults(flags), true, 2, limit, 5);
      EXPECT_LE(Peak(t, t.inline_copies) + 5, limit) << "limit " << limit << " flags " << flags;
    }
  }
}

// --delete's remover and -H's links open descriptors beside the directory
// cache and the files in flight: the budget leaves room for them.
TEST(Budget, DeleteAndHardLinksHaveTheirDescriptors) {
  for (uint64_t limit : {40, 64, 100, 300, 1024, 4096}) {
    for (const bool uring : {true, false}) {
      const Budget b = plan_budget(Defaults(USYNC_DELETE | USYNC_HARD_LINKS), uring, 2, limit, 5);
      const uint64_t remover = std::clamp<uint64_t>(b.dir_pairs / 4, 1, 32), links = 1;
      const uint64_t files = uring ? RingFiles(b, b.inline_copies) : uint64_t{b.workers} * 2;
      // 5 in use before the call, 2 for what the walker opens for a moment.
      EXPECT_LE(files + b.dir_pairs * 2 + remover + links + 5 + 2, limit) << "limit " << limit << " uring " << uring;
    }
  }
}

TEST(Budget, TooFewDescriptorsLeaveEverythingToTheRing) {
  const Budget b = plan_budget(Defaults(), true, 2, 14, 4);
  EXPECT_FALSE(b.inline_copies);
  EXPECT_GE(b.workers, 1u);
  EXPECT_GE(b.queue_depth, 1u);
}

// The smallest limits: 16 and up, with stdin, stdout, stderr, the tree's
// root pair (held, counted in use) and up to two more descriptors open.
// Everything the call may hold at once fits under the limit: the directory
// cache beside the root, the rings (when one ring and a bulk thread do not
// both fit, no bulk thread: the ring takes the large files), the threads.
TEST(Budget, SmallLimitsFitEverythingBesideTheRoot) {
  for (uint64_t limit = 16; limit <= 24; ++limit) {
    for (const uint64_t in_use : {5, 6, 7}) {
      for (const uint32_t flags : {0u, uint32_t{USYNC_FORCE_URING}}) {
        for (const bool uring : {true, false}) {
          for (const uint32_t want : {1u, 2u, 8u}) {
            const Budget b = plan_budget(Defaults(flags), uring, want, limit, in_use, UINT32_MAX, 1);
            const uint64_t files = uring ? RingFiles(b, b.inline_copies) : uint64_t{b.workers} * 2;
            const uint64_t peak = in_use + (b.dir_pairs - 1) * 2 + files;
            EXPECT_LE(peak, limit) << "limit " << limit << " in use " << in_use << " flags " << flags << " uring "
                                   << uring << " want " << want;
            EXPECT_GE(b.dir_pairs, 4u) << "the root, a parent and a child being opened, one being settled";
            EXPECT_GE(b.workers, 1u);
            EXPECT_GE(b.queue_depth, 1u);
            // Beside the 5 the call cannot do without, the walker's slack too.
            if (in_use == 5) {
              EXPECT_LE(peak + 2, limit) << "limit " << limit << " flags " << flags << " uring " << uring;
            }
          }
        }
      }
    }
  }
  // At 16 with 7 in use: one ring with one file in flight, no bulk thread.
  const Budget b = plan_budget(Defaults(USYNC_FORCE_URING), true, 2, 16, 7, UINT32_MAX, 1);
  EXPECT_EQ(b.workers, 1u);
  EXPECT_EQ(b.queue_depth, 1u);
  EXPECT_EQ(b.bulk_threads, 0u);
}

// --buffer-memory bounds the buffers of the whole call: below one 4 KiB
// buffer per thread the threads (bulk threads first, then rings) shrink to
// fit, down to one thread (and, on the rings, one bulk thread).
TEST(Budget, TinyBufferBudgetsShrinkTheThreads) {
  for (const uint64_t budget : {uint64_t{4096}, uint64_t{16384}, uint64_t{65536}}) {
    Config c = Defaults();
    c.buffer_budget = budget;
    const Budget sync = plan_budget(c, false, 64, 1 << 20, 10);
    EXPECT_LE(sync.buffer_bytes, budget) << budget;
    EXPECT_EQ(sync.workers, std::max<uint64_t>(1, budget / 4096)) << budget;
    for (const uint32_t max_bulk : {0u, 4u}) {
      const Budget ring = plan_budget(c, true, 64, 1 << 20, 10, max_bulk);
      EXPECT_LE(ring.buffer_bytes, std::max<uint64_t>(budget, (1 + std::min(max_bulk, 1u)) * 4096u))
          << budget << " max_bulk " << max_bulk;
      EXPECT_GE(ring.workers, 1u);
    }
  }
}

}  // namespace
}  // namespace usync
