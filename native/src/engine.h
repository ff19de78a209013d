// The engine behind the C handle: options, the choice between the io_uring
// and the synchronous engine, and the orchestration of one copy call
// (walker thread, worker threads, progress reporting, result).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "job.h"
#include "thread_pool.h"

namespace usync {

// Whether the filesystem of fd (or, with fd < 0, of path's parent
// directory) takes creates and buffered writes cheapest as plain system
// calls on a ring's thread (Job::dst_ops_inline): a local disk or memory
// filesystem, not a network or FUSE one.
bool local_writes(int fd, const std::string& path);

class Engine {
 public:
  // Returns 0 or -errno (-EINVAL for a bad option or exclude pattern).
  static int create(const usync_options* opts, Engine** out) noexcept;
  // Joins the engine's threads (they are idle: destroy never overlaps a
  // call).  In a forked child, which has none of them, leaks them instead.
  ~Engine();

  int copy_tree(const char* src, const char* dst) noexcept;
  int copy_files(const usync_pair* pairs, size_t count, usync_result* results) noexcept;
  void cancel() noexcept;
  void stats(usync_stats* out) const noexcept { counters_.snapshot(out); }
  int kind() const noexcept { return kind_; }
  const Config& config() const noexcept { return cfg_; }

 private:
  Engine() = default;
  int copy_tree_locked(const std::string& src, const std::string& dst);
  int copy_files_locked(const usync_pair* pairs, size_t count, usync_result* results);
  // Runs a prepared job to its end: the walker from root (if any) and the
  // workers; pairs are queued by feed (if any).  Returns the call's result.
  int run(Job& job, Dir* root, std::vector<FileTask>* feed);
  // The engine for a job reading from the filesystem holding path.
  int kind_for(const char* path) const noexcept;
  void begin();
  int finish(Job& job);
  // Calls progress_cb (when set) with the counters as they are now.
  void report_progress(Job& job);
  // -ECHILD in a forked child, -EDEADLK from one of this engine's own
  // callbacks (a call is running), else 0.
  int refuse_call() const noexcept;

  Config cfg_;
  Counters counters_;
  std::atomic<bool> cancel_{false};
  std::mutex run_mu_;
  std::mutex job_mu_;       // guards current_
  Job* current_ = nullptr;  // the running job, for cancel()
  int kind_ = USYNC_ENGINE_SYNC;
  std::atomic<bool> announced_{false};
  pid_t pid_ = 0;  // the process that made the engine (and its threads)
  // The threads of every call (thread_pool.h); destroyed first.
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace usync
