//go:build linux && cgo

package uringsync

// The C callbacks of every engine land here, on engine threads, through the
// trampolines in engine_linux.go, and are routed to the engine's Go state
// through its cgo handle, which arrives as the integer it is. A panic in a
// user callback must not unwind through the engine's C frames (the process
// would die): guard recovers it, stops the call and keeps it for the caller.
// guard also records which engine's callback runs on which thread, so that
// a copy call made from inside a callback is refused when it would wait for
// the call that callback belongs to (see Engine.acquire).

// #include <uringsync/uringsync.h>
import "C"

import (
	"io/fs"
	"runtime/cgo"
	"runtime/debug"
	"sync"
	"syscall"
)

func stateOf(handle C.uintptr_t) *callState {
	return cgo.Handle(handle).Value().(*callState)
}

// callbackThreads maps each thread that is running a user callback now (its
// pthread_self, usync_go_thread) to the engine whose callback it is: the
// innermost one, when a callback copies with another engine whose callback
// runs on the same thread.
//
// That tells reliably whether a goroutine runs inside a callback, and whose.
// A cgo callback runs on the C thread that made it, in a goroutine locked to
// that thread until the callback returns: no other goroutine runs on the
// thread meanwhile (not even when the callback blocks), and an entry is
// there only meanwhile (guard adds it before the user's function runs and
// removes it after). A goroutine that locks itself to its thread, looks its
// thread up and finds an entry is therefore the goroutine of that callback
// (callingState); without the lock it could have moved off the thread between
// the two steps and find the entry of a callback that started there since.
// A thread id is reused only after its thread has exited, long after its
// entries were removed. (pthread_self rather than gettid: the trampolines
// get it without a system call per callback.) OnError for a pair CopyFiles
// refuses itself runs on the caller's goroutine, after the C call: that
// goroutine locks itself to its thread for it, to the same effect.
// Goroutines that a callback starts run elsewhere and are not inside it:
// their calls wait for their turn as any other.
var callbackThreads = struct {
	sync.Mutex
	m map[uintptr]*callState
}{m: map[uintptr]*callState{}}

// enterCallback records that st's callback runs on thread and returns what
// was recorded for it before (an outer callback of another engine, or nil),
// for leaveCallback.
func enterCallback(thread uintptr, st *callState) (outer *callState) {
	callbackThreads.Lock()
	defer callbackThreads.Unlock()
	outer = callbackThreads.m[thread]
	callbackThreads.m[thread] = st
	return outer
}

func leaveCallback(thread uintptr, outer *callState) {
	callbackThreads.Lock()
	defer callbackThreads.Unlock()
	if outer != nil {
		callbackThreads.m[thread] = outer
	} else {
		delete(callbackThreads.m, thread)
	}
}

// callbackOn returns the engine whose callback runs on thread, or nil.
func callbackOn(thread uintptr) *callState {
	callbackThreads.Lock()
	defer callbackThreads.Unlock()
	return callbackThreads.m[thread]
}

//export usyncGoError
func usyncGoError(handle, thread C.uintptr_t, ce *C.usync_file_error) {
	st := stateOf(handle)
	if st.panicked.Load() != nil {
		return
	}
	st.reportError(uintptr(thread), &FileError{
		Src:   C.GoString(ce.src_path),
		Dst:   C.GoString(ce.dst_path),
		Step:  Step(ce.step),
		Errno: syscall.Errno(ce.error),
	})
}

// reportError records a failed entry of the running call and passes it to
// OnError, which runs on thread (the caller's, locked to it).
func (st *callState) reportError(thread uintptr, fe *FileError) {
	if st.panicked.Load() != nil {
		return
	}
	st.mu.Lock()
	st.failed++
	if len(st.errs) < maxCollected {
		st.errs = append(st.errs, fe)
	}
	st.mu.Unlock()
	if st.opts.OnError != nil {
		st.guard("OnError", thread, func() { st.opts.OnError(fe) })
	}
}

//export usyncGoFileDone
func usyncGoFileDone(handle, thread C.uintptr_t, cd *C.usync_file_done) {
	st := stateOf(handle)
	if st.opts.OnFileDone == nil || st.panicked.Load() != nil {
		return
	}
	fd := FileDone{
		Src:    C.GoString(cd.src_path),
		Dst:    C.GoString(cd.dst_path),
		Bytes:  int64(cd.bytes),
		HasMD5: cd.has_md5 != 0,
	}
	for i := range fd.MD5 {
		fd.MD5[i] = byte(cd.md5[i])
	}
	st.guard("OnFileDone", uintptr(thread), func() { st.opts.OnFileDone(fd) })
}

//export usyncGoDelete
func usyncGoDelete(handle, thread C.uintptr_t, cd *C.usync_deletion) {
	st := stateOf(handle)
	if st.opts.OnDelete == nil || st.panicked.Load() != nil {
		return
	}
	d := Deletion{Dst: C.GoString(cd.dst_path), Mode: fileMode(uint32(cd.mode))}
	st.guard("OnDelete", uintptr(thread), func() { st.opts.OnDelete(d) })
}

// fileMode converts an st_mode to an fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

//export usyncGoProgress
func usyncGoProgress(handle, thread C.uintptr_t, cs *C.usync_stats) {
	st := stateOf(handle)
	if st.opts.OnProgress == nil || st.panicked.Load() != nil {
		return
	}
	stats := statsOf(cs)
	st.guard("OnProgress", uintptr(thread), func() { st.opts.OnProgress(stats) })
}

// guard runs the user callback f on thread, the thread its goroutine is
// locked to (see callbackThreads). If f panics, the first panic of the call
// is kept for the caller, the engine is told to cancel the call, and later
// callbacks of the call are skipped.
func (st *callState) guard(callback string, thread uintptr, f func()) {
	outer := enterCallback(thread, st)
	defer leaveCallback(thread, outer)
	defer func() {
		if v := recover(); v != nil {
			pe := &CallbackPanicError{Callback: callback, Value: v, Stack: debug.Stack()}
			if st.panicked.CompareAndSwap(nil, pe) {
				C.usync_engine_cancel(st.engine)
			}
		}
	}()
	f()
}
