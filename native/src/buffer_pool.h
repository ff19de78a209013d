// A fixed pool of equally sized, page-aligned I/O buffers allocated once.
// Buffers are handed out by index so they can be registered with a ring
// (io_uring_register_buffers) and used with READ_FIXED / WRITE_FIXED.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace usync {

class BufferPool {
 public:
  // Allocates count * size bytes (size rounded up to a page).  Throws
  // std::bad_alloc on failure (setup time only).
  BufferPool(uint32_t count, size_t size);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  static constexpr uint32_t kNone = UINT32_MAX;

  // Index of a free buffer, or kNone when all are in use.  Not thread-safe:
  // a pool belongs to one worker.
  uint32_t acquire() noexcept;
  void release(uint32_t index) noexcept;

  char* data(uint32_t index) const noexcept { return base_ + static_cast<size_t>(index) * size_; }
  size_t buffer_size() const noexcept { return size_; }
  uint32_t count() const noexcept { return count_; }
  uint32_t available() const noexcept { return static_cast<uint32_t>(free_.size()); }
  // One iovec per buffer, for io_uring_register_buffers.
  std::vector<iovec> iovecs() const;

 private:
  char* base_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;
  uint32_t count_ = 0;
  std::vector<uint32_t> free_;
};

}  // namespace usync
