// The threads of one engine, made on demand and kept across copy calls.
//
// A copy call hands each of its thread bodies (walker, rings, bulk or sync
// workers) to an idle thread, or to a new one when none is idle, so a warm
// engine starts a call without creating threads, and a thread that ran a
// ring keeps that ring (uring_worker.cc) for the next call.  A thread that
// stays idle for the idle timeout exits (freeing what it keeps); the
// destructor wakes and joins every thread.
//
// Not fork-safe: a forked child has none of these threads (Engine refuses
// copy calls there and leaks the pool instead of joining it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace usync {

class ThreadPool {
 public:
  using Task = std::function<void()>;

  explicit ThreadPool(std::chrono::milliseconds idle_timeout) : idle_timeout_(idle_timeout) {}
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs task on an idle thread, or on a new one when none is idle (each
  // task gets a thread of its own at once: tasks may wait on each other).
  // Then, once that thread counts as idle again, runs done on it: a caller
  // that waits for every done knows the pool can give all those threads to
  // its next tasks.  ring: the task keeps per-thread state for tasks like it
  // (an io_uring); it prefers a thread that ran such a task before, others
  // prefer threads that did not.  Throws (std::system_error, bad_alloc) when
  // no thread could be started; then neither task nor done runs.
  void run(Task task, Task done, bool ring);

  // Threads alive now (idle ones included), for tests and stats.
  size_t threads();
  // Whether the calling thread is one of this pool's.
  bool on_pool_thread() const noexcept;

 private:
  struct Worker {
    std::thread thread;
    std::condition_variable cv;
    Task task, done;
    bool assigned = false;  // task and done are set
    bool ring = false;      // ran a ring task: keeps its state
    bool exited = false;    // its loop returned: join and erase it
  };
  void loop(Worker* w) noexcept;
  // Takes the threads that exited out of workers_ (to be joined unlocked).
  std::vector<std::thread> reap_locked();

  const std::chrono::milliseconds idle_timeout_;
  std::mutex mu_;
  std::list<Worker> workers_;  // stable addresses; guarded by mu_
  std::vector<Worker*> idle_;  // waiting for a task, most recent last
  bool stop_ = false;
};

}  // namespace usync
