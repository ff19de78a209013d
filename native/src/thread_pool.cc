#include "thread_pool.h"

#include <pthread.h>

#include <algorithm>

namespace usync {
namespace {

thread_local const ThreadPool* tls_pool = nullptr;

}  // namespace

ThreadPool::~ThreadPool() {
  std::vector<std::thread> all;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    for (Worker& w : workers_) {
      w.cv.notify_one();
      all.push_back(std::move(w.thread));
    }
  }
  // Idle threads wake at once; none runs a task (destroy never overlaps a call).
  for (std::thread& t : all)
    if (t.joinable()) t.join();
}

std::vector<std::thread> ThreadPool::reap_locked() {
  std::vector<std::thread> gone;
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->exited) {
      gone.push_back(std::move(it->thread));
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  return gone;
}

void ThreadPool::run(Task task, Task done, bool ring) {
  std::vector<std::thread> gone;
  {
    std::lock_guard lk(mu_);
    gone = reap_locked();
    // The most recently idle thread of the same kind, else any idle one.
    auto it = std::find_if(idle_.rbegin(), idle_.rend(), [&](const Worker* w) { return w->ring == ring; });
    if (it == idle_.rend() && !idle_.empty()) it = idle_.rbegin();
    Worker* w;
    if (it != idle_.rend()) {
      w = *it;
      idle_.erase(std::next(it).base());
    } else {
      // Room for every thread in idle_ now: the loop never allocates.
      idle_.reserve(workers_.size() + 1);  // may throw: nothing changed
      workers_.emplace_back();
      w = &workers_.back();
      try {
        w->thread = std::thread([this, w] { loop(w); });
      } catch (...) {
        workers_.pop_back();
        throw;
      }
    }
    w->task = std::move(task);
    w->done = std::move(done);
    w->assigned = true;
    w->ring = w->ring || ring;
    w->cv.notify_one();
  }
  // Exited already: quick.  The task is handed over by now, so nothing may
  // throw from here (the caller would think it never started).
  for (std::thread& t : gone) {
    try {
      t.join();
    } catch (...) {  // cannot happen for a thread that is not this one
      if (t.joinable()) t.detach();
    }
  }
}

size_t ThreadPool::threads() {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (const Worker& w : workers_) n += w.exited ? 0 : 1;
  return n;
}

bool ThreadPool::on_pool_thread() const noexcept { return tls_pool == this; }

void ThreadPool::loop(Worker* w) noexcept {
  tls_pool = this;
  pthread_setname_np(pthread_self(), "usync-pool");
  std::unique_lock lk(mu_);
  for (;;) {
    w->cv.wait_for(lk, idle_timeout_, [&] { return w->assigned || stop_; });
    if (!w->assigned) {  // idle for the whole timeout, or the pool is going away
      idle_.erase(std::remove(idle_.begin(), idle_.end(), w), idle_.end());
      w->exited = true;
      return;
    }
    Task task = std::move(w->task), done = std::move(w->done);
    w->task = nullptr;
    w->done = nullptr;
    w->assigned = false;
    lk.unlock();
    task();  // the engine's thread bodies are noexcept
    task = nullptr;
    lk.lock();
    idle_.push_back(w);  // reserved: cannot throw.  Before done: the caller may hand it new work at once
    lk.unlock();
    done();
    done = nullptr;
    lk.lock();
  }
}

}  // namespace usync
