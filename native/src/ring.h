// RAII wrapper of one io_uring instance set up for the copy engine:
// SINGLE_ISSUER | DEFER_TASKRUN when the kernel has them, a sparse table of
// direct descriptors, optionally registered buffers, bounded io-wq.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <vector>

namespace usync {

class Ring {
 public:
  Ring() = default;
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // entries: SQ size (the CQ gets twice as many).  files: size of the direct
  // descriptor table.  Returns 0 or -errno.  Must be called on the thread
  // that will submit (SINGLE_ISSUER).
  int init(unsigned entries, unsigned files, unsigned iowq_max_workers) noexcept;
  // Registers buffers for READ_FIXED / WRITE_FIXED; returns 0 or -errno.
  int register_buffers(const std::vector<iovec>& iov) noexcept;

  io_uring* get() noexcept { return &ring_; }
  bool ok() const noexcept { return ok_; }
  // Tears the ring down now (the destructor does it otherwise).  Whatever
  // uses memory registered with it must outlive this call.
  void exit() noexcept;

  // An SQE, submitting queued ones first if the SQ is full (nullptr only if
  // submission itself fails).
  io_uring_sqe* sqe() noexcept;

 private:
  io_uring ring_{};
  bool ok_ = false;
};

// True when this process can create a ring at all (seccomp, sysctl
// kernel.io_uring_disabled and old kernels say no).  *err gets the -errno.
bool uring_available(int* err) noexcept;

// True when the running kernel supports every opcode the engine needs.
bool uring_has_ops(io_uring* ring) noexcept;

// IORING_OP_FIXED_FD_INSTALL (Linux 6.8): a plain descriptor for a direct
// one.  liburing 2.3's headers predate it.
constexpr int kOpFixedFdInstall = 54;

// True when the running kernel supports opcode op.
bool uring_has_op(io_uring* ring, int op) noexcept;

}  // namespace usync
