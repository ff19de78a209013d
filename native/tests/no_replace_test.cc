// USYNC_NO_REPLACE: pair copies that never replace an existing destination,
// so that a caller creating new files needs no existence check of its own.
#include <gtest/gtest.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "test_tree.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

using testing::EngineName;
using testing::kEngineFlags;
using testing::Pattern;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

class NoReplace : public ::testing::TestWithParam<uint32_t> {
 protected:
  // Copies src/NAME to dst/NAME for every name, with `flags`; want: what
  // usync_copy_files returns (-EIO: some pairs failed).
  std::vector<usync_result> CopyPairs(const std::string& src, const std::string& dst,
                                      const std::vector<std::string>& names, uint32_t flags, int want) {
    usync_options o;
    usync_options_init(&o);
    o.flags = flags | GetParam();
    o.queue_depth = 16;
    usync_engine* e = nullptr;
    EXPECT_EQ(usync_engine_create(&o, &e), 0);
    std::vector<std::string> srcs, dsts;
    for (const auto& n : names) {
      srcs.push_back(src + "/" + n);
      dsts.push_back(dst + "/" + n);
    }
    std::vector<usync_pair> pairs;
    for (size_t i = 0; i < names.size(); ++i) pairs.push_back({srcs[i].c_str(), dsts[i].c_str(), 0});
    std::vector<usync_result> res(pairs.size());
    EXPECT_EQ(usync_copy_files(e, pairs.data(), pairs.size(), res.data()), want);
    usync_engine_destroy(e);
    return res;
  }

  static ino_t InodeOf(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
    return st.st_ino;
  }

  // Names in dir that are not in `want` (temporaries left behind).
  static std::vector<std::string> Extra(const std::string& dir, const std::vector<std::string>& want) {
    std::vector<std::string> out;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return out;
    while (const dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      bool known = false;
      for (const auto& w : want) known = known || w == n;
      if (!known) out.push_back(n);
    }
    closedir(d);
    return out;
  }
};

TEST_P(NoReplace, NewDestinationsAreCopiedExistingOnesFailWithEexistUntouched) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  // Small files, and one large enough for the engines' bulk path.
  const std::vector<std::string> names = {"new", "file", "link", "dir", "big", "newbig"};
  for (const auto& n : names)
    WriteFile(src + "/" + n, Pattern(n == "big" || n == "newbig" ? (3u << 20) : 4096, n.size()));
  WriteFile(dst + "/file", "old file", 0600);
  WriteFile(dst + "/big", "old big", 0600);
  ASSERT_EQ(symlink("file", (dst + "/link").c_str()), 0);
  ASSERT_EQ(mkdir((dst + "/dir").c_str(), 0755), 0);
  const ino_t file_ino = InodeOf(dst + "/file");

  const auto res = CopyPairs(src, dst, names, USYNC_NO_REPLACE, -EIO);
  for (size_t i = 0; i < names.size(); ++i) {
    const bool fresh = names[i] == "new" || names[i] == "newbig";
    EXPECT_EQ(res[i].error, fresh ? 0 : EEXIST) << names[i];
    EXPECT_EQ(res[i].step, fresh ? USYNC_STEP_NONE : USYNC_STEP_RENAME) << names[i];
  }
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/new"), ReadFile(AT_FDCWD, src + "/new"));
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/newbig"), ReadFile(AT_FDCWD, src + "/newbig"));
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/file"), "old file");
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/big"), "old big");
  EXPECT_EQ(InodeOf(dst + "/file"), file_ino);
  char target[16] = {};
  EXPECT_EQ(readlink((dst + "/link").c_str(), target, sizeof target - 1), 4);
  EXPECT_STREQ(target, "file");
  struct stat st {};
  ASSERT_EQ(lstat((dst + "/dir").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(Extra(dst, names), std::vector<std::string>{}) << "temporaries left behind";
}

TEST_P(NoReplace, WithoutTheFlagExistingFilesAreReplaced) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/file", Pattern(4096, 1));
  WriteFile(dst + "/file", "old file");
  const auto res = CopyPairs(src, dst, {"file"}, 0, 0);
  EXPECT_EQ(res[0].error, 0);
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/file"), Pattern(4096, 1));
}

// On a filesystem without RENAME_NOREPLACE (FUSE: EINVAL) nor O_TMPFILE
// (bindfs, as root), a link and an unlink give the name, as exclusively.
TEST_P(NoReplace, FuseWithoutRenameNoreplaceLinksInstead) {
  if (geteuid() != 0) GTEST_SKIP() << "mounts a FUSE filesystem (needs root)";
  if (std::system("command -v bindfs >/dev/null 2>&1") != 0) GTEST_SKIP() << "bindfs is not installed";
  TempDir t;
  const std::string src = t / "src", real = t / "real", mnt = t / "mnt";
  ASSERT_EQ(mkdir(real.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  if (std::system(("bindfs '" + real + "' '" + mnt + "'").c_str()) != 0) GTEST_SKIP() << "bindfs cannot mount here";
  struct Unmount {
    std::string at;
    ~Unmount() { (void)std::system(("fusermount -u '" + at + "'").c_str()); }
  } unmount{mnt};
  const std::string dst = mnt + "/dst";
  const std::vector<std::string> names = {"new", "file"};
  for (const auto& n : names) WriteFile(src + "/" + n, Pattern(4096, n.size()));
  WriteFile(dst + "/file", "old file");
  const auto res = CopyPairs(src, dst, names, USYNC_NO_REPLACE, -EIO);
  EXPECT_EQ(res[0].error, 0);
  EXPECT_EQ(res[1].error, EEXIST);
  EXPECT_EQ(res[1].step, USYNC_STEP_RENAME);
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/new"), Pattern(4096, 3));
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/file"), "old file");
  EXPECT_EQ(Extra(dst, names), std::vector<std::string>{}) << "temporaries left behind";
}

// A pair's destination may be a bare name, relative to the working
// directory: the copy is made there (not in some other directory), and
// NoReplace still keeps a file of that name.
TEST_P(NoReplace, BareDestinationNamesAreInTheWorkingDirectory) {
  TempDir t;
  const std::string src = t / "src";
  WriteFile(src, Pattern(4096, 3));
  WriteFile(t / "work/taken", "old");
  char was[PATH_MAX];
  ASSERT_NE(getcwd(was, sizeof was), nullptr);
  ASSERT_EQ(chdir((t / "work").c_str()), 0);
  usync_options o;
  usync_options_init(&o);
  o.flags = USYNC_NO_REPLACE | GetParam();
  usync_engine* e = nullptr;
  ASSERT_EQ(usync_engine_create(&o, &e), 0);
  const usync_pair pairs[] = {{src.c_str(), "fresh", 0}, {src.c_str(), "taken", 0}};
  usync_result res[2] = {};
  const int rc = usync_copy_files(e, pairs, 2, res);
  usync_engine_destroy(e);
  ASSERT_EQ(chdir(was), 0);
  EXPECT_EQ(rc, -EIO);
  EXPECT_EQ(res[0].error, 0);
  EXPECT_EQ(res[1].error, EEXIST);
  EXPECT_EQ(ReadFile(AT_FDCWD, t / "work/fresh"), Pattern(4096, 3));
  EXPECT_EQ(ReadFile(AT_FDCWD, t / "work/taken"), "old");
  EXPECT_EQ(Extra(t / "work", {"fresh", "taken"}), std::vector<std::string>{}) << "temporaries left behind";
}

INSTANTIATE_TEST_SUITE_P(Engines, NoReplace, ::testing::ValuesIn(kEngineFlags),
                         [](const auto& info) { return EngineName(info.param); });

}  // namespace
}  // namespace usync
