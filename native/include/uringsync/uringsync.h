/*
 * uringsync.h — the whole public contract of liburingsync.
 *
 * liburingsync copies trees of many small files fast and faithfully on Linux,
 * using io_uring (liburing) when the kernel allows it and an equivalent
 * synchronous thread pool when it does not.
 *
 * Conventions (same as liburing):
 *  - Every function that can fail returns 0 on success or a negative errno.
 *  - Every symbol starts with usync_ / USYNC_.
 *  - Handles are opaque; *_create has a matching *_destroy which accepts NULL.
 *  - No function throws; no C++ exception ever crosses this boundary.
 *  - There is no thread-local "last error": detail arrives through the
 *    error callback and the usync_stats struct.
 *
 * Threading: an engine may be used from any thread.  Copy calls on one engine
 * are serialised (a second concurrent call waits for the first).  The
 * following may be called from any thread at any time while a copy runs:
 * usync_engine_cancel(), usync_engine_stats().  Callbacks run on engine
 * threads (or on the calling thread, which may copy a small batch itself),
 * never concurrently with each other for one engine, and must not call back
 * into the same engine except usync_engine_cancel() and usync_engine_stats()
 * (a copy call from one returns -EDEADLK, also through another engine's
 * callback on the same thread; destroying the engine from one is
 * undefined).  Engines whose callbacks call each other across threads can
 * deadlock like any cycle of locks.
 *
 * Threads and rings live across calls: an engine starts its threads (the
 * walker, the io_uring rings or synchronous workers, the bulk threads) on
 * its first copy call and keeps them, idle, for the next one; a thread that
 * ran a ring keeps the ring and its registered buffers too.  A warm engine
 * therefore starts a call without creating a thread or a ring (README,
 * "Threads and rings live across calls", has the measured cost per call).  A
 * call starts no more threads than it can use (a usync_copy_files batch of
 * k small files: one per 64 files).  A thread idle for
 * usync_options.idle_timeout_ms exits and frees what it keeps;
 * usync_engine_destroy() ends them all at once.
 *
 * Fork: a forked child has none of the engine's threads.  The child must not
 * use an engine made before the fork: copy calls there return -ECHILD, and
 * usync_engine_destroy() in the child frees nothing of the engine's threads
 * (it leaks them rather than wait for threads that do not exist).
 */
#ifndef URINGSYNC_URINGSYNC_H
#define URINGSYNC_URINGSYNC_H

#include <stddef.h>
#include <stdint.h>

#if defined(USYNC_BUILDING_LIBRARY)
#define USYNC_API __attribute__((visibility("default")))
#else
#define USYNC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define USYNC_VERSION_MAJOR 0
#define USYNC_VERSION_MINOR 2
#define USYNC_VERSION_PATCH 0
#define USYNC_VERSION_NUMBER (USYNC_VERSION_MAJOR * 10000 + USYNC_VERSION_MINOR * 100 + USYNC_VERSION_PATCH)

/* Runtime version of the library actually loaded: USYNC_VERSION_NUMBER and
 * "MAJOR.MINOR.PATCH".  The string is static; do not free it. */
USYNC_API unsigned usync_version_number(void);
USYNC_API const char *usync_version_string(void);

/* ---------------------------------------------------------------- options */

/* Option flags (usync_options.flags). */
enum usync_flag {
  /* Keep permission bits (incl. setuid/setgid/sticky) of files and
   * directories, and the times of directories.  Without it new files and
   * directories get the source's permission bits filtered by the umask, like
   * cp -r.  Files keep their access and modification times in every mode
   * (the quick check of a re-run needs them). */
  USYNC_PRESERVE = 1u << 0,
  /* Walk and report, but create and write nothing.  usync_copy_files looks
   * up each pair's source (stat) and destination (lstat) and predicts the
   * failures they show, with the error and step a real run would give: a
   * source missing or not a regular file (USYNC_STEP_STAT), a destination
   * parent that is not a directory (ENOTDIR, USYNC_STEP_MKDIR), a
   * destination that is a directory (EISDIR) or, with USYNC_NO_REPLACE,
   * exists (EEXIST; both USYNC_STEP_RENAME).  What only writing would show
   * (permissions, space) it does not. */
  USYNC_DRY_RUN = 1u << 1,
  /* Never use io_uring: run the synchronous thread-pool engine.  The
   * environment variable URING_SYNC_FORCE_SYNC=1 has the same effect. */
  USYNC_FORCE_SYNC = 1u << 2,
  /* Stop the whole job at the first per-file error (default: go on and report
   * each failure). */
  USYNC_FAIL_FAST = 1u << 3,
  /* Compute the MD5 of every copied file while copying it (usync_result.md5,
   * usync_file_done.md5).  Costs CPU; off by default.  Files of up to 16 KiB
   * a thread copies from memory are hashed up to 32 at a time (vector lanes,
   * where the CPU has AVX2 or AVX-512): such a file is finished (its
   * file_done_cb, its progress count) when its group is hashed, at the
   * latest before that thread waits or ends its batch. */
  USYNC_HASH_MD5 = 1u << 4,
  /* Deprecated, accepted and ignored: the library prints nothing unless
   * USYNC_ANNOUNCE_FALLBACK asks it to. */
  USYNC_QUIET_FALLBACK = 1u << 5,
  /* Use the io_uring engine even for sources on tmpfs/ramfs, where the
   * engine otherwise picks the synchronous one: those filesystems cannot
   * serve reads or writes without blocking (no FMODE_NOWAIT), so io_uring
   * hands every read, write and create to an io-wq thread, and on memory
   * there is no device latency to overlap.  For tests and benchmarks. */
  USYNC_FORCE_URING = 1u << 6,
  /* Print one line on stderr when io_uring is unavailable and the
   * synchronous engine is used instead (the CLI sets it). */
  USYNC_ANNOUNCE_FALLBACK = 1u << 7,
  /* At usync_engine_create(), raise the process's soft RLIMIT_NOFILE to its
   * hard limit (the CLI sets it).  Without it the library never changes
   * process state; it fits its descriptor use to the limit it finds. */
  USYNC_RAISE_NOFILE = 1u << 8,
  /* Also report directories, symlinks and special files through
   * file_done_cb (usync_file_done.mode tells the type), not only regular
   * files. */
  USYNC_REPORT_ALL = 1u << 9,
  /* Copy every file even when the destination already has a copy (rsync's
   * --ignore-times).  By default a regular file is skipped when the
   * destination holds a regular file of the same size and modification time
   * (rsync's quick check; files keep their modification time in every mode,
   * directories only with USYNC_PRESERVE). */
  USYNC_IGNORE_TIMES = 1u << 10,
  /* Skip files whose destination is newer than the source (rsync --update). */
  USYNC_UPDATE = 1u << 11,
  /* Decide "already copied" by content instead of modification time: files
   * of equal size are read and compared (rsync --checksum). */
  USYNC_CHECKSUM = 1u << 12,
  /* Mirror (rsync --delete): remove destination entries the source does not
   * have, and entries of another kind in the way of a source entry (a
   * directory where the source has a file).  Entries matching an exclude
   * pattern are kept.  Symlinks are removed, never followed; nothing on
   * another mount is touched.  With USYNC_DRY_RUN nothing is removed but
   * every entry that would be is reported through delete_cb and counted. */
  USYNC_DELETE = 1u << 13,
  /* Also remove destination entries that match an exclude pattern (rsync
   * --delete-excluded); implies USYNC_DELETE. */
  USYNC_DELETE_EXCLUDED = 1u << 14,
  /* Re-read every written file from the disk (after an fsync, with its
   * cached pages dropped) before it gets its final name, and compare its
   * digest with that of the bytes read from the source; a mismatch is a
   * failure (USYNC_STEP_VERIFY, EBADMSG) and the file is not published
   * (an older file under that name is left as it was).  The digest is XXH3
   * (128 bits): it catches corruption, not tampering.  Files take the
   * read/write path (no reflink or copy_file_range), as with
   * USYNC_HASH_MD5.  On tmpfs, whose pages are the file, the re-read comes
   * from memory.  Verified files are counted in usync_stats.files_verified
   * and bytes_verified; pair copies are verified too. */
  USYNC_VERIFY = 1u << 15,
  /* Durability: fsync every file before it gets its final name and every
   * directory after its entries, so that a finished copy survives a power
   * loss: each directory of a tree once all its entries are in place, the
   * parent of a destination root the call created, and the directory of
   * each pair's (or single file's) destination.  Parents made for a
   * destination path (mkdir -p) are not synced.  A failed fsync is a
   * failure of that entry (USYNC_STEP_FSYNC); a file whose fsync fails is not
   * published. */
  USYNC_FSYNC = 1u << 16,
  /* Keep the owner (as root; an unprivileged caller keeps its own uid on
   * what it creates, like rsync -o and cp -a) and the group (any group the
   * caller may give).  Numeric ids: a local copy has one user database. */
  USYNC_OWNER = 1u << 17,
  USYNC_GROUP = 1u << 18,
  /* Keep extended attributes in the user, trusted and security namespaces
   * (rsync -X; without privilege user.* only), on files, directories,
   * symlinks and special files; the destination's own attributes in those
   * namespaces that the source lacks are removed (security.selinux is
   * kept).  Metadata that cannot be applied is reported
   * (USYNC_STEP_METADATA) and the entry, whose bytes are right, is kept. */
  USYNC_XATTRS = 1u << 19,
  /* Keep POSIX ACLs (access ACLs, and default ACLs of directories), as
   * rsync -A; an ACL the destination has (inherited) and the source has not
   * is removed. */
  USYNC_ACLS = 1u << 20,
  /* Do not cross filesystem boundaries in the source (rsync -x, cp -x): a
   * directory on another filesystem is copied as an empty directory (with
   * the metadata of the directory mounted there). */
  USYNC_ONE_FILE_SYSTEM = 1u << 21,
  /* Follow symlinks in the source tree (rsync -L, cp -L): a symlink is
   * copied as what it points to; a dangling one is a failure.  A symlink
   * leading to one of its own ancestors, or to the destination, is refused
   * (USYNC_STEP_OPEN_SRC / USYNC_STEP_OVERLAP, ELOOP) instead of looping. */
  USYNC_COPY_LINKS = 1u << 22,
  /* Keep hard links (rsync -H): source paths that share an inode (within
   * the tree) share one inode in the copy.  The first is copied, the others
   * are linked to it (counted in links_created); none is copied twice. */
  USYNC_HARD_LINKS = 1u << 23,
  /* Keep holes (rsync -S, cp --sparse=auto): a file with fewer blocks than
   * its size is copied segment by segment (SEEK_DATA / SEEK_HOLE, or a
   * reflink), so the copy allocates what the source does. */
  USYNC_SPARSE = 1u << 24,
  /* Keep extended attributes of the user namespace only (user.*), also when
   * run as root, where USYNC_XATTRS keeps trusted.* and security.* too: what
   * rclone's local backend keeps with --metadata.  Synchronised as with
   * USYNC_XATTRS (which, also set, wins); failures are reported the same way
   * (USYNC_STEP_METADATA). */
  USYNC_USER_XATTRS = 1u << 25,
  /* Give every regular file the engine writes its source's modification
   * time as access time too, instead of the source's access time: what
   * rclone's local backend sets (and touch -d).  Directories, and the times
   * USYNC_PRESERVE keeps, are not affected. */
  USYNC_ATIME_FROM_MTIME = 1u << 26,
  /* usync_copy_files only: never replace a destination that exists.  A
   * pair whose destination exists (a file, a symlink, anything) fails with
   * EEXIST at USYNC_STEP_RENAME and the entry is left as it was; the copy
   * is written as always (an anonymous file or a temporary name) and gets
   * its name only where that is free: linkat of the anonymous file, or
   * renameat2(RENAME_NOREPLACE) of the temporary (where a filesystem lacks
   * that — NFS, most FUSE — link and unlink, failing those a check and a
   * rename).  Lets a caller that creates new files skip its own existence
   * check. */
  USYNC_NO_REPLACE = 1u << 27,
};

/* Which step of a copy failed (usync_file_error.step). */
enum usync_step {
  USYNC_STEP_NONE = 0,
  USYNC_STEP_OPEN_SRC = 1,
  USYNC_STEP_STAT = 2,
  USYNC_STEP_OPEN_DST = 3,
  USYNC_STEP_READ = 4,
  USYNC_STEP_WRITE = 5,
  USYNC_STEP_CLOSE = 6,
  USYNC_STEP_METADATA = 7, /* chmod / utimes */
  USYNC_STEP_RENAME = 8,   /* moving the finished temp file into place */
  USYNC_STEP_MKDIR = 9,
  USYNC_STEP_READDIR = 10,
  USYNC_STEP_SYMLINK = 11,
  USYNC_STEP_MKNOD = 12, /* FIFOs, sockets and device nodes */
  USYNC_STEP_CANCELED = 13,
  /* The source entry was replaced while being copied (by a FIFO, a device,
   * a directory or another file; error ESTALE): it was skipped.  Also a
   * usync_copy_files pair given with its size (usync_pair.size) whose source
   * turned out not to be a regular file when opened (EISDIR, EINVAL). */
  USYNC_STEP_CHANGED = 14,
  /* Source and destination are the same directory, or one contains the
   * other (found by device and inode, so bind mounts and symlinks count;
   * error ELOOP).  The copy call returns -ELOOP. */
  USYNC_STEP_OVERLAP = 15,
  USYNC_STEP_DELETE = 16, /* removing an entry for USYNC_DELETE */
  /* Re-reading the written file (USYNC_VERIFY); EBADMSG: its bytes differ
   * from those read from the source. */
  USYNC_STEP_VERIFY = 17,
  USYNC_STEP_FSYNC = 18, /* USYNC_FSYNC of a file or directory */
  USYNC_STEP_LINK = 19,  /* making a hard link (USYNC_HARD_LINKS) */
};

/* Archive mode (cp -a, rsync -aHAXS): everything an entry has. */
#define USYNC_ARCHIVE                                                                                        \
  (USYNC_PRESERVE | USYNC_OWNER | USYNC_GROUP | USYNC_XATTRS | USYNC_ACLS | USYNC_HARD_LINKS | USYNC_SPARSE)

/* Every flag bit this version knows; usync_engine_create() rejects others. */
#define USYNC_KNOWN_FLAGS 0xfffffffu

/* Static, human-readable name of a step ("open source", "read", ...). */
USYNC_API const char *usync_step_name(int step);

/* A per-file failure.  All pointers are borrowed and valid only for the
 * duration of the callback. */
typedef struct usync_file_error {
  const char *src_path; /* path of the source entry (root-relative paths are
                           joined to the root given to the copy call) */
  const char *dst_path; /* path of the destination entry */
  int error;            /* positive errno */
  int step;             /* enum usync_step */
} usync_file_error;

/* A finished file (only reported when usync_options.file_done_cb is set).
 * In a tree copy, a directory the call creates is built under a temporary
 * name (".usync-dir-<name>.tmp") and gets its name when all its entries are
 * in place: a file reported in it is found at dst_path only from then on
 * (at the latest when the call returns). */
typedef struct usync_file_done {
  const char *src_path; /* borrowed, valid during the callback */
  const char *dst_path; /* borrowed, valid during the callback: the final path */
  uint64_t bytes;
  int has_md5; /* 1 when USYNC_HASH_MD5 was set */
  uint8_t md5[16];
  uint32_t mode; /* st_mode of the source entry (type and permission bits) */
} usync_file_done;

/* Counters of the current (or last) copy call.  Every field is monotonic
 * during a call; all are reset when a copy call starts. */
typedef struct usync_stats {
  uint64_t files_found;    /* regular files the walker queued (usync_copy_files:
                              the pairs whose source is a regular file) */
  uint64_t bytes_found;    /* their sizes as stat'ed: by the walker, or, for
                              files it queued from the directory listing
                              alone (new directories of small files), when
                              a worker opens them (files_unsized), so it may
                              still grow after walk_done */
  uint64_t files_done;     /* regular files copied completely */
  uint64_t bytes_done;     /* bytes written to destination files so far, counted
                              as the writes complete (including those of a
                              file that fails later: see bytes_copied); in a
                              dry run, the bytes a real run would write */
  uint64_t files_failed;   /* entries (of any type) that failed */
  uint64_t files_excluded; /* entries skipped by an exclude pattern */
  uint64_t dirs_created;
  uint64_t symlinks_created;
  uint64_t specials_created; /* FIFOs, sockets, device nodes */
  uint64_t elapsed_ns;       /* since the copy call started */
  uint32_t walk_done;        /* 1 once the walker has seen the whole tree */
  uint32_t engine;           /* enum usync_engine_kind actually used */
  uint32_t workers;          /* rings (io_uring) or threads (sync) in use */
  /* Resource budgets in force for this call (see usync_options). */
  uint32_t queue_depth;   /* files in flight per ring after fitting the budgets */
  uint32_t fd_budget;     /* descriptors the call allowed itself */
  uint64_t buffer_bytes;  /* I/O buffer bytes of all rings and threads */
  uint64_t files_skipped; /* regular files already up to date in DST (quick check) */
  uint64_t temps_removed; /* temporaries of killed runs removed from DST */
  uint64_t entries_deleted; /* entries removed by USYNC_DELETE (would be, in a dry run) */
  uint64_t files_verified;  /* files re-read and found equal (USYNC_VERIFY) */
  uint64_t bytes_verified;  /* their bytes */
  uint64_t links_created;   /* hard links made (USYNC_HARD_LINKS) */
  uint64_t files_inline;    /* io_uring engine: files whose source was all in the
                               page cache, copied by a ring's thread (or the
                               calling thread) with plain system calls instead
                               of through the ring (of files_done) */
  uint64_t files_unsized;   /* of files_found, those queued without a stat
                               whose size is not in bytes_found yet (it is
                               added when a worker opens the file) */
  uint64_t bytes_copied;    /* bytes of the files_done: unlike bytes_done, not
                               those of a file that failed after some writes */
} usync_stats;

enum usync_engine_kind {
  USYNC_ENGINE_NONE = 0,
  USYNC_ENGINE_URING = 1, /* io_uring rings */
  USYNC_ENGINE_SYNC = 2,  /* synchronous thread pool */
};

/* An entry USYNC_DELETE removed (or would remove, in a dry run). */
typedef struct usync_deletion {
  const char *dst_path; /* borrowed, valid during the callback */
  uint32_t mode;        /* st_mode of the entry (type and permission bits) */
} usync_deletion;

typedef void (*usync_error_fn)(void *user, const usync_file_error *err);
typedef void (*usync_delete_fn)(void *user, const usync_deletion *del);
typedef void (*usync_file_done_fn)(void *user, const usync_file_done *done);
typedef void (*usync_progress_fn)(void *user, const usync_stats *stats);

typedef struct usync_options {
  /* Set by usync_options_init(); lets the library grow this struct. */
  uint32_t struct_size;
  uint32_t flags;            /* enum usync_flag, OR'ed */
  uint32_t workers;          /* rings / threads; 0 = chosen from the CPU count */
  uint32_t queue_depth;      /* files in flight per ring; 0 = 128 */
  uint32_t chunk_size;       /* bytes per read/write buffer; 0 = 128 KiB */
  uint32_t iowq_max_workers; /* io-wq threads per ring; 0 = 4 */
  /* Exclude patterns (glob: * ? [..] **; a leading '/' anchors at the root;
   * a trailing '/' matches directories only; a pattern without '/' matches
   * the name at any depth).  Copied by usync_engine_create(). */
  const char *const *excludes;
  size_t exclude_count;
  /* Optional callbacks, invoked on engine threads (or the calling thread),
   * serialised per engine. */
  usync_error_fn error_cb;
  usync_file_done_fn file_done_cb;
  usync_progress_fn progress_cb; /* about every progress_interval_ms */
  uint32_t progress_interval_ms; /* 0 = 200 */
  void *cb_user;                 /* passed to every callback */
  /* Most bytes of I/O buffers one copy call allocates, all rings (whose
   * buffers are registered, i.e. pinned) and threads together: the files
   * in flight per ring shrink to fit, and the chunk too when even one
   * buffer per ring and thread would not, then the rings and threads (one
   * 4 KiB buffer each at least: 4 KiB for one thread, 8 KiB for one ring
   * and its bulk thread).  0 = 128 MiB. */
  uint64_t buffer_budget;
  /* Optional: each entry USYNC_DELETE removes, the entries of a directory
   * before the directory (same threading as the other callbacks). */
  usync_delete_fn delete_cb;
  /* Milliseconds a thread of the engine stays idle before it exits (and
   * frees the ring and buffers it keeps for the next call); 0 = 5000.  See
   * "Threads and rings live across calls" below. */
  uint32_t idle_timeout_ms;
  /* Permission bits (0777 at most; more is -EINVAL) that every regular file
   * the engine creates is made with, the umask (or a default ACL of its
   * directory) applying as to open(2): 0666 gives what most programs, and
   * rclone's local backend, create.  0 (default): the source's permission
   * bits, as cp -r.  With USYNC_PRESERVE files still end up with the
   * source's mode (incl. setuid/setgid/sticky).  Directories, and files that
   * are skipped or hard-linked, are not affected. */
  uint32_t file_mode;
} usync_options;

/* Fill *opts with defaults (all zero, struct_size set).  Always do this
 * before changing fields. */
USYNC_API void usync_options_init(usync_options *opts);

/* ----------------------------------------------------------------- engine */

typedef struct usync_engine usync_engine;

/* Create an engine.  *out receives a handle the caller frees with
 * usync_engine_destroy().  opts may be NULL (defaults).  The options struct
 * and the exclude strings are copied; the caller may free them afterwards.
 * opts->struct_size tells how much of the struct the caller knows (an older,
 * smaller struct gets defaults for the fields it lacks).
 * Returns 0, -EINVAL for a bad option or pattern or an unknown flag bit, or
 * -ENOMEM.
 *
 * Descriptors: every copy call fits itself to the RLIMIT_NOFILE soft limit
 * it finds (any limit of 16 or more completes any tree, more slowly when it
 * is low): it closes and later reopens directories of deep trees, and runs
 * fewer files in flight. */
USYNC_API int usync_engine_create(const usync_options *opts, usync_engine **out);

/* Destroy an engine; NULL is accepted.  Must not run concurrently with a
 * copy call on the same engine, nor from one of its callbacks.  Wakes and
 * joins the engine's idle threads, which closes their rings: it returns
 * promptly, whatever idle_timeout_ms is. */
USYNC_API void usync_engine_destroy(usync_engine *engine);

/* Ask the running copy call (if any) to stop as soon as possible.  Files in
 * flight are abandoned cleanly (no partial file left under its final name)
 * and the call returns -ECANCELED.  Safe from any thread and from callbacks.
 * A cancel with no call running affects the next call only if made between
 * calls — it is cleared when a copy call starts. */
USYNC_API void usync_engine_cancel(usync_engine *engine);

/* Copy *out (size bytes at most; pass sizeof(usync_stats)) the counters of
 * the running or last call.  Safe from any thread.  Returns 0 or -EINVAL. */
USYNC_API int usync_engine_stats(const usync_engine *engine, usync_stats *out, size_t size);

/* Which engine a copy call would use right now (USYNC_ENGINE_URING when
 * io_uring can be set up and FORCE_SYNC is off). */
USYNC_API int usync_engine_kind(const usync_engine *engine);

/* Copy the tree at src so that dst becomes a copy of it (like cp -rT, or
 * rsync src/ dst/).  dst and missing parents are created; an existing dst
 * directory is merged into, existing files in it are replaced atomically.
 * Each directory the call creates (dst too) is built under the temporary
 * name ".usync-dir-<name>.tmp" (dst's beside it) and renamed to its name
 * when everything under it is in place; a later call takes over what a
 * killed one left so (see README, "Re-runs, interrupted copies").
 * src may also be a single file or symlink.  Refuses (-ELOOP, and one
 * error_cb call with USYNC_STEP_OVERLAP) when src and dst are the same
 * directory or one contains the other, by identity (device and inode of dst,
 * its existing ancestors, and of every directory the walk enters), so that
 * bind mounts and symlinks cannot hide it.
 * Returns 0 when everything was copied, -EIO when the job ran to its end but
 * one or more entries failed (each was reported through error_cb and counted
 * in files_failed), -ECANCELED after usync_engine_cancel(), or another
 * negative errno when the job could not start (e.g. -ENOENT for src;
 * -EDEADLK from one of this engine's callbacks; -ECHILD in a forked child).
 * A start that fails at src or dst (not -EINVAL for a missing path,
 * -EDEADLK, -ECHILD, -ENOMEM) first makes one error_cb call, counted in
 * files_failed, as the overlap refusal does, naming the side by its step:
 * USYNC_STEP_STAT or USYNC_STEP_OPEN_SRC for src, USYNC_STEP_MKDIR (dst or
 * a parent it needs) or USYNC_STEP_OPEN_DST for dst. */
USYNC_API int usync_copy_tree(usync_engine *engine, const char *src, const char *dst);

/* One explicit file copy for usync_copy_files(). */
typedef struct usync_pair {
  const char *src; /* path of a regular file (or a symlink to one) */
  const char *dst; /* destination path; missing parent directories are made;
                      an existing file there is replaced atomically */
  /* 0, or the source's size as the caller last saw it (from a listing).
   * With 0 the engine looks the source up (stat) before it queues the pair.
   * Otherwise it does not: the size only routes the file (small files are
   * copied 64 to a worker, large ones by the bulk path), and what is copied
   * is the file as opened.  A source that is missing or not a regular file
   * then fails at USYNC_STEP_OPEN_SRC (ENOENT, ...) or USYNC_STEP_CHANGED
   * (EISDIR for a directory, EINVAL for anything else but a regular file)
   * instead of USYNC_STEP_STAT.  Ignored (looked up) in a dry run and with
   * USYNC_SPARSE, which decide from the stat, and for the first pair into a
   * destination directory the call has not seen yet (which it may have to
   * make: not for a source that is gone). */
  uint64_t size;
} usync_pair;

/* A file's size and modification time, as fstat(2) gave them. */
typedef struct usync_file_stat {
  uint64_t size;
  int64_t mtime_sec;
  int64_t mtime_nsec;
} usync_file_stat;

/* Outcome of one pair. */
typedef struct usync_result {
  int error;       /* 0 or positive errno */
  int step;        /* enum usync_step where it failed; USYNC_STEP_METADATA: the
                      bytes were published (without their times) but owner,
                      xattrs or ACLs could not all be set */
  uint64_t bytes;  /* bytes copied */
  uint8_t md5[16]; /* valid only when has_md5 is 1 */
  int has_md5;     /* 1 when md5 holds the digest of the bytes copied (error == 0,
                      USYNC_HASH_MD5 set, not a dry run); 0 otherwise */
  /* What a caller would otherwise look up by path after the call (error ==
   * 0; each when has_src_stat / has_dst_stat is 1, which a copy may not give,
   * e.g. one published under a temporary name first):
   * src_stat: the source as its descriptor showed it once every byte had
   *   been read: it is the file md5 and bytes describe only if it still has
   *   the size and mtime the caller saw before;
   * dst_stat: the copy as published, with its times set. */
  int has_src_stat;
  int has_dst_stat;
  usync_file_stat src_stat;
  usync_file_stat dst_stat;
} usync_result;

/* Copy count explicit (src, dst) file pairs concurrently.  pairs and the
 * strings they point to are borrowed for the duration of the call.  results
 * (count entries, caller-allocated) receives each pair's outcome in order.
 * Returns 0 when every pair succeeded, -EIO when some failed (see results;
 * each was reported through error_cb and counted in files_failed),
 * -ECANCELED after cancel (unfinished pairs get error ECANCELED at
 * USYNC_STEP_CANCELED), or another negative errno (-EDEADLK and -ECHILD as
 * for usync_copy_tree()).  With USYNC_FAIL_FAST the call stops at the first
 * failure and returns -EIO: the pairs it had not copied by then get
 * ECANCELED at USYNC_STEP_CANCELED too, and, not having failed themselves,
 * are neither counted in files_failed nor passed to error_cb.
 * Caller bugs refused by path (the same string; another spelling of a path,
 * through a symlink, ".." or a hard link, is not looked for): a pair whose
 * dst is its src fails with ELOOP at USYNC_STEP_OVERLAP (cp: "are the same
 * file"; the file is left as it is), and of pairs naming one dst only the
 * first is copied: each later one fails with EINVAL at USYNC_STEP_OPEN_DST.
 * Both are reported through error_cb and counted in files_failed.  Pairs
 * run concurrently: one whose src is another's dst may read it before or
 * after that copy.
 * The call opens the directories its pairs name (O_PATH, at most 16 at a
 * time, only where RLIMIT_NOFILE is 256 or more) and works relative to
 * them until it returns: a directory renamed during the call still
 * receives the call's files. */
USYNC_API int usync_copy_files(usync_engine *engine, const usync_pair *pairs, size_t count, usync_result *results);

#ifdef __cplusplus
}
#endif

#endif /* URINGSYNC_URINGSYNC_H */
