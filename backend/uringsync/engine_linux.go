//go:build linux && cgo

package uringsync

/*
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uringsync/uringsync.h>

// Exported from callbacks_linux.go (keep in step with it). The first
// argument is the engine's runtime/cgo.Handle, an integer, never a pointer;
// the second the thread the callback runs on (usync_go_thread).
extern void usyncGoError(uintptr_t handle, uintptr_t thread, usync_file_error *err);
extern void usyncGoFileDone(uintptr_t handle, uintptr_t thread, usync_file_done *done);
extern void usyncGoProgress(uintptr_t handle, uintptr_t thread, usync_stats *stats);
extern void usyncGoDelete(uintptr_t handle, uintptr_t thread, usync_deletion *del);

// The calling thread, as an integer: unique among the threads alive (see
// callbackThreads in callbacks_linux.go).
static uintptr_t usync_go_thread(void) { return (uintptr_t)pthread_self(); }

// Trampolines of the library's callback types: they hand cb_user back to Go
// as the integer it was made from, with the thread they run on.
static void usync_go_error(void *user, const usync_file_error *err) {
	usyncGoError((uintptr_t)user, usync_go_thread(), (usync_file_error *)err);
}
static void usync_go_file_done(void *user, const usync_file_done *done) {
	usyncGoFileDone((uintptr_t)user, usync_go_thread(), (usync_file_done *)done);
}
static void usync_go_progress(void *user, const usync_stats *stats) {
	usyncGoProgress((uintptr_t)user, usync_go_thread(), (usync_stats *)stats);
}

static void usync_go_delete(void *user, const usync_deletion *del) {
	usyncGoDelete((uintptr_t)user, usync_go_thread(), (usync_deletion *)del);
}

// Store the handle in cb_user (a void * the library only passes back) and
// route the callbacks through the trampolines.
static void usync_go_callbacks(usync_options *o, uintptr_t handle, int file_done, int progress, int del) {
	o->cb_user = (void *)handle;
	o->error_cb = usync_go_error;
	if (file_done) o->file_done_cb = usync_go_file_done;
	if (progress) o->progress_cb = usync_go_progress;
	if (del) o->delete_cb = usync_go_delete;
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Engine is one liburingsync engine. Copy calls on one Engine run one at a
// time (a second call waits, until its context ends); Stats, Kind and
// Cancel may be called at any time from any goroutine. Close releases it.
type Engine struct {
	turn   chan struct{} // holds a token while a copy call or Close runs: serialises them
	life   sync.RWMutex  // guards ptr against Close for Stats/Kind/Cancel
	ptr    *C.usync_engine
	handle cgo.Handle
	state  *callState
}

// callState is what the C callbacks reach through the cgo handle.
type callState struct {
	opts     Options
	engine   *C.usync_engine                    // to cancel the call when a callback panics
	panicked atomic.Pointer[CallbackPanicError] // first panic of the running call
	mu       sync.Mutex
	errs     []*FileError // first failures of the running call
	failed   uint64
	// waitsFor is the engine that a callback of this engine's running call
	// is calling (waiting for its turn, or inside its call), or nil; guarded
	// by waits. See Engine.acquire.
	waitsFor *callState
}

// waits guards every callState.waitsFor: a call from a callback checks the
// chain and links itself in one step.
var waits sync.Mutex

// currentThread returns the thread the goroutine runs on, in the terms of
// callbackThreads. The caller must be locked to its thread (or be sure it
// runs inside a callback) for the answer to stay true.
func currentThread() uintptr { return uintptr(C.usync_go_thread()) }

// callingState returns the engine whose callback the calling goroutine runs
// in (the innermost one), or nil. See callbackThreads for why this holds.
func callingState() *callState {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return callbackOn(currentThread())
}

// Version returns the version of the linked library ("MAJOR.MINOR.PATCH").
func Version() string { return C.GoString(C.usync_version_string()) }

// New creates an engine. Options are copied; opts may be nil.
func New(opts *Options) (*Engine, error) {
	st := &callState{}
	if opts != nil {
		st.opts = *opts
	}
	o := &st.opts
	if err := validate(o); err != nil {
		return nil, err
	}
	var co C.usync_options
	C.usync_options_init(&co)
	for _, f := range []struct {
		on   bool
		flag C.uint32_t
	}{
		{o.Preserve, C.USYNC_PRESERVE},
		{o.DryRun, C.USYNC_DRY_RUN},
		{o.ForceSync, C.USYNC_FORCE_SYNC},
		{o.FailFast, C.USYNC_FAIL_FAST},
		{o.HashMD5, C.USYNC_HASH_MD5},
		{o.AtimeFromMtime, C.USYNC_ATIME_FROM_MTIME},
		{o.NoReplace, C.USYNC_NO_REPLACE},
		{o.AnnounceFallback, C.USYNC_ANNOUNCE_FALLBACK},
		{o.IgnoreTimes, C.USYNC_IGNORE_TIMES},
		{o.Update, C.USYNC_UPDATE},
		{o.Checksum, C.USYNC_CHECKSUM},
		{o.Owner, C.USYNC_OWNER},
		{o.Group, C.USYNC_GROUP},
		{o.Xattrs, C.USYNC_XATTRS},
		{o.UserXattrs, C.USYNC_USER_XATTRS},
		{o.ACLs, C.USYNC_ACLS},
		{o.OneFileSystem, C.USYNC_ONE_FILE_SYSTEM},
		{o.CopyLinks, C.USYNC_COPY_LINKS},
		{o.HardLinks, C.USYNC_HARD_LINKS},
		{o.Sparse, C.USYNC_SPARSE},
		{o.Archive, C.USYNC_ARCHIVE},
		{o.Delete, C.USYNC_DELETE},
		{o.DeleteExcluded, C.USYNC_DELETE | C.USYNC_DELETE_EXCLUDED},
		{o.Verify, C.USYNC_VERIFY},
		{o.Fsync, C.USYNC_FSYNC},
	} {
		if f.on {
			co.flags |= f.flag
		}
	}
	co.buffer_budget = C.uint64_t(o.BufferBudget)
	co.workers = C.uint32_t(o.Workers)
	co.queue_depth = C.uint32_t(o.QueueDepth)
	co.chunk_size = C.uint32_t(o.ChunkSize)
	co.iowq_max_workers = C.uint32_t(o.IOWQMaxWorkers)
	co.progress_interval_ms = millis(o.ProgressInterval)
	co.idle_timeout_ms = millis(o.IdleTimeout)
	co.file_mode = C.uint32_t(o.FileMode)

	// Exclude patterns live in C memory only for usync_engine_create, which
	// copies them.
	if n := len(o.Excludes); n > 0 {
		arr := (**C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		strs := unsafe.Slice(arr, n)
		defer func() {
			for _, s := range strs {
				C.free(unsafe.Pointer(s))
			}
			C.free(unsafe.Pointer(arr))
		}()
		for i, pat := range o.Excludes {
			strs[i] = C.CString(pat) // validate refused NUL bytes
		}
		co.excludes = arr
		co.exclude_count = C.size_t(n)
	}

	e := &Engine{turn: make(chan struct{}, 1), state: st}
	e.handle = cgo.NewHandle(st)
	C.usync_go_callbacks(&co, C.uintptr_t(e.handle), boolInt(o.OnFileDone != nil), boolInt(o.OnProgress != nil),
		boolInt(o.OnDelete != nil))
	if rc := C.usync_engine_create(&co, &e.ptr); rc != 0 {
		e.handle.Delete()
		if rc == -C.EINVAL {
			// validate checked all else: a pattern the library cannot compile.
			if err := badExclude(o.Excludes); err != nil {
				return nil, err
			}
		}
		return nil, &os.SyscallError{Syscall: "usync_engine_create", Err: errnoOf(rc)}
	}
	st.engine = e.ptr
	return e, nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func errnoOf(rc C.int) syscall.Errno { return syscall.Errno(-rc) }

// Close destroys the engine, waiting for a running copy call to return.
// Closing twice is a no-op; a copy call after Close returns an error that
// matches fs.ErrClosed. Close from a callback of the engine's running
// call (which it would wait for forever) returns an error wrapping
// syscall.EDEADLK and closes nothing.
func (e *Engine) Close() error {
	release, err := e.acquire(context.Background())
	if err != nil {
		return fmt.Errorf("uringsync: close: %w", err)
	}
	defer release()
	e.life.Lock()
	defer e.life.Unlock()
	if e.ptr == nil {
		return nil
	}
	C.usync_engine_destroy(e.ptr)
	e.ptr = nil
	e.handle.Delete()
	return nil
}

// errClosed is the error of a copy call on a closed engine: it matches
// fs.ErrClosed, as a closed os.File's do.
var errClosed = fmt.Errorf("uringsync: engine is closed (%w)", fs.ErrClosed)

// Cancel asks the running copy call, if any, to stop. Cancelling the
// context passed to the call does the same. A call stopped by Cancel
// returns an error wrapping syscall.ECANCELED ("uringsync: copy files
// canceled: operation canceled"), and CopyFiles its results, as after a
// cancelled context (whose error also wraps the context's).
func (e *Engine) Cancel() {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.ptr != nil {
		C.usync_engine_cancel(e.ptr)
	}
}

// Kind says which engine a copy call would use now.
func (e *Engine) Kind() Kind {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.ptr == nil {
		return KindNone
	}
	return Kind(C.usync_engine_kind(e.ptr))
}

// Stats returns the counters of the running or last copy call.
func (e *Engine) Stats() Stats {
	e.life.RLock()
	defer e.life.RUnlock()
	var cs C.usync_stats
	if e.ptr != nil {
		C.usync_engine_stats(e.ptr, &cs, C.size_t(unsafe.Sizeof(cs)))
	}
	return statsOf(&cs)
}

func statsOf(cs *C.usync_stats) Stats {
	return Stats{
		FilesFound:      uint64(cs.files_found),
		BytesFound:      uint64(cs.bytes_found),
		FilesDone:       uint64(cs.files_done),
		BytesDone:       uint64(cs.bytes_done),
		FilesFailed:     uint64(cs.files_failed),
		FilesExcluded:   uint64(cs.files_excluded),
		DirsCreated:     uint64(cs.dirs_created),
		SymlinksCreated: uint64(cs.symlinks_created),
		SpecialsCreated: uint64(cs.specials_created),
		Elapsed:         time.Duration(cs.elapsed_ns),
		WalkDone:        cs.walk_done != 0,
		Engine:          Kind(cs.engine),
		QueueDepth:      int(cs.queue_depth),
		FDBudget:        int(cs.fd_budget),
		FilesSkipped:    uint64(cs.files_skipped),
		TempsRemoved:    uint64(cs.temps_removed),
		EntriesDeleted:  uint64(cs.entries_deleted),
		FilesVerified:   uint64(cs.files_verified),
		BytesVerified:   uint64(cs.bytes_verified),
		LinksCreated:    uint64(cs.links_created),
		FilesInline:     uint64(cs.files_inline),
		FilesUnsized:    uint64(cs.files_unsized),
		BytesCopied:     uint64(cs.bytes_copied),
		BufferBytes:     uint64(cs.buffer_bytes),
	}
}

// acquire waits for the engine's turn (held by one copy call or Close at a
// time) until ctx ends; release gives it back.
//
// A call from inside a callback would wait forever for the turn of the call
// the callback belongs to (which cannot end before the callback returns): it
// is refused with syscall.EDEADLK, as the C library refuses a copy call from
// one of its engine's callbacks, but before waiting, where the library's
// check would come too late. So is a call on engine E from a callback of
// engine S when E's running call waits, through a chain of callbacks each
// calling the next engine, for S's call: A's callback calling B whose
// callback calls A, on one thread or (which the C library cannot see) on B's
// own. Each link is recorded while it waits or runs (callState.waitsFor),
// so two callbacks calling each other's engine at once are found too; a
// link that would close a cycle is refused, so the walk ends. Calls from
// other goroutines, which hold no turn, wait as before.
func (e *Engine) acquire(ctx context.Context) (release func(), err error) {
	caller := callingState()
	if caller != nil {
		waits.Lock()
		for s := e.state; s != nil; s = s.waitsFor {
			if s == caller {
				waits.Unlock()
				return nil, syscall.EDEADLK
			}
		}
		caller.waitsFor = e.state
		waits.Unlock()
	}
	unlink := func() {
		if caller != nil {
			waits.Lock()
			caller.waitsFor = nil
			waits.Unlock()
		}
	}
	select {
	case e.turn <- struct{}{}:
	case <-ctx.Done():
		unlink()
		return nil, ctx.Err()
	}
	return func() {
		unlink()
		<-e.turn
	}, nil
}

// begin locks the engine for one copy call and arranges for ctx's
// cancellation to reach the engine; end undoes both. op, src and dst make
// the error of a call refused from a callback, as finish makes the
// library's.
// A ctx that has ended, or ends while the call waits for its turn, gives
// the error of a call cancelled while it runs (canceledError).
func (e *Engine) begin(ctx context.Context, op, src, dst string) (end func(), err error) {
	// Waiting for another call's turn ends with ctx, as the call would.
	if ctx.Err() != nil {
		return nil, canceledError(ctx, op)
	}
	unlock, err := e.acquire(ctx)
	if errors.Is(err, syscall.EDEADLK) {
		return nil, startError(op, src, dst, syscall.EDEADLK)
	} else if err != nil {
		return nil, canceledError(ctx, op)
	}
	if e.ptr == nil {
		unlock()
		return nil, errClosed
	}
	if ctx.Err() != nil {
		unlock()
		return nil, canceledError(ctx, op)
	}
	e.state.mu.Lock()
	e.state.errs, e.state.failed = nil, 0
	e.state.mu.Unlock()
	e.state.panicked.Store(nil)
	if ctx.Done() == nil {
		return unlock, nil
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		// A cancel that lands before the C call starts is cleared by it, so
		// repeat until the call has returned.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			C.usync_engine_cancel(e.ptr)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		unlock()
	}, nil
}

// finish turns a copy call's return code into an error. A panic in a
// callback outranks everything, since it cancelled the call.
func (e *Engine) finish(ctx context.Context, op, src, dst string, rc C.int) error {
	if pe := e.state.panicked.Load(); pe != nil {
		return pe
	}
	switch {
	case rc == 0:
		return nil
	case rc == -C.ECANCELED && ctx.Err() != nil:
		return canceledError(ctx, op)
	case rc == -C.ECANCELED:
		// Engine.Cancel: a cancel of the call, about no path of it.
		return fmt.Errorf("uringsync: %s canceled: %w", op, syscall.ECANCELED)
	case rc == -C.EIO:
		e.state.mu.Lock()
		defer e.state.mu.Unlock()
		failed := e.state.failed
		if n := e.Stats().FilesFailed; n > failed {
			failed = n
		}
		return &CopyError{Op: op, Failed: failed, Errors: e.state.errs}
	default:
		return startError(op, src, dst, errnoOf(rc))
	}
}

// canceledError is the error of a call whose ctx ended, before the engine
// started it or while it ran: it wraps ctx.Err(), the cause the context was
// cancelled with, if another (context.Cause), and syscall.ECANCELED.
func canceledError(ctx context.Context, op string) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if cause == nil || cause == err {
		return fmt.Errorf("uringsync: %s canceled: %w (%w)", op, err, syscall.ECANCELED)
	}
	return fmt.Errorf("uringsync: %s canceled: %w (%w, %w)", op, cause, err, syscall.ECANCELED)
}

// startError is the error of a copy call that could not start: with a dst,
// a *treeError, else an *os.PathError for src.
func startError(op, src, dst string, errno syscall.Errno) error {
	pe := &os.PathError{Op: op, Path: src, Err: errno}
	if dst == "" {
		return pe
	}
	return &treeError{Dst: dst, PathError: pe}
}

// treeError is the error of a tree copy that could not start. Its message
// names both trees, "copy tree SRC to DST: errno" (as the CLI's "cannot
// copy 'SRC' to 'DST'"): the library returns only an errno, which may be
// about either (a missing source, a destination it cannot make: ENOENT
// both). It unwraps to the *os.PathError CopyTree has always returned
// (Path: src), and so to the errno.
type treeError struct {
	Dst string
	*os.PathError
}

func (e *treeError) Error() string {
	return e.Op + " " + e.Path + " to " + e.Dst + ": " + e.Err.Error()
}

func (e *treeError) Unwrap() error { return e.PathError }

// CopyTree copies the tree at src so that dst becomes a copy of it (like
// cp -rT): dst and its missing parents are made, an existing dst directory
// is merged into, and existing files in it are replaced atomically. src may
// also be a single file or symlink. A directory the call makes (dst too) is
// built under the temporary name ".usync-dir-<name>.tmp" (dst's beside it)
// and renamed when everything under it is in place; a later call takes over
// what a killed one left so.
//
// It returns nil when everything was copied, a *CopyError when entries
// failed, an error wrapping ctx's error (its cause too, context.Cause, and
// syscall.ECANCELED) when ctx ended before or during the call (also while
// it waited for another call's turn), one wrapping syscall.ECANCELED alone
// after Cancel, a *CallbackPanicError when a callback
// panicked, or, when the copy could not start, one that names both trees
// ("copy tree SRC to DST: no such file or directory": the errno does not
// say which of the two it could not use; OnError, when set, is called
// first with that side's path and step) and wraps an *os.PathError (Op
// "copy tree", Path src) with the errno. A path that
// contains a NUL byte is refused with an *os.PathError for that path,
// wrapping syscall.EINVAL, as the os package does.
func (e *Engine) CopyTree(ctx context.Context, src, dst string) error {
	for _, p := range []string{src, dst} {
		if hasNUL(p) {
			return &os.PathError{Op: "copy tree", Path: p, Err: syscall.EINVAL}
		}
	}
	end, err := e.begin(ctx, "copy tree", src, dst)
	if err != nil {
		return err
	}
	defer end()
	csrc, cdst := C.CString(src), C.CString(dst)
	defer C.free(unsafe.Pointer(csrc))
	defer C.free(unsafe.Pointer(cdst))
	rc := C.usync_copy_tree(e.ptr, csrc, cdst)
	return e.finish(ctx, "copy tree", src, dst, rc)
}

// CopyFiles copies explicit (src, dst) file pairs concurrently and returns
// one Result per pair, in order. Missing parent directories are made and
// existing destination files are replaced atomically. A pair whose paths
// contain a NUL byte never reaches the engine: it fails with syscall.EINVAL
// at StepOpenSrc, or StepOpenDst when only Dst has one (and is passed to
// OnError once the engine is done) while the other pairs are copied. Such
// pairs are not in Stats, which counts what the engine was given. A pair
// whose Dst is its Src (the same string) fails with syscall.ELOOP at
// StepOverlap, the file left alone; of pairs naming one Dst the first is
// copied and each later one fails with syscall.EINVAL at StepOpenDst.
//
// The error is nil when every pair succeeded, a *CopyError when some failed
// (see the results), an error wrapping ctx's error (its cause too,
// context.Cause, and syscall.ECANCELED) when ctx ended before or during the
// call, one wrapping syscall.ECANCELED alone after Cancel, or a
// *CallbackPanicError when a callback panicked (which cancels
// the call too). Pairs a cancelled call did not copy fail with
// syscall.ECANCELED at StepCanceled: all of them (but those with a NUL
// byte) when ctx ended before the engine started, also while the call
// waited for another call's turn; no callback runs then. So do the pairs a
// FailFast call stopped before copying them: they are not failures of
// their own, so neither in CopyError (Failed, Errors) nor passed to
// OnError. Results are nil only when the call could not start for another
// reason.
//
// A batch that one worker would copy (at most 64 files, none of 1 MiB or
// more, by Pair.Size where given) starts on the calling thread: the
// synchronous engine copies it there, the adaptive engine the files it finds
// in the page cache. No thread switch; callbacks (and OnProgress between
// files) run there.
func (e *Engine) CopyFiles(ctx context.Context, pairs []Pair) ([]Result, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	end, err := e.begin(ctx, "copy files", pairs[0].Src, "")
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, syscall.ECANCELED) {
			// As a call cancelled before it copied anything.
			results := make([]Result, len(pairs))
			for i, p := range pairs {
				fe := &FileError{Src: p.Src, Dst: p.Dst, Step: StepCanceled, Errno: syscall.ECANCELED}
				if hasNUL(p.Src) || hasNUL(p.Dst) {
					fe.Step, fe.Errno = nulStep(p), syscall.EINVAL
				}
				results[i].Err = fe
			}
			return results, err
		}
		return nil, err
	}
	defer end()

	// All paths go into one C buffer, NUL-terminated, and the pair array
	// points into it: no Go memory is visible to the engine. The engine's
	// pair k is pairs[sent[k]].
	sent := make([]int, 0, len(pairs))
	size := 0
	for i, p := range pairs {
		if hasNUL(p.Src) || hasNUL(p.Dst) {
			continue
		}
		sent = append(sent, i)
		size += len(p.Src) + len(p.Dst) + 2
	}
	n := len(sent)
	rc := C.int(0)
	var cres []C.usync_result
	if n > 0 {
		buf := C.malloc(C.size_t(size))
		cpairs := (*C.usync_pair)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.usync_pair{}))))
		cresp := (*C.usync_result)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.usync_result{}))))
		defer C.free(buf)
		defer C.free(unsafe.Pointer(cpairs))
		defer C.free(unsafe.Pointer(cresp))
		if buf == nil || cpairs == nil || cresp == nil {
			return nil, &os.SyscallError{Syscall: "malloc", Err: syscall.ENOMEM}
		}
		mem := unsafe.Slice((*byte)(buf), size)
		ps := unsafe.Slice(cpairs, n)
		off := 0
		put := func(s string) *C.char {
			p := (*C.char)(unsafe.Pointer(&mem[off]))
			off += copy(mem[off:], s)
			mem[off] = 0
			off++
			return p
		}
		for k, i := range sent {
			ps[k].src = put(pairs[i].Src)
			ps[k].dst = put(pairs[i].Dst)
			ps[k].size = C.uint64_t(max(pairs[i].Size, 0))
		}
		rc = C.usync_copy_files(e.ptr, cpairs, C.size_t(n), cresp)
		if rc != 0 && rc != -C.EIO && rc != -C.ECANCELED {
			return nil, e.finish(ctx, "copy files", pairs[sent[0]].Src, "", rc)
		}
		cres = unsafe.Slice(cresp, n)
	}

	results := make([]Result, len(pairs))
	var failed []*FileError
	nfailed := uint64(0)
	fail := func(i int, step Step, errno syscall.Errno) *FileError {
		fe := &FileError{Src: pairs[i].Src, Dst: pairs[i].Dst, Step: step, Errno: errno}
		results[i].Err = fe
		nfailed++
		if len(failed) < maxCollected {
			failed = append(failed, fe)
		}
		return fe
	}
	for k, r := range cres {
		res := &results[sent[k]]
		res.Bytes = int64(r.bytes)
		if r.error != 0 && Step(r.step) == StepCanceled {
			// Not tried: the call stopped first (a cancel, or FailFast after
			// another pair's failure). Not a failure of its own, as in the
			// library's files_failed and OnError.
			res.Err = &FileError{Src: pairs[sent[k]].Src, Dst: pairs[sent[k]].Dst, Step: StepCanceled, Errno: syscall.Errno(r.error)}
			continue
		}
		if r.error != 0 {
			fail(sent[k], Step(r.step), syscall.Errno(r.error))
			continue
		}
		if r.has_md5 != 0 {
			res.HasMD5 = true
			for j := range res.MD5 {
				res.MD5[j] = byte(r.md5[j])
			}
		}
		if r.has_src_stat != 0 {
			res.HasSrcStat, res.SrcStat = true, fileStat(&r.src_stat)
		}
		if r.has_dst_stat != 0 {
			res.HasDstStat, res.DstStat = true, fileStat(&r.dst_stat)
		}
	}
	if n < len(pairs) {
		// OnError runs here on the caller's goroutine, which holds the
		// turn: as a callback, locked to its thread, so that a call from it
		// is refused rather than wait for this one.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		thread := currentThread()
		k := 0 // pairs[sent[k]] is the next pair the engine had
		for i := range pairs {
			if k < n && sent[k] == i {
				k++
				continue
			}
			e.state.reportError(thread, fail(i, nulStep(pairs[i]), syscall.EINVAL))
		}
	}
	if pe := e.state.panicked.Load(); pe != nil {
		return results, pe
	}
	if rc == -C.EIO || (rc == 0 && nfailed > 0) {
		return results, &CopyError{Op: "copy files", Failed: nfailed, Errors: failed}
	}
	return results, e.finish(ctx, "copy files", pairs[0].Src, "", rc)
}

// hasNUL reports whether s would reach C cut short: C strings end at the
// first NUL byte.
func hasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }

// nulStep is the step a pair with a NUL byte fails at: the side whose path
// has it, as the library blames an empty one.
func nulStep(p Pair) Step {
	if hasNUL(p.Src) {
		return StepOpenSrc
	}
	return StepOpenDst
}

// fileStat converts the library's file stat.
func fileStat(s *C.usync_file_stat) FileStat {
	return FileStat{Size: int64(s.size), Mtime: time.Unix(int64(s.mtime_sec), int64(s.mtime_nsec))}
}
