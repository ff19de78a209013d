// USYNC_VERIFY and USYNC_FSYNC through the C ABI, on both engines: good
// copies are verified and counted; a file whose bytes change between the
// write and the read-back (a test seam plays the faulty device) fails and is
// never published; fsyncs reach every file and directory.
#include "durable.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "test_tree.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

using testing::Pattern;
using testing::ReadFile;
using testing::Snapshot;
using testing::TempDir;
using testing::WriteFile;

constexpr char kMarker[] = "CORRUPT";  // files starting with it are damaged before the read-back

std::atomic<int> g_verifies{0}, g_corrupted{0}, g_file_syncs{0}, g_dir_syncs{0};

// Flips the first byte of a marked file on the device side of the engine:
// through a descriptor of its own, as another writer (or bad hardware) would.
void CorruptMarked(int fd) {
  g_verifies++;
  char head[sizeof kMarker - 1] = {};
  if (pread(fd, head, sizeof head, 0) != static_cast<ssize_t>(sizeof head)) return;
  if (std::memcmp(head, kMarker, sizeof head) != 0) return;
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  const int w = open(proc.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(w, 0) << std::strerror(errno);
  ASSERT_EQ(pwrite(w, "c", 1, 0), 1);
  close(w);
  g_corrupted++;
}

void CountFsync(bool is_dir) { (is_dir ? g_dir_syncs : g_file_syncs)++; }

struct Errors {
  std::mutex mu;
  std::vector<std::string> list;  // "step:errno:dst"
};
extern "C" void Collect(void* u, const usync_file_error* e) {
  auto* c = static_cast<Errors*>(u);
  std::lock_guard lk(c->mu);
  c->list.push_back(std::string(usync_step_name(e->step)) + ":" + std::to_string(e->error) + ":" + e->dst_path);
}

class Durable : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    g_verifies = g_corrupted = g_file_syncs = g_dir_syncs = 0;
    test_seams.before_verify = CorruptMarked;
    test_seams.on_fsync = CountFsync;
  }
  void TearDown() override { test_seams = TestSeams{}; }

  usync_engine* Make(uint32_t flags) {
    usync_options o;
    usync_options_init(&o);
    o.flags = flags | (GetParam() ? USYNC_FORCE_URING : USYNC_FORCE_SYNC);
    o.chunk_size = 64 * 1024;
    o.queue_depth = 8;
    o.error_cb = Collect;
    o.cb_user = &errors_;
    usync_engine* e = nullptr;
    EXPECT_EQ(usync_engine_create(&o, &e), 0);
    if (e != nullptr && GetParam()) {
      EXPECT_EQ(usync_engine_kind(e), USYNC_ENGINE_URING);
    }
    return e;
  }

  usync_stats Copy(uint32_t flags, const std::string& src, const std::string& dst, int want) {
    usync_engine* e = Make(flags);
    usync_stats st{};
    if (e == nullptr) return st;
    EXPECT_EQ(usync_copy_tree(e, src.c_str(), dst.c_str()), want);
    EXPECT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
    usync_engine_destroy(e);
    return st;
  }

  Errors errors_;
};

// Names under root that a run left behind (temporaries).
std::vector<std::string> Leftovers(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.path().filename().string().rfind(".usync-", 0) == 0) out.push_back(e.path());
  return out;
}

TEST_P(Durable, VerifyChecksAndCountsEveryFile) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  uint64_t bytes = 0;
  auto add = [&](const std::string& rel, size_t n, unsigned seed) {
    WriteFile(src + "/" + rel, Pattern(n, seed));
    bytes += n;
  };
  add("empty", 0, 1);
  add("a/chunk-1", 64 * 1024 - 1, 2);
  add("a/chunk", 64 * 1024, 3);
  add("a/b/chunk+1", 64 * 1024 + 1, 4);
  add("big", (3 << 20) + 5, 5);  // the bulk path: read/write instead of copy_file_range
  for (int i = 0; i < 40; ++i) add("many/f" + std::to_string(i), static_cast<size_t>(i) * 101, 10 + i);
  const usync_stats st = Copy(USYNC_VERIFY, src, dst, 0);
  EXPECT_TRUE(errors_.list.empty()) << errors_.list.front();
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
  EXPECT_EQ(st.files_verified, 45u);
  EXPECT_EQ(st.bytes_verified, bytes);
  EXPECT_EQ(st.files_done, 45u);
  EXPECT_EQ(g_verifies.load(), 45);
  EXPECT_EQ(g_corrupted.load(), 0);
}

TEST_P(Durable, VerifyMismatchFailsAndIsNeverPublished) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/good", Pattern(5000, 1));
  WriteFile(src + "/sub/bad", std::string(kMarker) + Pattern(3000, 2));
  WriteFile(src + "/bigbad", std::string(kMarker) + Pattern(2 << 20, 3));  // bulk path
  WriteFile(src + "/replaced", std::string(kMarker) + "new");
  WriteFile(dst + "/replaced", "old copy");  // must survive a failed replacement
  const usync_stats st = Copy(USYNC_VERIFY, src, dst, -EIO);
  EXPECT_EQ(g_corrupted.load(), 3);
  EXPECT_EQ(st.files_failed, 3u);
  EXPECT_EQ(st.files_verified, 1u);
  EXPECT_EQ(st.bytes_verified, 5000u);
  ASSERT_EQ(errors_.list.size(), 3u);
  for (const std::string& e : errors_.list) EXPECT_EQ(e.rfind("verify:" + std::to_string(EBADMSG) + ":", 0), 0u) << e;
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/good"), Pattern(5000, 1));
  EXPECT_FALSE(std::filesystem::exists(dst + "/sub/bad"));
  EXPECT_FALSE(std::filesystem::exists(dst + "/bigbad"));
  EXPECT_EQ(ReadFile(AT_FDCWD, dst + "/replaced"), "old copy");
  EXPECT_TRUE(Leftovers(dst).empty()) << Leftovers(dst).front();
}

TEST_P(Durable, NoReadBackWithoutVerify) {
  TempDir t;
  WriteFile(t / "src/f", std::string(kMarker) + "x");
  const usync_stats st = Copy(0, t / "src", t / "dst", 0);
  EXPECT_EQ(g_verifies.load(), 0);
  EXPECT_EQ(st.files_verified, 0u);
}

TEST_P(Durable, FsyncReachesEveryFileAndDirectory) {
  TempDir t;
  const std::string src = t / "src", dst = t / "out/dst";
  WriteFile(src + "/a", "a");
  WriteFile(src + "/empty", "");
  WriteFile(src + "/d/b", Pattern(100000, 1));  // more than one chunk
  WriteFile(src + "/d/e/c", "c");
  WriteFile(src + "/big", Pattern(2 << 20, 2));  // bulk path
  std::filesystem::create_directories(src + "/d/emptydir");
  std::filesystem::create_directories(t / "out");
  const usync_stats st = Copy(USYNC_FSYNC, src, dst, 0);
  EXPECT_TRUE(errors_.list.empty()) << errors_.list.front();
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
  EXPECT_EQ(st.files_done, 5u);
  EXPECT_EQ(g_file_syncs.load(), 5);
  // dst, d, d/e, d/emptydir, and out (dst's parent: dst was created).
  EXPECT_EQ(g_dir_syncs.load(), 5);
  // A second run into the existing tree creates no root: its parent is left alone.
  WriteFile(src + "/a", "changed");
  g_file_syncs = g_dir_syncs = 0;
  Copy(USYNC_FSYNC | USYNC_IGNORE_TIMES, src, dst, 0);
  EXPECT_EQ(g_file_syncs.load(), 5);
  EXPECT_EQ(g_dir_syncs.load(), 4);
}

TEST_P(Durable, NoFsyncUnlessAsked) {
  TempDir t;
  WriteFile(t / "src/f", "x");
  Copy(0, t / "src", t / "dst", 0);
  EXPECT_EQ(g_file_syncs.load() + g_dir_syncs.load(), 0);
}

TEST_P(Durable, PairCopiesSyncTheirDirectory) {
  TempDir t;
  WriteFile(t / "a", Pattern(70000, 1));
  WriteFile(t / "b", "b");
  const std::string a = t / "a", b = t / "b", d1 = t / "out/a", d2 = t / "out/b";
  usync_pair pairs[] = {{a.c_str(), d1.c_str(), 0}, {b.c_str(), d2.c_str(), 0}};
  usync_result res[2];
  usync_engine* e = Make(USYNC_FSYNC);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(usync_copy_files(e, pairs, 2, res), 0);
  usync_engine_destroy(e);
  EXPECT_EQ(ReadFile(AT_FDCWD, d1), Pattern(70000, 1));
  EXPECT_EQ(ReadFile(AT_FDCWD, d2), "b");
  EXPECT_EQ(g_file_syncs.load(), 2);
  EXPECT_EQ(g_dir_syncs.load(), 2);  // out/, after each new name
}

TEST_P(Durable, PairCopiesVerifyAndSync) {
  TempDir t;
  WriteFile(t / "good", Pattern(70000, 1));
  WriteFile(t / "bad", std::string(kMarker) + "pair");
  const std::string g = t / "good", b = t / "bad", d1 = t / "out/good", d2 = t / "out/bad";
  usync_pair pairs[] = {{g.c_str(), d1.c_str(), 0}, {b.c_str(), d2.c_str(), 0}};
  usync_result res[2];
  usync_engine* e = Make(USYNC_VERIFY | USYNC_FSYNC);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(usync_copy_files(e, pairs, 2, res), -EIO);
  usync_stats st{};
  usync_engine_stats(e, &st, sizeof st);
  usync_engine_destroy(e);
  EXPECT_EQ(res[0].error, 0);
  EXPECT_EQ(res[1].error, EBADMSG);
  EXPECT_EQ(res[1].step, USYNC_STEP_VERIFY);
  EXPECT_EQ(ReadFile(AT_FDCWD, d1), Pattern(70000, 1));
  EXPECT_FALSE(std::filesystem::exists(d2));
  EXPECT_TRUE(Leftovers(t / "out").empty());
  EXPECT_EQ(st.files_verified, 1u);
  EXPECT_EQ(g_file_syncs.load(), 2);  // both were synced before the read-back
  EXPECT_EQ(g_dir_syncs.load(), 1);   // out/, once its new name is in place
}

INSTANTIATE_TEST_SUITE_P(Engines, Durable, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Uring" : "Sync"; });

}  // namespace
}  // namespace usync
