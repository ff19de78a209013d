//go:build linux && cgo

package uringsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// checkCanceled checks the error and results of a call whose context ended
// before the engine started it: as from one cancelled while it runs, the
// error wraps ctx's error, its cause and ECANCELED, and CopyFiles gives
// every pair a result (ECANCELED at StepCanceled; EINVAL for one it
// refuses for a NUL byte).
func checkCanceled(t *testing.T, ctx context.Context, err error, pairs []Pair, results []Result) {
	t.Helper()
	if !errors.Is(err, ctx.Err()) || !errors.Is(err, context.Cause(ctx)) || !errors.Is(err, syscall.ECANCELED) {
		t.Errorf("err = %v, want one wrapping %v, %v and ECANCELED", err, ctx.Err(), context.Cause(ctx))
	}
	if pairs == nil {
		return
	}
	if len(results) != len(pairs) {
		t.Errorf("%d results for %d pairs", len(results), len(pairs))
		return
	}
	for i, r := range results {
		var fe *FileError
		want, step := syscall.ECANCELED, StepCanceled
		if hasNUL(pairs[i].Src) {
			want, step = syscall.EINVAL, StepOpenSrc
		}
		if !errors.As(r.Err, &fe) || fe.Errno != want || fe.Step != step || fe.Src != pairs[i].Src || fe.Dst != pairs[i].Dst {
			t.Errorf("pair %d: result %+v, want a *FileError %v at %v", i, r, want, step)
		}
		if _, err := os.Lstat(pairs[i].Dst); err == nil {
			t.Errorf("pair %d was copied", i)
		}
	}
}

// TestCanceledBeforeTheCall: a context that ended before the call (or while
// the call waited for another's turn) gives what a cancellation during the
// call gives, not a bare context.Canceled without results.
func TestCanceledBeforeTheCall(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		pairs := srcPairs(t, dir, 4)
		pairs = append(pairs, Pair{Src: pairs[0].Src + "\x00", Dst: filepath.Join(dir, "dst", "nul")})
		e := newEngine(t, Options{ForceSync: forceSync})

		canceled, cancel := context.WithCancel(context.Background())
		cancel()
		caused, cancelCause := context.WithCancelCause(context.Background())
		cancelCause(errors.New("the user went home"))
		expired, cancelExpired := context.WithTimeout(context.Background(), -time.Second)
		defer cancelExpired()
		for name, ctx := range map[string]context.Context{"canceled": canceled, "cause": caused, "deadline": expired} {
			t.Run(name, func(t *testing.T) {
				results, err := e.CopyFiles(ctx, pairs)
				checkCanceled(t, ctx, err, pairs, results)
				err = e.CopyTree(ctx, filepath.Join(dir, "src"), filepath.Join(dir, "tree"))
				checkCanceled(t, ctx, err, nil, nil)
				if _, err := os.Lstat(filepath.Join(dir, "tree")); err == nil {
					t.Errorf("the tree was copied")
				}
			})
		}

		// Cancelled while it waits for another call's turn.
		started, release := make(chan struct{}), make(chan struct{})
		var once, released sync.Once
		defer released.Do(func() { close(release) }) // before busy's Close
		busy := newEngine(t, Options{ForceSync: forceSync, OnFileDone: func(FileDone) {
			once.Do(func() { close(started) })
			<-release
		}})
		first := make(chan error, 1)
		go func() {
			_, err := busy.CopyFiles(context.Background(), []Pair{{Src: pairs[1].Src, Dst: filepath.Join(dir, "first")}})
			first <- err
		}()
		<-started
		for _, call := range []string{"files", "tree"} {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			if call == "files" {
				results, err := busy.CopyFiles(ctx, pairs)
				checkCanceled(t, ctx, err, pairs, results)
			} else {
				checkCanceled(t, ctx, busy.CopyTree(ctx, filepath.Join(dir, "src"), filepath.Join(dir, "tree")), nil, nil)
			}
			cancel()
		}
		released.Do(func() { close(release) })
		if err := <-first; err != nil {
			t.Errorf("first call: %v", err)
		}
	})
}

// TestCanceledWithCause: cancelled during the call with a cause, the error
// wraps the cause and context.Canceled (ctx.Err()) both.
func TestCanceledWithCause(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		pairs := srcPairs(t, dir, 300)
		cause := errors.New("the user went home")
		for _, call := range []string{"files", "tree"} {
			ctx, cancel := context.WithCancelCause(context.Background())
			var e *Engine
			var once sync.Once
			e = newEngine(t, Options{ForceSync: forceSync, IgnoreTimes: true, OnFileDone: func(FileDone) {
				once.Do(func() {
					cancel(cause)
					e.Cancel()
				})
			}})
			var err error
			if call == "files" {
				_, err = e.CopyFiles(ctx, pairs)
			} else {
				err = e.CopyTree(ctx, filepath.Join(dir, "src"), filepath.Join(dir, "tree"))
			}
			if !errors.Is(err, cause) || !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECANCELED) {
				t.Errorf("%s: err = %v, want one wrapping the cause, context.Canceled and ECANCELED", call, err)
			}
		}
	})
}

// TestEngineCancelReadsAsACancel: a call stopped by Engine.Cancel (its
// context still live) fails as a cancelled call, wrapping ECANCELED, not as
// a call that could not start (an *os.PathError naming the first source).
func TestEngineCancelReadsAsACancel(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		pairs := srcPairs(t, dir, 300)
		for _, call := range []string{"files", "tree"} {
			var e *Engine
			var once sync.Once
			e = newEngine(t, Options{ForceSync: forceSync, IgnoreTimes: true, OnFileDone: func(FileDone) {
				once.Do(e.Cancel)
			}})
			var err error
			if call == "files" {
				_, err = e.CopyFiles(context.Background(), pairs)
			} else {
				err = e.CopyTree(context.Background(), filepath.Join(dir, "src"), filepath.Join(dir, "tree"))
			}
			var pe *os.PathError
			if !errors.Is(err, syscall.ECANCELED) || errors.As(err, &pe) || strings.Contains(fmt.Sprint(err), pairs[0].Src) {
				t.Errorf("%s: err = %v, want a cancel of the call wrapping ECANCELED, naming no path", call, err)
			}
		}
	})
}

// TestFailFastCountsOnlyFailures: pairs a FailFast call stops before they
// are copied get ECANCELED at StepCanceled in their results, but are not
// failures: CopyError counts (and lists) only the pairs that failed, as the
// library's files_failed and OnError do.
func TestFailFastCountsOnlyFailures(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		pairs := append([]Pair{{Src: filepath.Join(dir, "missing"), Dst: filepath.Join(dir, "dst", "missing")}},
			srcPairs(t, dir, 200)...)
		var reported atomic.Int64
		e := newEngine(t, Options{ForceSync: forceSync, FailFast: true, OnError: func(*FileError) { reported.Add(1) }})
		results, err := e.CopyFiles(context.Background(), pairs)
		var ce *CopyError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v, want a *CopyError", err)
		}
		failed, canceled := 0, 0
		for _, r := range results {
			var fe *FileError
			switch {
			case r.Err == nil:
			case errors.As(r.Err, &fe) && fe.Step == StepCanceled:
				canceled++
			default:
				failed++
			}
		}
		if canceled == 0 {
			t.Errorf("no pair was stopped before it was copied")
		}
		if ce.Failed != uint64(failed) || len(ce.Errors) != failed || int64(failed) != reported.Load() ||
			e.Stats().FilesFailed != uint64(failed) {
			t.Errorf("CopyError.Failed %d with %d errors, OnError %d, FilesFailed %d; want each %d (canceled: %d)",
				ce.Failed, len(ce.Errors), reported.Load(), e.Stats().FilesFailed, failed, canceled)
		}
		for _, fe := range ce.Errors {
			if fe.Step == StepCanceled {
				t.Errorf("CopyError lists a pair that was not tried: %v", fe)
			}
		}
	})
}
