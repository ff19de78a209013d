// The metadata prefetcher: it lists every directory of the tree once, and
// never leaves it (no symlink followed, no other filesystem entered).
#include "prefetch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "job.h"
#include "test_tree.h"

namespace usync {
namespace {

using testing::TempDir;
using testing::WriteFile;

// Waits (a bounded time) until p has listed n directories.
bool WaitListed(const Prefetcher& p, size_t n) {
  for (int i = 0; i < 1000 && p.listed() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return p.listed() >= n;
}

TEST(Prefetch, ListsEveryDirectoryOnceAndNeverLeavesTheTree) {
  TempDir t;
  const std::string root = t / "tree", outside = t / "outside";
  // 1 + 3 + 9 + 27 directories inside; 20 outside, reachable through a symlink.
  size_t inside = 1;
  std::vector<std::string> level{root};
  for (int depth = 0; depth < 3; ++depth) {
    std::vector<std::string> next;
    for (const std::string& d : level)
      for (int i = 0; i < 3; ++i) {
        next.push_back(d + "/d" + std::to_string(i));
        WriteFile(next.back() + "/f", "x");
        ++inside;
      }
    level = next;
  }
  for (int i = 0; i < 20; ++i) WriteFile(outside + "/o" + std::to_string(i) + "/f", "y");
  ASSERT_EQ(symlink(outside.c_str(), (root + "/escape").c_str()), 0);
  ASSERT_EQ(symlink("../../outside", (root + "/d0/up").c_str()), 0);

  const int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  // The walker has read the root to its end on this descriptor already.
  char buf[4096];
  while (syscall(SYS_getdents64, fd, buf, sizeof buf) > 0) {
  }
  {
    Prefetcher p(fd, 4);
    ASSERT_TRUE(WaitListed(p, inside)) << "listed " << p.listed() << " of " << inside;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // anything more would show now
    EXPECT_EQ(p.listed(), inside) << "a directory outside the tree (through a symlink) was listed";
  }
  close(fd);
}

TEST(Prefetch, StopsPromptlyMidWalk) {
  TempDir t;
  for (int i = 0; i < 300; ++i) WriteFile(t / ("w/d" + std::to_string(i) + "/f"), "x");
  const int fd = open((t / "w").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const auto start = std::chrono::steady_clock::now();
  { Prefetcher p(fd, 8); }  // destroyed at once
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  close(fd);
}

// The walker starts the prefetcher only on a tree the probes found cold: a
// warm tree's few misses must not start it (it would repeat every listing
// and stat), a run of misses with few hits must.
TEST(Prefetch, ColdNeedsManyMissesAgainstFewHits) {
  Config cfg;
  Counters counters;
  std::atomic<bool> cancel{false};
  Job warm(cfg, counters, cancel, USYNC_ENGINE_URING);
  counters.files_inline.store(99000);
  for (int i = 0; i < 200; ++i) warm.note_probe_miss();
  EXPECT_FALSE(warm.cold_seen.load()) << "200 misses in 99,000 cached files";
  counters.reset();
  Job cold(cfg, counters, cancel, USYNC_ENGINE_URING);
  for (int i = 0; i < 31; ++i) cold.note_probe_miss();
  EXPECT_FALSE(cold.cold_seen.load()) << "31 misses are not yet a cold tree";
  cold.note_probe_miss();
  EXPECT_TRUE(cold.cold_seen.load()) << "32 misses, no hit";
  counters.reset();
  Job mixed(cfg, counters, cancel, USYNC_ENGINE_URING);
  counters.files_inline.store(400);
  for (int i = 0; i < 99; ++i) mixed.note_probe_miss();
  EXPECT_FALSE(mixed.cold_seen.load());
  mixed.note_probe_miss();
  EXPECT_TRUE(mixed.cold_seen.load()) << "one miss per four cached files";
}

}  // namespace
}  // namespace usync
