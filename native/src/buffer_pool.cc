#include "buffer_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <new>

namespace usync {

BufferPool::BufferPool(uint32_t count, size_t size) : count_(count) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_ = (size + page - 1) / page * page;
  if (count == 0 || size_ == 0) throw std::bad_alloc();
  mapped_ = size_ * count;
  void* p = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  base_ = static_cast<char*>(p);
  free_.reserve(count);
  for (uint32_t i = count; i > 0; --i) free_.push_back(i - 1);
}

BufferPool::~BufferPool() {
  if (base_ != nullptr) munmap(base_, mapped_);
}

uint32_t BufferPool::acquire() noexcept {
  if (free_.empty()) return kNone;
  const uint32_t i = free_.back();
  free_.pop_back();
  return i;
}

void BufferPool::release(uint32_t index) noexcept {
  if (index < count_) free_.push_back(index);
}

std::vector<iovec> BufferPool::iovecs() const {
  std::vector<iovec> v(count_);
  for (uint32_t i = 0; i < count_; ++i) v[i] = iovec{data(i), size_};
  return v;
}

}  // namespace usync
