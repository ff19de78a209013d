#include "ring.h"

#include <cerrno>
#include <chrono>
#include <thread>

namespace usync {

Ring::~Ring() { exit(); }

void Ring::exit() noexcept {
  if (ok_) io_uring_queue_exit(&ring_);
  ok_ = false;
}

// No IORING_SETUP_ATTACH_WQ: since Linux 5.12 io-wq belongs to the task
// that submits, not to the ring, and without SQPOLL the flag only checks
// that wq_fd is a ring.  Two threads with attached rings still get one
// io-wq each (measured on 6.18: "iou-wrk-<tid>" workers for both tids), so
// the iowq_max_workers cap below is per ring thread either way; a pool
// thread keeps its io-wq (and the cap) for the rings it runs later.
int Ring::init(unsigned entries, unsigned files, unsigned iowq_max_workers) noexcept {
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
  p.cq_entries = entries * 2;
  const io_uring_params want = p;
  int ret = io_uring_queue_init_params(entries, &ring_, &p);
  // An unprivileged user's rings are charged to its RLIMIT_MEMLOCK, and a
  // ring is uncharged when the kernel has torn it down, which it does in the
  // background, after its process is gone: a run right after others of the
  // same user can find the limit briefly used up (seen as one worker of an
  // unprivileged e2e run falling back).  Try again a few times (at most
  // 0.3 s) before this worker settles for plain system calls.
  for (int wait_ms = 10; ret == -ENOMEM && wait_ms <= 160; wait_ms *= 2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    p = want;
    ret = io_uring_queue_init_params(entries, &ring_, &p);
  }
  if (ret == -EINVAL) {  // kernels before 6.1
    p = io_uring_params{};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 2;
    ret = io_uring_queue_init_params(entries, &ring_, &p);
  }
  if (ret < 0) return ret;
  ok_ = true;
  if (!uring_has_ops(&ring_)) return -EOPNOTSUPP;
  if ((ret = io_uring_register_files_sparse(&ring_, files)) < 0) return ret;
  if (iowq_max_workers > 0) {
    unsigned vals[2] = {iowq_max_workers, iowq_max_workers};
    io_uring_register_iowq_max_workers(&ring_, vals);  // best effort
  }
  return 0;
}

int Ring::register_buffers(const std::vector<iovec>& iov) noexcept {
  return io_uring_register_buffers(&ring_, iov.data(), static_cast<unsigned>(iov.size()));
}

io_uring_sqe* Ring::sqe() noexcept {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (s == nullptr) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

bool uring_has_ops(io_uring* ring) noexcept {
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  if (probe == nullptr) return false;
  bool ok = true;
  for (int op : {IORING_OP_OPENAT, IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED, IORING_OP_READ, IORING_OP_WRITE,
                 IORING_OP_CLOSE})
    ok = ok && io_uring_opcode_supported(probe, op);
  io_uring_free_probe(probe);
  return ok;
}

bool uring_has_op(io_uring* ring, int op) noexcept {
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  if (probe == nullptr) return false;
  const bool ok = io_uring_opcode_supported(probe, op);
  io_uring_free_probe(probe);
  return ok;
}

bool uring_available(int* err) noexcept {
  io_uring ring{};
  const int ret = io_uring_queue_init(4, &ring, 0);
  if (ret < 0) {
    *err = ret;
    return false;
  }
  const bool ops = uring_has_ops(&ring);
  // Direct descriptors need 5.19+ (sparse registration).
  const int reg = io_uring_register_files_sparse(&ring, 2);
  io_uring_queue_exit(&ring);
  *err = !ops ? -EOPNOTSUPP : (reg < 0 ? reg : 0);
  return *err == 0;
}

}  // namespace usync
