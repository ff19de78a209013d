// Faults a real machine injects, each checked by what is left afterwards:
// a source swapped for a FIFO or a device between the walk and the open,
// a file rotated under its name, copy_file_range that copies nothing, a
// descriptor limit far below the tree's depth, pinned-memory budgets, io_uring
// refused (or failing) after the engine was made, and the C ABI's promises
// about options it does not know and process state it must not touch.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "job.h"
#include "sync_copy.h"
#include "test_tree.h"
#include "uring_worker.h"
#include "uringsync/uringsync.h"

namespace usync {
namespace {

using testing::DenySyscall;
using testing::evict;
using testing::InChild;
using testing::Pattern;
using testing::Snapshot;
using testing::TempDir;
using testing::WriteFile;

// How a worker copies: the synchronous engine, or a ring whose destination
// ops go through the ring (io-wq) or are run by its thread (dst_ops_inline).
enum class Way { kSync, kRing, kRingDstInline };

// Copies one file whose walk saw `walked` (the state after a swap between the
// walk and the open) on the chosen engine, as a worker would.
struct OneFile {
  Config cfg;
  Counters counters;
  std::atomic<bool> cancel{false};
  FileResult result;
  bool replace = true;  // false: dst is made under its own name (as in a hidden directory)

  FileResult Run(Way way, const std::string& src, const struct stat& walked, const std::string& dst) {
    const bool uring = way != Way::kSync;
    Job job(cfg, counters, cancel, uring ? USYNC_ENGINE_URING : USYNC_ENGINE_SYNC);
    job.ring_depth = 4;
    job.dst_ops_inline = way == Way::kRingDstInline;
    std::vector<usync_result> res(1);
    job.results = &res;
    std::vector<FileTask> batch(1);
    batch[0].src_name = src;
    batch[0].dst_name = dst;
    batch[0].set_stat(walked);
    batch[0].replace = replace;
    batch[0].pair = 0;
    job.files_outstanding = 1;
    // A hang must fail the test, not the suite: run it aside with a deadline.
    auto done = std::async(std::launch::async, [&] {
      if (uring) {
        job.small_q.push(batch);
        job.small_q.close();
        bool fb = false;
        run_uring_worker(job, &fb);
      } else {
        std::vector<char> buf(cfg.chunk_size);
        FileResult r = copy_file_sync(job, batch[0], buf.data(), buf.size(), nullptr);
        job.finish_file(batch[0], r);
      }
    });
    if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      ADD_FAILURE() << "the copy hangs on " << src;
      job.stop();
      cancel = true;
      if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) std::abort();
    }
    return FileResult{res[0].error, res[0].step, res[0].bytes};
  }
};

class Fault : public ::testing::TestWithParam<Way> {
 protected:
  Way uring() const { return GetParam(); }
};

TEST_P(Fault, FileSwappedForFifoIsSkippedNotRead) {
  TempDir t;
  const std::string src = t / "f", dst = t / "out";
  WriteFile(src, "regular");
  struct stat walked {};
  ASSERT_EQ(stat(src.c_str(), &walked), 0);
  ASSERT_EQ(unlink(src.c_str()), 0);
  ASSERT_EQ(mkfifo(src.c_str(), 0644), 0);
  // A writer holds the FIFO open without writing: a read would wait forever.
  const int writer = open(src.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(writer, 0);
  OneFile one;
  const FileResult r = one.Run(uring(), src, walked, dst);
  close(writer);
  EXPECT_EQ(r.error, ESTALE);
  EXPECT_EQ(r.step, USYNC_STEP_CHANGED);
  EXPECT_FALSE(std::filesystem::exists(dst));
}

TEST_P(Fault, FileSwappedForDeviceIsSkippedNotRead) {
  if (geteuid() != 0) GTEST_SKIP() << "mknod of a character device needs root";
  TempDir t;
  const std::string src = t / "f", dst = t / "out";
  WriteFile(src, "regular");
  struct stat walked {};
  ASSERT_EQ(stat(src.c_str(), &walked), 0);
  ASSERT_EQ(unlink(src.c_str()), 0);
  ASSERT_EQ(mknod(src.c_str(), S_IFCHR | 0644, makedev(1, 5)), 0);  // /dev/zero: endless bytes
  OneFile one;
  const FileResult r = one.Run(uring(), src, walked, dst);
  EXPECT_EQ(r.error, ESTALE);
  EXPECT_EQ(r.step, USYNC_STEP_CHANGED);
  EXPECT_FALSE(std::filesystem::exists(dst));
}

TEST_P(Fault, RotatedFileIsNeverSpliced) {
  TempDir t;
  const std::string src = t / "log", dst = t / "out";
  WriteFile(src, Pattern(100, 1));
  struct stat walked {};
  ASSERT_EQ(stat(src.c_str(), &walked), 0);
  ASSERT_EQ(rename(src.c_str(), (t / "log.1").c_str()), 0);  // rotation: another file under the name
  WriteFile(src, Pattern(300000, 2));
  OneFile one;
  const FileResult r = one.Run(uring(), src, walked, dst);
  EXPECT_EQ(r.error, ESTALE);
  EXPECT_FALSE(std::filesystem::exists(dst));
}

TEST_P(Fault, FileGrownSinceTheWalkIsCopiedAsOpened) {
  TempDir t;
  const std::string src = t / "f", dst = t / "out";
  WriteFile(src, Pattern(100, 3));
  struct stat walked {};
  ASSERT_EQ(stat(src.c_str(), &walked), 0);
  const std::string grown = Pattern(300000, 3);  // the same inode, appended to
  WriteFile(AT_FDCWD, src, grown);
  OneFile one;
  const FileResult r = one.Run(uring(), src, walked, dst);
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst), grown);
}

// A file to be made under its own name (its directory is hidden under a
// temporary name) finds that name taken: another run writes into the same
// directory.  The copy is made as into any existing directory and replaces
// what is there; nothing fails.
TEST_P(Fault, TakenNameIsReplacedNotFailed) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const std::string data = Pattern(20000, 3);
  WriteFile(src, data);
  WriteFile(dst, "written by another run");
  struct stat st {};
  ASSERT_EQ(stat(src.c_str(), &st), 0);
  OneFile f;
  f.replace = false;
  const FileResult r = f.Run(uring(), src, st, dst);
  EXPECT_EQ(r.error, 0) << usync_step_name(r.step) << ": " << std::strerror(r.error);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst), data);
}

// With --fsync (or --verify) every file is synced on io-wq before its name:
// a job that says the destination's ops are the ring thread's keeps them on
// the ring then, whoever set both.
TEST_P(Fault, FsyncedCopyIsCompleteEveryWay) {
  TempDir t;
  const std::string src = t / "f", dst = t / "out";
  WriteFile(src, Pattern(1000, 6));
  struct stat st {};
  ASSERT_EQ(stat(src.c_str(), &st), 0);
  OneFile one;
  one.cfg.flags |= USYNC_FSYNC;
  const FileResult r = one.Run(uring(), src, st, dst);
  EXPECT_EQ(r.error, 0) << usync_step_name(r.step) << ": " << std::strerror(r.error);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, dst), Pattern(1000, 6));
}

// The destination fills up in the file's last chunk: that write comes up
// short (the ops planned behind it must not run), the next one fails, and
// nothing is left in the destination, under any name.
TEST_P(Fault, FullDestinationFailsTheWriteAndLeavesNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  TempDir t;
  const std::string src = t / "f", full = t / "full";
  WriteFile(src, Pattern(150000, 5));  // a 128 KiB chunk, then 18,928 bytes of which 12 KiB fit
  ASSERT_EQ(mkdir(full.c_str(), 0755), 0);
  ASSERT_EQ(mount("none", full.c_str(), "tmpfs", 0, "size=140k"), 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(stat(src.c_str(), &st), 0);
  OneFile one;
  const FileResult r = one.Run(uring(), src, st, full + "/out");
  EXPECT_EQ(r.error, ENOSPC) << usync_step_name(r.step) << ": " << std::strerror(r.error);
  EXPECT_EQ(r.step, USYNC_STEP_WRITE);
  EXPECT_TRUE(std::filesystem::is_empty(full)) << "a partial file was left in the destination";
  struct statfs sf {};
  ASSERT_EQ(statfs(full.c_str(), &sf), 0);
  EXPECT_EQ(sf.f_bfree, sf.f_blocks) << "the partial file's blocks are still held";
  EXPECT_EQ(umount(full.c_str()), 0) << std::strerror(errno);  // nothing left open there either
}

INSTANTIATE_TEST_SUITE_P(Engines, Fault, ::testing::Values(Way::kRing, Way::kRingDstInline, Way::kSync),
                         [](const auto& info) {
                           return info.param == Way::kSync   ? "Sync"
                                  : info.param == Way::kRing ? "IoUring"
                                                             : "IoUringDstInline";
                         });

ssize_t CopiesNothing(int, loff_t*, int, loff_t*, size_t, unsigned) { return 0; }
ssize_t CrossesDevices(int, loff_t*, int, loff_t*, size_t, unsigned) {
  errno = EXDEV;
  return -1;
}
ssize_t SendsNothing(int, int, off_t*, size_t) {
  errno = EINVAL;
  return -1;
}

// copy_in_kernel of size bytes from t/big into a new t/out with these
// stand-ins for copy_file_range and sendfile: its result, and in *done and
// *counted what it copied and what the job counted.
int KernelCopy(const TempDir& t, uint64_t size, CopyRangeFn cfr, SendFileFn sf, uint64_t* done, uint64_t* counted) {
  std::filesystem::remove(t / "out");
  const int in = open((t / "big").c_str(), O_RDONLY | O_CLOEXEC);
  const int out = open((t / "out").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  int rc = -2;
  if (in >= 0 && out >= 0) {
    Config cfg;
    Counters counters;
    std::atomic<bool> cancel{false};
    Job job(cfg, counters, cancel, USYNC_ENGINE_SYNC);
    FileTask task;
    task.size = size;
    *done = 0;
    rc = copy_in_kernel(job, task, in, out, done, cfr, sf);
    *counted = counters.bytes_done.load();
  }
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  return rc;
}

TEST(FaultKernelCopy, CopyFileRangeOfNothingFallsBack) {
  TempDir t;
  WriteFile(t / "big", Pattern(2 << 20, 4));
  uint64_t done = 1, counted = 1;
  // FICLONE fails on tmpfs and ext4 alike; then a copy_file_range that
  // returns 0 at offset 0 must mean "not here", never "copied", and so
  // must a sendfile that cannot either.
  EXPECT_EQ(KernelCopy(t, 2 << 20, CopiesNothing, SendsNothing, &done, &counted), 0);
  EXPECT_EQ(done, 0u);
  EXPECT_EQ(counted, 0u);
}

// Between filesystems copy_file_range says EXDEV: sendfile copies the file
// instead, whole and from its start.
TEST(FaultKernelCopy, CrossDeviceCopiesBySendfile) {
  TempDir t;
  const std::string data = Pattern((3 << 20) + 12345, 9);
  WriteFile(t / "big", data);
  for (const auto cfr : {CrossesDevices, CopiesNothing}) {
    uint64_t done = 0, counted = 0;
    EXPECT_EQ(KernelCopy(t, data.size(), cfr, ::sendfile, &done, &counted), 1);
    EXPECT_EQ(done, data.size());
    EXPECT_EQ(counted, data.size());
    EXPECT_EQ(testing::ReadFile(AT_FDCWD, t / "out"), data);
  }
}

// Whether files in dir can be cloned (FICLONE: XFS with reflink=1, Btrfs).
bool Clones(const std::string& dir) {
  const std::string a = dir + "/clone-probe-a", b = dir + "/clone-probe-b";
  WriteFile(a, "x");
  const int in = open(a.c_str(), O_RDONLY | O_CLOEXEC);
  const int out = open(b.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  const bool clones = in >= 0 && out >= 0 && ioctl(out, FICLONE, in) == 0;
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  unlink(a.c_str());
  unlink(b.c_str());
  return clones;
}

// An XFS image (Debian's mkfs.xfs makes it with reflink=1) loop-mounted for
// as long as this lives; mounted false where that cannot be done (no root,
// no mkfs.xfs, no loop devices).
struct XfsMount {
  TempDir base;
  std::string mnt = base / "mnt";
  bool mounted = false;
  XfsMount() {
    const std::string img = base / "xfs.img";
    if (geteuid() != 0 || mkdir(mnt.c_str(), 0755) != 0) return;
    const int fd = open(img.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    const bool sized = fd >= 0 && ftruncate(fd, off_t{320} << 20) == 0;  // XFS wants 300 MiB
    if (fd >= 0) close(fd);
    const std::string cmd = "mkfs.xfs -q -m reflink=1 '" + img + "' >/dev/null 2>&1 && mount -o loop '" + img +
                            "' '" + mnt + "' >/dev/null 2>&1";
    mounted = sized && std::system(cmd.c_str()) == 0;
  }
  ~XfsMount() {
    if (mounted && umount2(mnt.c_str(), 0) != 0) umount2(mnt.c_str(), MNT_DETACH);
  }
};

// A reflink (XFS with reflink=1, Btrfs) shares the whole source as it is at
// the clone, not as it was opened: a file that grew after its open (size
// taken) is still copied at that size, as the read/write path copies it.
// Where TMPDIR cannot clone (ext4, tmpfs), on an XFS image of its own.
TEST(FaultKernelCopy, ReflinkOfAGrownFileStopsAtTheOpenedSize) {
  std::unique_ptr<XfsMount> xfs;  // outlives t
  std::string dir = std::filesystem::temp_directory_path().string();
  if (!Clones(dir)) {
    xfs = std::make_unique<XfsMount>();
    if (!xfs->mounted || !Clones(xfs->mnt))
      GTEST_SKIP() << "TMPDIR cannot reflink, and no XFS image could be mounted here (needs root, mkfs.xfs, loop)";
    dir = xfs->mnt;
  }
  const char* had = std::getenv("TMPDIR");
  const std::string before = had != nullptr ? had : "";
  setenv("TMPDIR", dir.c_str(), 1);
  TempDir t;  // in dir
  if (had != nullptr)
    setenv("TMPDIR", before.c_str(), 1);
  else
    unsetenv("TMPDIR");
  const std::string data = Pattern(3 << 20, 11);
  WriteFile(t / "big", data);
  const uint64_t opened = 1 << 20;  // the size when opened; it grew to 3 MiB since
  uint64_t done = 0, counted = 0;
  EXPECT_EQ(KernelCopy(t, opened, ::copy_file_range, ::sendfile, &done, &counted), 1);
  EXPECT_EQ(done, opened);
  EXPECT_EQ(counted, opened);
  const std::string copied = testing::ReadFile(AT_FDCWD, t / "out");
  EXPECT_EQ(copied.size(), opened);
  EXPECT_TRUE(copied == data.substr(0, opened));
}

usync_engine* MakeEngine(uint32_t flags, uint32_t workers = 0) {
  usync_options o;
  usync_options_init(&o);
  o.flags = flags;
  o.workers = workers;
  usync_engine* e = nullptr;
  return usync_engine_create(&o, &e) == 0 ? e : nullptr;
}

class LowLimit : public ::testing::TestWithParam<std::tuple<bool, int, int>> {};

// A chain far deeper than the descriptor limit, with a file at every level:
// the engine closes and reopens ancestors instead of failing with EMFILE.
TEST_P(LowLimit, DeepChainCompletes) {
  const auto [uring, limit, workers] = GetParam();
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer runtime opens descriptors of its own (it reads
  // /proc/self/maps to print a report), which a limit of 16 leaves no room
  // for; the plain build runs this case.
  if (limit < 20) GTEST_SKIP() << "ASan/UBSan need descriptors of their own under RLIMIT_NOFILE=" << limit;
#endif
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  std::string dir = src;
  for (int i = 0; i < 300; ++i) {
    dir += "/d";
    WriteFile(dir + "/f", Pattern(static_cast<size_t>(i) * 7, static_cast<unsigned>(i)));
  }
  for (int i = 0; i < 20; ++i) WriteFile(src + "/wide" + std::to_string(i % 5) + "/f" + std::to_string(i), "w");
  const int code = InChild([&, uring = uring, limit = limit, workers = workers] {
    rlimit rl{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 10;
    usync_engine* e = MakeEngine(uring ? USYNC_FORCE_URING : USYNC_FORCE_SYNC, static_cast<uint32_t>(workers));
    if (e == nullptr) return 11;
    const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
    usync_engine_destroy(e);
    return ret == 0 ? 0 : 12;
  });
  ASSERT_EQ(code, 0);
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
}

INSTANTIATE_TEST_SUITE_P(Limits, LowLimit,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(16, 20, 64), ::testing::Values(0, 8)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "IoUring" : "Sync") + "_nofile" +
                                  std::to_string(std::get<1>(info.param)) + "_j" +
                                  std::to_string(std::get<2>(info.param));
                         });

// A wide tree: directories of small files, a large file each (the bulk
// threads' when there is room for them), a sparse one, and a third of the
// files out of the page cache, so that the adaptive engine's rings read
// them while its threads copy the rest.  false: a file could not be
// dropped from the cache.
bool MakeWideTree(const std::string& src) {
  std::vector<std::string> cold;
  for (int d = 0; d < 6; ++d) {
    const std::string dir = src + "/d" + std::to_string(d);
    for (int f = 0; f < 24; ++f) {
      const std::string name = dir + (f % 3 == 1 ? "/e/f" : "/f") + std::to_string(f);
      WriteFile(name, Pattern(4096 + static_cast<size_t>(f) * 700, static_cast<unsigned>(d * 100 + f)));
      if (f % 3 == 0) cold.push_back(name);
    }
    WriteFile(dir + "/big", Pattern((1u << 20) + 4096 + static_cast<size_t>(d), static_cast<unsigned>(d)));
    cold.push_back(dir + "/big");
    // A hole of 1 MiB before 4 KiB of data (-S keeps it).
    const int fd = open((dir + "/sparse").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    const std::string tail = Pattern(4096, static_cast<unsigned>(d + 7));
    if (fd < 0 || pwrite(fd, tail.data(), tail.size(), 1 << 20) != static_cast<ssize_t>(tail.size())) return false;
    close(fd);
  }
  bool evicted = true;
  for (const std::string& p : cold) evicted = testing::evict(p) && evicted;
  return evicted;
}

// How many entries of src are missing or different in dst (and how many
// dst has that src has not).
size_t WrongEntries(const std::string& src, const std::string& dst) {
  const auto want = Snapshot(src), have = Snapshot(dst);
  size_t wrong = 0;
  for (const auto& [path, entry] : want) {
    const auto it = have.find(path);
    wrong += it == have.end() || !(it->second == entry);
  }
  for (const auto& [path, entry] : have) wrong += want.count(path) == 0;
  return wrong;
}

// In a child: no descriptors but stdin, stdout, stderr and `extra` more,
// whatever this process inherited, and RLIMIT_NOFILE `limit`.
bool FewDescriptors(int extra, rlim_t limit) {
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  for (int i = 0; i < extra; ++i)
    if (open("/dev/null", O_RDONLY | O_CLOEXEC) != 3 + i) return false;
  rlimit rl{limit, limit};
  return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

// Copies the tree src to dst in a child process that has `extra` descriptors
// open beside stdin, stdout and stderr, at RLIMIT_NOFILE 16, with engine
// flags and workers.  0; 100 + the files that failed (at most 250); 10, 11:
// the child's setup failed; 12: the call ran on another engine than
// want_engine (0: any).
int CopyAtSixteen(const std::string& src, const std::string& dst, int extra, uint32_t flags, int workers,
                  int want_engine = 0) {
  return InChild([&] {
    if (!FewDescriptors(extra, 16)) return 10;
    usync_engine* e = MakeEngine(flags, static_cast<uint32_t>(workers));
    if (e == nullptr) return 11;
    const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
    usync_stats st{};
    usync_engine_stats(e, &st, sizeof st);
    usync_engine_destroy(e);
    if (ret != 0) return static_cast<int>(std::min<uint64_t>(100 + st.files_failed, 250));
    return want_engine == 0 || st.engine == static_cast<uint32_t>(want_engine) ? 0 : 12;
  });
}

// engine (kEngineFlags), -j, whether -a (USYNC_ARCHIVE: xattrs, ACLs, -H, -S).
class LowLimitWide : public ::testing::TestWithParam<std::tuple<uint32_t, int, bool>> {};

// A wide tree (MakeWideTree) at RLIMIT_NOFILE 16 in a process that has two
// descriptors open beside stdin, stdout and stderr (as a shell or a test
// runner may leave them).  Every file arrives, none fails with EMFILE.
TEST_P(LowLimitWide, WideTreeCompletes) {
  const auto [flags, workers, archive] = GetParam();
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan/UBSan need descriptors of their own under RLIMIT_NOFILE=16";
#endif
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  const bool evicted = MakeWideTree(src);
  const int code = CopyAtSixteen(src, dst, 2, flags | (archive ? uint32_t{USYNC_ARCHIVE} : 0u), workers);
  EXPECT_EQ(code, 0) << (code > 100 ? std::to_string(code - 100) + " files failed" : "exit code");
  EXPECT_EQ(WrongEntries(src, dst), 0u);
  // -S keeps the holes, whichever thread copied the file.
  for (int d = 0; archive && d < 6; ++d) {
    struct stat s {}, c {};
    const std::string rel = "/d" + std::to_string(d) + "/sparse";
    if (stat((src + rel).c_str(), &s) == 0 && s.st_blocks * 512 < s.st_size && stat((dst + rel).c_str(), &c) == 0) {
      EXPECT_LT(c.st_blocks * 512, c.st_size) << rel;
    }
  }
  if (!evicted) std::printf("note: some source files could not be dropped from the page cache\n");
}

INSTANTIATE_TEST_SUITE_P(Nofile16, LowLimitWide,
                         ::testing::Combine(::testing::ValuesIn(testing::kEngineFlags), ::testing::Values(0, 8),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return testing::EngineName(std::get<0>(info.param)) + "_j" +
                                  std::to_string(std::get<1>(info.param)) +
                                  (std::get<2>(info.param) ? "_archive" : "");
                         });

class LowLimitCrowded : public ::testing::TestWithParam<uint32_t> {};

// Three descriptors beside stdin, stdout and stderr at RLIMIT_NOFILE 16: too
// few for one ring beside the directories (Budget::ring_fits), so the call
// runs synchronous threads, which complete.  A ring there waited 5 s for a
// descriptor that its own waiting opens held, then failed files.
TEST_P(LowLimitCrowded, RunsSynchronouslyAndCompletes) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan/UBSan need descriptors of their own under RLIMIT_NOFILE=16";
#endif
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  MakeWideTree(src);
  const auto start = std::chrono::steady_clock::now();
  const int code = CopyAtSixteen(src, dst, 3, GetParam(), 0, USYNC_ENGINE_SYNC);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(code, 12) << "ran on a ring with no room for one";
  EXPECT_EQ(code, 0) << (code > 100 ? std::to_string(code - 100) + " files failed" : "exit code");
  EXPECT_EQ(WrongEntries(src, dst), 0u);
  EXPECT_LT(took, std::chrono::seconds(4)) << "an open waited for a descriptor";
}

INSTANTIATE_TEST_SUITE_P(Nofile16, LowLimitCrowded, ::testing::ValuesIn(testing::kEngineFlags),
                         [](const auto& info) { return testing::EngineName(info.param); });

class LowLimitHeld : public ::testing::TestWithParam<uint32_t> {};

// Another thread of the caller's process takes every free descriptor for a
// moment while a copy runs at RLIMIT_NOFILE 16 (after its first file, past
// the budget's look at what is in use): the copy's opens wait for them to
// come back instead of failing their files with EMFILE.
TEST_P(LowLimitHeld, OpensWaitForDescriptorsHeldForAMoment) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan/UBSan need descriptors of their own under RLIMIT_NOFILE=16";
#endif
  const uint32_t flags = GetParam();
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  MakeWideTree(src);
  const int code = InChild([&, flags] {
    if (!FewDescriptors(0, 16)) return 10;
    struct Hog {
      std::mutex mu;
      std::condition_variable cv;
      bool go = false;
      std::vector<int> held;
    } hog;
    std::thread taker([&] {
      std::unique_lock lk(hog.mu);
      hog.cv.wait(lk, [&] { return hog.go; });
      for (int fd; (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) hog.held.push_back(fd);
      lk.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      for (int fd : hog.held) close(fd);
    });
    usync_options o;
    usync_options_init(&o);
    o.flags = flags | USYNC_ARCHIVE;
    o.cb_user = &hog;
    o.file_done_cb = [](void* user, const usync_file_done*) {
      auto* h = static_cast<Hog*>(user);
      std::lock_guard lk(h->mu);
      if (!h->go) {
        h->go = true;
        h->cv.notify_all();
      }
    };
    usync_engine* e = nullptr;
    if (usync_engine_create(&o, &e) != 0) return 11;
    const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
    usync_stats st{};
    usync_engine_stats(e, &st, sizeof st);
    usync_engine_destroy(e);
    taker.join();
    if (hog.held.empty()) return 12;  // nothing was taken: the case did not happen
    if (ret != 0) return static_cast<int>(std::min<uint64_t>(100 + st.files_failed, 250));
    return 0;
  });
  EXPECT_EQ(code, 0) << (code > 100 ? std::to_string(code - 100) + " files failed" : "exit code");
  EXPECT_EQ(WrongEntries(src, dst), 0u);
}

INSTANTIATE_TEST_SUITE_P(Nofile16, LowLimitHeld, ::testing::ValuesIn(testing::kEngineFlags),
                         [](const auto& info) { return testing::EngineName(info.param); });

class LowLimitDelete : public ::testing::TestWithParam<uint32_t> {};

// --delete at RLIMIT_NOFILE 16 with two descriptors open beside stdin,
// stdout and stderr: deep trees the source lacks (deeper than the remover
// keeps open, so it reopens their directories through ".."), and deep
// temporary directories a killed run left, all go while the copy's threads
// hold descriptors of their own.  Their opens failed with EMFILE, and a
// failed reopen of ".." was reported as "Stale file handle".
TEST_P(LowLimitDelete, DeepExtraTreesGo) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan/UBSan need descriptors of their own under RLIMIT_NOFILE=16";
#endif
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  MakeWideTree(src);
  for (int d = 0; d < 6; ++d) {
    const std::string dir = dst + "/d" + std::to_string(d);
    for (int x = 0; x < 4; ++x) {
      const std::string deep = dir + "/old" + std::to_string(x) + "/a/b/c/d/e";
      for (int f = 0; f < 5; ++f) WriteFile(deep + "/f" + std::to_string(f), "stale");
    }
    WriteFile(dir + "/.usync-dir-gone.tmp/a/b/c/d/e/f/g/file", "left by a killed run");
  }
  const int code = CopyAtSixteen(src, dst, 2, GetParam() | USYNC_DELETE, 0);
  EXPECT_EQ(code, 0) << (code > 100 ? std::to_string(code - 100) + " files failed" : "exit code");
  EXPECT_EQ(WrongEntries(src, dst), 0u);
}

INSTANTIATE_TEST_SUITE_P(Nofile16, LowLimitDelete, ::testing::ValuesIn(testing::kEngineFlags),
                         [](const auto& info) { return testing::EngineName(info.param); });

TEST(FaultBudget, PinnedBuffersStayWithinTheBudget) {
  TempDir t;
  for (int i = 0; i < 50; ++i) WriteFile(t / ("src/f" + std::to_string(i)), Pattern(1000, static_cast<unsigned>(i)));
  usync_options o;
  usync_options_init(&o);
  o.flags = USYNC_FORCE_URING;
  o.chunk_size = 64u << 20;  // 128 files in flight would pin 8 GiB per ring
  o.workers = 2;
  usync_engine* e = nullptr;
  ASSERT_EQ(usync_engine_create(&o, &e), 0);
  if (usync_engine_kind(e) != USYNC_ENGINE_URING) {
    usync_engine_destroy(e);
    GTEST_SKIP() << "io_uring is not available here";
  }
  ASSERT_EQ(usync_copy_tree(e, (t / "src").c_str(), (t / "dst").c_str()), 0);
  usync_stats st{};
  usync_engine_stats(e, &st, sizeof st);
  usync_engine_destroy(e);
  EXPECT_EQ(st.queue_depth, 1u);  // 128 MiB default budget over 2 rings and 2 threads
  EXPECT_LE(st.buffer_bytes, uint64_t{128} << 20);
  EXPECT_EQ(Snapshot(t / "src"), Snapshot(t / "dst"));
}

TEST(FaultAbi, UnknownFlagsAndShortStructs) {
  usync_options o;
  usync_options_init(&o);
  o.flags = 1u << 30;
  usync_engine* e = nullptr;
  EXPECT_EQ(usync_engine_create(&o, &e), -EINVAL);
  EXPECT_EQ(e, nullptr);
  // A caller built against the first version knows fields up to cb_user only;
  // what lies past its struct must not be read.
  struct Old {
    usync_options o;
    char poison[64];
  } old;
  std::memset(&old, 0xff, sizeof old);
  usync_options_init(&old.o);
  old.o.struct_size = offsetof(usync_options, cb_user) + sizeof(void*);
  std::memset(reinterpret_cast<char*>(&old.o) + old.o.struct_size, 0xff, sizeof(usync_options) - old.o.struct_size);
  ASSERT_EQ(usync_engine_create(&old.o, &e), 0);  // the garbage budget was not taken
  usync_engine_destroy(e);
  o.struct_size = 8;  // too small to be any version
  o.flags = 0;
  EXPECT_EQ(usync_engine_create(&o, &e), -EINVAL);
}

TEST(FaultAbi, LibraryLeavesTheDescriptorLimitAlone) {
  const int code = InChild([] {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < 2048) return 0;  // nothing to observe
    rl.rlim_cur = 1024;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 10;
    usync_engine* e = MakeEngine(0);
    getrlimit(RLIMIT_NOFILE, &rl);
    usync_engine_destroy(e);
    if (rl.rlim_cur != 1024) return 11;  // changed without being asked
    e = MakeEngine(USYNC_RAISE_NOFILE);
    getrlimit(RLIMIT_NOFILE, &rl);
    usync_engine_destroy(e);
    return rl.rlim_cur == rl.rlim_max ? 0 : 12;
  });
  EXPECT_EQ(code, 0);
}

class NoOpenat2 : public ::testing::TestWithParam<uint32_t> {};

// Without openat2 (before Linux 5.6, or refused by a seccomp policy) the
// copy works, and killed runs' leftovers, files and directory trees, are
// still removed: each directory is then reached one name at a time with
// O_NOFOLLOW.  With openat2 refused, none was removed.
TEST_P(NoOpenat2, LeftoversGoWithoutOpenat2) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  WriteFile(src + "/a/f", "f");
  WriteFile(dst + "/a/.usync-0123456789abcdef-3.tmp", "a killed run's file");
  WriteFile(dst + "/a/.usync-dir-old.tmp/b/c/g", "a killed run's directory");
  WriteFile(dst + "/.usync-dir-x.tmp/d/h", "another");
  const uint32_t flags = GetParam();
  const int code = InChild([&] {
    usync_engine* e = MakeEngine(flags);
    if (e == nullptr) return 10;
    if (!DenySyscall(__NR_openat2)) return 21;
    const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
    usync_engine_destroy(e);
    return ret == 0 ? 0 : 12;
  });
  if (code == 21) GTEST_SKIP() << "seccomp is not available here";
  ASSERT_EQ(code, 0);
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
}

INSTANTIATE_TEST_SUITE_P(Engines, NoOpenat2, ::testing::ValuesIn(testing::kEngineFlags),
                         [](const auto& info) { return testing::EngineName(info.param); });

// A directory in a leftover that cannot be entered (here a mount point:
// never crossed) stays, with its parents; its siblings still go.  The
// removal used to stop at it.
TEST(Cleaner, WhatCannotBeEnteredStaysAndItsSiblingsGo) {
  if (geteuid() != 0) GTEST_SKIP() << "mounts a tmpfs (needs root)";
  TempDir t;
  const std::string src = t / "src", dst = t / "dst", left = dst + "/.usync-dir-x.tmp";
  WriteFile(src + "/f", "f");
  WriteFile(left + "/b/c/g", "g");
  WriteFile(left + "/d/h", "h");
  ASSERT_EQ(mkdir((left + "/a").c_str(), 0755), 0);
  if (mount("tmpfs", (left + "/a").c_str(), "tmpfs", 0, "size=1m") != 0) GTEST_SKIP() << "cannot mount a tmpfs here";
  WriteFile(left + "/a/inside", "on another mount");
  usync_engine* e = MakeEngine(0);
  ASSERT_NE(e, nullptr);
  const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
  usync_engine_destroy(e);
  EXPECT_EQ(testing::ReadFile(AT_FDCWD, left + "/a/inside"), "on another mount");
  umount2((left + "/a").c_str(), MNT_DETACH);
  EXPECT_EQ(ret, 0);
  struct stat st {};
  EXPECT_NE(lstat((left + "/b").c_str(), &st), 0) << "a sibling after the mount point stayed";
  EXPECT_NE(lstat((left + "/d").c_str(), &st), 0) << "a sibling after the mount point stayed";
}

class RefusedMidRun : public ::testing::TestWithParam<int> {};

// The engine was made while io_uring worked; then the kernel refuses it:
// ring setup (the workers fall back) or every io_uring_enter (the ring
// breaks with files in flight).  Either way the copy completes, correct.
TEST_P(RefusedMidRun, CopyCompletes) {
  TempDir t;
  const std::string src = t / "src", dst = t / "dst";
  for (int d = 0; d < 4; ++d)
    for (int f = 0; f < 100; ++f)
      WriteFile(src + "/d" + std::to_string(d) + "/f" + std::to_string(f), Pattern(100u * f, f));
  const int nr = GetParam();
  const int code = InChild([&] {
    usync_engine* e = MakeEngine(USYNC_FORCE_URING);
    if (e == nullptr) return 10;
    if (usync_engine_kind(e) != USYNC_ENGINE_URING) return 20;
    if (!DenySyscall(nr)) return 21;
    const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
    usync_engine_destroy(e);
    return ret == 0 ? 0 : 12;
  });
  if (code == 20 || code == 21) GTEST_SKIP() << "io_uring or seccomp is not available here";
  ASSERT_EQ(code, 0);
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
}

// The adaptive engine builds a ring when a file first needs it (a file out
// of the page cache); when the kernel refuses it then, those files are
// copied synchronously and the engine says it fell back.
TEST(RefusedLate, AdaptiveCopyCompletes) {
  TempDir t;
  struct statfs sf {};
  ASSERT_EQ(statfs(t.path().c_str(), &sf), 0);
  if (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)
    GTEST_SKIP() << t.path() << " is on tmpfs, whose pages cannot be dropped (set TMPDIR to a disk filesystem)";
  const std::string src = t / "src", dst = t / "dst";
  for (int f = 0; f < 64; ++f) {
    const std::string path = src + "/d" + std::to_string(f % 4) + "/f" + std::to_string(f);
    WriteFile(path, Pattern(16 * 1024, static_cast<unsigned>(f)));
    if (!evict(path)) GTEST_SKIP() << "this filesystem keeps the pages of " << path << " after POSIX_FADV_DONTNEED";
  }
  const int code = InChild([&] {
    usync_engine* e = MakeEngine(0);
    if (e == nullptr) return 10;
    if (usync_engine_kind(e) != USYNC_ENGINE_URING) return 20;
    if (!DenySyscall(__NR_io_uring_setup)) return 21;
    const int ret = usync_copy_tree(e, src.c_str(), dst.c_str());
    usync_stats st{};
    usync_engine_stats(e, &st, sizeof st);
    usync_engine_destroy(e);
    if (ret != 0 || st.files_done != 64) return 12;
    return st.files_inline < 64 ? 0 : 13;  // 13: nothing needed a ring
  });
  if (code == 20 || code == 21) GTEST_SKIP() << "io_uring or seccomp is not available here";
  ASSERT_NE(code, 13) << "every file was found in the page cache: the late build was not reached";
  ASSERT_EQ(code, 0);
  EXPECT_EQ(Snapshot(src), Snapshot(dst));
}

INSTANTIATE_TEST_SUITE_P(Syscalls, RefusedMidRun, ::testing::Values(__NR_io_uring_setup, __NR_io_uring_enter),
                         [](const auto& info) { return info.param == __NR_io_uring_setup ? "Setup" : "Enter"; });

}  // namespace
}  // namespace usync
