// One engine, many calls: the engine's threads (and the rings they keep)
// live across copy calls, go away after the idle timeout and at destroy,
// and every call is on its own (results, stats, cancellation).  Both engines.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_tree.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

using testing::Pattern;
using testing::ReadFile;
using testing::RingFds;
using testing::Snapshot;
using testing::TempDir;
using testing::WriteFile;

std::string Comm(const std::string& tid) {
  std::ifstream f("/proc/self/task/" + tid + "/comm");
  std::string s;
  std::getline(f, s);
  return s;
}

std::vector<std::string> Tasks() {
  std::vector<std::string> out;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (const dirent* e = readdir(d))
    if (e->d_name[0] != '.') out.emplace_back(e->d_name);
  closedir(d);
  return out;
}

// Whether a thread is one of the kernel's io_uring workers (PF_IO_WORKER in
// the flags, the 9th field of stat).  Their name is no test: a new io-wq
// worker starts with its creator's name ("usync-pool") and takes its own
// ("iou-wrk-*") only once it first runs, late on a loaded machine.
bool IoWorker(const std::string& tid) {
  std::ifstream f("/proc/self/task/" + tid + "/stat");
  std::string line;
  std::getline(f, line);
  const size_t close = line.rfind(')');  // the name may hold spaces and ')'
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 9; ++i)  // state is the 3rd field
    if (!(rest >> field)) return false;
  constexpr unsigned long kPfIoWorker = 0x10;
  return (std::stoul(field) & kPfIoWorker) != 0;
}

// The engine's threads (named by the pool).
std::set<pid_t> PoolThreads() {
  std::set<pid_t> out;
  for (const std::string& t : Tasks())
    if (Comm(t) == "usync-pool" && !IoWorker(t)) out.insert(std::stoi(t));
  return out;
}

// Threads of this process, less the kernel's io-wq workers, which come and
// go on their own.
size_t UserTasks() {
  size_t n = 0;
  for (const std::string& t : Tasks()) n += IoWorker(t) ? 0 : 1;
  return n;
}


// What the kernel shows of a ring: "" when it is clean (SQ and CQ empty, no
// direct descriptor installed), else what is not.
std::string RingDirt(int fd) {
  std::ifstream f("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line, dirt;
  long sq_head = -1, sq_tail = -2, cq_head = -1, cq_tail = -2;
  bool in_files = false;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string key;
    in >> key;
    if (key == "SqHead:") in >> sq_head;
    if (key == "SqTail:") in >> sq_tail;
    if (key == "CqHead:") in >> cq_head;
    if (key == "CqTail:") in >> cq_tail;
    if (key == "UserBufs:") in_files = false;
    if (in_files) dirt += "installed file " + line + "; ";
    if (key == "UserFiles:") in_files = true;
  }
  if (sq_head != sq_tail) dirt += "SQ not empty; ";
  if (cq_head != cq_tail) dirt += "CQ not empty; ";
  return dirt;
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Seen {
  std::mutex mu;
  std::set<pid_t> tids;  // threads that reported a finished file
  std::atomic<int> done{0};
  std::atomic<int> cancel_after{-1};  // cancel the engine after this many files
  usync_engine* engine = nullptr;
  std::string errors;  // "path: step: error; "
};

extern "C" void RecordError(void* u, const usync_file_error* e) {
  auto* s = static_cast<Seen*>(u);
  std::lock_guard lk(s->mu);
  s->errors += std::string(e->src_path) + ": " + usync_step_name(e->step) + ": " + std::strerror(e->error) + "; ";
}

extern "C" void RecordDone(void* u, const usync_file_done*) {
  auto* s = static_cast<Seen*>(u);
  {
    std::lock_guard lk(s->mu);
    s->tids.insert(static_cast<pid_t>(syscall(SYS_gettid)));
  }
  if (++s->done == s->cancel_after.load()) usync_engine_cancel(s->engine);
}

class PersistentEngineTest : public ::testing::TestWithParam<bool> {
 protected:
  bool uring() const { return GetParam(); }

  void SetUp() override {
    // A pool left by another test would blur the thread counts.
    ASSERT_TRUE(WaitFor([] { return PoolThreads().empty(); }, std::chrono::seconds(10)))
        << "engine threads of an earlier test are still alive";
  }

  usync_engine* Make(uint32_t idle_ms = 0, uint32_t flags = 0) {
    usync_options o;
    usync_options_init(&o);
    o.flags = flags | (uring() ? USYNC_FORCE_URING : USYNC_FORCE_SYNC);
    o.queue_depth = 16;
    o.idle_timeout_ms = idle_ms;
    o.file_done_cb = RecordDone;
    o.error_cb = RecordError;
    o.cb_user = &seen_;
    usync_engine* e = nullptr;
    EXPECT_EQ(usync_engine_create(&o, &e), 0);
    if (e != nullptr) made_.insert(e);
    if (e != nullptr && uring()) {
      EXPECT_EQ(usync_engine_kind(e), USYNC_ENGINE_URING) << "io_uring must work here";
    }
    seen_.engine = e;
    return e;
  }

  int CopyOne(usync_engine* e, const std::string& src, const std::string& dst, usync_result* r = nullptr) {
    usync_result local{};
    const usync_pair p{src.c_str(), dst.c_str(), 0};
    return usync_copy_files(e, &p, 1, r != nullptr ? r : &local);
  }

  // Engines a failed assertion left are destroyed here, so that their
  // threads do not outlive the test.
  void TearDown() override {
    for (usync_engine* e : made_) usync_engine_destroy(e);
    if (HasFailure() && !seen_.errors.empty()) std::printf("errors reported: %s\n", seen_.errors.c_str());
  }
  void Destroy(usync_engine* e) {
    made_.erase(e);
    usync_engine_destroy(e);
  }

  Seen seen_;
  std::set<usync_engine*> made_;
};

TEST_P(PersistentEngineTest, CallsReuseTheSameThreads) {
  TempDir t;
  WriteFile(t / "src/one", Pattern(5000, 1));
  for (int i = 0; i < 200; ++i) WriteFile(t / ("tree/d" + std::to_string(i % 7) + "/f" + std::to_string(i)), Pattern(100, i));
  usync_engine* e = Make(60 * 1000);
  ASSERT_NE(e, nullptr);
  std::set<pid_t> pool_at_20;
  size_t tasks_at_20 = 0;
  for (int call = 1; call <= 200; ++call) {
    if (call % 25 == 0) {
      ASSERT_EQ(usync_copy_tree(e, (t / "tree").c_str(), (t / ("out" + std::to_string(call))).c_str()), 0);
    } else {
      ASSERT_EQ(CopyOne(e, t / "src/one", t / "dst/one"), 0) << "call " << call;
    }
    if (call == 20) {
      pool_at_20 = PoolThreads();
      tasks_at_20 = UserTasks();
    }
  }
  const std::set<pid_t> pool = PoolThreads();
  const size_t tasks = UserTasks();
  EXPECT_FALSE(pool.empty()) << "no engine thread outlived its call";
  // The first tree copy (call 25) may need threads the one-file calls did
  // not: the threads alive after call 20 are all still there, and nothing grew
  // after the first tree copy.
  for (pid_t tid : pool_at_20) EXPECT_TRUE(pool.count(tid)) << "engine thread " << tid << " was replaced";
  EXPECT_LE(tasks, tasks_at_20 + (pool.size() - pool_at_20.size()));
  // Every file of every call was copied on one of those threads, or (the
  // synchronous engine's one-file calls) on the calling thread.
  std::set<pid_t> allowed = pool;
  if (!uring()) allowed.insert(static_cast<pid_t>(syscall(SYS_gettid)));
  std::lock_guard lk(seen_.mu);
  EXPECT_LE(seen_.tids.size(), allowed.size());
  size_t gone = 0;
  for (pid_t tid : seen_.tids) gone += allowed.count(tid) == 0 ? 1 : 0;
  EXPECT_EQ(gone, 0u) << "files were copied on threads that are gone";
  if (uring()) {
    const std::vector<int> rings = RingFds();
    EXPECT_FALSE(rings.empty()) << "no ring was kept for the next call";
    for (int fd : rings) EXPECT_EQ(RingDirt(fd), "") << "ring fd " << fd;
  }
  Destroy(e);
  EXPECT_TRUE(PoolThreads().empty());
  if (uring()) {
    EXPECT_TRUE(RingFds().empty()) << "destroy left rings open";
  }
  EXPECT_EQ(ReadFile(AT_FDCWD, t / "dst/one"), Pattern(5000, 1));
}

TEST_P(PersistentEngineTest, RingIsKeptAndCleanBetweenCalls) {
  if (!uring()) GTEST_SKIP() << "the synchronous engine has no ring";
  TempDir t;
  WriteFile(t / "src", Pattern(3000, 2));
  usync_engine* e = Make(60 * 1000);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(CopyOne(e, t / "src", t / "a"), 0);
  const std::vector<int> first = RingFds();
  ASSERT_EQ(first.size(), 1u) << "one file needs one ring, kept after the call";
  EXPECT_EQ(RingDirt(first[0]), "");
  // A call whose file fails does not cost the ring either.
  usync_result r{};
  EXPECT_EQ(CopyOne(e, t / "missing", t / "b", &r), -EIO);
  ASSERT_EQ(CopyOne(e, t / "src", t / "c"), 0);
  EXPECT_EQ(RingFds(), first) << "the next call built a new ring";
  EXPECT_EQ(RingDirt(first[0]), "");
  Destroy(e);
}

TEST_P(PersistentEngineTest, NoMoreThreadsThanTheBatchCanUse) {
  TempDir t;
  WriteFile(t / "small", Pattern(100, 3));
  WriteFile(t / "large", Pattern(3 << 20, 4));  // the bulk path
  usync_engine* e = Make(60 * 1000);
  ASSERT_NE(e, nullptr);
  usync_stats st{};
  // Nothing to copy (the one source is missing): no thread at all.
  EXPECT_EQ(CopyOne(e, t / "missing", t / "out/missing"), -EIO);
  EXPECT_TRUE(PoolThreads().empty()) << "a call with nothing to copy started threads";
  ASSERT_EQ(CopyOne(e, t / "small", t / "out/small"), 0);
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  EXPECT_EQ(st.workers, 1u);
  // One small file needs one worker: a ring thread, or the calling thread
  // itself (the synchronous engine: no thread switch either way).
  EXPECT_EQ(PoolThreads().size(), uring() ? 1u : 0u) << "one small file needs one worker";
  {
    std::lock_guard lk(seen_.mu);
    EXPECT_EQ(seen_.tids.count(static_cast<pid_t>(syscall(SYS_gettid))), uring() ? 0u : 1u)
        << "the synchronous engine copies a batch one worker can copy on the calling thread";
  }

  // 65 small files are two batches of 64: two threads at most.
  std::vector<std::string> names;
  for (int i = 0; i < 65; ++i) names.push_back(t / ("many/out" + std::to_string(i)));
  std::vector<usync_pair> pairs;
  const std::string small = t / "small";
  for (const std::string& n : names) pairs.push_back({small.c_str(), n.c_str(), 0});
  std::vector<usync_result> res(pairs.size());
  ASSERT_EQ(usync_copy_files(e, pairs.data(), pairs.size(), res.data()), 0);
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  EXPECT_EQ(st.workers, 2u);
  EXPECT_LE(PoolThreads().size(), 2u);
  Destroy(e);

  // One large file: one thread (a bulk thread, no ring, with io_uring).
  e = Make(60 * 1000);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(CopyOne(e, t / "large", t / "out/large"), 0);
  EXPECT_EQ(PoolThreads().size(), 1u) << "one large file needs one thread";
  if (uring()) {
    EXPECT_TRUE(RingFds().empty()) << "a ring was made for no small file";
  }
  Destroy(e);
  EXPECT_EQ(ReadFile(AT_FDCWD, t / "out/large"), Pattern(3 << 20, 4));
}

TEST_P(PersistentEngineTest, IdleThreadsExitAndTheNextCallWorks) {
  TempDir t;
  WriteFile(t / "src", Pattern(4096, 5));
  usync_engine* e = Make(50);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(CopyOne(e, t / "src", t / "a"), 0);
  EXPECT_TRUE(WaitFor([] { return PoolThreads().empty(); }, std::chrono::seconds(5)))
      << "threads outlived the idle timeout";
  if (uring()) {
    EXPECT_TRUE(RingFds().empty()) << "an exited thread's ring is still open";
  }
  ASSERT_EQ(CopyOne(e, t / "src", t / "b"), 0);
  EXPECT_EQ(ReadFile(AT_FDCWD, t / "b"), Pattern(4096, 5));
  usync_stats st{};
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  EXPECT_EQ(st.files_done, 1u);
  EXPECT_EQ(st.engine, uring() ? USYNC_ENGINE_URING : USYNC_ENGINE_SYNC);
  Destroy(e);
}

TEST_P(PersistentEngineTest, CancelledCallThenAFullOne) {
  TempDir t;
  const std::string src = t / "src";
  for (int i = 0; i < 2000; ++i) WriteFile(src + "/d" + std::to_string(i % 20) + "/f" + std::to_string(i), Pattern(300, i));
  usync_engine* e = Make(60 * 1000);
  ASSERT_NE(e, nullptr);
  seen_.cancel_after = 10;
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), (t / "first").c_str()), -ECANCELED);
  seen_.cancel_after = -1;
  if (uring()) {
    for (int fd : RingFds()) EXPECT_EQ(RingDirt(fd), "") << "ring fd " << fd << " after a cancelled call";
  }
  const size_t threads = PoolThreads().size();
  EXPECT_GT(threads, 0u);
  EXPECT_EQ(usync_copy_tree(e, src.c_str(), (t / "second").c_str()), 0);
  EXPECT_EQ(Snapshot(src), Snapshot(t / "second"));
  usync_stats st{};
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  EXPECT_EQ(st.files_done, 2000u);
  EXPECT_EQ(st.files_failed, 0u);
  EXPECT_EQ(PoolThreads().size(), threads) << "the second call needed new threads";
  Destroy(e);
}

TEST_P(PersistentEngineTest, EachCallHasItsOwnStats) {
  TempDir t;
  for (int i = 0; i < 10; ++i) WriteFile(t / ("tree/f" + std::to_string(i)), Pattern(1000, i));
  WriteFile(t / "one", Pattern(10, 6));
  usync_engine* e = Make();
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(usync_copy_tree(e, (t / "tree").c_str(), (t / "out").c_str()), 0);
  usync_stats st{};
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  EXPECT_EQ(st.files_done, 10u);
  EXPECT_EQ(st.bytes_done, 10000u);
  const std::string one = t / "one", missing = t / "missing", d1 = t / "p/1", d2 = t / "p/2";
  const usync_pair pairs[] = {{one.c_str(), d1.c_str(), 0}, {missing.c_str(), d2.c_str(), 0}};
  usync_result res[2] = {};
  EXPECT_EQ(usync_copy_files(e, pairs, 2, res), -EIO);
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  EXPECT_EQ(st.files_found, 1u);
  EXPECT_EQ(st.files_done, 1u);
  EXPECT_EQ(st.bytes_done, 10u);
  EXPECT_EQ(st.files_failed, 1u);
  EXPECT_EQ(st.dirs_created, 0u);
  EXPECT_EQ(res[0].error, 0);
  EXPECT_EQ(res[1].error, ENOENT);
  EXPECT_EQ(usync_copy_files(e, pairs, 1, res), 0);
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  EXPECT_EQ(st.files_done, 1u);
  EXPECT_EQ(st.files_failed, 0u);
  Destroy(e);
}

// A pair without a source or destination path fails like any other: its
// result, error_cb, files_failed, and -EIO from the call.
TEST_P(PersistentEngineTest, PairsWithoutAPathFailTheCall) {
  TempDir t;
  WriteFile(t / "one", Pattern(10, 6));
  usync_engine* e = Make();
  ASSERT_NE(e, nullptr);
  const std::string one = t / "one", out = t / "out";
  const usync_pair pairs[] = {{one.c_str(), nullptr, 0}, {"", out.c_str(), 0}, {one.c_str(), out.c_str(), 0}};
  usync_result res[3] = {};
  EXPECT_EQ(usync_copy_files(e, pairs, 3, res), -EIO);
  usync_stats st{};
  ASSERT_EQ(usync_engine_stats(e, &st, sizeof st), 0);
  EXPECT_EQ(st.files_failed, 2u);
  EXPECT_EQ(st.files_done, 1u);
  EXPECT_EQ(res[0].error, EINVAL);
  EXPECT_EQ(res[0].step, USYNC_STEP_OPEN_DST) << "the destination has no path";
  EXPECT_EQ(res[1].error, EINVAL);
  EXPECT_EQ(res[1].step, USYNC_STEP_OPEN_SRC);
  EXPECT_EQ(res[2].error, 0);
  EXPECT_EQ(std::count(seen_.errors.begin(), seen_.errors.end(), ';'), 2) << seen_.errors;
  Destroy(e);
}

TEST_P(PersistentEngineTest, DestroyIsPrompt) {
  TempDir t;
  WriteFile(t / "src", Pattern(100, 7));
  // Never used.
  usync_engine* e = Make(60 * 1000);
  ASSERT_NE(e, nullptr);
  auto t0 = std::chrono::steady_clock::now();
  Destroy(e);
  EXPECT_LT(Seconds(t0), 1.0);
  // Right after a call, with idle threads that would wait a minute (two
  // batches: the synchronous engine copies one on the calling thread).
  const std::string src = t / "src";
  auto copy_65 = [&](usync_engine* on, const std::string& prefix) {
    std::vector<std::string> names;
    for (int i = 0; i < 65; ++i) names.push_back(t / (prefix + std::to_string(i)));
    std::vector<usync_pair> pairs;
    for (const std::string& n : names) pairs.push_back({src.c_str(), n.c_str(), 0});
    std::vector<usync_result> res(pairs.size());
    return usync_copy_files(on, pairs.data(), pairs.size(), res.data());
  };
  e = Make(60 * 1000);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(copy_65(e, "a"), 0);
  ASSERT_FALSE(PoolThreads().empty());
  t0 = std::chrono::steady_clock::now();
  Destroy(e);
  EXPECT_LT(Seconds(t0), 1.0);
  EXPECT_TRUE(PoolThreads().empty());
  // Idle for a while (threads waiting), then destroyed.
  e = Make(60 * 1000);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(copy_65(e, "b"), 0);
  ASSERT_FALSE(PoolThreads().empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  t0 = std::chrono::steady_clock::now();
  Destroy(e);
  EXPECT_LT(Seconds(t0), 1.0);
  EXPECT_TRUE(PoolThreads().empty());
}

// Engine A's callback copies with engine B, whose callback copies with A
// again: all on the calling thread (the synchronous engine copies one-worker
// batches there), so the inner call on A is refused, not a self-deadlock on
// A's call lock.
struct Nested {
  usync_engine* other = nullptr;
  std::string src, dst;
  std::atomic<int> inner{1};
};
extern "C" void CopyWithOther(void* u, const usync_file_done*) {
  auto* n = static_cast<Nested*>(u);
  if (n->other == nullptr) return;
  usync_result r{};
  const usync_pair p{n->src.c_str(), n->dst.c_str(), 0};
  n->inner = usync_copy_files(n->other, &p, 1, &r);
}

TEST(NestedCallbacks, AThroughBToAIsRefused) {
  TempDir t;
  WriteFile(t / "src", Pattern(100, 5));
  Nested na, nb;
  na.src = nb.src = t / "src";
  na.dst = t / "by-b";  // A's callback has B copy this
  nb.dst = t / "by-a";  // B's callback has A copy this: refused
  usync_engine* engines[2] = {nullptr, nullptr};
  for (int i = 0; i < 2; ++i) {
    usync_options o;
    usync_options_init(&o);
    o.flags = USYNC_FORCE_SYNC;
    o.file_done_cb = CopyWithOther;
    o.cb_user = i == 0 ? &na : &nb;
    ASSERT_EQ(usync_engine_create(&o, &engines[i]), 0);
  }
  na.other = engines[1];
  nb.other = engines[0];
  const std::string src = t / "src", first = t / "first";
  const usync_pair p{src.c_str(), first.c_str(), 0};
  usync_result r{};
  auto done = std::async(std::launch::async, [&] { return usync_copy_files(engines[0], &p, 1, &r); });
  ASSERT_EQ(done.wait_for(std::chrono::seconds(20)), std::future_status::ready) << "A -> B -> A hangs";
  EXPECT_EQ(done.get(), 0);
  EXPECT_EQ(na.inner.load(), 0) << "B's copy from A's callback";
  EXPECT_EQ(nb.inner.load(), -EDEADLK) << "A's copy from B's callback, inside A's own call";
  EXPECT_TRUE(std::filesystem::exists(t / "by-b"));
  EXPECT_FALSE(std::filesystem::exists(t / "by-a"));
  for (usync_engine* e : engines) usync_engine_destroy(e);
}

// A callback may not run a copy on its own engine: that call is refused
// instead of deadlocking on the running one.
extern "C" void CopyAgain(void* u, const usync_file_done* d) {
  auto* s = static_cast<Seen*>(u);
  usync_result r{};
  const usync_pair p{d->src_path, "/nonexistent/never", 0};
  s->cancel_after = usync_copy_files(s->engine, &p, 1, &r);  // reused as the result
}

TEST_P(PersistentEngineTest, CopyFromOwnCallbackIsRefused) {
  TempDir t;
  WriteFile(t / "src", Pattern(100, 8));
  usync_options o;
  usync_options_init(&o);
  o.flags = uring() ? USYNC_FORCE_URING : USYNC_FORCE_SYNC;
  o.file_done_cb = CopyAgain;
  o.cb_user = &seen_;
  ASSERT_EQ(usync_engine_create(&o, &seen_.engine), 0);
  seen_.cancel_after = 1;
  ASSERT_EQ(CopyOne(seen_.engine, t / "src", t / "a"), 0);
  EXPECT_EQ(seen_.cancel_after.load(), -EDEADLK);
  usync_engine_destroy(seen_.engine);
}

TEST_P(PersistentEngineTest, ForkedChildIsRefused) {
  TempDir t;
  WriteFile(t / "src", Pattern(100, 9));
  usync_engine* e = Make(60 * 1000);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(CopyOne(e, t / "src", t / "a"), 0);  // threads (and a ring) exist
  const std::string src = t / "src", dst = t / "child";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    usync_result r{};
    const usync_pair p{src.c_str(), dst.c_str(), 0};
    const int ret = usync_copy_files(e, &p, 1, &r);
    usync_engine_destroy(e);  // must not wait for threads the child does not have
    _exit(ret == -ECHILD ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_NE(access(dst.c_str(), F_OK), 0);
  ASSERT_EQ(CopyOne(e, t / "src", t / "b"), 0);  // the parent's engine is untouched
  Destroy(e);
}

INSTANTIATE_TEST_SUITE_P(Engines, PersistentEngineTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Uring" : "Sync"; });

}  // namespace
}  // namespace usync
