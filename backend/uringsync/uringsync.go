// Package uringsync is the Go binding of liburingsync, the io_uring engine
// that copies trees of many small files fast and faithfully on Linux.
//
// An [Engine] wraps one engine handle of the C library. It copies a whole
// tree ([Engine.CopyTree]) or an explicit list of files ([Engine.CopyFiles]);
// both take a [context.Context] whose cancellation stops the engine. Progress
// arrives through the callbacks in [Options]. Errors wrap [syscall.Errno], so
// errors.Is(err, fs.ErrNotExist) and errors.Is(err, syscall.EACCES) work.
//
// The package needs Linux and cgo. Elsewhere it still compiles, and [New]
// returns an error wrapping [ErrUnsupported].
//
// The engine never keeps Go memory: paths are copied into C memory for the
// duration of a call, and callbacks reach Go through runtime/cgo handles.
package uringsync

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"time"
)

// ErrUnsupported is returned by [New] when the package was built without
// cgo or for an operating system other than Linux.
var ErrUnsupported = fmt.Errorf("uringsync: %w (needs Linux and cgo)", errors.ErrUnsupported)

// Options configure an [Engine]. The zero value is valid: defaults chosen by
// the library, no callbacks. [New] refuses a value out of the range given
// here with an error that names the field and the value (and an exclude
// pattern, with its index) and wraps syscall.EINVAL.
type Options struct {
	Workers          int           // rings or threads; 0 = from the CPU count; at most 1024
	QueueDepth       int           // files in flight per ring; 0 = 128; at most 4096
	ChunkSize        int           // bytes per read/write buffer; 0 = 128 KiB; else 4 KiB to 64 MiB
	IOWQMaxWorkers   int           // io-wq kernel threads per ring; 0 = 4; at most 1024
	ProgressInterval time.Duration // between OnProgress calls, rounded up to a millisecond; 0 = 200ms
	// IdleTimeout is how long an engine thread waits for the next call
	// before it exits. An engine keeps its threads, and the rings and
	// buffers they hold, from one call to the next, so that a call on a warm
	// engine starts no thread and builds no ring; Close ends them at once.
	// 0 = 5s. Rounded up to a millisecond; at most 2^32-1 ms (about 49
	// days), as ProgressInterval.
	IdleTimeout time.Duration
	// FileMode is the permission bits (os.ModePerm at most) every regular
	// file the engine creates is made with, less the umask as with
	// os.OpenFile: 0o666 gives the mode os.Create and rclone's local backend
	// give. 0 = the source's permission bits, as cp -r. With Preserve files
	// still get the source's mode.
	FileMode fs.FileMode
	// AtimeFromMtime gives every file the engine writes its source's
	// modification time as access time too (what rclone's local backend
	// sets), instead of the source's access time.
	AtimeFromMtime bool
	// NoReplace makes CopyFiles leave every destination that exists as it
	// is: its pair fails with a FileError (StepRename) that matches
	// fs.ErrExist. A caller that creates new files then needs no existence
	// check of its own.
	NoReplace bool

	Preserve  bool // keep permission bits (and directory times; files keep times always)
	DryRun    bool // walk and report, write nothing (CopyFiles fails the pairs a lookup shows would fail: see USYNC_DRY_RUN)
	ForceSync bool // never use io_uring: use the synchronous thread pool
	FailFast  bool // stop the whole job at the first per-file error
	HashMD5   bool // compute the MD5 of each copied file while copying (small files many at a time: see USYNC_HASH_MD5)
	// IgnoreTimes copies every file; by default CopyTree skips a file whose
	// destination has the same size and modification time (rsync's quick
	// check; files keep their modification time in every mode). Update
	// keeps destination files that are newer; Checksum compares bytes
	// instead of times.
	IgnoreTimes bool
	Update      bool
	Checksum    bool
	// Delete makes CopyTree mirror: destination entries the source lacks
	// (and entries of another kind in the way, such as a directory where
	// the source has a file) are removed, children before their directory;
	// entries matching Excludes are kept unless DeleteExcluded (which
	// implies Delete). Symlinks are removed, never followed, and nothing on
	// another mount is touched. With DryRun nothing is removed but each
	// entry that would be is reported to OnDelete and counted.
	Delete         bool
	DeleteExcluded bool
	// Owner and Group keep owners (as root) and groups; Xattrs keeps
	// extended attributes (user, trusted and security namespaces); ACLs
	// keeps POSIX ACLs. Each is synchronised: what the destination has and
	// the source has not (an inherited ACL, a stale xattr) is removed.
	Owner, Group, Xattrs, ACLs bool
	// UserXattrs keeps the user namespace's extended attributes (user.*)
	// only, also as root: what rclone's local backend keeps with
	// --metadata. Xattrs, also set, wins.
	UserXattrs bool
	// OneFileSystem does not cross filesystem boundaries in the source (a
	// mount point becomes an empty directory); CopyLinks follows symlinks
	// in the source (a dangling one fails, one looping back is refused).
	OneFileSystem, CopyLinks bool
	// HardLinks keeps hard links: source paths sharing an inode share one
	// in the copy (the first is copied, the others linked: Stats.LinksCreated).
	HardLinks bool
	// Sparse keeps holes: a file with fewer blocks than its size is copied
	// segment by segment (SEEK_DATA/SEEK_HOLE), allocating what it does.
	Sparse bool
	// Archive is everything above at once (cp -a, rsync -aHAXS): Preserve,
	// Owner, Group, Xattrs, ACLs, HardLinks and Sparse.
	Archive bool
	// Verify reads every written file back from the disk (synced, cached
	// pages dropped) before it gets its final name and compares it with the
	// bytes read from the source (XXH3); a file that differs fails with
	// StepVerify and EBADMSG and is not published. Files are copied through
	// memory (no reflink or copy_file_range).
	Verify bool
	// Fsync syncs every file before it gets its final name and every
	// directory after its entries, so that a finished copy survives a power
	// loss.
	Fsync bool
	// AnnounceFallback prints one line on stderr when io_uring is unavailable
	// and the synchronous engine is used. The library prints nothing
	// otherwise.
	AnnounceFallback bool
	// QuietFallback is kept for compatibility and ignored: the library no
	// longer prints unless AnnounceFallback asks it to.
	QuietFallback bool

	// BufferBudget bounds the I/O buffer bytes of one call, rings (pinned)
	// and threads together; files in flight (then the chunk) shrink to fit.
	// 0 = 128 MiB; else at least 4096.
	BufferBudget int64

	// Excludes are glob patterns (* ? [..] **) for CopyTree: a leading '/'
	// anchors at the root, a trailing '/' matches directories only, a
	// pattern without '/' matches the name at any depth. An empty pattern
	// (or one of slashes only), an unclosed '[', a trailing '\' and a NUL
	// byte are refused.
	Excludes []string

	// Callbacks run on engine threads (or the calling goroutine's thread:
	// see CopyFiles), one at a time per engine. They must
	// return quickly and must not call the engine except Stats and Cancel:
	// a copy call or Close from one would wait for the call the callback
	// belongs to, and returns an error wrapping syscall.EDEADLK instead
	// (as the C library's copy calls do). So does a call on another engine
	// whose running call waits for this one, through callbacks each calling
	// the next engine (A's callback calls B, whose callback calls A).
	// Goroutines a callback starts are not inside it: their calls wait for
	// their turn, so a callback must not wait for them.
	// A callback that panics cancels the call, which then returns a
	// *CallbackPanicError; the call's later callbacks are not made.
	OnError    func(*FileError) // each failed entry
	OnFileDone func(FileDone)   // each copied regular file (costs a call per file)
	OnProgress func(Stats)      // about every ProgressInterval during a copy
	OnDelete   func(Deletion)   // each entry Delete removes (or would, in a dry run)
}

// Deletion reports one destination entry removed by Options.Delete.
type Deletion struct {
	Dst  string      // its path
	Mode fs.FileMode // its type and permission bits
}

// Pair is one explicit file copy for [Engine.CopyFiles].
type Pair struct {
	Src string // a regular file, or a symlink to one
	Dst string // missing parents are made; an existing file is replaced atomically
	// Size is 0, or Src's size as the caller last saw it (from a listing):
	// then the engine does not look Src up before it opens it, and uses the
	// size only to route the file (small or large); the file as opened is
	// what is copied. A Src that is then missing or not a regular file fails
	// at StepOpenSrc or StepChanged instead of StepStat (usync_pair.size).
	// The first pair into a directory the call has not seen yet, and every
	// pair of a dry run or with Sparse, are looked up all the same.
	Size int64
}

// Result is the outcome of one [Pair].
type Result struct {
	// Err is nil, or a *FileError. With Step StepMetadata the file was
	// copied and is in place, but some of the metadata asked for (owner,
	// group, xattrs) could not be applied, and the file has not got the
	// source's times.
	Err   error
	Bytes int64 // bytes copied
	// HasMD5 says that MD5 is the digest of the bytes copied. It is set only
	// when the library reports one: the pair was copied (Err is nil) with
	// Options.HashMD5 and not in a dry run. Otherwise MD5 is all zero and
	// must not be used; test HasMD5, never MD5 against zero.
	MD5    [16]byte
	HasMD5 bool
	// SrcStat is the source as its descriptor showed it once every byte
	// had been read (Bytes and MD5 describe the file only if it still has
	// the size and mtime the caller saw before the call); DstStat is the
	// copy as published, with its times set. Each is valid only when its
	// Has flag is set, which a copy need not give (a copy published under
	// a temporary name first has no DstStat): then look the file up.
	SrcStat, DstStat       FileStat
	HasSrcStat, HasDstStat bool
}

// FileStat is a file's size and modification time, as fstat(2) gave them.
type FileStat struct {
	Size  int64
	Mtime time.Time
}

// FileDone reports one copied regular file. MD5 holds its digest only when
// HasMD5 is set (Options.HashMD5, not a dry run), as in [Result].
type FileDone struct {
	Src, Dst string
	Bytes    int64
	MD5      [16]byte
	HasMD5   bool
}

// Kind says which engine runs the copies.
type Kind int

// Engine kinds.
const (
	KindNone  Kind = 0 // not known yet
	KindURing Kind = 1 // io_uring rings
	KindSync  Kind = 2 // synchronous thread pool (io_uring unavailable or ForceSync)
)

func (k Kind) String() string {
	switch k {
	case KindURing:
		return "io_uring"
	case KindSync:
		return "sync"
	default:
		return "none"
	}
}

// Stats are the counters of the running or last copy call.
type Stats struct {
	FilesFound      uint64 // regular files the walker queued
	BytesFound      uint64 // their sizes, as stat'ed (FilesUnsized are not in it yet)
	FilesDone       uint64 // regular files copied completely
	BytesDone       uint64 // bytes written to destination files (those of a file that failed later too)
	FilesFailed     uint64 // entries of any type that failed
	FilesExcluded   uint64 // entries skipped by an exclude pattern
	DirsCreated     uint64
	SymlinksCreated uint64
	SpecialsCreated uint64 // FIFOs, sockets, device nodes
	Elapsed         time.Duration
	WalkDone        bool   // the walker has seen the whole tree
	Engine          Kind   // engine actually used
	QueueDepth      int    // io_uring: files in flight per ring after the budgets
	FDBudget        int    // descriptors the call allowed itself
	FilesSkipped    uint64 // regular files already up to date in the destination
	TempsRemoved    uint64 // temporaries of interrupted runs removed from the destination
	BufferBytes     uint64 // I/O buffer bytes registered with the rings
	EntriesDeleted  uint64 // entries removed by Options.Delete (would be, in a dry run)
	FilesVerified   uint64 // files re-read and found equal (Options.Verify)
	BytesVerified   uint64 // their bytes
	LinksCreated    uint64 // hard links made (Options.HardLinks)
	FilesInline     uint64 // io_uring engine: files read from the page cache and copied without the ring
	FilesUnsized    uint64 // of FilesFound, queued without a stat and not opened yet (BytesFound lacks them)
	BytesCopied     uint64 // the bytes of FilesDone (unlike BytesDone, none of a file that failed)
}

// Step names the part of a copy that failed.
type Step int

// Steps, as enum usync_step in uringsync.h.
const (
	StepNone Step = iota
	StepOpenSrc
	StepStat
	StepOpenDst
	StepRead
	StepWrite
	StepClose
	StepMetadata
	StepRename
	StepMkdir
	StepReaddir
	StepSymlink
	StepMknod
	StepCanceled
	StepChanged // the source was replaced while being copied (ESTALE): skipped; or a Pair with a Size is no regular file (EISDIR, EINVAL)
	StepOverlap // source and destination overlap (ELOOP): nothing copied
	StepDelete  // removing an entry for Options.Delete
	StepVerify  // re-reading a written file (EBADMSG: its bytes differ from the source's)
	StepFsync   // fsync of a file or directory
	StepLink    // making a hard link (Options.HardLinks)
)

var stepNames = [...]string{
	StepNone: "none", StepOpenSrc: "open source", StepStat: "stat",
	StepOpenDst: "open destination", StepRead: "read", StepWrite: "write",
	StepClose: "close", StepMetadata: "metadata", StepRename: "rename",
	StepMkdir: "mkdir", StepReaddir: "readdir", StepSymlink: "symlink",
	StepMknod: "mknod", StepCanceled: "canceled", StepChanged: "source changed",
	StepOverlap: "overlap", StepDelete: "delete", StepVerify: "verify",
	StepFsync: "fsync", StepLink: "link",
}

func (s Step) String() string {
	if s >= 0 && int(s) < len(stepNames) && stepNames[s] != "" {
		return stepNames[s]
	}
	return fmt.Sprintf("step %d", int(s))
}

// FileError is the failure of one entry. It unwraps to its syscall.Errno.
type FileError struct {
	Src, Dst string
	Step     Step
	Errno    syscall.Errno
}

func (e *FileError) Error() string {
	path := e.Src
	switch e.Step {
	case StepOpenDst, StepWrite, StepRename, StepMkdir, StepSymlink, StepMknod, StepMetadata,
		StepDelete, StepVerify, StepFsync, StepLink:
		path = e.Dst
	}
	return fmt.Sprintf("uringsync: %s %s: %v", e.Step, path, e.Errno)
}

// Unwrap returns the errno, so errors.Is matches fs.ErrNotExist and friends.
func (e *FileError) Unwrap() error { return e.Errno }

// maxCollected bounds how many per-file errors a CopyError keeps.
const maxCollected = 64

// CopyError reports a copy call that ran to its end with failed entries.
// It unwraps to the first failures, so errors.Is sees their errnos.
type CopyError struct {
	Op     string       // "copy tree" or "copy files"
	Failed uint64       // entries that failed
	Errors []*FileError // the first of them (at most 64)
}

func (e *CopyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "uringsync: %s: %d entries failed", e.Op, e.Failed)
	if len(e.Errors) > 0 {
		fmt.Fprintf(&b, ", first: %v", e.Errors[0])
	}
	return b.String()
}

// Unwrap returns the collected per-file errors.
func (e *CopyError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

// CallbackPanicError is returned by a copy call when one of the callbacks in
// [Options] panicked. The panic is recovered before it can unwind through the
// engine's C frames (which would end the process); the call is then
// cancelled and the rest of its callbacks are skipped. Results returned with
// it are those of a cancelled call. errors.Is and errors.As see the panic
// value when it is an error.
type CallbackPanicError struct {
	Callback string // "OnError", "OnFileDone", "OnProgress" or "OnDelete"
	Value    any    // the value passed to panic
	Stack    []byte // the stack of the panicking callback
}

func (e *CallbackPanicError) Error() string {
	return fmt.Sprintf("uringsync: panic in %s callback: %v", e.Callback, e.Value)
}

// Unwrap returns the panic value if it is an error, else nil.
func (e *CallbackPanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
