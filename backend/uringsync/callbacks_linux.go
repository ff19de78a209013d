//go:build linux && cgo

package uringsync

// The C callbacks of every engine land here, on engine threads, through the
// trampolines in engine_linux.go, and are routed to the engine's Go state
// through its cgo handle, which arrives as the integer it is.

// #include <uringsync/uringsync.h>
import "C"

import (
	"runtime/cgo"
	"syscall"
)

func stateOf(handle C.uintptr_t) *callState {
	return cgo.Handle(handle).Value().(*callState)
}

//export usyncGoError
func usyncGoError(handle C.uintptr_t, ce *C.usync_file_error) {
	st := stateOf(handle)
	fe := &FileError{
		Src:   C.GoString(ce.src_path),
		Dst:   C.GoString(ce.dst_path),
		Step:  Step(ce.step),
		Errno: syscall.Errno(ce.error),
	}
	st.reportError(fe)
}

// reportError records a failed entry of the running call and passes it to
// OnError.
func (st *callState) reportError(fe *FileError) {
	st.mu.Lock()
	st.failed++
	if len(st.errs) < maxCollected {
		st.errs = append(st.errs, fe)
	}
	st.mu.Unlock()
	if st.opts.OnError != nil {
		st.opts.OnError(fe)
	}
}

//export usyncGoFileDone
func usyncGoFileDone(handle C.uintptr_t, cd *C.usync_file_done) {
	st := stateOf(handle)
	if st.opts.OnFileDone == nil {
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
	st.opts.OnFileDone(fd)
}

//export usyncGoProgress
func usyncGoProgress(handle C.uintptr_t, cs *C.usync_stats) {
	st := stateOf(handle)
	if st.opts.OnProgress != nil {
		st.opts.OnProgress(statsOf(cs))
	}
}
