//go:build linux && cgo

package uringsync

// The C callbacks of every engine land here, on engine threads, through the
// trampolines in engine_linux.go, and are routed to the engine's Go state
// through its cgo handle, which arrives as the integer it is. A panic in a
// user callback must not unwind through the engine's C frames (the process
// would die): guard recovers it, stops the call and keeps it for the caller.

// #include <uringsync/uringsync.h>
import "C"

import (
	"io/fs"
	"runtime/cgo"
	"runtime/debug"
	"syscall"
)

func stateOf(handle C.uintptr_t) *callState {
	return cgo.Handle(handle).Value().(*callState)
}

//export usyncGoError
func usyncGoError(handle C.uintptr_t, ce *C.usync_file_error) {
	st := stateOf(handle)
	if st.panicked.Load() != nil {
		return
	}
	st.reportError(&FileError{
		Src:   C.GoString(ce.src_path),
		Dst:   C.GoString(ce.dst_path),
		Step:  Step(ce.step),
		Errno: syscall.Errno(ce.error),
	})
}

// reportError records a failed entry of the running call and passes it to
// OnError.
func (st *callState) reportError(fe *FileError) {
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
		st.guard("OnError", func() { st.opts.OnError(fe) })
	}
}

//export usyncGoFileDone
func usyncGoFileDone(handle C.uintptr_t, cd *C.usync_file_done) {
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
	st.guard("OnFileDone", func() { st.opts.OnFileDone(fd) })
}

//export usyncGoDelete
func usyncGoDelete(handle C.uintptr_t, cd *C.usync_deletion) {
	st := stateOf(handle)
	if st.opts.OnDelete == nil || st.panicked.Load() != nil {
		return
	}
	d := Deletion{Dst: C.GoString(cd.dst_path), Mode: fileMode(uint32(cd.mode))}
	st.guard("OnDelete", func() { st.opts.OnDelete(d) })
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
func usyncGoProgress(handle C.uintptr_t, cs *C.usync_stats) {
	st := stateOf(handle)
	if st.opts.OnProgress == nil || st.panicked.Load() != nil {
		return
	}
	stats := statsOf(cs)
	st.guard("OnProgress", func() { st.opts.OnProgress(stats) })
}

// guard runs the user callback f. If f panics, the first panic of the call
// is kept for the caller, the engine is told to cancel the call, and later
// callbacks of the call are skipped.
func (st *callState) guard(callback string, f func()) {
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
