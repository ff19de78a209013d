// The engine through its C ABI, on real temporary trees, for both the
// io_uring engine and the synchronous one.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "durable.h"
#include "test_tree.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

using testing::Pattern;
using testing::Snapshot;
using testing::TempDir;
using testing::WriteFile;

struct Collected {
  std::mutex mu;
  std::vector<std::string> errors;  // "step:errno:path"
  std::vector<usync_file_done> done;              // paths are not valid after the callback
  std::map<std::string, uint32_t> entries;         // src_path -> mode
  std::atomic<int> progress_calls{0};
};

extern "C" void CollectError(void* u, const usync_file_error* e) {
  auto* c = static_cast<Collected*>(u);
  std::lock_guard lk(c->mu);
  c->errors.push_back(std::string(usync_step_name(e->step)) + ":" + std::strerror(e->error) + ":" + e->src_path);
}
extern "C" void CollectDone(void* u, const usync_file_done* d) {
  auto* c = static_cast<Collected*>(u);
  std::lock_guard lk(c->mu);
  c->done.push_back(*d);
  c->entries[d->src_path] = d->mode;
}
extern "C" void CountProgress(void* u, const usync_stats*) { static_cast<Collected*>(u)->progress_calls++; }

// The synchronous engine; io_uring as it runs here (into the test's disk or
// tmpfs the rings' threads make the destination's files); io_uring with
// the destination's creates and writes on the rings, as into NFS or FUSE.
enum class Way { kSync, kRing, kRingCreates };

class EngineTest : public ::testing::TestWithParam<Way> {
 protected:
  bool uring() const { return GetParam() != Way::kSync; }
  void SetUp() override { test_seams.dst_ops_on_ring = GetParam() == Way::kRingCreates; }
  void TearDown() override {
    test_seams.dst_ops_on_ring = false;
    test_seams.dst_time_granularity = 0;
    test_seams.after_read_src = nullptr;
  }

  usync_engine* Make(uint32_t flags = 0, std::vector<const char*> excludes = {}, uint32_t chunk = 0) {
    usync_options o;
    usync_options_init(&o);
    o.flags = flags | (uring() ? USYNC_FORCE_URING : USYNC_FORCE_SYNC);
    o.chunk_size = chunk;
    o.queue_depth = 16;
    o.excludes = excludes.data();
    o.exclude_count = excludes.size();
    o.error_cb = CollectError;
    o.file_done_cb = CollectDone;
    o.progress_cb = CountProgress;
    o.cb_user = &got_;
    usync_engine* e = nullptr;
    EXPECT_EQ(usync_engine_create(&o, &e), 0);
    if (e != nullptr && uring()) {
      EXPECT_EQ(usync_engine_kind(e), USYNC_ENGINE_URING) << "io_uring must work on this machine";
    }
    return e;
  }

  // Copies src to dst with a new engine (copy_tree must return 0): its stats.
  usync_stats CopyTree(const std::string& src, const std::string& dst) {
    usync_stats st{};
    usync_engine* e = Make();
    if (e == nullptr) {
      ADD_FAILURE() << "no engine";
      return st;
    }
    EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
    EXPECT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
    usync_engine_destroy(e);
    return st;
  }

  Collected got_;
};

// Files from 64 KiB on are copied in the kernel (copy_file_range, or
// sendfile between filesystems) unless hashed; both ways give every byte,
// at and around the boundary and the chunk, in a tree and as pairs, into
// the test's filesystem and into a tmpfs where one is at hand.
TEST_P(EngineTest, MidSizeFilesAreCopiedWholeInTheKernelOrNot) {
  TempDir t;
  const std::string src = t / "src";
  const std::vector<size_t> sizes = {(64u << 10) - 1, 64u << 10, (64u << 10) + 1, (128u << 10) + 7,
                                     (512u << 10) + 3, (1u << 20) - 1};
  for (size_t i = 0; i < sizes.size(); ++i) WriteFile(src + "/f" + std::to_string(i), Pattern(sizes[i], 40 + i));
  std::vector<std::string> dirs = {t / "out"};
  if (access("/dev/shm", W_OK) == 0) {
    char tmpl[] = "/dev/shm/usync-mid-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) dirs.push_back(tmpl);
  }
  for (const std::string& base : dirs) {
    for (const uint32_t flags : {0u, static_cast<uint32_t>(USYNC_HASH_MD5)}) {
      SCOPED_TRACE(base + (flags != 0 ? " md5" : ""));
      const std::string dst = base + "/tree" + std::to_string(flags);
      usync_engine* e = Make(flags);
      ASSERT_NE(e, nullptr);
      EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
      std::vector<std::string> srcs, dsts;
      for (size_t i = 0; i < sizes.size(); ++i) {
        srcs.push_back(src + "/f" + std::to_string(i));
        dsts.push_back(base + "/pairs" + std::to_string(flags) + "/f" + std::to_string(i));
      }
      std::vector<usync_pair> pairs;
      for (size_t i = 0; i < srcs.size(); ++i) pairs.push_back({srcs[i].c_str(), dsts[i].c_str(), sizes[i]});
      std::vector<usync_result> res(pairs.size());
      EXPECT_EQ(usync_copy_files(e, pairs.data(), pairs.size(), res.data()), 0);
      usync_engine_destroy(e);
      EXPECT_EQ(Snapshot(src), Snapshot(dst));
      for (size_t i = 0; i < sizes.size(); ++i) {
        EXPECT_EQ(res[i].bytes, sizes[i]) << dsts[i];
        EXPECT_EQ(testing::ReadFile(AT_FDCWD, dsts[i]), testing::ReadFile(AT_FDCWD, srcs[i])) << dsts[i];
      }
    }
    if (base != dirs.front()) std::filesystem::remove_all(base);
  }
}

TEST_P(EngineTest, CopiesTreeExactly) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const size_t chunk = 64 * 1024;
  WriteFile(src + "/empty", "");
  WriteFile(src + "/a/chunk-1", Pattern(chunk - 1, 1));
  WriteFile(src + "/a/chunk", Pattern(chunk, 2));
  WriteFile(src + "/a/chunk+1", Pattern(chunk + 1, 3));
  WriteFile(src + "/a/b/c/deep", Pattern(10, 4), 0600);
  WriteFile(src + "/big", Pattern(3 * 1024 * 1024 + 7, 5), 0755);  // bulk path
  WriteFile(src + "/name with spaces\nand newline", "x");
  WriteFile(src + "/non-utf8-\xff\xfe", "y");
  std::filesystem::create_directories(src + "/emptydir");
  ASSERT_EQ(symlink("a/chunk", (src + "/link").c_str()), 0);
  ASSERT_EQ(symlink("/nonexistent/target", (src + "/dangling").c_str()), 0);
  ASSERT_EQ(mkfifo((src + "/fifo").c_str(), 0640), 0);
  for (int i = 0; i < 300; ++i) WriteFile(src + "/many/f" + std::to_string(i), Pattern(static_cast<size_t>(i) * 37, i));

  usync_engine* e = Make(0, {}, chunk);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_stats st{};
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  usync_engine_destroy(e);

  EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
  // Nothing of the copy's is left beside the new DST.
  for (const auto& entry : std::filesystem::directory_iterator(t.path()))
    EXPECT_TRUE(entry.path().filename() == "src" || entry.path().filename() == "dst") << entry.path();
  EXPECT_EQ(st.files_done, 308u);
  EXPECT_EQ(st.files_found, 308u);
  EXPECT_EQ(st.bytes_done, st.bytes_found);  // counted once, as written
  EXPECT_EQ(st.files_failed, 0u);
  EXPECT_EQ(st.symlinks_created, 2u);
  EXPECT_EQ(st.specials_created, 1u);
  EXPECT_EQ(st.engine, uring() ? USYNC_ENGINE_URING : USYNC_ENGINE_SYNC);
  EXPECT_EQ(st.walk_done, 1u);
  EXPECT_EQ(got_.done.size(), 308u);
  EXPECT_GE(got_.progress_calls.load(), 1);
}

TEST_P(EngineTest, PreserveKeepsModesAndTimes) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/suid", "s", 04755);
  WriteFile(src + "/ro/inside", "r", 0600);
  ASSERT_EQ(chmod((src + "/ro").c_str(), 0555), 0);
  std::filesystem::create_directories(src + "/sticky");
  ASSERT_EQ(chmod((src + "/sticky").c_str(), 01777), 0);
  const timespec ts[2] = {{1000000000, 123456789}, {1200000000, 987654321}};
  ASSERT_EQ(utimensat(AT_FDCWD, (src + "/suid").c_str(), ts, 0), 0);
  ASSERT_EQ(utimensat(AT_FDCWD, (src + "/ro").c_str(), ts, 0), 0);

  usync_engine* e = Make(USYNC_PRESERVE);
  ASSERT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
  for (const char* p : {"/suid", "/ro"}) {
    struct stat a {
    }, b{};
    ASSERT_EQ(stat((src + p).c_str(), &a), 0);
    ASSERT_EQ(stat((dst + p).c_str(), &b), 0);
    EXPECT_EQ(a.st_mode, b.st_mode) << p;
    EXPECT_EQ(a.st_mtim.tv_sec, b.st_mtim.tv_sec) << p;
    EXPECT_EQ(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec) << p;
  }
  ASSERT_EQ(chmod((src + "/ro").c_str(), 0755), 0);
  ASSERT_EQ(chmod((dst + "/ro").c_str(), 0755), 0);
}

TEST_P(EngineTest, ReplacesExistingFilesAndKeepsExtras) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/a", "new contents");
  WriteFile(src + "/d/b", "new b");
  WriteFile(dst + "/a", "old and longer contents");
  WriteFile(dst + "/d/b", "old b");
  WriteFile(dst + "/extra", "stays");
  usync_engine* e = Make();
  ASSERT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/a"), "new contents");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/d/b"), "new b");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/extra"), "stays");
  EXPECT_EQ(Snapshot(dst).size(), 4u);  // no temporaries left
}

TEST_P(EngineTest, ErrorsAreReportedAndTheRestCopied) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/ok1", "1");
  WriteFile(src + "/blocked/x", "x");
  WriteFile(src + "/ok2", "2");
  WriteFile(dst + "/blocked", "a file where the source has a directory");
  usync_engine* e = Make();
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), -EIO);
  usync_stats st{};
  usync_engine_stats(e, &st, sizeof st);
  usync_engine_destroy(e);
  EXPECT_EQ(st.files_failed, 1u);
  ASSERT_EQ(got_.errors.size(), 1u);
  EXPECT_NE(got_.errors[0].find("create directory:Not a directory:"), std::string::npos) << got_.errors[0];
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/ok1"), "1");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/ok2"), "2");
}

TEST_P(EngineTest, ExcludesPruneAndCount) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/keep.txt", "k");
  WriteFile(src + "/skip.tmp", "s");
  WriteFile(src + "/cache/a", "a");
  WriteFile(src + "/sub/cache/b", "b");
  WriteFile(src + "/top/x", "x");
  WriteFile(src + "/sub/top/y", "y");
  usync_engine* e = Make(0, {"*.tmp", "cache/", "/top"});
  ASSERT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_stats st{};
  usync_engine_stats(e, &st, sizeof st);
  usync_engine_destroy(e);
  auto snap = Snapshot(dst);
  EXPECT_TRUE(snap.count("keep.txt"));
  EXPECT_FALSE(snap.count("skip.tmp"));
  EXPECT_FALSE(snap.count("cache"));
  EXPECT_FALSE(snap.count("sub/cache"));
  EXPECT_FALSE(snap.count("top"));
  EXPECT_TRUE(snap.count("sub/top/y"));
  EXPECT_EQ(st.files_excluded, 4u);
}

TEST_P(EngineTest, DryRunWritesNothing) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/a/b", "b");
  WriteFile(src + "/c", "c");
  usync_engine* e = Make(USYNC_DRY_RUN);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  EXPECT_FALSE(std::filesystem::exists(dst));
  EXPECT_EQ(got_.done.size(), 2u);
}

TEST_P(EngineTest, DryRunPairsCarryNoDigest) {
  TempDir t;
  WriteFile(t / "a", "hello\n");
  const std::string s = t / "a", d = t / "b";
  usync_pair pair{s.c_str(), d.c_str(), 0};
  usync_result res{};
  res.has_md5 = 7;  // must be overwritten
  usync_engine* e = Make(USYNC_DRY_RUN | USYNC_HASH_MD5);
  EXPECT_EQ(usync_copy_files(e, &pair, 1, &res), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(res.error, 0);
  EXPECT_EQ(res.has_md5, 0);
  EXPECT_FALSE(std::filesystem::exists(d));
}

// A dry run creates nothing, not even the parents a pair's destination
// would need (nor those of a one-file tree copy).
TEST_P(EngineTest, DryRunPairsMakeNoDirectories) {
  TempDir t;
  WriteFile(t / "a", "hello\n");
  const std::string s = t / "a", d1 = t / "new/b/c/file", d2 = t / "new/b/other", d3 = t / "tree/x/file";
  const usync_pair pairs[] = {{s.c_str(), d1.c_str(), 0}, {s.c_str(), d2.c_str(), 6}};
  usync_result res[2]{};
  usync_engine* e = Make(USYNC_DRY_RUN);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(usync_copy_files(e, pairs, 2, res), 0);
  EXPECT_EQ(usync_copy_tree(e, s.c_str(), d3.c_str()), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(res[0].error, 0);
  EXPECT_EQ(res[1].error, 0);
  EXPECT_FALSE(std::filesystem::exists(t / "new")) << "a dry run made the pairs' directories";
  EXPECT_FALSE(std::filesystem::exists(t / "tree"));
}

// usync_copy_files reports the source (after it was read) and the copy (as
// published, times set) as fstat showed them: what the caller would
// otherwise look up by path.  A small file with an old mtime and a large
// one (the bulk path); a failed pair and a dry run report neither.
TEST_P(EngineTest, PairsReportTheFilesAsCopied) {
  TempDir t;
  WriteFile(t / "small", "hello\n");
  WriteFile(t / "large", std::string((3u << 20) + 5, 'x'));
  const timespec old[2] = {{1000000000, 123456789}, {1000000001, 987654321}};
  ASSERT_EQ(utimensat(AT_FDCWD, (t / "small").c_str(), old, 0), 0);
  const std::string s1 = t / "small", d1 = t / "out/small", s2 = t / "large", d2 = t / "out/large",
                    s3 = t / "missing", d3 = t / "out/missing";
  const usync_pair pairs[] = {{s1.c_str(), d1.c_str(), 0}, {s2.c_str(), d2.c_str(), 0}, {s3.c_str(), d3.c_str(), 0}};
  usync_result res[3]{};
  usync_engine* e = Make();
  EXPECT_EQ(usync_copy_files(e, pairs, 3, res), -EIO);
  usync_stats st{};
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  EXPECT_EQ(st.files_done, 2u);
  EXPECT_EQ(st.bytes_copied, 6u + (3u << 20) + 5) << "the bytes of the files copied";
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(pairs[i].dst);
    ASSERT_EQ(res[i].error, 0);
    struct stat a {}, b {};
    ASSERT_EQ(stat(pairs[i].src, &a), 0);
    ASSERT_EQ(stat(pairs[i].dst, &b), 0);
    ASSERT_EQ(res[i].has_src_stat, 1);
    EXPECT_EQ(res[i].src_stat.size, static_cast<uint64_t>(a.st_size));
    EXPECT_EQ(res[i].src_stat.mtime_sec, a.st_mtim.tv_sec);
    EXPECT_EQ(res[i].src_stat.mtime_nsec, a.st_mtim.tv_nsec);
    // A ring writes a pair's small file under a temporary name, whose times
    // are set by name: no descriptor of the copy is left to look at.  The
    // synchronous engine and the bulk path (large files) write an anonymous
    // file where the filesystem has O_TMPFILE (a test's TempDir: ext4 or
    // tmpfs) and look at it once published.
    if (!uring() || i == 1) {
      ASSERT_EQ(res[i].has_dst_stat, 1);
    }
    if (res[i].has_dst_stat == 0) continue;
    EXPECT_EQ(res[i].dst_stat.size, static_cast<uint64_t>(b.st_size));
    EXPECT_EQ(res[i].dst_stat.mtime_sec, b.st_mtim.tv_sec);
    EXPECT_EQ(res[i].dst_stat.mtime_nsec, b.st_mtim.tv_nsec);
    EXPECT_EQ(res[i].dst_stat.mtime_sec, a.st_mtim.tv_sec);  // the source's
    EXPECT_EQ(res[i].dst_stat.mtime_nsec, a.st_mtim.tv_nsec);
  }
  EXPECT_EQ(res[0].src_stat.mtime_sec, old[1].tv_sec);
  EXPECT_EQ(res[0].src_stat.mtime_nsec, old[1].tv_nsec);
  EXPECT_NE(res[2].error, 0);
  EXPECT_EQ(res[2].has_src_stat, 0);
  EXPECT_EQ(res[2].has_dst_stat, 0);
  usync_engine_destroy(e);

  usync_result dry{};
  e = Make(USYNC_DRY_RUN);
  const std::string d4 = t / "dry";
  const usync_pair pair{s1.c_str(), d4.c_str(), 0};
  EXPECT_EQ(usync_copy_files(e, &pair, 1, &dry), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(dry.has_src_stat, 0);
  EXPECT_EQ(dry.has_dst_stat, 0);
}

// Pairs are copied relative to their directories, each opened once per call
// (PairDirs): more directories than it keeps, paths with doubled slashes
// and "." components, a relative path, a symlinked directory, a directory
// that is missing and a file that is, all come out as with whole paths, and
// errors name the whole path.
TEST_P(EngineTest, PairsInManyDirectoriesAndOddPathsAreCopied) {
  TempDir t;
  std::vector<std::string> srcs, dsts;
  for (int d = 0; d < 40; ++d)
    for (int f = 0; f < 3; ++f) {
      const std::string rel = "d" + std::to_string(d) + "/f" + std::to_string(f);
      WriteFile(t / ("src/" + rel), Pattern(100 + d * 10 + f, d * 3 + f));
      // Back and forth between directories, as no batch of rclone's is.
      srcs.push_back(t / ("src/" + rel));
      dsts.push_back(t / ("out/" + rel));
    }
  ASSERT_EQ(symlink((t / "out/d1").c_str(), (t / "link").c_str()), 0) << std::strerror(errno);
  WriteFile(t / "src/d0/odd", "odd paths\n");
  const std::vector<std::pair<std::string, std::string>> odd = {
      {t.path() + "//src/./d0//odd", t.path() + "/out//d2/./odd"},
      {t / "src/d0/odd", t / "link/odd"},          // into out/d1 through the link
      {t / "src/d0/odd", t / "out/new/deeper/odd"},  // parents made first
  };
  for (const auto& [s, d] : odd) {
    srcs.push_back(s);
    dsts.push_back(d);
  }
  const size_t first_odd = srcs.size() - odd.size();
  srcs.push_back(t / "src/nodir/x");  // its directory is missing
  dsts.push_back(t / "out/d3/x");
  srcs.push_back(t / "src/d4/none");  // its directory is there, the file not
  dsts.push_back(t / "out/d4/none");
  std::vector<usync_pair> pairs;
  for (size_t i = 0; i < srcs.size(); ++i) pairs.push_back({srcs[i].c_str(), dsts[i].c_str(), i % 2 ? 0u : 100u});
  std::vector<usync_result> res(pairs.size());
  usync_engine* e = Make();
  EXPECT_EQ(usync_copy_files(e, pairs.data(), pairs.size(), res.data()), -EIO);
  // A relative pair, from the temporary directory as the working one.
  const std::string cwd = std::filesystem::current_path();
  ASSERT_EQ(chdir(t.path().c_str()), 0);
  const usync_pair rel{"src/d5/f1", "out/rel/f1", 0};
  usync_result rel_res{};
  EXPECT_EQ(usync_copy_files(e, &rel, 1, &rel_res), 0);
  ASSERT_EQ(chdir(cwd.c_str()), 0);
  usync_engine_destroy(e);
  for (size_t i = 0; i + 2 < srcs.size(); ++i) {
    SCOPED_TRACE(dsts[i]);
    EXPECT_EQ(res[i].error, 0);
    EXPECT_EQ(testing::ReadFile(AT_FDCWD, dsts[i]), testing::ReadFile(AT_FDCWD, srcs[i]));
  }
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "out/d1/odd"), "odd paths\n");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "out/d2/odd"), "odd paths\n");
  EXPECT_EQ(rel_res.error, 0);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "out/rel/f1"), testing::ReadFile(AT_FDCWD, t / "src/d5/f1"));
  EXPECT_GT(first_odd, 16u) << "more directories than PairDirs keeps";
  for (size_t i = srcs.size() - 2; i < srcs.size(); ++i) {
    EXPECT_EQ(res[i].error, ENOENT) << srcs[i];
    struct stat st {};
    EXPECT_NE(lstat(dsts[i].c_str(), &st), 0) << dsts[i];
  }
  std::lock_guard lk(got_.mu);
  ASSERT_EQ(got_.errors.size(), 2u);
  std::sort(got_.errors.begin(), got_.errors.end());
  EXPECT_NE(got_.errors[0].find(":" + t / "src/d4/none"), std::string::npos) << got_.errors[0];
  EXPECT_NE(got_.errors[1].find(":" + t / "src/nodir/x"), std::string::npos) << got_.errors[1];
  // Nothing left beside the copies: no temporaries.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(t / "out"))
    EXPECT_EQ(entry.path().filename().string().rfind(".usync-", 0), std::string::npos) << entry.path();
}

// The source's stat in a pair's result is taken once its bytes were read: a
// change made then (a writer racing the copy) shows in it, so that a caller
// comparing it with what it listed does not take the digest for that file.
TEST_P(EngineTest, PairSourceStatIsTakenAfterTheRead) {
  TempDir t;
  WriteFile(t / "a", "some bytes\n");
  const std::string s = t / "a", d = t / "out/a";
  static const timespec later[2] = {{2000000000, 5}, {2000000000, 5}};
  test_seams.after_read_src = [](int fd) { futimens(fd, later); };
  const usync_pair p{s.c_str(), d.c_str(), 0};
  usync_result r{};
  usync_engine* e = Make(USYNC_HASH_MD5);
  EXPECT_EQ(usync_copy_files(e, &p, 1, &r), 0);
  usync_engine_destroy(e);
  test_seams.after_read_src = nullptr;
  ASSERT_EQ(r.error, 0);
  ASSERT_EQ(r.has_src_stat, 1);
  EXPECT_EQ(r.src_stat.mtime_sec, 2000000000);
  EXPECT_EQ(r.src_stat.mtime_nsec, 5);
}

// Progress is reported during a pair batch however it is copied: on a pool
// thread (the caller waits and reports) or on the calling thread (which
// reports between files): 64 files of 900 KiB with MD5, 1 ms interval.
TEST_P(EngineTest, PairBatchesReportProgressWhileCopying) {
  TempDir t;
  WriteFile(t / "src", std::string(900u << 10, 'p'));
  const std::string src = t / "src";
  std::vector<std::string> names;
  for (int i = 0; i < 64; ++i) names.push_back(t / ("out/f" + std::to_string(i)));
  std::vector<usync_pair> pairs;
  for (const std::string& n : names) pairs.push_back({src.c_str(), n.c_str(), 0});
  std::vector<usync_result> res(pairs.size());
  usync_options o;
  usync_options_init(&o);
  o.flags = USYNC_HASH_MD5 | (uring() ? USYNC_FORCE_URING : USYNC_FORCE_SYNC);
  o.progress_cb = CountProgress;
  o.progress_interval_ms = 1;
  o.cb_user = &got_;
  usync_engine* e = nullptr;
  ASSERT_EQ(usync_engine_create(&o, &e), 0);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(usync_copy_files(e, pairs.data(), pairs.size(), res.data()), 0);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  usync_engine_destroy(e);
  if (ms < 10) GTEST_SKIP() << "the batch took " << ms << " ms: too fast to see progress between its files";
  EXPECT_GE(got_.progress_calls.load(), 3) << "progress only at the end of a " << ms << " ms batch";
}

// A pair with the caller's size is not looked up before it is opened: the
// size only routes it (small or large), the file as opened is what is
// copied, and what a stat first would have refused fails when opened.  The
// first pair into a directory the call does not know yet is looked up all
// the same: a source that is gone leaves no directory made for it.
TEST_P(EngineTest, PairsWithACallersSizeAreCopiedAsOpened) {
  TempDir t;
  const std::string big(3u << 20, 'b');
  WriteFile(t / "seed", "makes out/");
  WriteFile(t / "big", big);      // said to be small: copied whole all the same
  WriteFile(t / "small", "tiny");  // said to be large: the bulk path copies it
  ASSERT_EQ(mkdir((t / "dir").c_str(), 0755), 0);
  ASSERT_EQ(mkfifo((t / "fifo").c_str(), 0644), 0);  // opened without blocking, refused
  const std::string s[] = {t / "seed", t / "big", t / "small", t / "missing", t / "dir", t / "fifo", t / "missing"};
  const std::string d[] = {t / "out/seed",  t / "out/big",  t / "out/small", t / "out/missing",
                           t / "out/dir",   t / "out/fifo", t / "new/deeper/missing"};
  const uint64_t said[] = {10, 1, 5u << 20, 4, 4, 4, 4};
  std::vector<usync_pair> pairs;
  for (int i = 0; i < 7; ++i) pairs.push_back({s[i].c_str(), d[i].c_str(), said[i]});
  usync_result res[7]{};
  usync_engine* e = Make();
  EXPECT_EQ(usync_copy_files(e, pairs.data(), pairs.size(), res), -EIO);
  usync_stats st{};
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(res[0].error, 0);
  EXPECT_EQ(res[1].error, 0);
  EXPECT_EQ(res[1].bytes, big.size());
  EXPECT_EQ(usync::testing::ReadFile(AT_FDCWD, d[1]), big);
  EXPECT_EQ(res[2].error, 0);
  EXPECT_EQ(usync::testing::ReadFile(AT_FDCWD, d[2]), "tiny");
  EXPECT_EQ(res[3].error, ENOENT);
  EXPECT_EQ(res[3].step, USYNC_STEP_OPEN_SRC) << "looked up before it was opened";
  EXPECT_EQ(res[4].error, EISDIR);
  EXPECT_EQ(res[4].step, USYNC_STEP_CHANGED);
  EXPECT_EQ(res[5].error, EINVAL);
  EXPECT_EQ(res[5].step, USYNC_STEP_CHANGED);
  EXPECT_EQ(res[6].error, ENOENT);
  EXPECT_EQ(res[6].step, USYNC_STEP_STAT) << "the first pair into a new directory is looked up";
  EXPECT_FALSE(std::filesystem::exists(t / "new")) << "a directory made for a source that is gone";
  for (int i = 3; i < 6; ++i) EXPECT_FALSE(std::filesystem::exists(d[i])) << d[i];
  // What was found is what was opened, not what the caller said: three
  // regular files, as stats first would have found.
  EXPECT_EQ(st.files_found, 3u);
  EXPECT_EQ(st.bytes_found, 10 + big.size() + 4);
  EXPECT_EQ(st.files_unsized, 0u);
}

TEST_P(EngineTest, RefusesOverlapAndMissingSource) {
  TempDir t;
  const std::string src = t / "src";
  WriteFile(src + "/a", "a");
  usync_engine* e = Make();
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), (src + "/inner").c_str()), -ELOOP);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), src.c_str()), -ELOOP);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), t.path().c_str()), -ELOOP);  // into an ancestor
  EXPECT_FALSE(std::filesystem::exists(src + "/inner"));
  EXPECT_EQ(usync_copy_tree(e, (t / "missing").c_str(), (t / "out").c_str()), -ENOENT);
  usync_engine_destroy(e);
}

// A tree copy that cannot start says which side it could not use: one
// error_cb call with the path and step (as the overlap refusal makes), then
// the bare -errno; counted in files_failed.
TEST_P(EngineTest, StartErrorsAreReportedWithTheirSide) {
  TempDir t;
  WriteFile(t / "src/a", "a");
  WriteFile(t / "file", "f");
  const std::string missing = t / "missing", src = t / "src", under_file = t / "file/x";
  struct Case {
    std::string src, dst;
    int ret;
    std::string error;  // as CollectError writes it
  } cases[] = {
      {missing, t / "out", -ENOENT, std::string("stat:") + std::strerror(ENOENT) + ":" + missing},
      {src, under_file, -ENOTDIR, std::string("create directory:") + std::strerror(ENOTDIR) + ":" + src},
      {src, "/proc/nope/x", -ENOENT, std::string("create directory:") + std::strerror(ENOENT) + ":" + src},
  };
  for (const Case& c : cases) {
    got_.errors.clear();
    usync_engine* e = Make();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(usync_copy_tree(e, c.src.c_str(), c.dst.c_str()), c.ret) << c.src << " " << c.dst;
    usync_stats st{};
    usync_engine_stats(e, &st, sizeof st);
    usync_engine_destroy(e);
    EXPECT_EQ(got_.errors, std::vector<std::string>{c.error}) << c.src << " " << c.dst;
    EXPECT_EQ(st.files_failed, 1u);
  }
}

TEST_P(EngineTest, SingleFileSource) {
  TempDir t;
  WriteFile(t / "f", "single");
  std::filesystem::create_directories(t / "dir");
  usync_engine* e = Make();
  EXPECT_EQ(usync_copy_tree(e, (t / "f").c_str(), (t / "g").c_str()), 0);
  EXPECT_EQ(usync_copy_tree(e, (t / "f").c_str(), (t / "dir").c_str()), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "g"), "single");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "dir/f"), "single");
}

// With USYNC_COPY_LINKS a source that is itself a symlink is copied as what
// it points to, as cp -rL and rsync -L do: a directory as a tree, a file as
// a file (not as a link, which would dangle wherever its relative target is
// missing); a dangling one fails.  Without the flag the link is copied.
TEST_P(EngineTest, CopyLinksFollowsASymlinkedSource) {
  TempDir t;
  WriteFile(t / "real/f", "in dir");
  WriteFile(t / "file", "a file");
  ASSERT_EQ(symlink("real", (t / "lnk").c_str()), 0);
  ASSERT_EQ(symlink("file", (t / "flnk").c_str()), 0);
  ASSERT_EQ(symlink("nowhere", (t / "dangling").c_str()), 0);
  usync_engine* e = Make(USYNC_COPY_LINKS);
  EXPECT_EQ(usync_copy_tree(e, (t / "lnk").c_str(), (t / "out/dir").c_str()), 0);
  EXPECT_EQ(usync_copy_tree(e, (t / "flnk").c_str(), (t / "out/file").c_str()), 0);
  EXPECT_NE(usync_copy_tree(e, (t / "dangling").c_str(), (t / "out/dangling").c_str()), 0);
  usync_engine_destroy(e);
  struct stat st {};
  ASSERT_EQ(lstat((t / "out/dir").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode)) << std::oct << st.st_mode;
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "out/dir/f"), "in dir");
  ASSERT_EQ(lstat((t / "out/file").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode)) << std::oct << st.st_mode;
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "out/file"), "a file");
  EXPECT_NE(lstat((t / "out/dangling").c_str(), &st), 0);

  e = Make();
  EXPECT_EQ(usync_copy_tree(e, (t / "lnk").c_str(), (t / "plain").c_str()), 0);
  usync_engine_destroy(e);
  ASSERT_EQ(lstat((t / "plain").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << std::oct << st.st_mode;
}

TEST_P(EngineTest, PathsDeeperThanPathMax) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  std::filesystem::create_directories(src);
  const std::string comp(200, 'd');
  int fd = open(src.c_str(), O_RDONLY | O_DIRECTORY);
  for (int i = 0; i < 25; ++i) {  // 25 * 201 bytes > 4096
    ASSERT_EQ(mkdirat(fd, comp.c_str(), 0755), 0);
    int next = openat(fd, comp.c_str(), O_RDONLY | O_DIRECTORY);
    close(fd);
    fd = next;
  }
  WriteFile(fd, "bottom", "at the bottom");
  close(fd);
  usync_engine* e = Make();
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  auto a = Snapshot(src), b = Snapshot(dst);
  EXPECT_EQ(a.size(), 26u);
  EXPECT_EQ(a, b);
  // TempDir's remove_all cannot go that deep by path; unwind by fds.
  for (const std::string& root : {src, dst}) {
    std::string rel = root;
    std::vector<int> fds{open(root.c_str(), O_RDONLY | O_DIRECTORY)};
    for (int i = 0; i < 25; ++i) fds.push_back(openat(fds.back(), comp.c_str(), O_RDONLY | O_DIRECTORY));
    unlinkat(fds.back(), "bottom", 0);
    for (int i = 25; i > 0; --i) {
      close(fds[static_cast<size_t>(i)]);
      unlinkat(fds[static_cast<size_t>(i - 1)], comp.c_str(), AT_REMOVEDIR);
    }
    close(fds[0]);
  }
}

// MD5 of a string, as hex, through OpenSSL.
std::string Md5Hex(const std::string& data) {
  uint8_t d[16];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_md5(), nullptr);
  return testing::Hex(d, 16);
}

extern "C" void CollectMd5(void* u, const usync_file_done* d) {
  auto* m = static_cast<std::pair<std::mutex, std::map<std::string, std::string>>*>(u);
  std::lock_guard lk(m->first);
  m->second[d->src_path] = d->has_md5 ? testing::Hex(d->md5, 16) : "none";
}

// The sync engine hashes small files many at a time (Md5Lanes), each
// finished once its batch is hashed: every file, whatever its size and
// whatever failed next to it, gets its own digest, in its result and its
// file_done callback.
TEST_P(EngineTest, EveryFileGetsItsOwnMd5WhateverItsSizeAndNeighbours) {
  TempDir t;
  const size_t sizes[] = {0, 1, 55, 56, 63, 64, 65, 119, 120, 4095, 4096, 4097, 16383, 16384, 16385, 70000, 1 << 20};
  std::vector<std::string> srcs, dsts, data;
  std::map<std::string, std::string> want;
  for (size_t i = 0; i < 150; ++i) {
    const std::string name = "f" + std::to_string(i);
    srcs.push_back(t / ("src/" + name));
    dsts.push_back(t / ("dst/" + name));
    if (i % 37 == 5) {  // no such source: a failed file between staged ones
      data.emplace_back();
      continue;
    }
    data.push_back(Pattern(i < 40 ? sizes[i % std::size(sizes)] : (i * 7919) % 20000, static_cast<unsigned>(i)));
    WriteFile(srcs.back(), data.back());
    want[srcs.back()] = Md5Hex(data.back());
  }
  std::vector<usync_pair> pairs;
  for (size_t i = 0; i < srcs.size(); ++i) {
    // Some files larger than a stage say they are small (a caller's stale
    // size): staged at first, then hashed as they are read.
    const uint64_t hint = data[i].size() > (16 << 10) && i % 2 == 0 ? 100 : 0;
    pairs.push_back({srcs[i].c_str(), dsts[i].c_str(), hint});
  }
  std::vector<usync_result> res(pairs.size());
  usync_engine* e = Make(USYNC_HASH_MD5);
  EXPECT_EQ(usync_copy_files(e, pairs.data(), pairs.size(), res.data()), -EIO);
  usync_engine_destroy(e);
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (i % 37 == 5) {
      EXPECT_EQ(res[i].error, ENOENT) << i;
      EXPECT_EQ(res[i].has_md5, 0) << i;
      continue;
    }
    ASSERT_EQ(res[i].error, 0) << i;
    EXPECT_EQ(res[i].has_md5, 1) << i;
    EXPECT_EQ(testing::Hex(res[i].md5, 16), want[srcs[i]]) << "file " << i << " of " << data[i].size() << " bytes";
    EXPECT_EQ(testing::ReadFile(AT_FDCWD, dsts[i]), data[i]) << i;
  }

  // A tree: the digests reach the file_done callbacks.
  std::pair<std::mutex, std::map<std::string, std::string>> got;
  usync_options o;
  usync_options_init(&o);
  o.flags = USYNC_HASH_MD5 | (uring() ? USYNC_FORCE_URING : USYNC_FORCE_SYNC);
  o.file_done_cb = CollectMd5;
  o.cb_user = &got;
  usync_engine* tree = nullptr;
  ASSERT_EQ(usync_engine_create(&o, &tree), 0);
  EXPECT_EQ(usync_copy_tree(tree, (t / "src").c_str(), (t / "tree").c_str()), 0);
  EXPECT_EQ(got.second, want);

  // A re-run that finds two files in three up to date: the skipped ones
  // (finished at once) and the copied ones (staged) interleave.
  got.second.clear();
  std::map<std::string, std::string> changed;
  for (size_t i = 0; i < srcs.size(); i += 3) {
    if (i % 37 == 5) continue;
    data[i] += "changed";
    WriteFile(srcs[i], data[i]);
    changed[srcs[i]] = Md5Hex(data[i]);
  }
  EXPECT_EQ(usync_copy_tree(tree, (t / "src").c_str(), (t / "tree").c_str()), 0);
  usync_engine_destroy(tree);
  for (const auto& [path, md5] : changed) EXPECT_EQ(got.second[path], md5) << path;
  for (const auto& [path, md5] : got.second) {
    if (!changed.contains(path)) {
      EXPECT_EQ(md5, "none") << path << " was up to date: skipped, not hashed";
    }
  }
}

TEST_P(EngineTest, CopyFilesWithMd5AndPerPairErrors) {
  TempDir t;
  WriteFile(t / "hello", "hello\n");
  WriteFile(t / "big", Pattern(2 << 20, 9));
  WriteFile(t / "out/exists", "old");
  const std::string d1 = t / "out/new/sub/hello", d2 = t / "out/exists", d3 = t / "out/x", d4 = t / "out/big";
  const std::string s1 = t / "hello", s3 = t / "missing", s4 = t / "big", d5 = t / "out/mem";
  usync_pair pairs[] = {{s1.c_str(), d1.c_str(), 0},
                        {s1.c_str(), d2.c_str(), 0},
                        {s3.c_str(), d3.c_str(), 0},
                        {"/proc/self/mem", d5.c_str(), 0},
                        {s4.c_str(), d4.c_str(), 0}};
  usync_result res[5];
  usync_engine* e = Make(USYNC_HASH_MD5 | USYNC_PRESERVE);
  EXPECT_EQ(usync_copy_files(e, pairs, 5, res), -EIO);
  usync_engine_destroy(e);
  const uint8_t want[16] = {0xb1, 0x94, 0x6a, 0xc9, 0x24, 0x92, 0xd2, 0x34,
                            0x7c, 0x62, 0x35, 0xb4, 0xd2, 0x61, 0x11, 0x84};  // md5("hello\n")
  EXPECT_EQ(res[0].error, 0);
  EXPECT_EQ(res[0].bytes, 6u);
  EXPECT_EQ(std::memcmp(res[0].md5, want, 16), 0);
  EXPECT_EQ(res[0].has_md5, 1);
  EXPECT_EQ(res[2].has_md5, 0);  // failed pairs carry no digest
  EXPECT_EQ(res[1].error, 0);
  EXPECT_EQ(std::memcmp(res[1].md5, want, 16), 0);
  EXPECT_EQ(res[2].error, ENOENT);
  EXPECT_EQ(res[2].step, USYNC_STEP_STAT);
  EXPECT_EQ(res[3].error, EIO);  // reading /proc/self/mem at offset 0 fails
  EXPECT_EQ(res[3].step, USYNC_STEP_READ);
  EXPECT_FALSE(std::filesystem::exists(t / "out/mem"));  // nothing left behind
  EXPECT_EQ(res[4].error, 0);
  EXPECT_EQ(res[4].bytes, 2u << 20);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, d1), "hello\n");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, d2), "hello\n");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, d4), Pattern(2 << 20, 9));
  struct stat a {
  }, b{};
  stat(s1.c_str(), &a);
  stat(d1.c_str(), &b);
  EXPECT_EQ(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
  EXPECT_EQ(got_.errors.size(), 2u);
  EXPECT_EQ(Snapshot(t / "out").size(), 5u);  // new, new/sub, hello, exists, big: no temporaries
}

// USYNC_FAIL_FAST: the pairs the call stopped before copying get
// ECANCELED at USYNC_STEP_CANCELED in their results, as a cancelled call's
// do, and are not failures: files_failed and error_cb count only the pairs
// that failed, and the call returns -EIO.
TEST_P(EngineTest, FailFastCountsOnlyTheFailures) {
  TempDir t;
  std::vector<std::string> srcs{t / "missing"}, dsts{t / "out/missing"};
  for (int i = 0; i < 200; ++i) {
    srcs.push_back(t / ("src/" + std::to_string(i)));
    dsts.push_back(t / ("out/" + std::to_string(i)));
    WriteFile(srcs.back(), "x");
  }
  std::vector<usync_pair> pairs;
  for (size_t i = 0; i < srcs.size(); ++i) pairs.push_back({srcs[i].c_str(), dsts[i].c_str(), 0});
  std::vector<usync_result> res(pairs.size());
  usync_engine* e = Make(USYNC_FAIL_FAST);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(usync_copy_files(e, pairs.data(), pairs.size(), res.data()), -EIO);
  usync_stats st{};
  usync_engine_stats(e, &st, sizeof st);
  usync_engine_destroy(e);
  uint64_t failed = 0, canceled = 0;
  for (const usync_result& r : res) {
    if (r.error == 0) continue;
    if (r.step == USYNC_STEP_CANCELED) {
      EXPECT_EQ(r.error, ECANCELED);
      ++canceled;
    } else {
      ++failed;
    }
  }
  EXPECT_EQ(res[0].error, ENOENT);
  EXPECT_GT(canceled, 0u);
  EXPECT_EQ(failed, 1u);
  EXPECT_EQ(st.files_failed, failed);
  EXPECT_EQ(got_.errors.size(), failed);
}

// A pair whose destination is its own source is refused (cp: "are the same
// file") as a one-file tree copy onto itself is: ELOOP at
// USYNC_STEP_OVERLAP, the file untouched.  Of pairs naming one destination,
// the first is copied and each later one fails (EINVAL at
// USYNC_STEP_OPEN_DST) instead of silently replacing it.  Both by path, so a
// dry run says the same.
TEST_P(EngineTest, PairsOntoThemselvesOrOneDestinationAreRefused) {
  TempDir t;
  WriteFile(t / "a", "aaa");
  WriteFile(t / "b", "bb");
  const std::string a = t / "a", b = t / "b", d = t / "out/d";
  const usync_pair pairs[] = {{a.c_str(), a.c_str(), 0}, {a.c_str(), d.c_str(), 0}, {b.c_str(), d.c_str(), 2}};
  for (const uint32_t flags : {0u, uint32_t{USYNC_DRY_RUN}}) {
    got_.errors.clear();
    struct stat before {};
    ASSERT_EQ(stat(a.c_str(), &before), 0);
    usync_result res[3]{};
    usync_engine* e = Make(flags);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(usync_copy_files(e, pairs, 3, res), -EIO);
    usync_stats st{};
    usync_engine_stats(e, &st, sizeof st);
    usync_engine_destroy(e);
    EXPECT_EQ(res[0].error, ELOOP);
    EXPECT_EQ(res[0].step, USYNC_STEP_OVERLAP);
    EXPECT_EQ(res[1].error, 0);
    EXPECT_EQ(res[2].error, EINVAL);
    EXPECT_EQ(res[2].step, USYNC_STEP_OPEN_DST);
    EXPECT_EQ(st.files_failed, 2u);
    EXPECT_EQ(got_.errors.size(), 2u);
    struct stat after {};
    ASSERT_EQ(stat(a.c_str(), &after), 0);
    EXPECT_EQ(after.st_ino, before.st_ino) << "the source was rewritten";
    if (flags == 0) {
      EXPECT_EQ(testing::ReadFile(AT_FDCWD, d), "aaa");
    }
  }
}

// A dry run of pairs looks at what it cheaply can (the destination and
// its parent, by stat, making nothing) and predicts the failures a real run
// would meet there, with the same error and step: a parent that is a file
// (or under one), a destination that is a directory, and with
// USYNC_NO_REPLACE a destination that exists.
TEST_P(EngineTest, DryRunPairsPredictDestinationFailures) {
  TempDir t;
  WriteFile(t / "a", "aaa");
  WriteFile(t / "file", "f");
  WriteFile(t / "exists", "e");
  std::filesystem::create_directories(t / "dir/sub");
  const std::string a = t / "a";
  const std::vector<std::string> dsts{t / "file/x", t / "file/y/z", t / "dir/sub", t / "exists", t / "new/n"};
  for (const uint32_t extra : {0u, uint32_t{USYNC_NO_REPLACE}}) {
    std::vector<usync_pair> pairs;
    for (const std::string& d : dsts) pairs.push_back({a.c_str(), d.c_str(), 0});
    std::vector<usync_result> dry(pairs.size()), real(pairs.size());
    usync_engine* e = Make(extra | USYNC_DRY_RUN);
    ASSERT_NE(e, nullptr);
    const int dry_ret = usync_copy_files(e, pairs.data(), pairs.size(), dry.data());
    usync_stats dry_st{};
    usync_engine_stats(e, &dry_st, sizeof dry_st);
    usync_engine_destroy(e);
    EXPECT_FALSE(std::filesystem::exists(t / "new")) << "a dry run made a directory";
    EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "exists"), "e");
    e = Make(extra);
    ASSERT_NE(e, nullptr);
    const int real_ret = usync_copy_files(e, pairs.data(), pairs.size(), real.data());
    usync_stats real_st{};
    usync_engine_stats(e, &real_st, sizeof real_st);
    usync_engine_destroy(e);
    EXPECT_EQ(dry_ret, real_ret);
    EXPECT_EQ(dry_st.files_failed, real_st.files_failed);
    for (size_t i = 0; i < pairs.size(); ++i) {
      EXPECT_EQ(dry[i].error, real[i].error) << dsts[i] << " flags " << extra;
      EXPECT_EQ(dry[i].step, real[i].step) << dsts[i] << " flags " << extra;
    }
    std::filesystem::remove_all(t / "new");
    WriteFile(t / "exists", "e");
  }
}

TEST_P(EngineTest, CancelStopsCleanly) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const std::string data = Pattern(4096, 1);
  for (int d = 0; d < 40; ++d)
    for (int f = 0; f < 250; ++f) WriteFile(src + "/d" + std::to_string(d) + "/f" + std::to_string(f), data);
  usync_engine* e = Make();
  std::atomic<bool> started{false}, returned{false};
  std::thread canceller([&] {
    // Until 100 files are done, or the copy has returned without them
    // (every file failing must fail the test, not hang it).
    for (;;) {
      usync_stats st{};
      usync_engine_stats(e, &st, sizeof st);
      if (st.files_done > 100 || returned) break;
      std::this_thread::yield();
    }
    usync_engine_cancel(e);
    started = true;
  });
  const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
  returned = true;
  canceller.join();
  usync_engine_destroy(e);
  // The copy may have won the race on a fast machine; otherwise it stopped.
  EXPECT_TRUE(ret == -ECANCELED || ret == 0) << ret;
  // Whatever exists under a final name is complete; no temporaries.
  for (const auto& [rel, en] : Snapshot(dst)) {
    EXPECT_EQ(rel.find(".usync-"), std::string::npos) << rel;
    if (S_ISREG(en.mode)) {
      EXPECT_EQ(en.content, data) << rel;
    }
  }
  EXPECT_TRUE(got_.errors.empty());
}

TEST_P(EngineTest, StickyDirectoryKeepsItsStickyBitWithoutPreserve) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/tmp/f", "x");
  ASSERT_EQ(chmod((src + "/tmp").c_str(), 01777), 0);
  ASSERT_EQ(mkdir((src + "/g").c_str(), 0755), 0);
  ASSERT_EQ(chmod((src + "/g").c_str(), 02775), 0);
  const mode_t old = umask(022);
  usync_engine* e = Make();
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  umask(old);
  struct stat st {};
  ASSERT_EQ(stat((dst + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01755u);  // as cp -r: sticky kept, umask applied
  ASSERT_EQ(stat((dst + "/g").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);  // as cp -r: setgid not carried without -p
}

TEST_P(EngineTest, ReportAllListsEveryEntry) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/d/f", "x");
  ASSERT_EQ(symlink("f", (src + "/d/l").c_str()), 0);
  ASSERT_EQ(mkfifo((src + "/p").c_str(), 0644), 0);
  usync_engine* e = Make(USYNC_REPORT_ALL);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  auto type = [&](const std::string& rel) { return got_.entries[src + rel] & S_IFMT; };
  EXPECT_EQ(type("/d"), static_cast<uint32_t>(S_IFDIR));
  EXPECT_EQ(type("/d/f"), static_cast<uint32_t>(S_IFREG));
  EXPECT_EQ(type("/d/l"), static_cast<uint32_t>(S_IFLNK));
  EXPECT_EQ(type("/p"), static_cast<uint32_t>(S_IFIFO));
}

// The names of the entries made in a directory an inotify descriptor
// watches (IN_CREATE | IN_MOVED_TO), in order; closes it.
std::vector<std::string> DrainNames(int in) {
  std::vector<std::string> seen;
  alignas(inotify_event) char buf[64 * 1024];
  for (ssize_t n; (n = read(in, buf, sizeof buf)) > 0;)
    for (char* p = buf; p < buf + n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(p);
      EXPECT_FALSE(ev->mask & IN_Q_OVERFLOW);
      if (ev->len > 0) seen.emplace_back(ev->name);
      p += sizeof(inotify_event) + ev->len;
    }
  close(in);
  return seen;
}

// Where the destination has anonymous files (O_TMPFILE), each file appears
// under its own name once, complete: no temporary name is ever made in the
// destination (what another reader of it would see), by either engine.
TEST_P(EngineTest, FilesAppearOnlyUnderTheirNames) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  std::set<std::string> want;
  for (int i = 0; i < 200; ++i) {
    WriteFile(src + "/f" + std::to_string(i), Pattern(static_cast<size_t>(i) * 97 + 1, i));
    want.insert("f" + std::to_string(i));
  }
  ASSERT_EQ(mkdir(dst.c_str(), 0755), 0);
  const int probe = open(dst.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (probe < 0) GTEST_SKIP() << "no O_TMPFILE on " << dst << ": " << std::strerror(errno);
  close(probe);
  const int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(in, 0);
  ASSERT_GE(inotify_add_watch(in, dst.c_str(), IN_CREATE | IN_MOVED_TO), 0);

  usync_engine* e = Make();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
  EXPECT_EQ(Snapshot(src), Snapshot(dst));

  const std::vector<std::string> seen = DrainNames(in);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), want);
  EXPECT_EQ(seen.size(), want.size()) << "a name was made twice";
}

// The same for usync_copy_files' pairs (the rclone backend's calls), whose
// destination is a path: a killed call leaves no temporary behind, since
// there is none (one named file of the ring's, killed, was left for good:
// no walk of a pair's directory removes it).  Into more directories than
// the call keeps open (PairDirs: 16, source directories included), so that
// the later pairs' destinations are whole paths.
TEST_P(EngineTest, PairsAppearOnlyUnderTheirNames) {
  TempDir t;
  const std::string dst = t / "dst";
  ASSERT_EQ(mkdir(dst.c_str(), 0755), 0);
  const int probe = open(dst.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (probe < 0) GTEST_SKIP() << "no O_TMPFILE on " << dst << ": " << std::strerror(errno);
  close(probe);
  const int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(in, 0);
  constexpr int kDirs = 30;
  for (int d = 0; d < kDirs; ++d) {
    const std::string dir = dst + "/d" + std::to_string(d);
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    ASSERT_GE(inotify_add_watch(in, dir.c_str(), IN_CREATE | IN_MOVED_TO), 0);
  }
  std::vector<std::string> srcs, dsts;
  std::multiset<std::string> want;
  for (int i = 0; i < 120; ++i) {
    srcs.push_back(t / ("src/s" + std::to_string(i % kDirs) + "/f" + std::to_string(i)));
    WriteFile(srcs.back(), Pattern(static_cast<size_t>(i) * 997 + 1, i));
    dsts.push_back(dst + "/d" + std::to_string(i % kDirs) + "/p" + std::to_string(i));
    want.insert("p" + std::to_string(i));
  }
  std::vector<usync_pair> pairs;
  for (size_t i = 0; i < srcs.size(); ++i) pairs.push_back({srcs[i].c_str(), dsts[i].c_str(), i % 2 ? 0 : i * 997 + 1});
  std::vector<usync_result> res(pairs.size());
  usync_engine* e = Make();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(usync_copy_files(e, pairs.data(), pairs.size(), res.data()), 0);
  usync_stats st{};
  EXPECT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(st.engine, uring() ? USYNC_ENGINE_URING : USYNC_ENGINE_SYNC);
  for (size_t i = 0; i < srcs.size(); ++i)
    EXPECT_EQ(testing::ReadFile(AT_FDCWD, dsts[i]), testing::ReadFile(AT_FDCWD, srcs[i])) << dsts[i];
  const std::vector<std::string> seen = DrainNames(in);
  EXPECT_EQ(std::multiset<std::string>(seen.begin(), seen.end()), want);
}

// A new directory is built under a temporary name and renamed when all its
// entries are in place: its files are made straight under their own names,
// yet whoever looks at the destination sees the directory only whole.  A
// watcher that polls for it sees every file at its first sight of it.
TEST_P(EngineTest, NewDirectoryAppearsOnlyWhole) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  constexpr int kFiles = 400;
  for (int i = 0; i < kFiles; ++i)
    WriteFile(src + "/sub/f" + std::to_string(i), Pattern(static_cast<size_t>(i) * 61 + 1, i));
  WriteFile(src + "/sub/deeper/g", Pattern(5000, 7));
  ASSERT_EQ(mkdir(dst.c_str(), 0755), 0);
  const int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(in, 0);
  ASSERT_GE(inotify_add_watch(in, dst.c_str(), IN_CREATE | IN_MOVED_TO), 0);

  // The watcher looks until it sees dst/sub (a last time after the copy
  // returned, if it never got the CPU meanwhile; the inotify check below
  // does not depend on that timing).
  std::atomic<bool> stop{false}, ready{false};
  std::atomic<int> first_seen{-1};  // entries of dst/sub at the watcher's first sight of it
  std::thread watcher([&] {
    const std::string sub = dst + "/sub";
    for (;;) {
      const bool last = stop.load();
      if (DIR* d = opendir(sub.c_str())) {
        int n = 0;
        while (const dirent* e = readdir(d))
          if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++n;
        closedir(d);
        first_seen = n;
        return;
      }
      ready = true;
      if (last) return;
    }
  });
  while (!ready.load()) std::this_thread::yield();
  CopyTree(src, dst);
  stop = true;
  watcher.join();
  EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
  EXPECT_EQ(first_seen.load(), kFiles + 1) << "dst/sub was seen before all its entries were in it";

  std::vector<std::pair<std::string, uint32_t>> seen;
  alignas(inotify_event) char buf[16 * 1024];
  for (ssize_t n; (n = read(in, buf, sizeof buf)) > 0;)
    for (char* p = buf; p < buf + n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(p);
      ASSERT_FALSE(ev->mask & IN_Q_OVERFLOW);
      if (ev->len > 0) seen.emplace_back(ev->name, ev->mask & (IN_CREATE | IN_MOVED_TO));
      p += sizeof(inotify_event) + ev->len;
    }
  close(in);
  const std::vector<std::pair<std::string, uint32_t>> want = {{".usync-dir-sub.tmp", IN_CREATE},
                                                              {"sub", IN_MOVED_TO}};
  EXPECT_EQ(seen, want);
}

// What a killed run leaves (a directory under its temporary name, holding
// complete files, a partial one and a subdirectory) is taken over: the
// complete files are not copied again, the partial one is, and the
// directory gets its name.  Leftovers this run will not take over (their
// source is gone, or the name exists meanwhile) are removed.
TEST_P(EngineTest, KilledRunsDirectoryIsTakenOver) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/sub/done", Pattern(3000, 1));
  WriteFile(src + "/sub/partial", Pattern(9000, 2));
  WriteFile(src + "/sub/inner/deep", Pattern(100, 3));
  WriteFile(src + "/sub/missing", Pattern(10, 4));
  WriteFile(src + "/both/x", Pattern(10, 5));
  const std::string left = dst + "/.usync-dir-sub.tmp";
  WriteFile(left + "/done", Pattern(3000, 1));
  WriteFile(left + "/partial", Pattern(4096, 2));
  WriteFile(left + "/inner/deep", Pattern(100, 3));
  for (const char* name : {"/done", "/inner/deep"}) {  // complete: the source's times too
    struct stat st {};
    ASSERT_EQ(stat((src + "/sub" + name).c_str(), &st), 0);
    const timespec ts[2] = {st.st_atim, st.st_mtim};
    ASSERT_EQ(utimensat(AT_FDCWD, (left + name).c_str(), ts, 0), 0);
  }
  WriteFile(left + "/stray", "its source was removed before the re-run");
  WriteFile(left + "/inner/stray", "also");
  WriteFile(dst + "/.usync-dir-gone.tmp/y", "no source");
  WriteFile(dst + "/.usync-dir-both.tmp/x", "stale");
  ASSERT_EQ(mkdir((dst + "/both").c_str(), 0755), 0);
  ASSERT_EQ(chmod((src + "/sub").c_str(), 0555), 0);  // the leftover was made 0755: set as for a new one
  struct stat before {};
  ASSERT_EQ(stat((left + "/done").c_str(), &before), 0);

  const usync_stats stats = CopyTree(src, dst);
  EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
  EXPECT_EQ(Snapshot(src), Snapshot(dst));  // also: no .usync- entry is left
  struct stat after {};
  ASSERT_EQ(stat((dst + "/sub/done").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "a complete file was copied again";
  EXPECT_EQ(stats.files_skipped, 2u);
}

// A new destination root is built beside it under its temporary name too,
// and its own files (top-level) are made in place; a killed run's is taken
// over.  Also with a trailing slash.
TEST_P(EngineTest, NewRootAppearsOnlyWholeAndIsTakenOver) {
  TempDir t;
  const std::string src = t / "src";
  for (int i = 0; i < 50; ++i) WriteFile(src + "/f" + std::to_string(i), Pattern(static_cast<size_t>(i) * 13, i));
  WriteFile(src + "/sub/g", Pattern(10, 1));
  const int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(in, 0);
  ASSERT_GE(inotify_add_watch(in, t.path().c_str(), IN_CREATE | IN_MOVED_TO), 0);
  CopyTree(src, t / "new/");
  std::vector<std::pair<std::string, uint32_t>> seen;
  alignas(inotify_event) char buf[4096];
  for (ssize_t n; (n = read(in, buf, sizeof buf)) > 0;)
    for (char* p = buf; p < buf + n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(p);
      if (ev->len > 0) seen.emplace_back(ev->name, ev->mask & (IN_CREATE | IN_MOVED_TO));
      p += sizeof(inotify_event) + ev->len;
    }
  close(in);
  const std::vector<std::pair<std::string, uint32_t>> want = {{".usync-dir-new.tmp", IN_CREATE},
                                                              {"new", IN_MOVED_TO}};
  EXPECT_EQ(seen, want);
  EXPECT_EQ(Snapshot(src), Snapshot(t / "new"));

  // What a killed run into a new DST leaves: taken over, complete files kept.
  const std::string left = t / ".usync-dir-again.tmp";
  WriteFile(left + "/f7", Pattern(7 * 13, 7));
  WriteFile(left + "/f9", Pattern(50, 9));  // partial
  struct stat st {};
  ASSERT_EQ(stat((src + "/f7").c_str(), &st), 0);
  const timespec ts[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, (left + "/f7").c_str(), ts, 0), 0);
  ASSERT_EQ(stat((left + "/f7").c_str(), &st), 0);
  const usync_stats stats = CopyTree(src, t / "again");
  EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
  EXPECT_EQ(Snapshot(src), Snapshot(t / "again"));
  EXPECT_EQ(stats.files_skipped, 1u);
  struct stat after {};
  ASSERT_EQ(stat((t / "again/f7").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, st.st_ino) << "a complete file was copied again";
  for (const auto& entry : std::filesystem::directory_iterator(t.path()))
    EXPECT_NE(entry.path().filename().string().rfind(".usync-", 0), 0u) << entry.path();
}

// Something else under a new root's temporary name (a symlink, a file: not
// a killed run's directory) is neither followed nor taken over: a symlink
// there must not send the copy outside DST (or into SRC, past the overlap
// check) nor become DST.  The root is then made under its own name.
TEST_P(EngineTest, NewRootTemporaryThatIsNoDirectoryIsNotTakenOver) {
  TempDir t;
  const std::string src = t / "src";
  WriteFile(src + "/a/f", Pattern(100, 1));
  WriteFile(t / "victim/keep", "not the copy's");
  ASSERT_EQ(symlink("victim", (t / ".usync-dir-dst.tmp").c_str()), 0);
  ASSERT_EQ(symlink("src", (t / ".usync-dir-in.tmp").c_str()), 0);
  WriteFile(t / ".usync-dir-file.tmp", "a file");
  for (const char* name : {"dst", "in", "file"}) {
    CopyTree(src, t / name);
    EXPECT_TRUE(got_.errors.empty()) << name << ": " << got_.errors.front();
    struct stat st {};
    ASSERT_EQ(lstat((t / name).c_str(), &st), 0) << name;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << name << " is not a directory of its own";
    EXPECT_EQ(Snapshot(src), Snapshot(t / name)) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(t / "victim/a")) << "the copy went through the symlink";
  EXPECT_FALSE(std::filesystem::exists(src + "/a/a")) << "the copy went into its source";
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / ".usync-dir-file.tmp"), "a file");
}

// The cleaner removes only what is ours: names of the two forms temporaries
// are made with (.usync-<16 hex digits>-<n>.tmp, .usync-dir-<name>.tmp),
// never an entry the source has under that very name (it is a copy); an
// exclude pattern as common as '.*' does not keep a leftover.  A source
// whose listing has such names is copied as any other and a re-run leaves
// it alone.  A new directory whose temporary name the source also has is
// made under its own name.
TEST_P(EngineTest, OnlyOurTemporariesAreRemoved) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/a", "a");
  WriteFile(src + "/.usync-0123456789abcdef-9.tmp", "a source file named like a temporary");
  WriteFile(src + "/.usync-dir-q.tmp/f", "a source directory named like one");
  WriteFile(src + "/photos/img", "the photo");
  WriteFile(src + "/.usync-dir-photos.tmp/other", "not the photo");
  WriteFile(src + "/sub/.usync-dir-new.tmp/g", "g");
  WriteFile(src + "/sub/new/h", "h");
  for (const bool rerun : {false, true}) {
    const usync_stats st = CopyTree(src, dst);
    EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
    EXPECT_EQ(Snapshot(src), Snapshot(dst)) << (rerun ? "re-run" : "first run");
    EXPECT_EQ(st.temps_removed, 0u);
    if (rerun) {
      EXPECT_EQ(st.files_skipped, 7u) << "a re-run copied again";
    }
  }
  // Not ours: another form, or excluded.  Ours: removed.
  WriteFile(dst + "/.usync-foo.tmp", "precious");
  WriteFile(dst + "/.usync-report-final.tmp", "p2");
  WriteFile(dst + "/.usync-0123456789abcdef-x.tmp", "p3");
  WriteFile(dst + "/.usync-fedcba9876543210-3.tmp", "left by a killed run");
  WriteFile(dst + "/sub/.usync-dir-gone.tmp/y", "left by a killed run");
  WriteFile(dst + "/.usync-00000000000000aa-1.tmp", "left by a killed run too");
  usync_engine* e = Make(0, {".usync-00*", "*.tmp"});
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_stats st{};
  EXPECT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(st.temps_removed, 3u);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/.usync-foo.tmp"), "precious");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/.usync-report-final.tmp"), "p2");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/.usync-0123456789abcdef-x.tmp"), "p3");
  EXPECT_FALSE(std::filesystem::exists(dst + "/.usync-00000000000000aa-1.tmp")) << "an exclude kept a leftover";
  EXPECT_FALSE(std::filesystem::exists(dst + "/.usync-fedcba9876543210-3.tmp"));
  EXPECT_FALSE(std::filesystem::exists(dst + "/sub/.usync-dir-gone.tmp"));
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/photos/img"), "the photo");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/.usync-dir-q.tmp/f"), "a source directory named like one");
}

// A destination whose times are coarser than a nanosecond stores the
// source's mtime cut to its granularity (exFAT 10 ms, NTFS and SMB 100 ns,
// as its filesystem type says; some FUSE and network filesystems keep the
// seconds only): a re-run finds those files complete instead of copying
// them again on every run.  On a destination with nanosecond times a cut
// time is a change (X.120000000 is not X.123456789: the file was written
// in between), and so is a later or an unrelated one everywhere.
TEST_P(EngineTest, TimesCutToTheDestinationsGranularityAreUpToDate) {
  const timespec mtime{1700000001, 123456789};
  for (const long granularity : {10'000'000L, 0L}) {  // an exFAT destination; this machine's own
    test_seams.dst_time_granularity = granularity;
    TempDir t;
    const std::string src = t / "src", dst = t / "dst";
    for (const char* name : {"/cut10ms", "/cut1s", "/cut100ns", "/later", "/other"}) {
      WriteFile(src + name, Pattern(5000, 3));
      const timespec ts[2] = {mtime, mtime};
      ASSERT_EQ(utimensat(AT_FDCWD, (src + name).c_str(), ts, 0), 0);
    }
    CopyTree(src, dst);
    ASSERT_TRUE(got_.errors.empty()) << got_.errors.front();
    const std::pair<const char*, long> stored[] = {
        {"/cut10ms", 120000000}, {"/cut1s", 0}, {"/cut100ns", 123456700}, {"/later", 123456800}, {"/other", 120000001}};
    for (const auto& [name, nsec] : stored) {
      const timespec ts[2] = {{mtime.tv_sec, nsec}, {mtime.tv_sec, nsec}};
      ASSERT_EQ(utimensat(AT_FDCWD, (dst + name).c_str(), ts, 0), 0);
    }
    const usync_stats st = CopyTree(src, dst);
    EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
    // 10 ms: its own cut and the seconds; nanoseconds: the seconds only.
    EXPECT_EQ(st.files_skipped, granularity != 0 ? 2u : 1u) << "granularity " << granularity;
    EXPECT_EQ(st.files_done, granularity != 0 ? 3u : 4u) << "granularity " << granularity;
  }
  test_seams.dst_time_granularity = 0;
}

// The same for the times of directories (-p) and symlinks (every mode): a
// re-run leaves the coarser time the destination stored as it is, instead
// of setting it again (a ctime change per entry on every run).
TEST_P(EngineTest, CoarserTimesOfDirectoriesAndSymlinksAreNotSetAgain) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/sub/f", "f");
  ASSERT_EQ(symlink("f", (src + "/sub/l").c_str()), 0);
  const timespec mtime{1700000001, 123456789};
  const timespec ts[2] = {mtime, mtime};
  ASSERT_EQ(utimensat(AT_FDCWD, (src + "/sub/l").c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
  ASSERT_EQ(utimensat(AT_FDCWD, (src + "/sub").c_str(), ts, 0), 0);
  usync_engine* e = Make(USYNC_PRESERVE);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  const timespec cut{mtime.tv_sec, 120000000};  // exFAT's 10 ms
  test_seams.dst_time_granularity = 10'000'000;  // an exFAT destination
  const timespec cuts[2] = {cut, cut};
  struct stat before[2] {};
  int i = 0;
  for (const char* p : {"/sub/l", "/sub"}) {
    ASSERT_EQ(utimensat(AT_FDCWD, (dst + p).c_str(), cuts, AT_SYMLINK_NOFOLLOW), 0);
    ASSERT_EQ(lstat((dst + p).c_str(), &before[i++]), 0);
  }
  const timespec pause{0, 20'000'000};  // a ctime set now would differ
  nanosleep(&pause, nullptr);
  e = Make(USYNC_PRESERVE);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
  i = 0;
  for (const char* p : {"/sub/l", "/sub"}) {
    struct stat now {};
    ASSERT_EQ(lstat((dst + p).c_str(), &now), 0);
    EXPECT_EQ(now.st_ctim.tv_sec, before[i].st_ctim.tv_sec) << p << " was written";
    EXPECT_EQ(now.st_ctim.tv_nsec, before[i].st_ctim.tv_nsec) << p << " was written";
    EXPECT_EQ(now.st_ino, before[i].st_ino) << p << " was made again";
    ++i;
  }
}

// A symlink copied onto the file it points to is refused as the same file
// (cp -P does so): replacing the file by the link would leave a link to
// itself and lose the file.  Onto another link to the file, it is copied.
TEST_P(EngineTest, SymlinkOntoItsOwnTargetIsRefused) {
  TempDir t;
  WriteFile(t / "f", "the data");
  ASSERT_EQ(symlink("f", (t / "l").c_str()), 0);
  ASSERT_EQ(symlink("f", (t / "m").c_str()), 0);
  usync_engine* e = Make(0);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(usync_copy_tree(e, (t / "l").c_str(), (t / "f").c_str()), -ELOOP);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "f"), "the data");
  struct stat st {};
  ASSERT_EQ(lstat((t / "f").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(usync_copy_tree(e, (t / "l").c_str(), (t / "m").c_str()), 0);
  usync_engine_destroy(e);
  char target[16] = {};
  EXPECT_EQ(readlink((t / "m").c_str(), target, sizeof target - 1), 1);
  EXPECT_STREQ(target, "f");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "f"), "the data");
}

// A symlink or FIFO that cannot take its name (a directory is in the way,
// without --delete) is reported and removed: not counted as made.
TEST_P(EngineTest, SpecialEntryThatFailsIsNotCountedAsMade) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/f", "f");
  ASSERT_EQ(symlink("f", (src + "/l").c_str()), 0);
  ASSERT_EQ(mkfifo((src + "/p").c_str(), 0644), 0);
  WriteFile(dst + "/l/x", "in the way");
  WriteFile(dst + "/p/x", "in the way");
  usync_engine* e = Make();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), -EIO);
  usync_stats st{};
  EXPECT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(got_.errors.size(), 2u);
  EXPECT_EQ(st.files_failed, 2u);
  EXPECT_EQ(st.symlinks_created, 0u);
  EXPECT_EQ(st.specials_created, 0u);
}

// --update keeps a destination file newer than its source; not in a
// directory a killed run was building: a partial file there is newer too.
TEST_P(EngineTest, TakenOverDirectoryIgnoresUpdatesNewerRule) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/sub/f", Pattern(10000, 1));
  const timespec old_times[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (src + "/sub/f").c_str(), old_times, 0), 0);
  ASSERT_EQ(mkdir(dst.c_str(), 0755), 0);
  WriteFile(dst + "/.usync-dir-sub.tmp/f", Pattern(4096, 1));  // partial, mtime now
  usync_engine* e = Make(USYNC_UPDATE);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
}

// A run into a destination nested in this one builds its new root in a
// directory of this one, under a temporary name, and holds a lock on it:
// this run's cleaner leaves that alone, and removes it once it is a
// leftover (no run holds it).
TEST_P(EngineTest, AnotherRunsNewRootIsLeftAlone) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/f", "x");
  const std::string other = dst + "/.usync-dir-nested.tmp";
  WriteFile(other + "/being-written", "y");
  const int held = open(other.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(flock(held, LOCK_SH), 0);
  CopyTree(src, dst);
  EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, other + "/being-written"), "y");
  close(held);
  CopyTree(src, dst);
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
}

// A directory whose temporary name would be longer than NAME_MAX is made
// under its own name (its files then arrive as anonymous files, as in any
// directory that is not hidden).
TEST_P(EngineTest, DirectoryWithTheLongestNameIsCopied) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const std::string name(NAME_MAX, 'd');
  WriteFile(src + "/" + name + "/f", Pattern(100, 1));
  WriteFile(src + "/" + name + "/sub/g", Pattern(100, 2));
  CopyTree(src, dst);
  EXPECT_TRUE(got_.errors.empty()) << got_.errors.front();
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
}

INSTANTIATE_TEST_SUITE_P(Engines, EngineTest, ::testing::Values(Way::kRing, Way::kRingCreates, Way::kSync),
                         [](const auto& info) {
                           return info.param == Way::kSync   ? "Sync"
                                  : info.param == Way::kRing ? "IoUring"
                                                             : "IoUringRingCreates";
                         });

extern "C" void CollectDonePath(void* u, const usync_file_done* d) {
  static_cast<std::vector<std::string>*>(u)->push_back(d->src_path);
}

// Copies the tree src to dst (workers 0: the default) and returns the
// source paths of its files in the order they were done.
std::vector<std::string> CopyInDoneOrder(const std::string& src, const std::string& dst, uint32_t flags,
                                         uint32_t workers) {
  std::vector<std::string> done;
  usync_options o;
  usync_options_init(&o);
  o.flags = flags;
  o.workers = workers;
  o.file_done_cb = CollectDonePath;
  o.cb_user = &done;
  usync_engine* e = nullptr;
  EXPECT_EQ(usync_engine_create(&o, &e), 0);
  if (e == nullptr) return done;
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), 0);
  usync_engine_destroy(e);
  return done;
}

// The walker hands a directory's files out in inode order, not in the order
// the directory lists them (a disk filesystem's hash order): there the
// opens and reads reach the device sorted, and neighbouring reads merge.
// One worker copies them in the order queued.
TEST(Walker, FilesAreQueuedInInodeOrder) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  std::vector<int> order(3000);
  for (int i = 0; i < 3000; ++i) order[static_cast<size_t>(i)] = (i * 1237) % 3000;  // names made out of order
  for (int i : order) WriteFile(src + "/f" + std::to_string(i), "x");
  std::vector<uint64_t> listed;
  DIR* dir = opendir(src.c_str());
  ASSERT_NE(dir, nullptr);
  while (const dirent* e = readdir(dir))
    if (e->d_name[0] != '.') listed.push_back(e->d_ino);
  closedir(dir);
  if (std::is_sorted(listed.begin(), listed.end()))
    GTEST_SKIP() << t.path() << " lists a directory in inode order already: the test could not tell";
  const std::vector<std::string> done = CopyInDoneOrder(src, dst, USYNC_FORCE_SYNC, 1);
  ASSERT_EQ(done.size(), 3000u);
  std::vector<uint64_t> inos;
  for (const std::string& p : done) {
    struct stat st {};
    ASSERT_EQ(stat(p.c_str(), &st), 0) << p;
    inos.push_back(st.st_ino);
  }
  EXPECT_TRUE(std::is_sorted(inos.begin(), inos.end())) << "files were not copied in inode order";
}

// A listing longer than the walker's sort window (4 MiB of records: here
// 16,000 names of 255 bytes, 4.5 MB) is read and sorted a window at a time:
// every file is copied once.
TEST(Walker, ADirectoryLongerThanOneSortWindowIsCopiedWhole) {
  TempDir t;
  // In a tmpfs where one may be mounted: 16,000 long names cost a disk
  // filesystem seconds.
  std::string root = t.path();
  if (geteuid() == 0 && mkdir((t / "mem").c_str(), 0755) == 0 &&
      mount("none", (t / "mem").c_str(), "tmpfs", 0, "size=64m") == 0)
    root = t / "mem";
  struct Unmount {
    std::string at;
    ~Unmount() {
      if (!at.empty()) umount2(at.c_str(), MNT_DETACH);
    }
  } unmount{root == t.path() ? "" : root};
  const std::string src = root + "/src", dst = root + "/dst";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  for (int i = 0; i < 16000; ++i) {
    std::string name = std::to_string(i);
    name.resize(NAME_MAX, 'n');
    const int fd = open((src + "/" + name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
  }
  const std::vector<std::string> done = CopyInDoneOrder(src, dst, 0, 0);
  EXPECT_EQ(done.size(), 16000u);
  EXPECT_EQ(std::set<std::string>(done.begin(), done.end()).size(), 16000u) << "a file was copied twice";
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
}

TEST(Api, VersionAndNullSafety) {
  EXPECT_EQ(usync_version_number(), static_cast<unsigned>(USYNC_VERSION_NUMBER));
  EXPECT_STREQ(usync_version_string(), USYNC_PROJECT_VERSION);
  usync_engine_destroy(nullptr);
  usync_engine_cancel(nullptr);
  EXPECT_EQ(usync_copy_tree(nullptr, "a", "b"), -EINVAL);
  EXPECT_EQ(usync_engine_create(nullptr, nullptr), -EINVAL);
  EXPECT_STREQ(usync_step_name(USYNC_STEP_READ), "read");
}

TEST(Api, RejectsBadOptions) {
  usync_options o;
  usync_options_init(&o);
  usync_engine* e = nullptr;
  const char* bad[] = {"[unterminated"};
  o.excludes = bad;
  o.exclude_count = 1;
  EXPECT_EQ(usync_engine_create(&o, &e), -EINVAL);
  EXPECT_EQ(e, nullptr);
  usync_options_init(&o);
  o.chunk_size = 100;
  EXPECT_EQ(usync_engine_create(&o, &e), -EINVAL);
}

}  // namespace
}  // namespace usync

namespace usync {
namespace {

// Sources on tmpfs go to the synchronous engine unless io_uring is forced.
TEST(EngineChoice, TmpfsSourceUsesSyncUnlessForced) {
  struct statfs sf {};
  if (statfs("/dev/shm", &sf) != 0 || sf.f_type != TMPFS_MAGIC) GTEST_SKIP() << "/dev/shm is not a tmpfs here";
  char tmpl[] = "/dev/shm/usync-choice-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  testing::WriteFile(root + "/src/a", "a");
  for (const bool force : {false, true}) {
    usync_options o;
    usync_options_init(&o);
    o.flags = force ? USYNC_FORCE_URING : 0;
    usync_engine* e = nullptr;
    ASSERT_EQ(usync_engine_create(&o, &e), 0);
    ASSERT_EQ(usync_engine_kind(e), USYNC_ENGINE_URING) << "io_uring must work on this machine";
    const std::string dst = root + (force ? "/forced" : "/auto");
    EXPECT_EQ(usync_copy_tree(e, (root + "/src").c_str(), dst.c_str()), 0);
    usync_stats st{};
    usync_engine_stats(e, &st, sizeof st);
    usync_engine_destroy(e);
    EXPECT_EQ(st.engine, force ? USYNC_ENGINE_URING : USYNC_ENGINE_SYNC);
    EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst + "/a"), "a");
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace usync

#include "engine.h"
#include "job.h"

namespace usync {
namespace {

// The rings run the destination's creates and writes on their own threads
// only where nothing waits for a server: into the test's directory (a disk
// or a tmpfs) and a tmpfs, not into /proc (the stand-in for a filesystem not
// known to be local), nor a filesystem mounted -o sync, and never by a path
// it cannot ask.
TEST(LocalWrites, KnownLocalFilesystemsOnly) {
  testing::TempDir t;
  struct statfs sf {};
  ASSERT_EQ(statfs(t.path().c_str(), &sf), 0);
  const bool known = sf.f_type == EXT4_SUPER_MAGIC || sf.f_type == TMPFS_MAGIC || sf.f_type == XFS_SUPER_MAGIC ||
                     sf.f_type == BTRFS_SUPER_MAGIC;
  if (!known) GTEST_SKIP() << t.path() << " is on filesystem type " << std::hex << sf.f_type << ", not one of the four asked";
  EXPECT_TRUE(local_writes(-1, t / "file"));
  const int fd = open(t.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(local_writes(fd, {}));
  close(fd);
  EXPECT_FALSE(local_writes(-1, "/proc/self/x"));
  EXPECT_FALSE(local_writes(-1, t / "missing/file"));
  if (geteuid() != 0) GTEST_SKIP() << "the tmpfs cases mount one (needs root)";
  const std::string mem = t / "mem", synced = t / "synced";
  ASSERT_EQ(mkdir(mem.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(synced.c_str(), 0755), 0);
  ASSERT_EQ(mount("none", mem.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  ASSERT_EQ(mount("none", synced.c_str(), "tmpfs", MS_SYNCHRONOUS, "size=1m"), 0) << std::strerror(errno);
  EXPECT_TRUE(local_writes(-1, mem + "/f"));
  EXPECT_FALSE(local_writes(-1, synced + "/f")) << "mounted -o sync: every write waits for the device";
  EXPECT_EQ(umount(mem.c_str()), 0);
  EXPECT_EQ(umount(synced.c_str()), 0);
}

// -p must never chmod through a symlink swapped in for the file it wrote.
TEST(Metadata, ChmodNeverFollowsASymlink) {
  testing::TempDir t;
  testing::WriteFile(t / "target", "t", 0644);
  ASSERT_EQ(symlink("target", (t / "link").c_str()), 0);
  testing::WriteFile(t / "plain", "p", 0644);
  const int dfd = open(t.path().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  EXPECT_NE(chmod_nofollow(dfd, "link", 0600), 0);
  EXPECT_EQ(chmod_nofollow(dfd, "plain", 0600), 0);
  close(dfd);
  struct stat st {};
  ASSERT_EQ(stat((t / "target").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  ASSERT_EQ(stat((t / "plain").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

}  // namespace
}  // namespace usync
