// Mirror mode (USYNC_DELETE) through the C ABI, on both engines.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "job.h"
#include "mirror.h"
#include "test_tree.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

using testing::Snapshot;
using testing::TempDir;
using testing::WriteFile;
namespace fs = std::filesystem;

struct Seen {
  std::mutex mu;
  std::vector<std::string> deleted;  // dst paths, in callback order
  std::vector<std::string> errors;   // "step:errno:dst"
  void Clear() {
    deleted.clear();
    errors.clear();
  }
};

extern "C" void OnDelete(void* u, const usync_deletion* d) {
  auto* s = static_cast<Seen*>(u);
  std::lock_guard lk(s->mu);
  s->deleted.push_back(d->dst_path);
}
extern "C" void OnError(void* u, const usync_file_error* e) {
  auto* s = static_cast<Seen*>(u);
  std::lock_guard lk(s->mu);
  s->errors.push_back(std::string(usync_step_name(e->step)) + ":" + std::to_string(e->error) + ":" + e->dst_path);
}

class MirrorTest : public ::testing::TestWithParam<bool> {
 protected:
  // Runs one copy; returns its result and fills stats_.
  int Copy(const std::string& src, const std::string& dst, uint32_t flags, std::vector<const char*> excludes = {}) {
    usync_options o;
    usync_options_init(&o);
    o.flags = flags | (GetParam() ? USYNC_FORCE_URING : USYNC_FORCE_SYNC);
    o.excludes = excludes.data();
    o.exclude_count = excludes.size();
    o.delete_cb = OnDelete;
    o.error_cb = OnError;
    o.cb_user = &seen_;
    usync_engine* e = nullptr;
    EXPECT_EQ(usync_engine_create(&o, &e), 0);
    if (e == nullptr) return -1;
    if (GetParam()) {
      EXPECT_EQ(usync_engine_kind(e), USYNC_ENGINE_URING) << "io_uring must work on this machine";
    }
    const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
    usync_engine_stats(e, &stats_, sizeof stats_);
    usync_engine_destroy(e);
    return ret;
  }

  // A source, a complete copy of it, then entries only the copy has.
  void Build(const TempDir& t) {
    src_ = t / "src";
    dst_ = t / "dst";
    WriteFile(src_ + "/a/f", "f");
    WriteFile(src_ + "/a/b/g", "g");
    WriteFile(src_ + "/keep/k", "k");
    WriteFile(src_ + "/was_dir", "now a file");
    fs::create_directories(src_ + "/was_file");
    ASSERT_EQ(Copy(src_, dst_, 0), 0);
    fs::remove_all(dst_ + "/was_dir");
    fs::remove_all(dst_ + "/was_file");
    WriteFile(dst_ + "/was_file", "in the way of a directory");
    WriteFile(dst_ + "/was_dir/x/y", "in the way of a file");
    WriteFile(dst_ + "/extra/deep/er/z", "z");
    WriteFile(dst_ + "/a/old", "old");
    WriteFile(dst_ + "/a/b/notes.tmp", "excluded");
    fs::create_directory_symlink(t / "outside", dst_ + "/a/link");  // never followed
    WriteFile(t / "outside/precious", "p");
    seen_.Clear();
  }

  std::string src_, dst_;
  usync_stats stats_{};
  Seen seen_;
};

TEST_P(MirrorTest, RemovesWhatTheSourceLacksAndNothingElse) {
  TempDir t;
  Build(t);
  ASSERT_EQ(Copy(src_, dst_, USYNC_DELETE), 0) << ::testing::PrintToString(seen_.errors);
  EXPECT_EQ(Snapshot(dst_), Snapshot(src_));
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "outside/precious"), "p") << "a symlink was followed";
  // extra, extra/deep, extra/deep/er, z; was_dir, x, y; was_file; a/old; a/link; a/b/notes.tmp
  EXPECT_EQ(stats_.entries_deleted, 11u);
  EXPECT_EQ(seen_.deleted.size(), 11u);
  // Children are reported (and removed) before their directory.
  auto at = [&](const std::string& rel) {
    for (size_t i = 0; i < seen_.deleted.size(); ++i)
      if (seen_.deleted[i] == dst_ + "/" + rel) return static_cast<long>(i);
    return -1L;
  };
  ASSERT_GE(at("extra/deep/er/z"), 0);
  EXPECT_LT(at("extra/deep/er/z"), at("extra/deep/er"));
  EXPECT_LT(at("extra/deep"), at("extra"));
  EXPECT_LT(at("was_dir/x/y"), at("was_dir"));
  EXPECT_GE(at("a/link"), 0);
}

TEST_P(MirrorTest, ExcludedEntriesAreKeptUnlessDeleteExcluded) {
  TempDir t;
  Build(t);
  ASSERT_EQ(Copy(src_, dst_, USYNC_DELETE, {"*.tmp", "/keep"}), 0);
  EXPECT_TRUE(fs::exists(dst_ + "/a/b/notes.tmp"));
  EXPECT_TRUE(fs::exists(dst_ + "/keep/k")) << "an excluded source directory's copy is protected";
  EXPECT_FALSE(fs::exists(dst_ + "/a/old"));
  seen_.Clear();
  ASSERT_EQ(Copy(src_, dst_, USYNC_DELETE_EXCLUDED, {"*.tmp", "/keep"}), 0);  // implies USYNC_DELETE
  EXPECT_FALSE(fs::exists(dst_ + "/a/b/notes.tmp"));
  EXPECT_FALSE(fs::exists(dst_ + "/keep"));
  EXPECT_EQ(stats_.entries_deleted, 3u);  // notes.tmp, keep/k, keep
}

// As rsync: an excluded entry is protected wherever it is, also inside a
// directory the source lacks (or has as a file): that directory keeps it
// and stays, with nothing reported as failed, and the rest of it goes.  A
// directory pattern protects a directory as deep.
TEST_P(MirrorTest, ExcludedEntriesInsideExtraDirectoriesAreKept) {
  TempDir t;
  Build(t);
  WriteFile(dst_ + "/extra/deep/important.keep", "precious");
  WriteFile(dst_ + "/was_dir/x/kept.keep", "precious too");
  WriteFile(dst_ + "/extra/newcache/cache/q", "a cached q");
  for (const bool dry : {true, false}) {
    seen_.Clear();
    const int ret = Copy(src_, dst_, USYNC_DELETE | (dry ? USYNC_DRY_RUN : 0), {"*.keep", "cache/"});
    EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst_ + "/extra/deep/important.keep"), "precious");
    EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst_ + "/was_dir/x/kept.keep"), "precious too");
    EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst_ + "/extra/newcache/cache/q"), "a cached q");
    if (!dry) {
      EXPECT_FALSE(fs::exists(dst_ + "/extra/deep/er")) << "what is not excluded still goes";
    }
    for (const std::string& d : seen_.deleted) {
      EXPECT_EQ(d.find(".keep"), std::string::npos) << d << " reported as deleted";
      EXPECT_NE(d, dst_ + "/extra") << "a directory that keeps an entry reported as deleted";
      EXPECT_NE(d, dst_ + "/extra/deep");
    }
    // extra/deep/er/z, extra/deep/er (kept: extra, extra/deep, extra/newcache
    // and its cache); was_dir/x/y (was_dir stays: the file cannot take its
    // place, the one error); was_file; a/old; a/link; a/b/notes.tmp
    EXPECT_EQ(stats_.entries_deleted, 7u) << ::testing::PrintToString(seen_.deleted);
    EXPECT_EQ(ret, dry ? 0 : -EIO);
    EXPECT_EQ(seen_.errors.size(), dry ? 0u : 1u) << ::testing::PrintToString(seen_.errors);
  }
}

TEST_P(MirrorTest, DryRunReportsAndRemovesNothing) {
  TempDir t;
  Build(t);
  const auto before = Snapshot(dst_);
  ASSERT_EQ(Copy(src_, dst_, USYNC_DELETE | USYNC_DRY_RUN), 0);
  EXPECT_EQ(Snapshot(dst_), before);
  EXPECT_EQ(stats_.entries_deleted, 11u);
  EXPECT_EQ(seen_.deleted.size(), 11u);
}

TEST_P(MirrorTest, WithoutDeleteExtrasStay) {
  TempDir t;
  Build(t);
  ASSERT_EQ(Copy(src_, dst_, 0), -EIO);  // the directory in the way of a file, and the other way round
  EXPECT_TRUE(fs::exists(dst_ + "/extra/deep/er/z"));
  EXPECT_TRUE(fs::exists(dst_ + "/a/old"));
  EXPECT_EQ(stats_.entries_deleted, 0u);
  EXPECT_TRUE(seen_.deleted.empty());
}

// Deeper than the descriptors kept open while removing: parents are
// reopened through "..".
TEST_P(MirrorTest, RemovesTreesDeeperThanTheDescriptorsItKeeps) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/f", "f");
  fs::create_directories(dst);
  int fd = open(dst.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  constexpr int kDepth = 200;
  for (int i = 0; i < kDepth; ++i) {
    ASSERT_EQ(mkdirat(fd, "d", 0755), 0);
    WriteFile(fd, "side" + std::to_string(i), "s");
    const int next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(fd);
    ASSERT_GE(next, 0);
    fd = next;
  }
  close(fd);
  ASSERT_EQ(Copy(src, dst, USYNC_DELETE), 0) << ::testing::PrintToString(seen_.errors);
  EXPECT_EQ(Snapshot(dst), Snapshot(src));
  EXPECT_EQ(stats_.entries_deleted, 2u * kDepth);
}

// A temporary of a run still writing (it holds its shared lock on the
// destination) is neither cleaned nor mirrored away.
TEST_P(MirrorTest, KeepsTemporariesOfARunInProgress) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/f", "f");
  WriteFile(dst + "/.usync-0123456789abcdef-7.tmp", "being written");
  const int lock = open(dst.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(flock(lock, LOCK_SH), 0);
  EXPECT_EQ(Copy(src, dst, USYNC_DELETE), 0);
  EXPECT_TRUE(fs::exists(dst + "/.usync-0123456789abcdef-7.tmp"));
  close(lock);
}

// A mount inside the destination (here a bind mount of a directory outside
// it) is not emptied: the mirror reports it and leaves it alone.
TEST_P(MirrorTest, NeverEmptiesAnotherMount) {
  if (geteuid() != 0) GTEST_SKIP() << "bind mounts need root";
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/f", "f");
  WriteFile(t / "elsewhere/precious", "p");
  fs::create_directories(dst + "/extra/mnt");
  fs::create_directories(dst + "/sub");
  fs::create_directories(src + "/sub");
  fs::create_directories(t / "elsewhere2");
  WriteFile(t / "elsewhere2/also", "a");
  if (mount((t / "elsewhere").c_str(), (dst + "/extra/mnt").c_str(), nullptr, MS_BIND, nullptr) != 0)
    GTEST_SKIP() << "cannot bind mount here: " << std::strerror(errno);
  // A directory the source also has, but which is another mount: not mirrored.
  const bool second = mount((t / "elsewhere2").c_str(), (dst + "/sub").c_str(), nullptr, MS_BIND, nullptr) == 0;
  const int ret = Copy(src, dst, USYNC_DELETE);
  umount2((dst + "/extra/mnt").c_str(), MNT_DETACH);
  if (second) umount2((dst + "/sub").c_str(), MNT_DETACH);
  EXPECT_EQ(ret, -EIO);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "elsewhere/precious"), "p");
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "elsewhere2/also"), "a");
  bool reported = false;
  for (const std::string& e : seen_.errors) reported |= e.rfind("delete:" + std::to_string(EXDEV) + ":", 0) == 0;
  EXPECT_TRUE(reported) << ::testing::PrintToString(seen_.errors);
}

// delete_extras tells the walker which source names the destination lacks,
// so that their files skip the quick check: a lookup of a missing name takes
// the directory's lock, which every create in it waits for (a re-run of a
// killed copy into one directory of 100K files was slower than a full copy).
// Only a whole listing of the destination may say "absent".
TEST(MirrorNames, MarksWhatTheDestinationLacks) {
  TempDir t;
  WriteFile(t / "src/here", "h");
  WriteFile(t / "src/missing", "m");
  WriteFile(t / "src/sub/x", "x");
  WriteFile(t / "dst/here", "old");
  WriteFile(t / "dst/extra", "e");
  fs::create_directories(t / "dst/sub");
  Config cfg;
  Counters counters;
  std::atomic<bool> cancel{false};
  Job job(cfg, counters, cancel, USYNC_ENGINE_SYNC);
  Dir d;
  d.src.reset(open((t / "src").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  d.dst.reset(open((t / "dst").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(d.src.valid() && d.dst.valid());
  std::vector<SourceName> names{{"here", DT_REG}, {"missing", DT_REG}, {"sub", DT_DIR}};
  delete_extras(job, &d, names, "", 0, false);
  EXPECT_TRUE(names[0].in_dst);
  EXPECT_FALSE(names[1].in_dst);
  EXPECT_TRUE(names[2].in_dst);
  EXPECT_FALSE(fs::exists(t / "dst/extra")) << "what the source lacks is removed";
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "dst/here"), "old") << "delete_extras copies nothing";

  // A destination it cannot list says nothing is absent.
  Dir none;
  none.src.reset(open((t / "src").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::vector<SourceName> more{{"here", DT_REG}, {"missing", DT_REG}};
  delete_extras(job, &none, more, "", 0, false);
  EXPECT_TRUE(more[0].in_dst);
  EXPECT_TRUE(more[1].in_dst);
}

INSTANTIATE_TEST_SUITE_P(Engines, MirrorTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "uring" : "sync"; });

}  // namespace
}  // namespace usync
