// usync_options.file_mode, the permission bits new files are created with, and
// USYNC_ATIME_FROM_MTIME: what rclone's local backend gives the files it makes.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <vector>
#include <map>
#include <string>

#include "test_tree.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

using testing::EngineName;
using testing::kEngineFlags;
using testing::Pattern;
using testing::TempDir;
using testing::WriteFile;

class FileMode : public ::testing::TestWithParam<uint32_t> {
 protected:
  usync_engine* Make(uint32_t file_mode, uint32_t flags = 0) {
    usync_options o;
    usync_options_init(&o);
    o.flags = flags | GetParam();
    o.queue_depth = 16;
    o.file_mode = file_mode;
    usync_engine* e = nullptr;
    EXPECT_EQ(usync_engine_create(&o, &e), 0);
    return e;
  }

  // Source files of several modes, small ones and one for the bulk path.
  std::map<std::string, mode_t> MakeSource(const std::string& src) {
    const std::map<std::string, mode_t> modes = {
        {"a", 0755}, {"b", 0444}, {"c", 0000}, {"d/e", 04755}, {"d/f", 0600}, {"big", 0700}};
    for (const auto& [name, mode] : modes)
      WriteFile(src + "/" + name, Pattern(name == "big" ? (3u << 20) : 4096, 7), mode);
    return modes;
  }

  // usync_copy_tree with flags (file_mode 0) under this umask.
  int CopyTreeUnderUmask(mode_t mask, uint32_t flags, const std::string& src, const std::string& dst) {
    const mode_t old = umask(mask);
    usync_engine* e = Make(0, flags);
    const int rc = usync_copy_tree(e, src.c_str(), dst.c_str());
    usync_engine_destroy(e);
    umask(old);
    return rc;
  }

  static mode_t ModeOf(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }
};

TEST_P(FileMode, TreeCopyCreatesFilesWithTheGivenMode) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const auto modes = MakeSource(src);
  const mode_t old = umask(027);
  usync_engine* e = Make(0666);
  const int rc = usync_copy_tree(e, src.c_str(), dst.c_str());
  usync_engine_destroy(e);
  umask(old);
  ASSERT_EQ(rc, 0);
  for (const auto& [name, mode] : modes) EXPECT_EQ(ModeOf(dst + "/" + name), 0640u) << name;
  // Directories keep the default behaviour (the source's bits less the umask).
  EXPECT_EQ(ModeOf(dst + "/d"), 0750u);
}

TEST_P(FileMode, PairsReplaceExistingFilesWithTheGivenMode) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const auto modes = MakeSource(src);
  WriteFile(dst + "/a", "old", 0700);  // replaced: a new file, not its mode
  std::vector<std::string> dsts;
  std::vector<usync_pair> pairs;
  std::vector<std::string> srcs;
  for (const auto& [name, mode] : modes) {
    srcs.push_back(src + "/" + name);
    dsts.push_back(dst + "/" + name);
  }
  for (size_t i = 0; i < srcs.size(); ++i) pairs.push_back({srcs[i].c_str(), dsts[i].c_str(), 0});
  std::vector<usync_result> res(pairs.size());
  const mode_t old = umask(022);
  usync_engine* e = Make(0666);
  const int rc = usync_copy_files(e, pairs.data(), pairs.size(), res.data());
  usync_engine_destroy(e);
  umask(old);
  ASSERT_EQ(rc, 0);
  for (const auto& d : dsts) EXPECT_EQ(ModeOf(d), 0644u) << d;
}

TEST_P(FileMode, DefaultIsTheSourceModeLessTheUmask) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const auto modes = MakeSource(src);
  const mode_t old = umask(022);
  usync_engine* e = Make(0);
  const int rc = usync_copy_tree(e, src.c_str(), dst.c_str());
  usync_engine_destroy(e);
  umask(old);
  ASSERT_EQ(rc, 0);
  for (const auto& [name, mode] : modes) EXPECT_EQ(ModeOf(dst + "/" + name), mode & 0755) << name;
}

TEST_P(FileMode, PreserveStillGivesTheSourceMode) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const auto modes = MakeSource(src);
  usync_engine* e = Make(0666, USYNC_PRESERVE);
  ASSERT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  for (const auto& [name, mode] : modes) EXPECT_EQ(ModeOf(dst + "/" + name), mode) << name;
}

// -p without an fchmod per file where the file was created with its mode
// already (Job::mode_as_created): every bit still comes out exact, the
// umask's and the set-id and sticky bits included.
TEST_P(FileMode, PreserveGivesEveryModeExactly) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const std::map<std::string, mode_t> modes = {
      {"rw-r--r--", 0644}, {"group-writable", 0664}, {"private", 0600}, {"exec", 0755}, {"read-only", 0444},
      {"none", 0000},      {"setuid", 04755},       {"setgid", 02755},  {"sticky", 01644}, {"d/in-subdir", 0644},
      {"d/big", 0644},     {"d/big-other", 0666}};
  for (const auto& [name, mode] : modes)
    WriteFile(src + "/" + name, Pattern(name.starts_with("d/big") ? (3u << 20) : 4096, 3), mode);
  ASSERT_EQ(CopyTreeUnderUmask(022, USYNC_PRESERVE, src, dst), 0);
  for (const auto& [name, mode] : modes) EXPECT_EQ(ModeOf(dst + "/" + name), mode) << name;
}

// A default ACL on the destination decides a new file's bits instead of the
// umask: -p must still set the source's (cp -p does).
TEST_P(FileMode, PreserveUnderADefaultAclStillGivesTheSourceMode) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const std::map<std::string, mode_t> modes = {{"a", 0644}, {"d/b", 0644}, {"d/c", 0755}};
  for (const auto& [name, mode] : modes) WriteFile(src + "/" + name, Pattern(4096, 5), mode);
  ASSERT_EQ(mkdir(dst.c_str(), 0755), 0);
  // user::rwx group::--- other::---, as the kernel stores it (version 2).
  struct Entry {
    uint16_t tag, perm;
    uint32_t id;
  };
  struct {
    uint32_t version = 2;
    Entry e[3] = {{0x01, 7, UINT32_MAX}, {0x04, 0, UINT32_MAX}, {0x20, 0, UINT32_MAX}};
  } acl;
  if (setxattr(dst.c_str(), "system.posix_acl_default", &acl, sizeof acl, 0) != 0)
    GTEST_SKIP() << "no POSIX ACLs on " << dst << ": " << std::strerror(errno);
  // What the ACL makes of a file created with 0644 (so the copy must chmod).
  const std::string probe = dst + "/probe";
  const int fd = open(probe.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_EQ(ModeOf(probe), 0600u);
  ASSERT_EQ(unlink(probe.c_str()), 0);
  ASSERT_EQ(CopyTreeUnderUmask(022, USYNC_PRESERVE, src, dst), 0);
  for (const auto& [name, mode] : modes) EXPECT_EQ(ModeOf(dst + "/" + name), mode) << name;
}

TEST(FileModeOption, RejectsMoreThanPermissionBits) {
  usync_options o;
  usync_options_init(&o);
  usync_engine* e = nullptr;
  for (const uint32_t bad : {01000u, 04666u, 0100644u}) {
    o.file_mode = bad;
    EXPECT_EQ(usync_engine_create(&o, &e), -EINVAL) << bad;
    EXPECT_EQ(e, nullptr);
  }
  o.file_mode = 0777;
  ASSERT_EQ(usync_engine_create(&o, &e), 0);
  usync_engine_destroy(e);
}

TEST_P(FileMode, AtimeFromMtime) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const auto modes = MakeSource(src);
  const timespec times[2] = {{1000000000, 123456789}, {1200000000, 987654321}};  // atime, mtime
  std::vector<std::string> srcs, dsts;
  std::vector<usync_pair> pairs;
  for (const auto& [name, mode] : modes) {
    srcs.push_back(src + "/" + name);
    dsts.push_back(dst + "/pairs/" + name);
  }
  for (size_t i = 0; i < srcs.size(); ++i) pairs.push_back({srcs[i].c_str(), dsts[i].c_str(), 0});
  std::vector<usync_result> res(pairs.size());
  for (const bool on : {true, false}) {
    std::filesystem::remove_all(dst);
    // The source's times before each copy (reading a file can update its atime).
    const auto reset = [&] {
      for (const auto& [name, mode] : modes) ASSERT_EQ(utimensat(AT_FDCWD, (src + "/" + name).c_str(), times, 0), 0);
    };
    usync_engine* e = Make(0, on ? USYNC_ATIME_FROM_MTIME : 0);
    reset();
    ASSERT_EQ(usync_copy_tree(e, src.c_str(), (dst + "/tree").c_str()), 0);
    reset();
    ASSERT_EQ(usync_copy_files(e, pairs.data(), pairs.size(), res.data()), 0);
    usync_engine_destroy(e);
    std::vector<std::string> all = dsts;
    for (const auto& [name, mode] : modes) all.push_back(dst + "/tree/" + name);
    for (const auto& p : all) {
      struct stat st {};
      ASSERT_EQ(lstat(p.c_str(), &st), 0) << p;
      EXPECT_EQ(st.st_mtim.tv_sec, times[1].tv_sec) << p;
      EXPECT_EQ(st.st_mtim.tv_nsec, times[1].tv_nsec) << p;
      const timespec& want = on ? times[1] : times[0];
      EXPECT_EQ(st.st_atim.tv_sec, want.tv_sec) << p << (on ? " (flag)" : "");
      EXPECT_EQ(st.st_atim.tv_nsec, want.tv_nsec) << p << (on ? " (flag)" : "");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, FileMode, ::testing::ValuesIn(kEngineFlags),
                         [](const auto& info) { return EngineName(info.param); });

}  // namespace
}  // namespace usync
