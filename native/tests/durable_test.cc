// USYNC_FSYNC through the C ABI, on both engines: fsyncs reach every file
// and directory, and nothing else changes.
#include "durable.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
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

std::atomic<int> g_file_syncs{0}, g_dir_syncs{0};

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
    g_file_syncs = g_dir_syncs = 0;
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

TEST_P(Durable, NoFsyncUnlessAsked) {
  TempDir t;
  WriteFile(t / "src/f", "x");
  Copy(0, t / "src", t / "dst", 0);
  EXPECT_EQ(g_file_syncs.load() + g_dir_syncs.load(), 0);
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

TEST_P(Durable, PairCopiesSyncTheirDirectory) {
  TempDir t;
  WriteFile(t / "a", Pattern(70000, 1));
  WriteFile(t / "b", "b");
  const std::string a = t / "a", b = t / "b", d1 = t / "out/a", d2 = t / "out/b";
  usync_pair pairs[] = {{a.c_str(), d1.c_str()}, {b.c_str(), d2.c_str()}};
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

INSTANTIATE_TEST_SUITE_P(Engines, Durable, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Uring" : "Sync"; });

}  // namespace
}  // namespace usync
