//go:build linux && cgo

package uringsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hangs is set by within when a call hung: the engines of such a test are
// left open, since Close would wait for the stuck call too.
var hangs atomic.Bool

// within runs f and fails the test when it has not returned after a while:
// the calls below used to block forever.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		hangs.Store(true)
		t.Fatalf("%s: no return after 10 s", what)
	}
}

// reentryEngine is newEngine for tests that may hang: see hangs.
func reentryEngine(t *testing.T, o Options) *Engine {
	t.Helper()
	o.QuietFallback = true
	e, err := New(&o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if !hangs.Load() {
			_ = e.Close()
		}
	})
	return e
}

// TestCallFromOwnCallbackIsRefused: a callback that calls a copy (or Close)
// on its own engine gets an error wrapping EDEADLK, as from the C library,
// instead of waiting forever for the call it runs in. Every callback, both
// copy calls, both engines; OnError also where CopyFiles calls it itself
// (a pair refused for a NUL byte).
func TestCallFromOwnCallbackIsRefused(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		for i := range 8 {
			writeFile(t, filepath.Join(src, fmt.Sprint(i)), content(i))
		}
		for _, cb := range []string{"OnError", "OnErrorRefused", "OnFileDone", "OnProgress", "OnDelete"} {
			for _, call := range []string{"tree", "files", "close"} {
				if cb == "OnErrorRefused" && call == "tree" || cb == "OnDelete" && call == "files" {
					continue // CopyTree refuses no entry itself; CopyFiles deletes nothing
				}
				t.Run(cb+"/"+call, func(t *testing.T) {
					dst := t.TempDir()
					writeFile(t, filepath.Join(dst, "extra"), nil) // for OnDelete
					var e *Engine
					var once sync.Once
					var inner error
					reenter := func() {
						once.Do(func() {
							switch call {
							case "tree":
								inner = e.CopyTree(context.Background(), src, filepath.Join(dst, "inner"))
							case "files":
								_, inner = e.CopyFiles(context.Background(), []Pair{{Src: filepath.Join(src, "1"), Dst: filepath.Join(dst, "inner")}})
							case "close":
								inner = e.Close()
							}
						})
					}
					o := Options{ForceSync: forceSync, ProgressInterval: time.Millisecond}
					switch cb {
					case "OnError", "OnErrorRefused":
						o.OnError = func(*FileError) { reenter() }
					case "OnFileDone":
						o.OnFileDone = func(FileDone) { reenter() }
					case "OnProgress":
						o.OnProgress = func(Stats) { reenter() }
					case "OnDelete":
						o.Delete = true
						o.OnDelete = func(Deletion) { reenter() }
					}
					e = reentryEngine(t, o)
					var outer error
					within(t, "the outer call", func() {
						if call == "tree" || cb == "OnDelete" {
							treeSrc := src
							if cb == "OnError" {
								treeSrc = filepath.Join(dir, "badtree")
								writeFile(t, filepath.Join(treeSrc, "sub", "f"), nil)
								writeFile(t, filepath.Join(dst, "sub"), nil) // a file where a directory goes
							}
							outer = e.CopyTree(context.Background(), treeSrc, dst)
							return
						}
						pairs := []Pair{{Src: filepath.Join(src, "0"), Dst: filepath.Join(dst, "0")}}
						switch cb {
						case "OnError":
							pairs = append(pairs, Pair{Src: filepath.Join(src, "missing"), Dst: filepath.Join(dst, "missing")})
						case "OnErrorRefused":
							pairs = append(pairs, Pair{Src: filepath.Join(src, "2\x00"), Dst: filepath.Join(dst, "2")})
						}
						_, outer = e.CopyFiles(context.Background(), pairs)
					})
					if cb == "OnError" || cb == "OnErrorRefused" {
						var ce *CopyError
						if !errors.As(outer, &ce) {
							t.Errorf("outer call: %v, want a *CopyError", outer)
						}
					} else if outer != nil {
						t.Errorf("outer call: %v", outer)
					}
					if !errors.Is(inner, syscall.EDEADLK) {
						t.Errorf("call from %s: err = %v, want one wrapping EDEADLK", cb, inner)
					}
					if _, err := os.Lstat(filepath.Join(dst, "inner")); err == nil {
						t.Errorf("the refused call copied anyway")
					}
					// The engine is neither closed nor stuck.
					if _, err := e.CopyFiles(context.Background(), []Pair{{Src: filepath.Join(src, "3"), Dst: filepath.Join(dst, "after")}}); err != nil {
						t.Errorf("next call: %v", err)
					}
				})
			}
		}
	})
}

// TestOtherGoroutineWaitsForCallback: a call from another goroutine while a
// callback runs (here one the callback itself starts) is not refused: it
// waits for its turn and then runs.
func TestOtherGoroutineWaitsForCallback(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		writeFile(t, src, content(5))
		var e *Engine
		var once sync.Once
		other := make(chan error, 1)
		var returnedEarly atomic.Bool
		e = reentryEngine(t, Options{ForceSync: forceSync, OnFileDone: func(FileDone) {
			once.Do(func() {
				go func() {
					_, err := e.CopyFiles(context.Background(), []Pair{{Src: src, Dst: filepath.Join(dir, "other")}})
					other <- err
				}()
				select {
				case err := <-other:
					returnedEarly.Store(true)
					other <- err
				case <-time.After(100 * time.Millisecond):
				}
			})
		}})
		within(t, "the outer call", func() {
			if _, err := e.CopyFiles(context.Background(), []Pair{{Src: src, Dst: filepath.Join(dir, "first")}}); err != nil {
				t.Errorf("outer call: %v", err)
			}
		})
		if returnedEarly.Load() {
			t.Errorf("the other goroutine's call returned while the callback ran")
		}
		within(t, "the other goroutine's call", func() {
			if err := <-other; err != nil {
				t.Errorf("other goroutine's call: %v", err)
			}
		})
		if _, err := os.Lstat(filepath.Join(dir, "other")); err != nil {
			t.Errorf("the other goroutine's call copied nothing: %v", err)
		}
	})
}

// TestNestedEnginesCallingBack: engine A's callback copies with engine B,
// whose callback copies with A. B's call runs; A's, made inside A's own
// running call, is refused with EDEADLK, whether B's callback runs on the
// thread of A's callback (a small batch, copied on the calling thread) or
// on one of B's threads (a large file goes to a bulk thread), where the C
// library cannot see the nesting.
func TestNestedEnginesCallingBack(t *testing.T) {
	for _, size := range []int{100, 2 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			engines(t, func(t *testing.T, forceSync bool) {
				dir := t.TempDir()
				src := filepath.Join(dir, "src")
				writeFile(t, src, make([]byte, size))
				var a, b *Engine
				var onceA, onceB sync.Once
				var byB, byA error
				var threadA, threadB int
				a = reentryEngine(t, Options{ForceSync: forceSync, OnFileDone: func(FileDone) {
					onceA.Do(func() {
						threadA = syscall.Gettid()
						_, byB = b.CopyFiles(context.Background(), []Pair{{Src: src, Dst: filepath.Join(dir, "by-b")}})
					})
				}})
				b = reentryEngine(t, Options{ForceSync: forceSync, OnFileDone: func(FileDone) {
					onceB.Do(func() {
						threadB = syscall.Gettid()
						_, byA = a.CopyFiles(context.Background(), []Pair{{Src: src, Dst: filepath.Join(dir, "by-a")}})
					})
				}})
				within(t, "A -> B -> A", func() {
					if _, err := a.CopyFiles(context.Background(), []Pair{{Src: src, Dst: filepath.Join(dir, "first")}}); err != nil {
						t.Errorf("A's call: %v", err)
					}
				})
				t.Logf("A's callback on thread %d, B's on %d", threadA, threadB)
				if byB != nil {
					t.Errorf("B's call from A's callback: %v", byB)
				}
				if !errors.Is(byA, syscall.EDEADLK) {
					t.Errorf("A's call from B's callback: err = %v, want EDEADLK", byA)
				}
				if _, err := os.Lstat(filepath.Join(dir, "by-b")); err != nil {
					t.Errorf("B copied nothing: %v", err)
				}
				if _, err := os.Lstat(filepath.Join(dir, "by-a")); err == nil {
					t.Errorf("the refused call copied anyway")
				}
			})
		})
	}
}

// TestCallbacksCallingEachOthersEngine: two calls on two engines, whose
// callbacks, running at once, each call the other engine. Each waits for
// the other's call, which waits for its callback: one of the two is refused
// with EDEADLK, and then both complete.
func TestCallbacksCallingEachOthersEngine(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, src, content(3))
	var a, b *Engine
	var both sync.WaitGroup
	both.Add(2)
	var onceA, onceB sync.Once
	var fromA, fromB error
	a = reentryEngine(t, Options{OnFileDone: func(FileDone) {
		onceA.Do(func() {
			both.Done()
			both.Wait() // B's callback runs too
			_, fromA = b.CopyFiles(context.Background(), []Pair{{Src: src, Dst: filepath.Join(dir, "a-to-b")}})
		})
	}})
	b = reentryEngine(t, Options{OnFileDone: func(FileDone) {
		onceB.Do(func() {
			both.Done()
			both.Wait()
			_, fromB = a.CopyFiles(context.Background(), []Pair{{Src: src, Dst: filepath.Join(dir, "b-to-a")}})
		})
	}})
	within(t, "the two calls", func() {
		var wg sync.WaitGroup
		for i, e := range []*Engine{a, b} {
			wg.Go(func() {
				if _, err := e.CopyFiles(context.Background(), []Pair{{Src: src, Dst: filepath.Join(dir, fmt.Sprint("outer", i))}}); err != nil {
					t.Errorf("outer call %d: %v", i, err)
				}
			})
		}
		wg.Wait()
	})
	refusedA, refusedB := errors.Is(fromA, syscall.EDEADLK), errors.Is(fromB, syscall.EDEADLK)
	if refusedA == refusedB || (!refusedA && fromA != nil) || (!refusedB && fromB != nil) {
		t.Errorf("A's callback calling B: %v; B's calling A: %v; want one refused with EDEADLK, the other done", fromA, fromB)
	}
}
