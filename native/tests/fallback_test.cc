// The automatic fallback: in a child process whose seccomp filter refuses
// io_uring_setup (as Docker's default profile does), the engine must pick the
// synchronous engine by itself, say so once on stderr, and copy correctly.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "test_tree.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

// Child exit codes.
enum { kOk = 0, kNoSeccomp = 10, kNotSync = 11, kCopyFailed = 12, kCreateFailed = 13 };

TEST(Fallback, SeccompDeniedIoUringUsesSyncEngine) {
  testing::TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  for (int i = 0; i < 50; ++i) testing::WriteFile(src + "/d/f" + std::to_string(i), testing::Pattern(1000u * i, i));
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(pipefd[1], STDERR_FILENO);
    close(pipefd[0]);
    if (!testing::DenySyscall(__NR_io_uring_setup)) _exit(kNoSeccomp);
    usync_engine* e = nullptr;
    usync_options o;
    usync_options_init(&o);
    o.flags = USYNC_ANNOUNCE_FALLBACK;  // a library prints only when asked
    if (usync_engine_create(&o, &e) != 0) _exit(kCreateFailed);
    if (usync_engine_kind(e) != USYNC_ENGINE_SYNC) _exit(kNotSync);
    const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
    usync_stats st{};
    usync_engine_stats(e, &st, sizeof st);
    usync_engine_destroy(e);
    _exit(ret == 0 && st.engine == USYNC_ENGINE_SYNC && st.files_done == 50 ? kOk : kCopyFailed);
  }
  close(pipefd[1]);
  std::string err;
  char buf[512];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) err.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == kNoSeccomp) GTEST_SKIP() << "cannot install a seccomp filter here";
  EXPECT_EQ(WEXITSTATUS(status), kOk) << err;
  EXPECT_EQ(testing::Snapshot(src), testing::Snapshot(dst));
  // Announced exactly once.
  const std::string msg = "io_uring unavailable (Operation not permitted); using the synchronous engine";
  const size_t at = err.find(msg);
  EXPECT_NE(at, std::string::npos) << err;
  EXPECT_EQ(err.find(msg, at + 1), std::string::npos) << err;
}

}  // namespace
}  // namespace usync
