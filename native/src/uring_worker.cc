#include "uring_worker.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "buffer_pool.h"
#include "file_copy.h"
#include "md5.h"
#include "ring.h"
#include "sync_copy.h"

namespace usync {
namespace {

struct Slot {
  FileTask task;
  FileCopy fc;
  std::string name;  // destination name being written (may be a temporary)
  uint32_t buf = BufferPool::kNone;
  int inflight = 0;
  bool active = false;
  std::unique_ptr<Md5> md5;
};

class UringWorker {
 public:
  explicit UringWorker(Job& job) : job_(job), cfg_(job.cfg) {}

  int setup() {
    qd_ = cfg_.queue_depth;
    // The direct-descriptor table counts against RLIMIT_NOFILE: under a low
    // limit (ulimit -n 64) shrink the depth rather than give up the ring.
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
      const auto per_ring = static_cast<uint32_t>(rl.rlim_cur / 4 / std::max(1u, cfg_.workers));
      qd_ = std::max(1u, std::min(qd_, per_ring / 2));
    }
    unsigned entries = 1;
    while (entries < qd_ * FileCopy::kMaxOps) entries <<= 1;
    if (const int ret = ring_.init(entries, qd_ * 2, cfg_.iowq_max_workers); ret < 0) return ret;
    try {
      pool_ = std::make_unique<BufferPool>(qd_, cfg_.chunk_size);
      slots_.resize(qd_);
      if (cfg_.has(USYNC_HASH_MD5))
        for (Slot& s : slots_) s.md5 = std::make_unique<Md5>();
    } catch (...) {
      return -ENOMEM;
    }
    fixed_bufs_ = ring_.register_buffers(pool_->iovecs()) == 0;
    free_.reserve(qd_);
    for (uint32_t i = qd_; i > 0; --i) free_.push_back(i - 1);
    return 0;
  }

  void run() noexcept {
    std::vector<FileTask> local;
    size_t next = 0;
    for (;;) {
      // Fill free slots.
      while (!free_.empty() && !job_.cancelled()) {
        if (next == local.size()) {
          local.clear();
          next = 0;
          if (!job_.small_q.pop(local, active_ == 0)) break;
          continue;
        }
        start(std::move(local[next++]));
      }
      if (job_.cancelled()) {
        job_.stop();  // closed queues: nothing can arrive after the drain below
        for (; next < local.size(); ++next) job_.abandon_file(local[next]);
        local.clear();
        next = 0;
        while (job_.small_q.pop(local, false)) {
          for (FileTask& t : local) job_.abandon_file(t);
          local.clear();
        }
      }
      if (active_ == 0) {
        if (next < local.size()) continue;
        if (job_.cancelled() || job_.small_q.closed_and_empty()) break;
        continue;  // pop(wait) above blocks for the next batch
      }
      const int ret = io_uring_submit_and_wait(ring_.get(), 1);
      if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
        // The ring itself broke: fail what is in flight, then copy the rest
        // (this batch and the queue) synchronously; nothing is dropped.
        fatal(-ret);
        finish_synchronously(local, next);
        return;
      }
      reap();
    }
  }

 private:
  void start(FileTask&& t) noexcept {
    const uint32_t i = free_.back();
    free_.pop_back();
    Slot& s = slots_[i];
    s.task = std::move(t);
    s.active = true;
    s.buf = pool_->acquire();
    if (s.md5) s.md5->reset();
    s.fc.start(s.task.size, cfg_.chunk_size);
    try {
      s.name = s.task.create_name();
    } catch (...) {
      s.fc.abort(ENOMEM);
    }
    ++active_;
    advance(i);
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
      s.inflight = n;
      bool cancel_chain = false;  // an op done inline failed: skip the rest of its chain
      for (int k = 0; k < n; ++k) {
        const bool linked_from_prev = k > 0 && ops[k - 1].link != Link::kNone;
        if (cancel_chain && linked_from_prev) {
          complete_inline(s, ops[k].kind, -ECANCELED);
          continue;
        }
        cancel_chain = false;
        const int res = prep(i, s, ops[k]);
        if (res != kSubmitted) {
          complete_inline(s, ops[k].kind, res);
          cancel_chain = res < 0;
        }
      }
      if (s.inflight > 0) return;
      // Everything completed inline: plan the next batch now.
    }
  }

  void complete_inline(Slot& s, OpKind kind, int res) noexcept {
    s.fc.complete(kind, res);
    --s.inflight;
  }

  static constexpr int kSubmitted = INT32_MIN;

  // Queues one op; returns kSubmitted, or the op's result when it could not
  // be queued (no SQE available) and so completed inline.
  int prep(uint32_t i, Slot& s, const OpReq& op) noexcept {
    io_uring_sqe* sqe = ring_.sqe();
    // The SQ holds kMaxOps per slot, so this cannot happen; never lose the op.
    if (sqe == nullptr) return -EBUSY;
    const unsigned src = i * 2, dst = i * 2 + 1;
    char* buf = pool_->data(s.buf);
    switch (op.kind) {
      case OpKind::kOpenSrc:
        io_uring_prep_openat_direct(sqe, s.task.src_dirfd(), s.task.src_name.c_str(), s.task.src_open_flags(), 0, src);
        break;
      case OpKind::kRead:
        if (fixed_bufs_)
          io_uring_prep_read_fixed(sqe, static_cast<int>(src), buf, op.len, op.offset, static_cast<int>(s.buf));
        else
          io_uring_prep_read(sqe, static_cast<int>(src), buf, op.len, op.offset);
        sqe->flags |= IOSQE_FIXED_FILE;
        break;
      case OpKind::kCloseSrc: io_uring_prep_close_direct(sqe, src); break;
      case OpKind::kOpenDst:
        io_uring_prep_openat_direct(sqe, s.task.dst_dirfd(), s.name.c_str(), O_WRONLY | O_CREAT | O_EXCL,
                                    s.task.mode & 0777, dst);
        break;
      case OpKind::kWrite:
        if (fixed_bufs_)
          io_uring_prep_write_fixed(sqe, static_cast<int>(dst), buf + op.buf_off, op.len, op.offset,
                                    static_cast<int>(s.buf));
        else
          io_uring_prep_write(sqe, static_cast<int>(dst), buf + op.buf_off, op.len, op.offset);
        sqe->flags |= IOSQE_FIXED_FILE;
        break;
      case OpKind::kCloseDst: io_uring_prep_close_direct(sqe, dst); break;
    }
    if (op.link == Link::kSoft) sqe->flags |= IOSQE_IO_LINK;
    if (op.link == Link::kHard) sqe->flags |= IOSQE_IO_HARDLINK;
    io_uring_sqe_set_data64(sqe, (static_cast<uint64_t>(i) << 8) | static_cast<uint64_t>(op.kind));
    return kSubmitted;
  }

  void reap() noexcept {
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    // Completions may queue new SQEs (advance); that is fine while iterating.
    io_uring_for_each_cqe(ring_.get(), head, cqe) {
      ++seen;
      const uint32_t i = static_cast<uint32_t>(cqe->user_data >> 8);
      const auto kind = static_cast<OpKind>(cqe->user_data & 0xff);
      Slot& s = slots_[i];
      if (kind == OpKind::kRead && cqe->res > 0 && s.md5)
        s.md5->update(pool_->data(s.buf), static_cast<size_t>(cqe->res));
      if (kind == OpKind::kWrite && cqe->res > 0) job_.add_bytes(static_cast<uint64_t>(cqe->res));
      s.fc.complete(kind, cqe->res);
      if (--s.inflight == 0) advance(i);
    }
    io_uring_cq_advance(ring_.get(), seen);
  }

  void finish(uint32_t i) noexcept {
    Slot& s = slots_[i];
    FileResult r;
    if (s.fc.done()) {
      r.bytes = s.fc.bytes_written();
      int step = USYNC_STEP_NONE;
      if (const int err = finalize_file(job_, s.task, s.name, &step); err != 0) {
        r.error = err;
        r.step = step;
      } else if (s.md5) {
        s.md5->final(r.md5);
        r.has_md5 = true;
      }
    } else {
      r.error = s.fc.error();
      r.step = s.fc.step();
      if (s.fc.dst_created()) unlinkat(s.task.dst_dirfd(), s.name.c_str(), 0);
    }
    job_.finish_file(s.task, r);
    pool_->release(s.buf);
    s.buf = BufferPool::kNone;
    s.active = false;
    s.task = FileTask();
    --active_;
    free_.push_back(i);
  }

  void finish_synchronously(std::vector<FileTask>& local, size_t next) noexcept {
    std::unique_ptr<char[]> buf(new (std::nothrow) char[cfg_.chunk_size]);
    for (; next < local.size(); ++next) {
      if (job_.cancelled() || !buf) {
        job_.abandon_file(local[next]);
        continue;
      }
      job_.finish_file(local[next], copy_file_sync(job_, local[next], buf.get(), cfg_.chunk_size, nullptr));
    }
    run_sync_worker(job_, job_.small_q);
  }

  // The ring itself broke: every file in flight fails (nothing is left under
  // a final name because each is created with O_EXCL and removed on failure).
  void fatal(int err) noexcept {
    for (uint32_t i = 0; i < qd_; ++i) {
      Slot& s = slots_[i];
      if (!s.active) continue;
      s.fc.abort(err);
      // The ring can no longer close direct descriptors; exiting it does.
      // The create may be in flight: remove the name whether or not it has
      // completed (it is ours alone: O_EXCL in a fresh directory, or a temp).
      unlinkat(s.task.dst_dirfd(), s.name.c_str(), 0);
      FileResult r{err, USYNC_STEP_WRITE};
      job_.finish_file(s.task, r);
      s.active = false;
    }
    active_ = 0;
  }

  Job& job_;
  const Config& cfg_;
  Ring ring_;
  std::unique_ptr<BufferPool> pool_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  uint32_t qd_ = 0;
  uint32_t active_ = 0;
  bool fixed_bufs_ = false;
};

}  // namespace

void run_uring_worker(Job& job, bool* used_fallback) noexcept {
  std::unique_ptr<UringWorker> w;
  int ret = -ENOMEM;
  try {
    w = std::make_unique<UringWorker>(job);
    ret = w->setup();
  } catch (...) {
  }
  if (ret < 0) {
    *used_fallback = true;
    w.reset();
    run_sync_worker(job, job.small_q);
    return;
  }
  *used_fallback = false;
  w->run();
}

}  // namespace usync
