// Allocation failures after the engine's threads have started: "nothing
// throws" must hold, so the call returns an error instead of the process
// ending in std::terminate.  This binary replaces the global operator new
// with one that fails on demand, which is why it is a test program of its
// own.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "../test_tree.h"
#include "uringsync/uringsync.h"

namespace {
std::atomic<bool> g_fail{false};
}  // namespace

void* operator new(size_t n) {
  if (g_fail.load(std::memory_order_relaxed)) throw std::bad_alloc();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  return g_fail.load(std::memory_order_relaxed) ? nullptr : std::malloc(n == 0 ? 1 : n);
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace usync {
namespace {

// From the first finished file on, every C++ allocation fails.
extern "C" void FailFromNowOn(void*, const usync_file_done*) { g_fail = true; }

class AllocFailure : public ::testing::TestWithParam<bool> {};

TEST_P(AllocFailure, CopyReturnsInsteadOfTerminating) {
  testing::TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  for (int d = 0; d < 20; ++d)
    for (int f = 0; f < 50; ++f)
      testing::WriteFile(src + "/d" + std::to_string(d) + "/f" + std::to_string(f), testing::Pattern(100, f));
  const bool uring = GetParam();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    usync_options o;
    usync_options_init(&o);
    o.flags = USYNC_HASH_MD5 | (uring ? USYNC_FORCE_URING : USYNC_FORCE_SYNC);  // MD5's staging too
    o.file_done_cb = FailFromNowOn;
    usync_engine* e = nullptr;
    if (usync_engine_create(&o, &e) != 0) _exit(10);
    const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
    g_fail = false;
    usync_engine_destroy(e);
    _exit(ret == 0 || ret == -EIO || ret == -ENOMEM ? 0 : 11);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the copy died with signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

INSTANTIATE_TEST_SUITE_P(Engines, AllocFailure, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "IoUring" : "Sync"; });

}  // namespace
}  // namespace usync
