#include "uring_worker.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "buffer_pool.h"
#include "durable.h"
#include "file_copy.h"
#include "md5.h"
#include "meta.h"
#include "ring.h"
#include "sync_copy.h"

namespace usync {
namespace {

// One file in flight.  Never moves while the kernel holds its address.
struct Slot {
  FileTask task;
  FileCopy fc;
  std::string name;  // destination name being written (may be a temporary); anonymous: where it is made (anon_dir)
  uint32_t buf = BufferPool::kNone;
  int src_fd = -1;   // the source is a plain descriptor: fstat checks it
  int dst_fd = -1;   // the written file's plain descriptor: anonymous (kInstallDst), or dst_inline_
  bool anon = false;  // written as an anonymous file (O_TMPFILE), named by linkat in finish()
  bool bulk = false;  // queued unwalked, found large: finish() copies it as the bulk path does
  bool direct = false;  // the source is read with O_DIRECT (UringWorker::read_direct)
  // A pair copy's source once read, taken just before the ring's close of it
  // (note_stats in finish() has no descriptor left then).
  bool has_src_stat = false;
  usync_file_stat src_stat{};
  int inflight = 0;  // ops of the current batch not yet completed
  int nops = 0;
  OpKind kinds[FileCopy::kMaxOps]{};
  uint32_t lens[FileCopy::kMaxOps]{};  // asked lengths of reads and writes
  int res[FileCopy::kMaxOps]{};
  bool active = false;
  std::unique_ptr<Md5> md5;
  std::unique_ptr<Digest> digest;  // USYNC_VERIFY: of the bytes read from the source
};

constexpr uint64_t kCancelTag = ~uint64_t{0};  // user_data of ASYNC_CANCEL

// fstat of fd; with align, by statx, which also says the alignment the
// file's direct I/O needs (the larger of memory and offset), or 0 when it
// has none (the filesystem's, or this file's: ext4 inline data, say).
int stat_source(int fd, struct stat* st, uint32_t* align) noexcept {
  if (align == nullptr) return fstat(fd, st);
  *align = 0;
  struct statx sx {};
  // A statx refused (a seccomp filter may answer EPERM) or short of the
  // basic fields: what fstat says, and no direct reads.
  if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_DIOALIGN, &sx) != 0 ||
      (sx.stx_mask & STATX_BASIC_STATS) != STATX_BASIC_STATS)
    return fstat(fd, st);
  *st = {};
  st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  st->st_ino = sx.stx_ino;
  st->st_mode = sx.stx_mode;
  st->st_nlink = sx.stx_nlink;
  st->st_uid = sx.stx_uid;
  st->st_gid = sx.stx_gid;
  st->st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
  st->st_size = static_cast<off_t>(sx.stx_size);
  st->st_blksize = static_cast<blksize_t>(sx.stx_blksize);
  st->st_blocks = static_cast<blkcnt_t>(sx.stx_blocks);
  st->st_atim = {sx.stx_atime.tv_sec, sx.stx_atime.tv_nsec};
  st->st_mtim = {sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec};
  st->st_ctim = {sx.stx_ctime.tv_sec, sx.stx_ctime.tv_nsec};
  if ((sx.stx_mask & STATX_DIOALIGN) != 0 && sx.stx_dio_mem_align != 0 && sx.stx_dio_offset_align != 0)
    *align = std::max(sx.stx_dio_mem_align, sx.stx_dio_offset_align);
  return 0;
}

// Where the anonymous file of t is made, relative to t.dst_dirfd(): "."
// (a tree's directory, or a pair's whose directory the call holds), or the
// directory part of a pair's whole path ("/" for "/name").
std::string anon_dir(const FileTask& t) {
  const std::string_view rel(t.dst_rel());
  const size_t slash = t.dir == nullptr ? rel.rfind('/') : std::string_view::npos;
  if (slash == std::string_view::npos) return ".";
  return std::string(rel.substr(0, slash == 0 ? 1 : slash));
}

// What a ring worker keeps between copy calls on its pool thread: the ring
// (SINGLE_ISSUER ties it to this thread), its registered buffers and the
// slots.  Between calls the ring is clean: nothing in flight, the SQ and CQ
// empty, no direct descriptor installed.
struct RingKit {
  // Destroyed in reverse order: the ring (declared last) goes before the
  // buffers registered with it.
  std::unique_ptr<BufferPool> pool;
  std::vector<Slot> slots;
  std::vector<uint32_t> free;  // free slots
  Ring ring;
  uint32_t qd = 0;
  uint32_t chunk = 0;
  unsigned iowq_max_workers = 0;
  bool fixed_bufs = false;
  bool fd_install = false;  // the kernel has IORING_OP_FIXED_FD_INSTALL (6.8)

  // Builds a ring of qd files in flight with chunk-byte buffers.  0 or -errno.
  int build(uint32_t depth, uint32_t chunk_bytes, unsigned iowq) noexcept {
    qd = std::max(1u, depth);
    chunk = chunk_bytes;
    iowq_max_workers = iowq;
    unsigned entries = 1;
    while (entries < qd * FileCopy::kMaxOps + 1) entries <<= 1;
    if (const int ret = ring.init(entries, qd, iowq); ret < 0) return ret;
    try {
      pool = std::make_unique<BufferPool>(qd, chunk);
      slots.resize(qd);
      free.reserve(qd);
    } catch (...) {
      return -ENOMEM;
    }
    fixed_bufs = ring.register_buffers(pool->iovecs()) == 0;
    fd_install = uring_has_op(ring.get(), kOpFixedFdInstall);
    for (uint32_t i = qd; i > 0; --i) free.push_back(i - 1);
    return 0;
  }

  void clear() noexcept {
    ring.exit();  // before the buffers registered with it
    pool.reset();
    slots.clear();
    free.clear();
    qd = chunk = 0;
    fixed_bufs = fd_install = false;
  }

  bool fits(const Job& job) const noexcept {
    return ring.ok() && qd == std::max(1u, job.ring_depth) && chunk == job.chunk &&
           iowq_max_workers == job.cfg.iowq_max_workers;
  }

  // After a job: whether the ring is fit for the next one.  Takes what the
  // kernel still has to say (a cancel's completion) and closes any direct
  // descriptor a failed file left installed.  troubled: the job failed a
  // file or was cancelled; a job that copied every file closed every
  // descriptor it opened and sent no cancel, so the checks that cost system
  // calls are skipped.
  bool settle(bool troubled) noexcept {
    if (!ring.ok() || free.size() != qd) return false;
    io_uring* r = ring.get();
    if (io_uring_sq_ready(r) > 0 && io_uring_submit(r) < 0) return false;
    io_uring_cqe* cqe = nullptr;
    if (troubled) {
      __kernel_timespec ts{0, 0};
      io_uring_wait_cqe_timeout(r, &cqe, &ts);  // runs deferred task work
    }
    unsigned head, seen = 0;
    bool stray = false;
    io_uring_for_each_cqe(r, head, cqe) {
      ++seen;
      stray = stray || cqe->user_data != kCancelTag;  // every slot is free: nothing else may come
    }
    io_uring_cq_advance(r, seen);
    if (stray) return false;
    if (!troubled) return true;
    std::vector<int> none;
    try {
      none.assign(qd, -1);
    } catch (...) {
      return false;
    }
    return io_uring_register_files_update(r, 0, none.data(), qd) == static_cast<int>(qd);
  }
};

class UringWorker {
 public:
  // Drives job on the ring, buffers and slots of kit (set up by setup()).
  UringWorker(Job& job, RingKit& kit)
      : job_(job), cfg_(job.cfg), pool_(kit.pool), slots_(kit.slots), free_(kit.free), ring_(kit.ring),
        kit_(kit), adaptive_(job.inline_copies && nowait_reads_supported()) {}

  // Makes kit fit this job: reuses it when the job wants the same ring, else
  // builds it anew; gives every slot the digests the job's flags ask for.
  // The adaptive engine builds a new ring only when a file first needs it
  // (build_late): a tree in the page cache is copied without one, and
  // without pinning its registered buffers (32 MiB for two rings).
  int setup() {
    if (!kit_.fits(job_)) {
      kit_.clear();
      if (adaptive_) return 0;
      if (const int ret = kit_.build(job_.ring_depth, job_.chunk, cfg_.iowq_max_workers); ret < 0) return ret;
    }
    return adopt();
  }

  // The ring for the first file that needs it (adaptive).  false: it could
  // not be built; this worker's files are then copied synchronously.
  bool build_late() noexcept {
    if (late_error_ < 0) return false;
    int ret = kit_.build(job_.ring_depth, job_.chunk, cfg_.iowq_max_workers);
    if (ret == 0) ret = adopt();
    if (ret == 0) return true;
    kit_.clear();
    late_error_ = ret;
    return false;
  }

  // -errno when build_late could not build the ring (the job then fell back
  // to synchronous copies, as when setup fails), else 0.
  int late_error() const noexcept { return late_error_; }

  // Takes a built kit: its parameters, and the digests each slot needs.
  int adopt() {
    qd_ = kit_.qd;
    fixed_bufs_ = kit_.fixed_bufs;
    fd_install_ = kit_.fd_install;
    try {
      for (Slot& s : slots_) {
        if (!cfg_.has(USYNC_HASH_MD5))
          s.md5.reset();
        else if (!s.md5)
          s.md5 = std::make_unique<Md5>();
        if (!cfg_.has(USYNC_VERIFY))
          s.digest.reset();
        else if (!s.digest)
          s.digest = std::make_unique<Digest>();
      }
    } catch (...) {
      return -ENOMEM;
    }
    built_ = true;
    return 0;
  }

  void run() noexcept {
    std::vector<FileTask> local;
    // The cached files this thread copied whose MD5s wait to be hashed
    // together (StagedFiles) hold pointers into local: finished before it
    // is cleared, before this thread waits, and when run ends.
    struct FinishStaged {
      UringWorker& w;
      ~FinishStaged() { w.inline_staged_.finish_all(w.job_); }
    } finish_staged{*this};
    size_t next = 0;
    bool cancel_sent = false;
    for (;;) {
      // Fill free slots (before the ring is built: take files until one
      // needs it).
      while ((!built_ || !free_.empty()) && !job_.cancelled()) {
        if (next == local.size()) {
          inline_staged_.finish_all(job_);
          local.clear();
          next = 0;
          if (!job_.small_q.pop(local, active_ == 0)) break;
          continue;
        }
        FileTask& t = local[next++];
        if (t.existing && up_to_date(job_, t)) {  // the quick check, inline: a cached stat
          FileResult skip;
          skip.skipped = true;
          job_.finish_file(t, skip);
          continue;
        }
        if (adaptive_ && !t.probed && probe_now() && copy_inline(t)) continue;
        if (!built_ && !build_late()) {
          copy_blocking(t);
          continue;
        }
        start(std::move(t));
      }
      if (job_.cancelled()) {
        job_.stop();  // closed queues: nothing can arrive after the drain below
        for (; next < local.size(); ++next) job_.abandon_file(local[next]);
        inline_staged_.finish_all(job_);
        local.clear();
        next = 0;
        while (job_.small_q.pop(local, false)) {
          for (FileTask& t : local) job_.abandon_file(t);
          local.clear();
        }
        // Whatever waits in the kernel (a read of something that never
        // answers, an open stuck in io-wq) is cancelled, not waited for.
        if (active_ > 0 && !cancel_sent) cancel_sent = send_cancel();
      }
      if (active_ == 0) {
        if (next < local.size()) continue;
        if (job_.cancelled() || job_.small_q.closed_and_empty()) break;
        continue;  // pop(wait) above blocks for the next batch
      }
      inline_staged_.finish_all(job_);  // before waiting
      // Wake up now and then even without completions, to see a cancel.
      __kernel_timespec ts{0, 50 * 1000 * 1000};
      io_uring_cqe* cqe = nullptr;
      const int ret = io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, &ts, nullptr);
      if (ret == -ETIME) cancel_sent = false;  // cancel again what is still there
      if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
        // The ring itself broke: fail what is in flight, then copy the rest
        // (this batch and the queue) synchronously; nothing is dropped.
        std::vector<FileTask> retry = fatal();
        for (; next < local.size(); ++next) retry.push_back(std::move(local[next]));
        finish_synchronously(retry, 0);
        return;
      }
      reap();
    }
  }

 private:
  // The adaptive engine: a file whose source is all in the page cache (its
  // path in the dcache, its data in memory) is copied right here with plain
  // system calls, the cheapest way when nothing blocks; only a file that
  // would wait for the device goes to the ring, where its I/O overlaps with
  // the others'.  io_uring itself would send each create to io-wq (O_CREAT
  // opens are always punted), so the ring costs more than it saves on a
  // cached file.  Returns false when the file is the ring's to copy.
  // Whether to try the next file inline.  A probe that misses costs its
  // system calls (openat2, fstat, preadv2, close) on this thread, which is
  // what feeds the ring: after consecutive misses the probes thin out
  // exponentially (1, 2, 4 … 64 files apart), and the first hit brings back
  // a probe for every file.  Cache state comes in runs (a tree written or
  // read together), so a cold tree costs about one probe in 64 files and a
  // warm one loses nothing.
  bool probe_now() noexcept {
    if (skip_ == 0) return true;
    --skip_;
    return false;
  }

  // This thread's own buffer and digests for the copies it makes itself
  // (copy_inline, copy_blocking); false when they cannot be allocated.
  bool inline_ready() noexcept {
    if (inline_buf_size_ != job_.chunk) {
      inline_buf_.reset(new (std::nothrow) char[job_.chunk]);
      inline_buf_size_ = inline_buf_ ? job_.chunk : 0;
      if (!inline_buf_) return false;
    }
    if (cfg_.has(USYNC_HASH_MD5) && !inline_md5_) inline_md5_.reset(new (std::nothrow) Md5);
    if (cfg_.has(USYNC_VERIFY) && !inline_digest_) inline_digest_.reset(new (std::nothrow) Digest);
    return !(cfg_.has(USYNC_HASH_MD5) && !inline_md5_) && !(cfg_.has(USYNC_VERIFY) && !inline_digest_);
  }

  bool copy_inline(FileTask& t) noexcept {
    if (!inline_ready()) return false;
    // What is queued for the ring goes to the kernel before this thread
    // turns to a copy of its own.
    if (built_ && io_uring_sq_ready(ring_.get()) > 0) io_uring_submit(ring_.get());
    if (!copy_if_cached(job_, t, inline_buf_.get(), inline_buf_size_, inline_md5_.get(), inline_digest_.get(),
                        &inline_staged_)) {
      backoff_ = std::min<uint32_t>(backoff_ == 0 ? 1 : backoff_ * 2, 64);
      skip_ = backoff_ - 1;
      return false;
    }
    backoff_ = 0;
    if (active_ > 0 && io_uring_cq_ready(ring_.get()) > 0) reap();
    return true;
  }

  // A file for a ring that could not be built (build_late): copied here,
  // waiting for the device if need be.
  void copy_blocking(FileTask& t) noexcept {
    if (!inline_ready()) {
      job_.finish_file(t, FileResult{ENOMEM, USYNC_STEP_READ});
      return;
    }
    if (inline_md5_) inline_md5_->reset();
    job_.finish_file(t, copy_file_sync(job_, t, inline_buf_.get(), inline_buf_size_, inline_md5_.get(),
                                       inline_digest_.get()));
  }

  // Whether a checked source of the ring (adaptive engine) is to be read
  // with O_DIRECT, and if so its descriptor switched to it.  These are the
  // files the adaptive engine found, or took to be, not in the page cache:
  // a buffered read would put every byte there (page allocation, LRU,
  // readahead) and then copy it out again to the ring's buffer; a direct
  // read lands it in the buffer itself, which is one copy of every byte
  // less and no cache filled with a tree that is read once.  Measured on
  // the mixed set cold into a tmpfs (bench run 21): 6.4 s and 5.0 s of
  // system time, against 8.8 s and 15.3 s with every read buffered; but in
  // run 23, where other tools had read the set just before, 6.1 s against
  // 5.2 s: whole-file readahead gains when the disk answers faster than
  // its 128 KiB reads do (README, Known limits).
  // align: what statx said the file's direct I/O needs (0: none); the
  // buffers are page-aligned and reads start at multiples of the chunk, so
  // an alignment up to kDirectAlign is met.  The switch also drops
  // O_NONBLOCK (the open's guard against FIFOs, done with now): io_uring
  // would return EAGAIN for a direct read on a full device queue rather
  // than wait for it.
  bool read_direct(int fd, uint32_t align) noexcept {
    return align != 0 && align <= kDirectAlign && fcntl(fd, F_SETFL, O_DIRECT) == 0;
  }

  bool send_cancel() noexcept {
    io_uring_sqe* sqe = ring_.sqe();
    if (sqe == nullptr) return false;
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, kCancelTag);
    return true;
  }

  void start(FileTask&& t) noexcept {
    const uint32_t i = free_.back();
    free_.pop_back();
    Slot& s = slots_[i];
    s.task = std::move(t);
    s.active = true;
    s.bulk = false;
    s.direct = false;
    s.src_fd = -1;
    s.dst_fd = -1;
    // A tree's file is written as an anonymous file where the destination
    // has them, as the synchronous engine does: it gets its name (linkat)
    // only when complete, and no temporary name is made, renamed and looked
    // up again (measured: rename was 12% of a cold copy's CPU).
    // A file in a directory still under its temporary name is made under
    // its own name instead (FileTask::replace false): no link to make.
    // So is a pair's (usync_copy_files): a killed call leaves nothing,
    // where a temporary name would stay (no walk of a pair's directory
    // would remove it).  s.name is then where the anonymous file is made:
    // "." (in dst_dirfd()), or the directory part of a pair's whole path
    // (one whose directory the call does not hold open, PairDirs).
    s.anon = (fd_install_ || dst_inline_) && s.task.replace && job_.tmpfile_ok.load(std::memory_order_relaxed);
    s.buf = pool_->acquire();
    if (s.md5) s.md5->reset();
    if (s.digest) s.digest->reset();
    // --verify needs the file's pages written back before it can drop and
    // re-read them: that sync goes through the ring too (an fdatasync
    // without --fsync), so that files sync in parallel on io-wq and the
    // read-back's own fdatasync finds nothing left to do.
    s.fc.start(job_.chunk, cfg_.has(USYNC_FSYNC) || cfg_.has(USYNC_VERIFY), s.anon, dst_inline_);
    try {
      if (s.anon)
        s.name = anon_dir(s.task);
      else
        s.name = s.task.create_name();
    } catch (...) {
      s.fc.abort(ENOMEM);
    }
    ++active_;
    advance(i);
  }

  // note_stats for a slot's file: its source through the descriptor while
  // it is open, else as apply() saw it just before the ring closed it.
  void note_slot_stats(const Slot& s, int dst_fd, FileResult& r) const noexcept {
    note_stats(job_, s.src_fd, dst_fd, r);
    if (s.src_fd < 0 && s.has_src_stat) {
      r.has_src_stat = true;
      r.src_stat = s.src_stat;
    }
  }

  void advance(uint32_t i) noexcept {
    Slot& s = slots_[i];
    OpReq ops[FileCopy::kMaxOps];
    for (;;) {
      if (job_.cancelled() && !s.fc.finished()) s.fc.abort(ECANCELED);
      const int n = s.fc.next(ops);
      if (n == 0) {
        finish(i);
        return;
      }
      s.inflight = s.nops = n;
      // The source is a plain descriptor: it is closed here, after the rest
      // of its batch, not by the ring, so that the process (and TSan) sees
      // the descriptor go before its number is handed out again.  It is
      // always the last op of a chain, so the op before it ends the chain.
      for (int k = 1; k < n; ++k)
        if (ops[k].kind == OpKind::kCloseSrc) ops[k - 1].link = Link::kNone;
      bool cancel_chain = false;  // an op done inline failed: skip the rest of its chain
      for (int k = 0; k < n; ++k) {
        s.kinds[k] = ops[k].kind;
        s.lens[k] = ops[k].len;
        const bool linked_from_prev = k > 0 && ops[k - 1].link != Link::kNone;
        if (ops[k].kind == OpKind::kCloseSrc) {
          complete_inline(s, k, kCloseLater);
          continue;
        }
        if (cancel_chain && linked_from_prev) {
          complete_inline(s, k, -ECANCELED);
          continue;
        }
        cancel_chain = false;
        const int res = prep(i, k, s, ops[k]);
        if (res != kSubmitted) {
          complete_inline(s, k, res);
          // A short write breaks a chain as it does on the ring.
          cancel_chain = res < 0 || (ops[k].kind == OpKind::kWrite && static_cast<uint32_t>(res) != ops[k].len);
        }
      }
      if (s.inflight > 0) return;
      apply(s);  // everything completed inline: plan the next batch now
    }
  }

  void complete_inline(Slot& s, int k, int res) noexcept {
    s.res[k] = res;
    --s.inflight;
  }

  static constexpr int kSubmitted = INT32_MIN;
  static constexpr int kCloseLater = INT32_MIN + 1;  // kCloseSrc: done in apply()

  // Queues op k of slot i's batch; returns kSubmitted, or the op's result when
  // it could not be queued (no SQE available) and so completed inline.
  int prep(uint32_t i, int k, Slot& s, const OpReq& op) noexcept {
    if (dst_inline_ && is_dst_op(op.kind)) return run_dst(s, op);
    io_uring_sqe* sqe = ring_.sqe();
    // The SQ holds kMaxOps per slot, so this cannot happen; never lose the op.
    if (sqe == nullptr) return -EBUSY;
    char* buf = pool_->data(s.buf);
    switch (op.kind) {
      case OpKind::kOpenSrc:
        if (s.task.dir != nullptr && test_seams.before_open_src != nullptr)
          test_seams.before_open_src(s.task.src_dirfd(), s.task.src_rel());
        io_uring_prep_openat(sqe, s.task.src_dirfd(), s.task.src_rel(), s.task.src_open_flags(), 0);
        break;
      case OpKind::kRead: {
        // O_DIRECT reads whole blocks: the tail's is rounded up (the file
        // ends there, or apply() cuts what it grew by since).
        const uint32_t len =
            s.direct ? ((op.len + kDirectAlign - 1) & ~(kDirectAlign - 1)) - test_seams.direct_read_trim : op.len;
        if (fixed_bufs_)
          io_uring_prep_read_fixed(sqe, s.src_fd, buf, len, op.offset, static_cast<int>(s.buf));
        else
          io_uring_prep_read(sqe, s.src_fd, buf, len, op.offset);
        break;
      }
      case OpKind::kCloseSrc: return -EINVAL;  // never submitted: advance() defers it to apply()
      case OpKind::kOpenDst:
        if (s.anon)  // readable too when it is to be read back (verify)
          io_uring_prep_openat_direct(sqe, s.task.dst_dirfd(), s.name.c_str(), O_TMPFILE | (s.digest ? O_RDWR : O_WRONLY),
                                      cfg_.create_mode(s.task.mode), i);
        else
          io_uring_prep_openat_direct(sqe, s.task.dst_dirfd(), s.name.c_str(), O_WRONLY | O_CREAT | O_EXCL,
                                      cfg_.create_mode(s.task.mode), i);
        break;
      case OpKind::kInstallDst:  // a plain descriptor (O_CLOEXEC) of direct descriptor i
        io_uring_prep_rw(kOpFixedFdInstall, sqe, static_cast<int>(i), nullptr, 0, 0);
        sqe->flags |= IOSQE_FIXED_FILE;
        break;
      case OpKind::kWrite:
        if (fixed_bufs_)
          io_uring_prep_write_fixed(sqe, static_cast<int>(i), buf + op.buf_off, op.len, op.offset,
                                    static_cast<int>(s.buf));
        else
          io_uring_prep_write(sqe, static_cast<int>(i), buf + op.buf_off, op.len, op.offset);
        sqe->flags |= IOSQE_FIXED_FILE;
        break;
      case OpKind::kFsyncDst:
        io_uring_prep_fsync(sqe, static_cast<int>(i), cfg_.has(USYNC_FSYNC) ? 0 : IORING_FSYNC_DATASYNC);
        sqe->flags |= IOSQE_FIXED_FILE;
        break;
      case OpKind::kCloseDst: io_uring_prep_close_direct(sqe, i); break;
    }
    if (op.link == Link::kSoft) sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(sqe, (static_cast<uint64_t>(i) << 8) | static_cast<uint64_t>(k));
    return kSubmitted;
  }

  static bool is_dst_op(OpKind kind) noexcept {
    return kind == OpKind::kOpenDst || kind == OpKind::kWrite || kind == OpKind::kInstallDst ||
           kind == OpKind::kCloseDst;
  }

  // dst_inline_: a destination op run here with a plain system call; its
  // result as the ring would give it (a count, a descriptor, or -errno).
  // The destination is a plain descriptor throughout (s.dst_fd): "install"
  // hands over that same descriptor, and the close that follows an install
  // leaves it to finish(), which names the file through it.
  int run_dst(Slot& s, const OpReq& op) noexcept {
    if (op.kind != OpKind::kOpenDst && s.dst_fd < 0) return -EBADF;  // a driver bug: never write elsewhere
    int ret = 0;
    switch (op.kind) {
      case OpKind::kOpenDst:
        if (s.anon)
          ret = openat(s.task.dst_dirfd(), s.name.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, cfg_.create_mode(s.task.mode));
        else
          ret = openat(s.task.dst_dirfd(), s.name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                       cfg_.create_mode(s.task.mode));
        if (ret >= 0) s.dst_fd = ret;
        break;
      case OpKind::kWrite: {
        const ssize_t n = pwrite(s.dst_fd, pool_->data(s.buf) + op.buf_off, op.len, static_cast<off_t>(op.offset));
        ret = n < 0 ? -1 : static_cast<int>(n);
        break;
      }
      case OpKind::kInstallDst: ret = s.dst_fd; break;
      case OpKind::kCloseDst:
        if (s.anon) break;  // installed: finish() closes it
        ret = ::close(s.dst_fd);
        s.dst_fd = -1;
        break;
      default: return -EINVAL;
    }
    return ret < 0 ? -errno : ret;
  }

  void reap() noexcept {
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    // Completions may queue new SQEs (advance); that is fine while iterating.
    io_uring_for_each_cqe(ring_.get(), head, cqe) {
      ++seen;
      if (cqe->user_data == kCancelTag) continue;
      const auto i = static_cast<uint32_t>(cqe->user_data >> 8);
      const auto k = static_cast<int>(cqe->user_data & 0xff);
      Slot& s = slots_[i];
      s.res[k] = cqe->res;
      if (--s.inflight == 0) {
        apply(s);
        advance(i);
      }
    }
    io_uring_cq_advance(ring_.get(), seen);
  }

  // Feeds a completed batch to the state machine in batch order (the order
  // of the chain), whatever order the completions arrived in.
  void apply(Slot& s) noexcept {
    for (int k = 0; k < s.nops; ++k) {
      const OpKind kind = s.kinds[k];
      int res = s.res[k];
      if (res == kCloseLater) {
        // Closed only when the chain before it ran through, as a linked
        // close would be; else the source stays open for the next batch.
        const bool broken = k > 0 && chain_broken(s, k);
        // With xattrs or ACLs to copy the source stays open until finish()
        // has read them through it (the file whose bytes were copied).
        if (!broken && test_seams.after_read_src != nullptr) test_seams.after_read_src(s.src_fd);
        if (!broken && !keep_src_ && job_.results != nullptr) s.has_src_stat = stat_of(s.src_fd, &s.src_stat);
        res = broken ? -ECANCELED : (keep_src_ ? 0 : (::close(s.src_fd) == 0 ? 0 : -errno));
      }
      if (kind == OpKind::kRead && s.direct) {
        if (res > static_cast<int>(s.lens[k])) {
          res = static_cast<int>(s.lens[k]);  // the file grew into the rounded-up tail: copied as it was
        } else if (res == -EINVAL) {
          // The filesystem refused this direct read after all: the same read
          // again, through the page cache (the state machine never saw it).
          s.direct = false;
          if (fcntl(s.src_fd, F_SETFL, 0) == 0) continue;
        }
        s.res[k] = res;
      }
      if (kind == OpKind::kRead && res > 0 && s.md5) s.md5->update(pool_->data(s.buf), static_cast<size_t>(res));
      if (kind == OpKind::kRead && res > 0 && s.digest) s.digest->update(pool_->data(s.buf), static_cast<size_t>(res));
      if (kind == OpKind::kFsyncDst && res == 0 && test_seams.on_fsync != nullptr) test_seams.on_fsync(false);
      if (kind == OpKind::kWrite && res > 0) job_.add_bytes(static_cast<uint64_t>(res));
      if (kind == OpKind::kCloseSrc && res != -ECANCELED && !keep_src_) s.src_fd = -1;
      if (kind == OpKind::kInstallDst && res >= 0) s.dst_fd = res;
      if (kind == OpKind::kOpenSrc && res < 0 && res != -ECANCELED) {
        int step = USYNC_STEP_OPEN_SRC;
        const int err = s.task.open_src_error(-res, &step);
        if (step == USYNC_STEP_CHANGED) s.fc.source_changed(err);  // a symlink swapped in
      }
      s.fc.complete(kind, res);
      if (kind == OpKind::kOpenSrc && res >= 0) {
        s.src_fd = res;
        struct stat st {};
        uint32_t dio_align = 0;
        const int err = stat_source(res, &st, direct_ok_ ? &dio_align : nullptr) != 0 ? errno : s.task.check_source(st);
        if (err == 0 && ((s.task.size >= cfg_.large_threshold && (!s.task.walked || job_.large_on_rings)) ||
                         (job_.large_on_rings && sparse_source(st)))) {
          // Queued from the listing alone, its size unknown to the walker,
          // or with no bulk thread to take it (Job::large_on_rings): a large
          // file is not the ring's (no FICLONE or copy_file_range here), nor
          // a sparse one under -S (no holes).  The source is closed and
          // finish() copies it, as a bulk thread would.
          s.bulk = true;
          s.fc.source_changed(EFBIG);
        } else if (err == 0) {
          job_.sized(s.task);
          s.fc.source_checked(s.task.size);
          s.direct = s.task.size >= kDirectMin && read_direct(res, dio_align);
          if (test_seams.after_check_src != nullptr) test_seams.after_check_src(res);
        } else {
          s.fc.source_changed(err);
        }
      }
    }
    s.nops = 0;
  }

  // -S: a source with holes, which copy_file_sync copies segment by segment.
  bool sparse_source(const struct stat& st) const noexcept {
    return cfg_.has(USYNC_SPARSE) && static_cast<uint64_t>(st.st_blocks) * 512 < static_cast<uint64_t>(st.st_size);
  }

  // Whether the ops before op k did not all run through: one failed, was
  // cancelled, or came up short (which also breaks an io_uring link).  A
  // batch that closes the source holds one chain ending in that close (or,
  // when failing, starts with it).
  static bool chain_broken(const Slot& s, int k) noexcept {
    for (int j = 0; j < k; ++j) {
      const int r = s.res[j];
      if (r < 0) return true;
      if ((s.kinds[j] == OpKind::kRead || s.kinds[j] == OpKind::kWrite) && static_cast<uint32_t>(r) != s.lens[j])
        return true;
    }
    return false;
  }

  void finish(uint32_t i) noexcept {
    Slot& s = slots_[i];
    if (s.src_fd >= 0 && !(keep_src_ && s.fc.done())) {  // only if a close never ran: never leak it
      ::close(s.src_fd);
      s.src_fd = -1;
    }
    FileResult r;
    bool again = false;  // copy it synchronously: the destination refused an anonymous file
    if (s.fc.done() && s.anon) {
      r.bytes = s.fc.bytes_written();
      int step = USYNC_STEP_NONE;
      // Times, mode, xattrs, then (synced and read back as asked) the name.
      int err = s.dst_fd < 0 ? EBADF
                             : publish_anonymous(job_, s.task, s.src_fd, s.dst_fd, s.digest.get(), r.bytes,
                                                 pool_->data(s.buf), job_.chunk, &step, /*synced=*/true);
      const int fd = s.dst_fd;
      s.dst_fd = -1;
      if (err == 0) note_slot_stats(s, fd, r);
      if (fd >= 0 && ::close(fd) != 0 && err == 0) {
        err = errno;  // already published: a write-back error of a local filesystem
        step = USYNC_STEP_CLOSE;
      }
      if (err != 0) {
        r.error = err;
        r.step = step;
      } else if (s.md5) {
        s.md5->final(r.md5);
        r.has_md5 = true;
      }
    } else if (s.fc.done()) {
      r.bytes = s.fc.bytes_written();
      int step = USYNC_STEP_NONE;
      if (const int err = verify(s); err != 0) {
        r.error = err;
        r.step = err == ECANCELED ? USYNC_STEP_CANCELED : USYNC_STEP_VERIFY;
        unlinkat(s.task.dst_dirfd(), s.name.c_str(), 0);  // never published
      } else if (const int err2 = finalize_file(job_, s.task, s.name, &step, s.src_fd); err2 != 0) {
        r.error = err2;
        r.step = step;
      } else {
        note_slot_stats(s, -1, r);  // the copy was closed before its times were set
        if (s.md5) {
          s.md5->final(r.md5);
          r.has_md5 = true;
        }
      }
    } else if (s.bulk) {  // large after all (apply): copied here, by the bulk path
      if (job_.cancelled()) {
        r.error = ECANCELED;
        r.step = USYNC_STEP_CANCELED;
      } else {
        again = true;
      }
    } else {
      r.error = s.fc.error();
      r.step = s.fc.step();
      if (!s.anon) {
        if (s.fc.dst_created()) {
          unlinkat(s.task.dst_dirfd(), s.name.c_str(), 0);
        } else if (!s.task.replace && r.step == USYNC_STEP_OPEN_DST && r.error == EEXIST && !job_.cancelled()) {
          again = true;  // its own name is taken (another run): copy_file_sync replaces that file
        }
      } else if (r.step == USYNC_STEP_OPEN_DST && !s.fc.dst_created() && !job_.cancelled() &&
                 tmpfile_refused(r.error)) {
        // No O_TMPFILE here (FUSE, NFS, ...): temporary names from now on,
        // as the synchronous engine learns it (Job::tmpfile_ok).
        job_.tmpfile_ok.store(false, std::memory_order_relaxed);
        again = true;
      }
      // Short of descriptors for a moment (the source's open, the
      // destination's, an install): nothing of it is left under any name
      // (removed above, or anonymous), and copy_file_sync waits for a
      // descriptor where it opens (open_waiting).
      if ((r.error == EMFILE || r.error == ENFILE) && !job_.cancelled()) again = true;
    }
    if (s.dst_fd >= 0) {  // an anonymous file that failed: it goes with its last descriptor
      ::close(s.dst_fd);
      s.dst_fd = -1;
    }
    if (s.src_fd >= 0) {  // kept open for finalize_file (keep_src_)
      ::close(s.src_fd);
      s.src_fd = -1;
    }
    if (again) {
      if (s.md5) s.md5->reset();  // the chain had read (and hashed) a first chunk
      if (s.digest) s.digest->reset();
      r = copy_file_sync(job_, s.task, pool_->data(s.buf), job_.chunk, s.md5.get(), s.digest.get());
    }
    job_.finish_file(s.task, r);
    pool_->release(s.buf);
    s.buf = BufferPool::kNone;
    s.active = false;
    s.has_src_stat = false;
    s.task = FileTask();
    --active_;
    free_.push_back(i);
  }

  // USYNC_VERIFY: reads the finished temporary back and compares it with
  // what was read from the source, before it gets its final name.  This
  // runs synchronously on the ring's thread (open, fdatasync, fadvise,
  // preads): there is no io_uring fadvise-after-sync ordering worth the
  // extra states, and verifying is a mode that trades speed for certainty.
  // Other files in flight on this ring wait meanwhile.  0 or an errno.
  int verify(Slot& s) noexcept {
    if (!s.digest) return 0;
    const int dfd = s.task.dst_dirfd();
    const char* name = s.name.c_str();
    UniqueFd fd(open_waiting(job_, [&] { return openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC); }));
    if (!fd.valid() && errno == EACCES) {
      // Created with a mode its owner may not read (0044: readable to
      // others only, as the source was): lend the owner the read bit for
      // the read-back, then give the temporary its mode back.
      struct stat st {};
      if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
          chmod_nofollow(dfd, name, (st.st_mode & 07777) | S_IRUSR) == 0) {
        fd.reset(openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        const int err = errno;
        if (chmod_nofollow(dfd, name, st.st_mode & 07777) != 0) return errno;
        errno = err;
      }
    }
    if (!fd.valid()) return errno;
    return verify_file(job_, fd.get(), *s.digest, s.fc.bytes_written(), pool_->data(s.buf), job_.chunk);
  }

  void finish_synchronously(std::vector<FileTask>& local, size_t next) noexcept {
    std::unique_ptr<char[]> buf(new (std::nothrow) char[job_.chunk]);
    for (; next < local.size(); ++next) {
      if (job_.cancelled() || !buf) {
        job_.abandon_file(local[next]);
        continue;
      }
      job_.finish_file(local[next], copy_file_sync(job_, local[next], buf.get(), job_.chunk, nullptr));
    }
    run_sync_worker(job_, job_.small_q);
  }

  // The ring itself broke (io_uring_enter refused, say).  First cancel and
  // drain what the kernel still runs (as far as the ring answers), then tear
  // the ring down, and only then remove the names written: a create still in
  // flight must not bring a name back after it was removed.  The files that
  // were in flight are returned, to be copied again synchronously.
  std::vector<FileTask> fatal() noexcept {
    if (send_cancel()) {
      for (int tries = 0; tries < 20 && ops_in_flight(); ++tries) {
        __kernel_timespec ts{0, 50 * 1000 * 1000};
        io_uring_cqe* cqe = nullptr;
        const int ret = io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, &ts, nullptr);
        if (ret < 0 && ret != -ETIME && ret != -EINTR) break;
        reap_after_fatal();
      }
    }
    ring_.exit();
    std::vector<FileTask> retry;
    for (uint32_t i = 0; i < qd_; ++i) {
      Slot& s = slots_[i];
      if (!s.active) continue;
      if (s.src_fd >= 0) ::close(s.src_fd);
      s.src_fd = -1;
      if (s.dst_fd >= 0) ::close(s.dst_fd);  // anonymous: nothing to remove
      s.dst_fd = -1;
      // Ours: a temporary name, or a file made under its own name in a hidden
      // directory (a create the drain completed is not known here: removed
      // whatever happened, so no partial file is left if the retry fails).
      if (!s.anon) unlinkat(s.task.dst_dirfd(), s.name.c_str(), 0);
      try {
        retry.push_back(std::move(s.task));
      } catch (...) {
        job_.finish_file(s.task, FileResult{ENOMEM, USYNC_STEP_WRITE});
      }
      s.active = false;
    }
    active_ = 0;
    return retry;
  }

  bool ops_in_flight() const noexcept {
    for (const Slot& s : slots_)
      if (s.active && s.inflight > 0) return true;
    return false;
  }

  // Takes completions without planning anything new.
  void reap_after_fatal() noexcept {
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(ring_.get(), head, cqe) {
      ++seen;
      if (cqe->user_data == kCancelTag) continue;
      Slot& s = slots_[static_cast<uint32_t>(cqe->user_data >> 8)];
      const auto k = static_cast<int>(cqe->user_data & 0xff);
      --s.inflight;
      if (s.kinds[k] == OpKind::kOpenSrc && cqe->res >= 0) s.src_fd = cqe->res;
    }
    io_uring_cq_advance(ring_.get(), seen);
  }

  Job& job_;
  const Config& cfg_;
  // The kit's (see RingKit), borrowed for this job.
  std::unique_ptr<BufferPool>& pool_;
  std::vector<Slot>& slots_;
  std::vector<uint32_t>& free_;
  Ring& ring_;
  RingKit& kit_;
  uint32_t qd_ = 0;
  uint32_t active_ = 0;
  bool fixed_bufs_ = false;
  bool fd_install_ = false;  // anonymous destinations possible (RingKit::fd_install)
  bool built_ = false;      // the kit is built and adopted (setup, build_late)
  int late_error_ = 0;      // build_late failed: no ring for this job (-errno)
  const bool adaptive_;  // cached files are copied inline (copy_inline)
  // The destination's ops run on this thread (run_dst), only reads and the
  // source's opens on the ring: io_uring sends every create to io-wq.
  // Never with fsync or a read-back: their syncs stay on io-wq, and the
  // read-back needs the file opened for reading.
  const bool dst_inline_ = job_.dst_ops_inline && !cfg_.has(USYNC_FSYNC) && !cfg_.has(USYNC_VERIFY);
  const bool keep_src_ = wants_extra_meta(job_);  // sources stay open until finish()
  // Sources read around the page cache (read_direct): only the adaptive
  // engine's, whose ring gets the uncached files (a forced ring gets every
  // file, cached or not), and only with reads unlinked from the writes
  // (dst_inline_): a rounded-up tail read comes back short, which would
  // break a linked chain.
  static constexpr uint32_t kDirectAlign = 4096;
  // Smaller files are read through the page cache: the copy a direct read
  // saves is a few microseconds less there than the fcntl that switches the
  // descriptor (small4k cold: 1.56 s direct vs 1.52 s buffered, medians of
  // 6 interleaved runs).  The same bound as the threads' kernel-side copy.
  static constexpr uint64_t kDirectMin = 64 * 1024;
  const bool direct_ok_ = adaptive_ && dst_inline_ && job_.chunk % kDirectAlign == 0 && !test_seams.no_direct_reads;
  uint32_t backoff_ = 0;  // files between probes after the last miss (probe_now)
  uint32_t skip_ = 0;     // files still to send to the ring unprobed
  std::unique_ptr<char[]> inline_buf_;
  uint32_t inline_buf_size_ = 0;
  std::unique_ptr<Md5> inline_md5_;
  std::unique_ptr<Digest> inline_digest_;
  StagedFiles inline_staged_{cfg_.has(USYNC_HASH_MD5)};  // copy_inline's MD5s, many at a time
};

// This thread's ring, kept from one job to the next (see RingKit); freed
// when the thread exits.
thread_local std::unique_ptr<RingKit> tls_kit;

}  // namespace

int run_uring_worker(Job& job, bool* used_fallback) noexcept {
  std::unique_ptr<RingKit> kit = std::move(tls_kit);  // dropped unless it proves clean after the job
  std::unique_ptr<UringWorker> w;
  int ret = -ENOMEM;
  try {
    if (!kit) kit = std::make_unique<RingKit>();
    w = std::make_unique<UringWorker>(job, *kit);
    ret = w->setup();
  } catch (...) {
  }
  if (ret < 0) {
    *used_fallback = true;
    w.reset();
    kit.reset();
    run_sync_worker(job, job.small_q);
    return ret;
  }
  w->run();
  ret = w->late_error();
  *used_fallback = ret < 0;
  w.reset();
  const bool troubled = job.cancelled() || job.counters.files_failed.load(std::memory_order_relaxed) > 0;
  if (kit->settle(troubled)) tls_kit = std::move(kit);
  return ret;
}

}  // namespace usync
