// A bounded multi-producer multi-consumer queue of batches.  Producers block
// while it is full; consumers block while it is empty and open.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

namespace usync {

template <typename T>
class WorkQueue {
 public:
  explicit WorkQueue(size_t capacity) : capacity_(capacity) {}

  // Moves the items of batch in (batch is left empty).  Blocks while the
  // queue holds capacity items or more.  Returns false if the queue was closed.
  bool push(std::vector<T>& batch) {
    if (batch.empty()) return true;
    std::unique_lock lk(mu_);
    not_full_.wait(lk, [&] { return closed_ || size_ < capacity_; });
    if (closed_) return false;
    size_ += batch.size();
    batches_.push_back(std::move(batch));
    batch.clear();
    not_empty_.notify_one();
    return true;
  }

  // Takes one batch.  wait=false returns false at once when empty; wait=true
  // blocks until a batch arrives or the queue is closed and drained.
  bool pop(std::vector<T>& out, bool wait) {
    std::unique_lock lk(mu_);
    if (wait) not_empty_.wait(lk, [&] { return closed_ || !batches_.empty(); });
    if (batches_.empty()) return false;
    out = std::move(batches_.front());
    batches_.pop_front();
    size_ -= out.size();
    not_full_.notify_one();
    return true;
  }

  // No more pushes; consumers drain what is left and then see false.
  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  // Items that can be queued before push blocks.
  size_t capacity() const noexcept { return capacity_; }

  bool closed_and_empty() {
    std::lock_guard lk(mu_);
    return closed_ && batches_.empty();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<std::vector<T>> batches_;
  size_t size_ = 0;
  size_t capacity_;
  bool closed_ = false;
};

}  // namespace usync
