// One copy call: the state shared by the walker, the workers and the caller.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "filter.h"
#include "unique_fd.h"
#include "uringsync/uringsync.h"
#include "work_queue.h"

namespace usync {

// Engine options after defaults are applied.
struct Config {
  uint32_t flags = 0;
  uint32_t workers = 0;       // rings (io_uring engine)
  uint32_t sync_workers = 0;  // threads (synchronous engine)
  bool workers_auto = true;   // neither was set by the caller
  uint32_t queue_depth = 128;
  uint32_t chunk_size = 128 * 1024;
  uint32_t iowq_max_workers = 4;
  uint32_t progress_interval_ms = 200;
  uint64_t large_threshold = 1u << 20;  // files at least this big go to the bulk path
  ExcludeFilter filter;
  usync_error_fn error_cb = nullptr;
  usync_file_done_fn file_done_cb = nullptr;
  usync_progress_fn progress_cb = nullptr;
  void* cb_user = nullptr;

  bool has(uint32_t flag) const noexcept { return (flags & flag) != 0; }
};

// Live counters (snapshot into usync_stats).
struct Counters {
  std::atomic<uint64_t> files_found{0}, bytes_found{0}, files_done{0}, bytes_done{0}, files_failed{0},
      files_excluded{0}, dirs_created{0}, symlinks_created{0}, specials_created{0};
  std::atomic<uint64_t> start_ns{0}, end_ns{0};
  std::atomic<uint32_t> walk_done{0}, engine{0}, workers{0};
  void reset() noexcept;
  void snapshot(usync_stats* out) const noexcept;
};

// A directory being copied.  It lives while anything under it is pending:
// its own listing, each queued file, each child directory.  When the count
// drops to zero its metadata is applied (after all its entries exist, so
// its mtime sticks) and it releases its parent.
struct Dir {
  Dir* parent = nullptr;
  std::string name;  // component in the parent; "" for the root
  UniqueFd src, dst;
  mode_t mode = 0;  // source mode
  timespec atime{}, mtime{};
  bool fresh = false;  // created by this job: files are created in place
  // Set on a new directory whose parent existed before the job (or on a new
  // root): it is built under this temporary name and renamed into place when
  // finished, so a killed copy never leaves a partial file at a final path.
  // For the root it is a full path, for others a name in the parent.
  std::string tmp_name;
  std::atomic<int> pending{1};
};

// One regular file to copy.
struct FileTask {
  Dir* dir = nullptr;    // tree copy: names are relative to dir's fds
  std::string src_name;  // name in dir->src, or a path (pair copies)
  std::string dst_name;  // name in dir->dst, or a path (pair copies)
  uint64_t size = 0;
  mode_t mode = 0;
  timespec atime{}, mtime{};
  uint32_t pair = UINT32_MAX;  // index into the results of a pair copy
  bool replace = false;        // write a temporary name, rename over dst_name

  int src_dirfd() const noexcept;
  int dst_dirfd() const noexcept;
  // Flags for opening the source: a tree entry must still be a regular file
  // (no symlink swapped in); an explicit pair may name a symlink.
  int src_open_flags() const noexcept;
  // Name to create: dst_name, or a fresh temporary beside it.
  std::string create_name() const;
};

struct FileResult {
  int error = 0;  // positive errno
  int step = USYNC_STEP_NONE;
  uint64_t bytes = 0;
  bool has_md5 = false;
  uint8_t md5[16] = {};
};

class Job {
 public:
  Job(const Config& cfg, Counters& counters, std::atomic<bool>& cancel, int engine_kind);

  const Config& cfg;
  Counters& counters;
  int engine_kind;  // the engine this job runs on (may differ from the handle's)
  mode_t umask_bits = 022;
  std::string src_root, dst_root;
  std::vector<usync_result>* results = nullptr;  // pair copies

  WorkQueue<FileTask> small_q{16384};
  WorkQueue<FileTask> large_q{512};

  bool dry_run() const noexcept { return cfg.has(USYNC_DRY_RUN); }
  bool preserve() const noexcept { return cfg.has(USYNC_PRESERVE); }
  // The job is stopping: the caller cancelled, or fail-fast saw an error.
  bool cancelled() const noexcept {
    return stop_.load(std::memory_order_relaxed) || cancel_.load(std::memory_order_relaxed);
  }
  // The caller cancelled (usync_engine_cancel).
  bool user_cancelled() const noexcept { return cancel_.load(std::memory_order_relaxed); }
  // Stop the job: the caller's cancel, or fail-fast after an error.
  void stop() noexcept;

  // Full paths for messages and callbacks.
  std::string src_path(const Dir* d, std::string_view name) const;
  std::string dst_path(const Dir* d, std::string_view name) const;
  std::string rel_path(const Dir* d, std::string_view name) const;

  // A failure of the entry `name` in d (d may be null for a root or pair).
  void report(const Dir* d, std::string_view src_name, std::string_view dst_name, int err, int step);
  // Bytes just written to a destination file (live progress).
  void add_bytes(uint64_t n) const noexcept { counters.bytes_done.fetch_add(n, std::memory_order_relaxed); }
  // A regular file reached its end (copied or failed); releases its dir.
  void finish_file(FileTask& t, const FileResult& r);
  // A queued file that will not be attempted (cancellation).
  void abandon_file(FileTask& t);
  // progress_cb, serialised with the other callbacks as the header promises.
  void progress_cb(const usync_stats& s);
  void file_done_cb(const Dir* d, std::string_view src_name, std::string_view dst_name, uint64_t bytes,
                    const uint8_t* md5);

  // Directory bookkeeping.
  Dir* new_dir(Dir* parent);
  void release_dir(Dir* d);
  // Blocks the walker while too many directories are open and queued files
  // are still on their way to closing some of them.
  void wait_open_dirs();
  size_t max_open_dirs = 4096;
  alignas(64) std::atomic<uint64_t> files_outstanding{0};
  size_t open_dirs() const noexcept { return open_dirs_.load(std::memory_order_relaxed); }

 private:
  void finish_dir(Dir* d);
  std::string join(const Dir* d, std::string_view root, std::string_view name) const;

  std::atomic<bool>& cancel_;
  alignas(64) std::atomic<bool> stop_{false};  // read per op: keep off written lines
  std::mutex cb_mu_;
  alignas(64) std::atomic<size_t> open_dirs_{0};
  std::mutex dirs_mu_;
  std::condition_variable dirs_cv_;
};

// Applies -p metadata (mode, times) to the entry `written` in dfd and, when
// final_name is not null, renames it over final_name; on failure removes
// `written`.  Returns 0 or an errno and sets *step.
int settle_entry(const Job& job, int dfd, const char* written, const char* final_name, mode_t mode,
                 const timespec& atime, const timespec& mtime, int* step) noexcept;

// Applies -p metadata to a finished destination file and moves a temporary
// into place; on failure removes what was written.  Returns 0 or an errno and
// sets *step.
int finalize_file(const Job& job, const FileTask& t, const std::string& written_name, int* step) noexcept;

// fchmodat that never follows a symlink at name; 0 or -1 with errno.
int chmod_nofollow(int dfd, const char* name, mode_t mode) noexcept;

// A fresh temporary name: ".usync-<pid>-<seq>.tmp".
std::string temp_name();

// Reads the process umask without changing it.
mode_t current_umask() noexcept;

uint64_t now_ns() noexcept;

}  // namespace usync
