// Regular files queued without the walker's stat (FileTask::walked false):
// in a new directory, once its first files turned out small, the walker
// queues the rest on d_type alone and the worker's fstat of the opened
// descriptor is the only stat.  The seam below puts a new file under each
// source name just before it is opened, which tells the two kinds apart: a
// walked file must still be the inode the walker saw (else "changed"), an
// unwalked one is copied as opened.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "durable.h"
#include "test_tree.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

std::mutex g_mu;
std::set<std::string> g_swapped;
size_t g_new_size = 0;  // bytes of each replacement

// Before a source is first opened, a new file (another inode, another size)
// is renamed over it, as an editor saving it would.
void Replace(int dirfd, const char* name) {
  std::lock_guard<std::mutex> lock(g_mu);
  struct stat dir {};
  ASSERT_EQ(fstat(dirfd, &dir), 0);
  if (!g_swapped.insert(std::to_string(dir.st_ino) + "/" + name).second) return;
  const std::string tmp = std::string(name) + ".new";
  const std::string data = "replaced " + std::string(name) + std::string(g_new_size - 9 - strlen(name), '+');
  const int fd = openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  close(fd);
  ASSERT_EQ(fchmodat(dirfd, tmp.c_str(), 0640, 0), 0);  // whatever the umask
  ASSERT_EQ(renameat(dirfd, tmp.c_str(), dirfd, name), 0) << std::strerror(errno);
}

struct Errors {
  std::mutex mu;
  std::set<std::string> changed, other;
  std::map<std::string, uint32_t> done_mode;  // file_done_cb: name -> mode reported
};

void OnDone(void* user, const usync_file_done* d) {
  auto* errs = static_cast<Errors*>(user);
  std::lock_guard<std::mutex> lock(errs->mu);
  errs->done_mode[strrchr(d->src_path, '/') + 1] = d->mode;
}

void OnError(void* user, const usync_file_error* e) {
  auto* errs = static_cast<Errors*>(user);
  std::lock_guard<std::mutex> lock(errs->mu);
  const std::string name = strrchr(e->src_path, '/') + 1;
  (e->step == USYNC_STEP_CHANGED ? errs->changed : errs->other).insert(name);
}

class Unwalked : public ::testing::TestWithParam<uint32_t> {
 protected:
  void TearDown() override { test_seams = TestSeams{}; }

  // Copies src into dst on the engine under test, with the seam (if any)
  // in place; excludes: patterns.  Returns the call's result and stats.
  int Copy(const std::string& src, const std::string& dst, Errors* errs, usync_stats* st,
           std::vector<const char*> excludes = {}) {
    usync_options o;
    usync_options_init(&o);
    o.flags = GetParam();
    o.error_cb = OnError;
    o.file_done_cb = OnDone;
    o.cb_user = errs;
    o.excludes = excludes.data();
    o.exclude_count = excludes.size();
    usync_engine* e = nullptr;
    *st = usync_stats{};
    EXPECT_EQ(usync_engine_create(&o, &e), 0);
    if (e == nullptr) return -1;
    const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
    EXPECT_EQ(usync_engine_stats(e, st, sizeof *st), 0);
    usync_engine_destroy(e);
    test_seams = TestSeams{};
    return ret;
  }

  // Copies src into a new dst with every source file replaced just before
  // it is opened; returns the stats.
  usync_stats CopyReplacing(const std::string& src, const std::string& dst, size_t new_size, Errors* errs) {
    g_swapped.clear();
    g_new_size = new_size;
    test_seams.before_open_src = Replace;
    usync_stats st;
    Copy(src, dst, errs, &st);
    return st;
  }
};

TEST_P(Unwalked, SmallFilesOfANewDirectoryAreCopiedAsOpened) {
  TempDir t;
  constexpr int kFiles = 64;
  constexpr size_t kOld = 100, kNew = 300;
  for (int i = 0; i < kFiles; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "f%02d", i);
    WriteFile(t / ("src/d/" + std::string(name)), std::string(kOld, 'o'));
  }
  Errors errs;
  const usync_stats st = CopyReplacing(t / "src", t / "dst", kNew, &errs);
  ASSERT_EQ(g_swapped.size(), static_cast<size_t>(kFiles)) << "the seam did not run for every file";
  EXPECT_TRUE(errs.other.empty()) << *errs.other.begin();
  size_t copied = 0;
  for (int i = 0; i < kFiles; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "f%02d", i);
    if (errs.changed.count(name) != 0) {
      struct stat ignored;
      EXPECT_NE(lstat((t / ("dst/d/" + std::string(name))).c_str(), &ignored), 0) << name << ": failed, yet published";
      continue;
    }
    const std::string got = ReadFile(AT_FDCWD, t / ("dst/d/" + std::string(name)));
    EXPECT_EQ(got.size(), kNew) << name << " was not copied as opened";
    EXPECT_EQ(got.rfind("replaced " + std::string(name), 0), 0u) << name;
    struct stat ds {};
    ASSERT_EQ(stat((t / ("dst/d/" + std::string(name))).c_str(), &ds), 0);
    EXPECT_EQ(ds.st_mode, S_IFREG | 0640u) << name;
    // What is reported is the file copied, as opened (not a zero mode).
    EXPECT_EQ(errs.done_mode[name], S_IFREG | 0640u) << name;
    ++copied;
  }
  // The directory's first files are stat'ed by the walker (their swap is a
  // change); once they were small, the rest went without.
  EXPECT_GE(errs.changed.size(), 1u) << "no file was stat'ed by the walker";
  EXPECT_GE(copied, static_cast<size_t>(kFiles) / 2) << "most files should have gone unwalked";
  EXPECT_EQ(st.files_found, static_cast<uint64_t>(kFiles));
  EXPECT_EQ(st.files_done, copied);
  // Each file's size counted once: as walked, or as opened.
  EXPECT_EQ(st.bytes_found, errs.changed.size() * kOld + copied * kNew);
  EXPECT_EQ(st.bytes_done, copied * kNew);
  EXPECT_EQ(st.files_unsized, 0u);
}

// A directory whose files are large keeps the walker's stat for every one
// (its files are routed by size).
TEST_P(Unwalked, LargeFilesAreAllWalked) {
  TempDir t;
  constexpr int kFiles = 12;
  for (int i = 0; i < kFiles; ++i) WriteFile(t / ("src/big" + std::to_string(i)), std::string(1 << 20, 'b'));
  Errors errs;
  const usync_stats st = CopyReplacing(t / "src", t / "dst", 64, &errs);
  ASSERT_EQ(g_swapped.size(), static_cast<size_t>(kFiles)) << "the seam did not run for every file";
  EXPECT_TRUE(errs.other.empty()) << *errs.other.begin();
  EXPECT_EQ(errs.changed.size(), static_cast<size_t>(kFiles)) << "a large file went unwalked";
  EXPECT_EQ(st.files_done, 0u);
}

// A tree of small directories (fewer files each than a directory's first
// stat'ed ones): once the walker has met a long run of small files, it
// stats only the first two of each new directory.  A directory of large
// files still shows itself by its first file and keeps every stat.
TEST_P(Unwalked, SmallDirectoriesOfASmallTreeGoUnwalked) {
  TempDir t;
  constexpr int kDirs = 120, kPerDir = 6, kLarge = 6;
  for (int i = 0; i < kDirs; ++i)
    for (int j = 0; j < kPerDir; ++j)
      WriteFile(t / ("src/d" + std::to_string(i) + "/f" + std::to_string(j)), std::string(50, 's'));
  for (int j = 0; j < kLarge; ++j) WriteFile(t / ("src/large/big" + std::to_string(j)), std::string(1 << 20, 'b'));
  Errors errs;
  const usync_stats st = CopyReplacing(t / "src", t / "dst", 64, &errs);
  const uint64_t total = kDirs * kPerDir + kLarge;
  ASSERT_EQ(g_swapped.size(), total) << "the seam did not run for every file";
  EXPECT_TRUE(errs.other.empty()) << *errs.other.begin();
  for (int j = 0; j < kLarge; ++j)
    EXPECT_EQ(errs.changed.count("big" + std::to_string(j)), 1u) << "a large file went unwalked";
  // Every file was replaced: a walked one failed (changed), an unwalked one
  // was copied.
  EXPECT_EQ(st.files_found, total);
  EXPECT_EQ(st.files_done + st.files_failed, total);
  EXPECT_GE(st.files_done, 100u) << "the small directories kept every stat";
  EXPECT_LE(st.files_done, total - kLarge - 256u) << "the first directories must be walked whole";
  EXPECT_EQ(st.files_unsized, 0u);
}

// Existing destination directories keep the walker's stat: their files need
// the quick check, which compares it with the destination.
TEST_P(Unwalked, FilesOfAnExistingDestinationAreWalked) {
  TempDir t;
  constexpr int kFiles = 32;
  for (int i = 0; i < kFiles; ++i) WriteFile(t / ("src/f" + std::to_string(i)), "small");
  ASSERT_EQ(mkdir((t / "dst").c_str(), 0755), 0);
  WriteFile(t / "dst/unrelated", "x");
  Errors errs;
  CopyReplacing(t / "src", t / "dst", 40, &errs);
  ASSERT_EQ(g_swapped.size(), static_cast<size_t>(kFiles)) << "the seam did not run for every file";
  EXPECT_EQ(errs.changed.size(), static_cast<size_t>(kFiles)) << "a file of an existing directory went unwalked";
}

std::string g_taken_dir;  // a destination directory under its temporary name

// Before a source is opened, a file already takes its name in the
// destination directory being built (another run's): the ring's create
// fails and the file is copied again by the synchronous path.
void TakeName(int, const char* name) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_swapped.insert(name).second) return;
  const int fd = open((g_taken_dir + "/" + name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) close(fd);
}

// A file sized by one path and copied by another counts once; so does a
// large file found after a directory's first small ones (the bulk path
// copies it, wherever it was queued).
TEST_P(Unwalked, FilesCopiedTwiceOverAreSizedOnce) {
  TempDir t;
  constexpr int kFiles = 40;
  uint64_t total = 0;
  for (int i = 0; i < kFiles; ++i) {
    const std::string data(i == kFiles - 1 ? (3u << 20) : 1000u + static_cast<unsigned>(i), 'x');
    WriteFile(t / ("src/d/f" + std::to_string(i)), data);
    total += data.size();
  }
  ASSERT_EQ(mkdir((t / "dst").c_str(), 0755), 0);  // dst/d is then built as dst/.usync-dir-d.tmp
  g_taken_dir = t / "dst/.usync-dir-d.tmp";
  g_swapped.clear();
  test_seams.before_open_src = TakeName;
  Errors errs;
  usync_stats st;
  EXPECT_EQ(Copy(t / "src", t / "dst", &errs, &st), 0);
  EXPECT_TRUE(errs.changed.empty() && errs.other.empty());
  EXPECT_EQ(st.files_done, static_cast<uint64_t>(kFiles));
  EXPECT_EQ(st.bytes_found, total);
  EXPECT_EQ(st.bytes_done, total);
  EXPECT_EQ(st.files_unsized, 0u);
  for (int i = 0; i < kFiles; ++i)
    EXPECT_EQ(ReadFile(AT_FDCWD, t / ("dst/d/f" + std::to_string(i))).size(),
              i == kFiles - 1 ? (3u << 20) : 1000u + static_cast<unsigned>(i));
}

std::string g_link_target;  // what the symlinks of ToSymlink point to

// Before a source is opened, a symlink is renamed over it.
void ToSymlink(int dirfd, const char* name) {
  std::lock_guard<std::mutex> lock(g_mu);
  struct stat dir {};
  ASSERT_EQ(fstat(dirfd, &dir), 0);
  if (!g_swapped.insert(std::to_string(dir.st_ino) + "/" + name).second) return;
  const std::string tmp = std::string(name) + ".new";
  ASSERT_EQ(symlinkat(g_link_target.c_str(), dirfd, tmp.c_str()), 0) << std::strerror(errno);
  ASSERT_EQ(renameat(dirfd, tmp.c_str(), dirfd, name), 0) << std::strerror(errno);
}

// A file replaced by a symlink after the listing, walked or not, large or
// small, is a replaced file like any other (skipped as changed, not an
// open failure), and neither it nor its target is copied.
TEST_P(Unwalked, FilesReplacedByASymlinkAreReportedAsChanged) {
  TempDir t;
  WriteFile(t / "target", "the symlink's target");
  g_link_target = t / "target";
  std::vector<std::string> names;
  for (int i = 0; i < 40; ++i) names.push_back("d/f" + std::to_string(i));
  for (int i = 0; i < 3; ++i) names.push_back("big/b" + std::to_string(i));
  for (const std::string& n : names)
    WriteFile(t / ("src/" + n), std::string(n.rfind("big/", 0) == 0 ? (2u << 20) : 100u, 'o'));
  g_swapped.clear();
  test_seams.before_open_src = ToSymlink;
  Errors errs;
  usync_stats st;
  Copy(t / "src", t / "dst", &errs, &st);
  ASSERT_EQ(g_swapped.size(), names.size()) << "the seam did not run for every file";
  EXPECT_TRUE(errs.other.empty()) << *errs.other.begin();
  EXPECT_EQ(errs.changed.size(), names.size());
  EXPECT_EQ(st.files_done, 0u);
  for (const std::string& n : names) {
    struct stat ignored;
    EXPECT_NE(lstat((t / ("dst/" + n)).c_str(), &ignored), 0) << n << ": failed, yet published";
  }
}

// Exclude patterns apply to files queued unwalked as to the others.
TEST_P(Unwalked, ExcludedFilesStayOut) {
  TempDir t;
  constexpr int kFiles = 64;
  for (int i = 0; i < kFiles; ++i)
    WriteFile(t / ("src/d/f" + std::to_string(i) + (i % 2 ? ".skip" : ".keep")), "bytes " + std::to_string(i));
  Errors errs;
  usync_stats st;
  EXPECT_EQ(Copy(t / "src", t / "dst", &errs, &st, {"*.skip"}), 0);
  EXPECT_EQ(st.files_excluded, static_cast<uint64_t>(kFiles / 2));
  EXPECT_EQ(st.files_done, static_cast<uint64_t>(kFiles / 2));
  for (int i = 0; i < kFiles; ++i) {
    const std::string name = "f" + std::to_string(i) + (i % 2 ? ".skip" : ".keep");
    struct stat ignored;
    if (i % 2)
      EXPECT_NE(lstat((t / ("dst/d/" + name)).c_str(), &ignored), 0) << name << " was excluded, yet copied";
    else
      EXPECT_EQ(ReadFile(AT_FDCWD, t / ("dst/d/" + name)), "bytes " + std::to_string(i));
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, Unwalked, ::testing::ValuesIn(testing::kEngineFlags),
                         [](const auto& info) { return testing::EngineName(info.param); });

}  // namespace
}  // namespace usync
