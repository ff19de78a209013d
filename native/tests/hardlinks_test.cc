// -H through the C ABI: when the first path of a hard-link group cannot be
// made in the destination (something there is in the way), another path of
// the group is copied in its place and the rest linked to that copy: one
// bad destination name does not take every other link down with it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "test_tree.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

struct Errors {
  std::mutex mu;
  std::vector<std::string> list;  // "step:errno:dst"
};
extern "C" void CollectLinkError(void* u, const usync_file_error* e) {
  auto* c = static_cast<Errors*>(u);
  std::lock_guard lk(c->mu);
  c->list.push_back(std::string(usync_step_name(e->step)) + ":" + std::strerror(e->error) + ":" + e->dst_path);
}

class HardLinksTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(HardLinksTest, AFailedLeaderHandsOverToAnotherPath) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  // x is in the root, so it is walked (and becomes the leader) before the
  // paths in b/ and c/.
  WriteFile(src + "/x", "shared bytes\n");
  WriteFile(src + "/b/keep", "k");
  WriteFile(src + "/c/keep", "k");
  ASSERT_EQ(link((src + "/x").c_str(), (src + "/b/y").c_str()), 0);
  ASSERT_EQ(link((src + "/x").c_str(), (src + "/c/z").c_str()), 0);
  // In the destination a non-empty directory sits where x goes: no file can
  // replace it (without --delete).
  WriteFile(dst + "/x/inside", "in the way");

  Errors errors;
  usync_options o;
  usync_options_init(&o);
  o.flags = USYNC_HARD_LINKS | USYNC_PRESERVE | GetParam();
  o.error_cb = CollectLinkError;
  o.cb_user = &errors;
  usync_engine* e = nullptr;
  ASSERT_EQ(usync_engine_create(&o, &e), 0);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), -EIO);
  usync_stats st{};
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  usync_engine_destroy(e);

  ASSERT_EQ(errors.list.size(), 1u) << "only x fails; first: " << errors.list.front();
  EXPECT_NE(errors.list[0].find(dst + "/x"), std::string::npos) << errors.list[0];
  EXPECT_EQ(st.files_failed, 1u);
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/x/inside"), "in the way");
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/b/y"), "shared bytes\n");
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/c/z"), "shared bytes\n");
  struct stat y {}, z{};
  ASSERT_EQ(lstat((dst + "/b/y").c_str(), &y), 0);
  ASSERT_EQ(lstat((dst + "/c/z").c_str(), &z), 0);
  EXPECT_EQ(y.st_ino, z.st_ino) << "the two paths that could be made are still one inode";
  EXPECT_EQ(y.st_nlink, 2u);
}

// A link the destination refuses for the inode (EMLINK: its copy already
// has as many links as the filesystem allows; EPERM: a filesystem without
// hard links, as FAT, exFAT) is made as a copy instead, as rsync does: the
// path is in the copy, with the bytes, and a re-run finds it up to date.
// The link that could not be kept is reported (exit 1), as rsync does.
TEST_P(HardLinksTest, ALinkTheDestinationRefusesIsCopiedInstead) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  // a is in the root, so it is walked (and becomes the leader) before sub/b.
  WriteFile(src + "/a", "shared bytes\n");
  WriteFile(src + "/sub/keep", "k");
  ASSERT_EQ(link((src + "/a").c_str(), (src + "/sub/b").c_str()), 0);
  usync_options o;
  usync_options_init(&o);
  o.flags = USYNC_HARD_LINKS | GetParam();
  usync_engine* e = nullptr;
  ASSERT_EQ(usync_engine_create(&o, &e), 0);
  ASSERT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  // The copy of a reaches the destination's link limit (ext4: 65000) and b
  // is gone: the re-run must make b again and cannot link it.
  ASSERT_EQ(unlink((dst + "/sub/b").c_str()), 0);
  ASSERT_EQ(mkdir((dst + "/many").c_str(), 0755), 0);
  bool full = false;
  for (int i = 0; i < 70000 && !full; ++i) {
    const std::string n = dst + "/many/" + std::to_string(i);
    if (link((dst + "/a").c_str(), n.c_str()) != 0) {
      ASSERT_EQ(errno, EMLINK) << std::strerror(errno);
      full = true;
    }
  }
  if (!full) GTEST_SKIP() << "TMPDIR's filesystem has no link limit below 70000";
  for (const bool rerun : {false, true}) {
    Errors errors;
    o.error_cb = CollectLinkError;
    o.cb_user = &errors;
    ASSERT_EQ(usync_engine_create(&o, &e), 0);
    EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), -EIO) << (rerun ? "re-run" : "run");
    usync_stats st{};
    ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
    usync_engine_destroy(e);
    ASSERT_EQ(errors.list.size(), 1u);
    EXPECT_EQ(errors.list[0], "hard link:" + std::string(std::strerror(EMLINK)) + ":" + dst + "/sub/b");
    EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/sub/b"), "shared bytes\n");
    EXPECT_EQ(st.files_done, rerun ? 0u : 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, HardLinksTest,
                         ::testing::ValuesIn(testing::kEngineFlags),
                         [](const auto& info) { return testing::EngineName(info.param); });

}  // namespace
}  // namespace usync
