// One copy call: the state shared by the walker, the workers and the caller.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "filter.h"
#include "unique_fd.h"
#include "uringsync/uringsync.h"
#include "work_queue.h"

namespace usync {

// Where an entry is, never following a symlink at it: name in the directory
// dirfd (or a path, with AT_FDCWD), or dirfd itself when name is "" (any
// descriptor, O_PATH included).
struct Place {
  int dirfd = -1;
  const char* name = nullptr;
  bool follow = false;  // a symlink at name is followed (-L sources)
  bool valid() const noexcept { return name != nullptr; }
};

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
  uint32_t idle_timeout_ms = 5000;  // an engine thread idle this long exits
  uint64_t buffer_budget = 128u << 20;  // I/O buffer bytes of a whole call
  uint64_t large_threshold = 1u << 20;  // files at least this big go to the bulk path
  uint32_t file_mode = 0;  // usync_options.file_mode: bits new files are created with; 0: the source's
  ExcludeFilter filter;
  usync_error_fn error_cb = nullptr;
  usync_file_done_fn file_done_cb = nullptr;
  usync_progress_fn progress_cb = nullptr;
  usync_delete_fn delete_cb = nullptr;
  void* cb_user = nullptr;

  bool has(uint32_t flag) const noexcept { return (flags & flag) != 0; }
  // Permission bits to create a new regular file with (open(2) then takes
  // away the umask): file_mode when set, else the source's.
  mode_t create_mode(mode_t src_mode) const noexcept { return file_mode != 0 ? file_mode : (src_mode & 0777); }
  // Access time to give a file whose source has these times.
  const timespec& file_atime(const timespec& atime, const timespec& mtime) const noexcept {
    return has(USYNC_ATIME_FROM_MTIME) ? mtime : atime;
  }
};

// Live counters (snapshot into usync_stats).
struct Counters {
  // Written by the walker (and rarely by others).
  std::atomic<uint64_t> files_found{0}, files_excluded{0}, dirs_created{0}, symlinks_created{0}, specials_created{0};
  std::atomic<uint64_t> temps_removed{0};  // leftovers of killed runs
  std::atomic<uint64_t> entries_deleted{0};
  // By the walker, or by a worker for a file queued unwalked (FileTask::walked);
  // files_unsized: such files not sized yet (Job::sized).
  alignas(64) std::atomic<uint64_t> bytes_found{0}, files_unsized{0};
  // Written for every file (bytes_done for every write) by every worker:
  // each on a cache line of its own, so that the threads do not take the
  // line from each other (and from the walker) on every file.
  alignas(64) std::atomic<uint64_t> files_done{0}, bytes_copied{0};  // bytes_copied: of files_done
  alignas(64) std::atomic<uint64_t> bytes_done{0};
  alignas(64) std::atomic<uint64_t> files_skipped{0};
  alignas(64) std::atomic<uint64_t> files_inline{0};
  alignas(64) std::atomic<uint64_t> files_failed{0}, files_verified{0}, bytes_verified{0}, links_created{0};
  std::atomic<uint64_t> start_ns{0}, end_ns{0};
  std::atomic<uint32_t> walk_done{0}, engine{0}, workers{0}, queue_depth{0}, fd_budget{0};
  std::atomic<uint64_t> buffer_bytes{0};
  void reset() noexcept;
  void snapshot(usync_stats* out) const noexcept;
};

// A directory being copied.  It lives while anything under it is pending:
// its own listing, each queued file, each child directory.  When the count
// drops to zero it is settled (its metadata applied, after all its entries
// exist so that its mtime sticks) on the walker thread, and it releases its
// parent.
//
// Its descriptors are a cache owned by the walker thread (walker.cc): open
// while the walker lists the directory or files queued in it are pinned to
// it (pins > 0), otherwise closeable at any time and reopened through its
// ancestors, so a deep tree fits any RLIMIT_NOFILE.
struct Dir {
  Dir* parent = nullptr;
  std::string name;  // component in the parent; "" for the root
  UniqueFd src, dst;
  dev_t src_dev = 0, dst_dev = 0;  // identities, checked when reopened
  ino_t src_ino = 0, dst_ino = 0;
  mode_t mode = 0;  // source mode
  uid_t uid = 0;
  gid_t gid = 0;
  timespec atime{}, mtime{};
  // Created by this job (empty when it started: nothing to compare with or
  // clean up); mode_made is the mode it was created with.
  bool fresh = false;
  mode_t mode_made = 0;
  // An existing destination directory given its owner's rwx for this job
  // (open_up_dir): settling puts mode_before back (or sets -p's mode).
  bool opened_up = false;
  mode_t mode_before = 0;
  // A new directory is built under a temporary name in its parent (tmp,
  // see dir_temp_name) and renamed to `name` when it is settled, so that
  // its files can be created straight under their own names: nobody sees
  // them before the directory has its name, and a killed run leaves the
  // temporary, which the next run takes over.  hidden: this directory or an
  // ancestor is still under a temporary name.
  std::string tmp;
  bool hidden = false;
  // This directory is, or is inside, one that a killed run was building
  // under its temporary name and this run took over: what is in it was
  // written by that run, never by the user.  So its files are trusted only
  // by size and time (not --update's "newer"), what the source lacks is
  // removed before it gets its name (as --delete would, excluded entries
  // too), and its mode is set as for a new directory.
  bool resumed = false;
  // Whether a file created here gets exactly the permission bits it is
  // created with, less the umask (Job::mode_as_created): -1 not known yet.
  std::atomic<int8_t> exact_modes{-1};
  std::atomic<int> pending{1};
  std::atomic<int> pins{0};  // users of src/dst: queued files, the walker
  // Descriptor cache bookkeeping (walker thread only).
  Dir* lru_prev = nullptr;
  Dir* lru_next = nullptr;
  bool cached = false;
  Dir* settle_next = nullptr;  // Job's list of directories to settle
};

// One regular file to copy.
struct FileTask {
  Dir* dir = nullptr;    // tree copy: names are relative to dir's fds
  std::string src_name;  // name in dir->src, or a path (pair copies)
  std::string dst_name;  // name in dir->dst, or a path (pair copies)
  uint64_t size = 0;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  timespec atime{}, mtime{};
  dev_t dev = 0;  // identity as walked: the opened source must match
  ino_t ino = 0;
  uint32_t pair = UINT32_MAX;  // index into the results of a pair copy
  bool replace = true;         // write a temporary name, rename over dst_name; false: create dst_name
                               // itself (O_EXCL; its directory is hidden, see Dir::tmp)
  bool exclusive = false;      // that rename must not replace dst_name (USYNC_NO_REPLACE)
  bool existing = false;       // dst_name may exist: compare first (quick check)
  bool follow = false;         // src_name may be a symlink to the file (-L)
  bool link_leader = false;    // the first path of a hard-link group (-H)
  // Stat'ed by the walker.  False: queued from the listing's d_type alone (a
  // regular file with nothing at its destination, see Walker::entry), so
  // size, mode, times and identity come from the opened descriptor only.
  bool walked = true;
  // Probed already: the calling thread found it would wait for the device
  // (copy_cached_on_caller), so a ring reads it without probing it again.
  // (The probe started its readahead: a second probe would often find it
  // cached, and copy it on the ring's thread, serially.)
  bool probed = false;
  // A pair copy's directories, opened once per call (PairDirs): its paths
  // are then used relative to them, from src_leaf and dst_leaf on (0 and
  // AT_FDCWD: the whole path).
  uint16_t src_leaf = 0, dst_leaf = 0;
  int pair_src_fd = AT_FDCWD, pair_dst_fd = AT_FDCWD;

  int src_dirfd() const noexcept;
  int dst_dirfd() const noexcept;
  // src_name and dst_name relative to src_dirfd() and dst_dirfd().
  const char* src_rel() const noexcept { return src_name.c_str() + src_leaf; }
  const char* dst_rel() const noexcept { return dst_name.c_str() + dst_leaf; }
  // Takes the walked stat (size, mode, times, identity).
  void set_stat(const struct stat& st) noexcept;
  // The opened source descriptor's stat: 0 when it is still the regular file
  // that was walked (then size, mode and times are updated from it, so that
  // the copy is of the file as opened), else ESTALE.  A task queued unwalked
  // takes any regular file; the engine that copies it then counts its size
  // into bytes_found (Job::sized).
  int check_source(const struct stat& st) noexcept;
  // Flags for opening the source: a tree entry must still be a regular file
  // (no symlink swapped in); an explicit pair may name a symlink.
  int src_open_flags() const noexcept;
  // What a failed open of the source (errno err) is reported as: the errno,
  // and *step.  A tree entry that O_NOFOLLOW found to be a symlink was
  // replaced since it was listed: ESTALE and USYNC_STEP_CHANGED, as
  // check_source says of any other replacement.
  int open_src_error(int err, int* step) const noexcept;
  // The source entry, for its xattrs and ACLs.
  Place src_place() const noexcept { return Place{src_dirfd(), src_rel(), follow}; }
  // Name to create, relative to dst_dirfd(): dst_rel(), or a fresh
  // temporary beside it.
  std::string create_name() const;
};

struct FileResult {
  int error = 0;  // positive errno
  int step = USYNC_STEP_NONE;
  uint64_t bytes = 0;
  bool has_md5 = false;
  uint8_t md5[16] = {};
  bool skipped = false;  // already up to date in the destination (nothing written)
  // A pair copy's source once read and its copy once published, from their
  // descriptors (note_stats): usync_result's src_stat and dst_stat.
  bool has_src_stat = false;
  bool has_dst_stat = false;
  usync_file_stat src_stat{};
  usync_file_stat dst_stat{};
};


class Job {
 public:
  Job(const Config& cfg, Counters& counters, std::atomic<bool>& cancel, int engine_kind);

  const Config& cfg;
  Counters& counters;
  int engine_kind;  // the engine this job runs on (may differ from the handle's)
  mode_t umask_bits = 022;
  bool umask_known = false;  // umask_bits was read (a tree copy), not assumed
  std::string src_root, dst_root;
  dev_t dst_root_dev = 0;  // the directory written into, to refuse walking into it
  ino_t dst_root_ino = 0;
  size_t dir_pairs = 4096;  // directories whose descriptors may be open at once
  uint32_t ring_depth = 128;  // io_uring: files in flight per ring (budgeted)
  uint32_t chunk = 128 * 1024;  // bytes per I/O buffer (budgeted)
  bool inline_copies = false;   // io_uring: cached files copied by the rings' threads (budgeted)
  // io_uring without bulk threads (no room for one beside a ring: budgeted):
  // large files (and -S sparse ones) come to the rings, whose threads copy
  // them as a bulk thread would (UringWorker::apply).
  bool large_on_rings = false;
  // io_uring: the destination's creates and writes may be plain system
  // calls on the rings' threads, only the source's opens and reads going
  // through the rings (Engine::run: a local destination; the rings keep
  // them still for --fsync and --verify).
  bool dst_ops_inline = false;
  uint32_t prefetch_threads = 0;  // adaptive: metadata prefetch threads the walker may start (budgeted)
  // The rings' probes found files out of the page cache often enough (see
  // note_probe_miss) that the tree is (at least partly) cold, and the walker
  // starts its prefetcher.
  std::atomic<bool> cold_seen{false};
  std::atomic<uint64_t> probe_misses{0};
  // A probe missed.  One miss proves little: a warm tree has a few (a page
  // under writeback, a dentry just evicted), and prefetching a warm tree
  // repeats the walker's every listing and stat for nothing (measured: +50%
  // fstatat, 4% slower on 100K cached files).  Cold means at least 32 misses
  // and at least one miss per four files copied from the cache.
  void note_probe_miss() noexcept {
    const uint64_t m = probe_misses.fetch_add(1, std::memory_order_relaxed) + 1;
    if (m >= 32 && m * 4 >= counters.files_inline.load(std::memory_order_relaxed) &&
        !cold_seen.load(std::memory_order_relaxed))
      cold_seen.store(true, std::memory_order_relaxed);
  }
  // The destination makes anonymous files (O_TMPFILE); false after the first
  // refusal, then files get temporary names.
  mutable std::atomic<bool> tmpfile_ok{true};
  // An open waited the longest wait_for_descriptor allows and still found
  // none: descriptors are not coming back (the process holds more than the
  // budget was told of), and the opens after it fail at once rather than
  // each wait as long.
  mutable std::atomic<bool> fd_wait_gave_up{false};
  // A file queued unwalked turned out large (Job::sized): the walker goes
  // back to stat'ing the first files of each directory in full (Walker::entry).
  mutable std::atomic<bool> unwalked_large{false};
  std::vector<usync_result>* results = nullptr;  // pair copies
  long dst_time_ns = 1;                // the destination's time granularity (same_time)
  int dst_root_fd = -1;                // tree copies: the destination root (open all along)
  class HardLinks* links = nullptr;    // -H: hard-link groups

  WorkQueue<FileTask> small_q{16384};
  WorkQueue<FileTask> large_q{512};

  bool dry_run() const noexcept { return cfg.has(USYNC_DRY_RUN); }
  bool preserve() const noexcept { return cfg.has(USYNC_PRESERVE); }
  // A new file of a tree copy, created with t.mode's bits, already has the
  // mode -p gives it (t.mode & 07777): no fchmod needed.
  bool mode_as_created(const FileTask& t) const noexcept;
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
  // Never throws: without memory for the paths the callback gets "".
  void report(const Dir* d, std::string_view src_name, std::string_view dst_name, int err, int step) noexcept;
  // Bytes just written to a destination file (live progress).
  void add_bytes(uint64_t n) const noexcept { counters.bytes_done.fetch_add(n, std::memory_order_relaxed); }
  // The source of a file queued unwalked was opened and checked, and its copy
  // goes ahead: its size joins bytes_found, once (the task counts as walked
  // from then on: a retry on another path checks against this open).
  void sized(FileTask& t) const noexcept {
    if (t.walked) return;
    counters.bytes_found.fetch_add(t.size, std::memory_order_relaxed);
    counters.files_unsized.fetch_sub(1, std::memory_order_relaxed);
    if (t.size >= cfg.large_threshold) unwalked_large.store(true, std::memory_order_relaxed);
    t.walked = true;
  }
  // A regular file reached its end (copied or failed); unpins and releases its dir.
  void finish_file(FileTask& t, const FileResult& r) noexcept;
  // A queued file that will not be attempted (cancellation).
  void abandon_file(FileTask& t) noexcept;
  // progress_cb, serialised with the other callbacks as the header promises.
  void progress_cb(const usync_stats& s) noexcept;
  void file_done_cb(const Dir* d, std::string_view src_name, std::string_view dst_name, uint64_t bytes,
                    const uint8_t* md5, mode_t mode) noexcept;
  // An entry `name` (a path below d) removed by USYNC_DELETE, or that would
  // be in a dry run: counted, and passed to delete_cb.
  void deleted(const Dir* d, std::string_view name, mode_t mode) noexcept;

  // Directory bookkeeping.  A directory whose count drops to zero is handed
  // to the walker thread to settle (take_settled).
  Dir* new_dir(Dir* parent);
  void release_dir(Dir* d) noexcept;
  void unpin_dir(Dir* d) noexcept;
  // Walker thread: directories ready to settle (waits up to `wait` for one,
  // or for a pin to drop).  Returns false when there were none.
  bool take_settled(std::vector<Dir*>* out, std::chrono::milliseconds wait);
  // Walker thread: waits up to `wait` for a pin to drop to zero.
  void wait_unpinned(std::chrono::milliseconds wait);
  alignas(64) std::atomic<uint64_t> files_outstanding{0};

 private:
  std::string join(const Dir* d, std::string_view root, std::string_view name) const;

  std::atomic<bool>& cancel_;
  alignas(64) std::atomic<bool> stop_{false};  // read per op: keep off written lines
  std::mutex cb_mu_;
  std::mutex dirs_mu_;
  std::condition_variable dirs_cv_;
  Dir* settled_ = nullptr;     // guarded by dirs_mu_: list through settle_next
  bool pin_dropped_ = false;   // guarded by dirs_mu_
};

// For a pair copy (Job::results), records in r what fstat shows of the
// source (after its bytes were read) and of the published copy (after its
// times were set); -1 for a descriptor that is not at hand.  The caller of
// usync_copy_files then need not look either file up by path again.
void note_stats(const Job& job, int src_fd, int dst_fd, FileResult& r) noexcept;
// fstat's size and mtime of fd; false when it fails.
bool stat_of(int fd, usync_file_stat* out) noexcept;

// Source metadata for settle_entry: where the source entry is (for xattrs
// and ACLs) and its owner.
struct SourceMeta {
  Place src;
  uid_t uid = 0;
  gid_t gid = 0;
  // For reporting a failure to apply them (the entry is kept: its bytes
  // are right; the failure is reported and counted).
  const Dir* dir = nullptr;
  std::string_view name;
  uint32_t pair = UINT32_MAX;  // a pair copy's index: its result says so too
};

// Reports that the metadata of an entry (owner, xattrs, ACLs) could not all
// be applied: counted as a failure, but the entry stays.  For a pair copy
// (pair: its index) the pair's usync_result carries the failure as well.
void report_metadata(const Job& job, const Dir* d, std::string_view name, int err,
                     uint32_t pair = UINT32_MAX) noexcept;

// Applies the metadata the job keeps (owner, xattrs, ACLs from `meta`; -p
// mode; times) to the entry `written` in dfd and, when final_name is not
// null, renames it over final_name (exclusive: only where final_name does
// not exist, else EEXIST); on failure removes `written`.  Returns 0 or an
// errno and sets *step.
int settle_entry(const Job& job, int dfd, const char* written, const char* final_name, mode_t mode,
                 const timespec& atime, const timespec& mtime, const SourceMeta& meta, int* step,
                 bool exclusive = false) noexcept;

// Renames `from` to `to` in dfd only if `to` does not exist: 0, or -1 with
// errno (EEXIST when it does).  renameat2(RENAME_NOREPLACE); where the
// filesystem refuses that flag (NFS, FUSE: EINVAL), a hard link and an
// unlink; where it has no hard links either, a check and a rename.
int rename_noreplace(int dfd, const char* from, const char* to) noexcept;

// Whether a destination's time dst is the source's src as the destination
// stores it: the same; the seconds only (some network and FUSE filesystems);
// or src cut to granularity ns, the destination's (Job::dst_time_ns), where
// that is coarser than 1 ns.  A cut to any other granularity is a change: on
// a filesystem with nanosecond times, X.120000000 is not X.123456789.
bool same_time(const timespec& dst, const timespec& src, long granularity) noexcept;

// The granularity (ns) of the times the filesystem of fd stores, where its
// type says it is coarser than 1 ns: exFAT 10 ms, NTFS (ntfs3) and SMB 100 ns;
// else 1.
long time_granularity(int fd) noexcept;

// The quick check: whether the destination entry of t is already a copy of
// it (rsync's rule: same size and modification time, which every mode keeps
// on files; --checksum: same size and bytes; --update: a newer destination
// is kept; --ignore-times: never).  A matching file whose time (or, with -p,
// mode) differs gets it.  May read both files (--checksum).
bool up_to_date(const Job& job, const FileTask& t) noexcept;

// An open refused for want of a descriptor (EMFILE, ENFILE).  The budget
// (budget.h) leaves that only to what it cannot foresee: a descriptor
// another thread of the caller's process opens meanwhile, one the kernel
// lets go of a moment late.  So the open waits for one to be closed, as
// every thread of the call closes its own soon: waits a little (1 ms,
// doubling up to 50 ms) and says whether to try again, for up to 5 s in
// all (*waited_ms counts), never once the job is cancelled, nor after an
// open of this job waited that long in vain (Job::fd_wait_gave_up).
bool wait_for_descriptor(const Job& job, int err, uint32_t* waited_ms) noexcept;

// open() (a descriptor, or -1 and errno), tried again while
// wait_for_descriptor says so.
template <typename Open>
int open_waiting(const Job& job, Open&& open) noexcept {
  uint32_t waited_ms = 0;
  for (;;) {
    const int fd = open();
    if (fd >= 0) return fd;
    const int err = errno;
    if (!wait_for_descriptor(job, err, &waited_ms)) {
      errno = err;
      return fd;
    }
  }
}

// Calls fn(name, d_type) for every entry of the directory open at fd but .
// and .., read from its start.  Returns 0 or an errno (ENOMEM: fn threw).
int list_dir(int fd, const std::function<void(const char*, unsigned char)>& fn) noexcept;

// Removes temporaries (is_temporary) that killed runs left in the
// destination directory dfd; those that are directories, recursively.  One
// stays when keep(its name, the final name of a directory built under it
// (dir_temp_name) or nullptr) says so: the source has that very name, or
// the walk will take the directory over.
void remove_temporaries(const Job& job, int dfd,
                        const std::function<bool(const char*, const char*)>& keep = {}) noexcept;

// Applies -p metadata to a finished destination file and moves a temporary
// into place; on failure removes what was written.  src_fd: the source file
// still open (-1: by name), whose xattrs and ACLs are then read through that
// descriptor, so that they are those of the file whose bytes were copied even
// if the name was taken by another file meanwhile.  Returns 0 or an errno and
// sets *step.
int finalize_file(const Job& job, const FileTask& t, const std::string& written_name, int* step,
                  int src_fd = -1) noexcept;

// fchmodat that never follows a symlink at name; 0 or -1 with errno.
int chmod_nofollow(int dfd, const char* name, mode_t mode) noexcept;

// Without privilege, nothing can be created in or removed from a directory
// whose owner lacks write (or search, or read) permission: a re-run into
// the copy of a read-only source directory failed on every change.  The
// caller's own such destination directory is given its owner's rwx while
// the job works in it (as rsync does), and *before receives the mode to
// put back.  Returns whether the mode was changed; root's is never (it
// writes anyway, and a re-run must change no ctime).  open_up_dir_at does
// the same by name, for a directory that cannot even be opened (0000).
bool open_up_dir(int fd, mode_t* before) noexcept;
bool open_up_dir_at(int dfd, const char* name, mode_t* before) noexcept;

// A fresh temporary name: ".usync-<random>-<seq>.tmp".
std::string temp_name();
// Whether name has the form of one of ours (a temporary of this or another
// run): temp_name's, or dir_temp_name's.
bool is_temporary(const char* name) noexcept;
// The temporary name a new directory `name` is built under:
// ".usync-dir-<name>.tmp", the same in every run, so that a re-run finds
// what a killed one left.  "" when that would be longer than NAME_MAX (the
// directory is then made under its own name).
std::string dir_temp_name(std::string_view name);
// The final name of such a temporary directory name, or "" if it is not one.
std::string_view dir_temp_target(const char* name) noexcept;

// Reads the process umask without changing it into *out; false (and *out
// untouched) when it cannot.
bool read_umask(mode_t* out) noexcept;

uint64_t now_ns() noexcept;

}  // namespace usync
