// Owner, xattrs and ACLs come from the file whose bytes were copied: they
// are read through its open descriptor, never again by name, so a file put
// under the source's name during the copy cannot lend the copy its
// attributes (a security.capability, say).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "durable.h"
#include "test_tree.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

std::string g_decoy, g_source;
std::atomic<bool> g_swapped{false};

// Runs where the engine is about to copy an entry's attributes: the first
// time, the decoy takes the source's name.
void SwapInDecoy() {
  if (!g_swapped.exchange(true)) {
    ASSERT_EQ(rename(g_decoy.c_str(), g_source.c_str()), 0) << std::strerror(errno);
  }
}

std::string GetX(const std::string& path) {
  char buf[64] = {};
  const ssize_t n = lgetxattr(path.c_str(), "user.who", buf, sizeof buf);
  return n < 0 ? std::string("error: ") + std::strerror(errno) : std::string(buf, static_cast<size_t>(n));
}

class MetaRace : public ::testing::TestWithParam<uint32_t> {
 protected:
  void TearDown() override { test_seams = TestSeams{}; }
};

TEST_P(MetaRace, AttributesComeFromTheFileCopied) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/f", "the original\n");
  WriteFile(t / "decoy", "a decoy\n");
  if (lsetxattr((src + "/f").c_str(), "user.who", "original", 8, 0) != 0)
    GTEST_SKIP() << t.path() << " has no user xattrs: " << std::strerror(errno);
  ASSERT_EQ(lsetxattr((t / "decoy").c_str(), "user.who", "decoy", 5, 0), 0);
  g_decoy = t / "decoy";
  g_source = src + "/f";
  g_swapped = false;
  test_seams.before_extra_meta = SwapInDecoy;

  usync_options o;
  usync_options_init(&o);
  o.flags = USYNC_XATTRS | USYNC_PRESERVE | GetParam();
  usync_engine* e = nullptr;
  ASSERT_EQ(usync_engine_create(&o, &e), 0);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  ASSERT_TRUE(g_swapped.load()) << "the seam never ran: nothing was tested";
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/f"), "the original\n");
  EXPECT_EQ(GetX(dst + "/f"), "original") << "the copy took the attributes of the file put under its name";
}

// A pair whose attributes cannot be set (a ramfs destination has no xattrs)
// is a failed pair, step "set attributes", though its bytes are published:
// its result must not say it succeeded.
TEST_P(MetaRace, APairWhoseAttributesFailIsAFailedPair) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a ramfs needs root";
  TempDir t;
  WriteFile(t / "src/f", "bytes\n");
  if (lsetxattr((t / "src/f").c_str(), "user.who", "original", 8, 0) != 0)
    GTEST_SKIP() << t.path() << " has no user xattrs: " << std::strerror(errno);
  WriteFile(t / "src/g", "plain\n");
  const std::string mnt = t / "ramfs";
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  ASSERT_EQ(mount("none", mnt.c_str(), "ramfs", 0, nullptr), 0) << std::strerror(errno);
  const std::string s1 = t / "src/f", s2 = t / "src/g", d1 = mnt + "/f", d2 = mnt + "/g";
  usync_pair pairs[] = {{s1.c_str(), d1.c_str(), 0}, {s2.c_str(), d2.c_str(), 0}};
  usync_result res[2];
  usync_options o;
  usync_options_init(&o);
  o.flags = USYNC_XATTRS | USYNC_HASH_MD5 | GetParam();
  usync_engine* e = nullptr;
  ASSERT_EQ(usync_engine_create(&o, &e), 0);
  EXPECT_EQ(usync_copy_files(e, pairs, 2, res), -EIO);
  usync_engine_destroy(e);
  EXPECT_NE(res[0].error, 0) << "the pair whose xattr could not be set says it succeeded";
  EXPECT_EQ(res[0].step, USYNC_STEP_METADATA);
  EXPECT_EQ(res[0].has_md5, 0);
  EXPECT_EQ(res[1].error, 0) << "a pair without xattrs is fine";
  EXPECT_EQ(res[1].has_md5, 1);
  EXPECT_EQ(ReadFile(AT_FDCWD, d1), "bytes\n");  // published all the same, without its times
  umount2(mnt.c_str(), MNT_DETACH);
}

INSTANTIATE_TEST_SUITE_P(Engines, MetaRace,
                         ::testing::ValuesIn(testing::kEngineFlags),
                         [](const auto& info) { return testing::EngineName(info.param); });

}  // namespace
}  // namespace usync
