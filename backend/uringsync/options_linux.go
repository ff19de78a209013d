//go:build linux && cgo

package uringsync

/*
#include <errno.h>
#include <stdlib.h>
#include <uringsync/uringsync.h>

// Whether the library accepts pattern as an exclude: an engine made with it
// alone (the synchronous engine: no io_uring probe; no thread starts before
// a copy call) is created and destroyed at once. 0 or -EINVAL.
static int usync_go_check_exclude(const char *pattern) {
	usync_options o;
	usync_options_init(&o);
	o.flags = USYNC_FORCE_SYNC;
	o.excludes = &pattern;
	o.exclude_count = 1;
	usync_engine *e = NULL;
	int rc = usync_engine_create(&o, &e);
	usync_engine_destroy(e);
	return rc;
}
*/
import "C"

import (
	"fmt"
	"math"
	"syscall"
	"time"
	"unsafe"
)

// optionError is an option New refuses. Its message names the Options field
// and the value; it wraps syscall.EINVAL, which the library returns for it.
type optionError struct{ msg string }

func (e *optionError) Error() string { return e.msg }
func (e *optionError) Unwrap() error { return syscall.EINVAL }

func badOption(format string, args ...any) error {
	return &optionError{msg: "uringsync: Options." + fmt.Sprintf(format, args...)}
}

// Limits of usync_engine_create (native/src/engine.cc), checked here so that
// the error can say which option is out of range: the library's -EINVAL
// does not.
const (
	maxWorkers        = 1024
	maxQueueDepth     = 4096
	maxIOWQWorkers    = 1024
	minChunkSize      = 4096
	maxChunkSize      = 64 << 20
	minBufferBudget   = 4096
	maxMilliseconds   = time.Duration(math.MaxUint32) * time.Millisecond // a uint32 of ms
	badPatternReasons = "empty, an unclosed '[' or a trailing '\\'"
)

// validate refuses what usync_engine_create would refuse, or what would not
// reach it as given (a negative count, a duration that does not fit its
// uint32 of milliseconds, a pattern cut short at a NUL byte), naming the
// option. Exclude patterns the library's compiler refuses are found by
// badExclude, after the library has refused them.
func validate(o *Options) error {
	for _, f := range []struct {
		name     string
		v, limit int
	}{
		{"Workers", o.Workers, maxWorkers},
		{"QueueDepth", o.QueueDepth, maxQueueDepth},
		{"IOWQMaxWorkers", o.IOWQMaxWorkers, maxIOWQWorkers},
	} {
		if f.v < 0 || f.v > f.limit {
			return badOption("%s %d out of range (0 to %d)", f.name, f.v, f.limit)
		}
	}
	if o.ChunkSize != 0 && (o.ChunkSize < minChunkSize || o.ChunkSize > maxChunkSize) {
		return badOption("ChunkSize %d out of range (0, or %d to %d)", o.ChunkSize, minChunkSize, maxChunkSize)
	}
	if o.BufferBudget != 0 && o.BufferBudget < minBufferBudget {
		return badOption("BufferBudget %d out of range (0, or at least %d)", o.BufferBudget, minBufferBudget)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"ProgressInterval", o.ProgressInterval},
		{"IdleTimeout", o.IdleTimeout},
	} {
		if f.d < 0 || f.d > maxMilliseconds {
			return badOption("%s %v out of range (0 to %v)", f.name, f.d, maxMilliseconds)
		}
	}
	if o.FileMode&^0o777 != 0 {
		return badOption("FileMode %#o out of range (permission bits: 0777 at most)", uint32(o.FileMode))
	}
	for i, pat := range o.Excludes {
		if hasNUL(pat) {
			return badOption("Excludes[%d] %q: invalid pattern (contains a NUL byte)", i, pat)
		}
	}
	return nil
}

// badExclude returns the error naming the first pattern of excludes the
// library refuses on its own, or nil. There is no entry point to compile
// one pattern: each is tried as the only exclude of an engine.
func badExclude(excludes []string) error {
	for i, pat := range excludes {
		cs := C.CString(pat)
		rc := C.usync_go_check_exclude(cs)
		C.free(unsafe.Pointer(cs))
		if rc == -C.EINVAL {
			return badOption("Excludes[%d] %q: invalid pattern (%s)", i, pat, badPatternReasons)
		}
	}
	return nil
}

// millis converts a validated duration to the library's milliseconds,
// rounding up, so that a positive duration never becomes 0 (the default).
func millis(d time.Duration) C.uint32_t {
	return C.uint32_t((d + time.Millisecond - 1) / time.Millisecond)
}
