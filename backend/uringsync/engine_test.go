//go:build linux && cgo

package uringsync

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// engines runs f against both engines: io_uring (when the kernel allows it)
// and the synchronous thread pool.
func engines(t *testing.T, f func(t *testing.T, forceSync bool)) {
	for _, forceSync := range []bool{false, true} {
		name := "uring"
		if forceSync {
			name = "sync"
		}
		t.Run(name, func(t *testing.T) { f(t, forceSync) })
	}
}

func newEngine(t *testing.T, o Options) *Engine {
	t.Helper()
	o.QuietFallback = true
	e, err := New(&o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func content(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("file %d\n", i)), i%300+1)
}

// srcPairs writes n files dir/src/<i> (content(i)) and returns the pairs
// that copy each to dir/dst/<i>.
func srcPairs(t *testing.T, dir string, n int) []Pair {
	t.Helper()
	var pairs []Pair
	for i := range n {
		s := filepath.Join(dir, "src", fmt.Sprint(i))
		writeFile(t, s, content(i))
		pairs = append(pairs, Pair{Src: s, Dst: filepath.Join(dir, "dst", fmt.Sprint(i))})
	}
	return pairs
}

func TestVersion(t *testing.T) {
	if v := Version(); v == "" {
		t.Fatal("empty version")
	}
}

func TestCopyFiles(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		good := []byte("hello, engine\n")
		writeFile(t, filepath.Join(src, "good"), good)
		writeFile(t, filepath.Join(src, "empty"), nil)
		writeFile(t, filepath.Join(src, "blocker"), []byte("x"))
		writeFile(t, filepath.Join(dir, "dst", "good"), []byte("old content to be replaced"))

		tests := []struct {
			name    string
			pair    Pair
			want    []byte
			wantErr error
		}{
			{"replace", Pair{Src: filepath.Join(src, "good"), Dst: filepath.Join(dir, "dst", "good")}, good, nil},
			{"new parents", Pair{Src: filepath.Join(src, "good"), Dst: filepath.Join(dir, "dst", "a", "b", "c")}, good, nil},
			{"empty", Pair{Src: filepath.Join(src, "empty"), Dst: filepath.Join(dir, "dst", "empty")}, []byte{}, nil},
			{"missing source", Pair{Src: filepath.Join(src, "missing"), Dst: filepath.Join(dir, "dst", "missing")}, nil, fs.ErrNotExist},
			{"parent is a file", Pair{Src: filepath.Join(src, "good"), Dst: filepath.Join(src, "blocker", "x")}, nil, syscall.ENOTDIR},
		}
		pairs := make([]Pair, len(tests))
		for i, tt := range tests {
			pairs[i] = tt.pair
		}
		e := newEngine(t, Options{ForceSync: forceSync, HashMD5: true})
		results, err := e.CopyFiles(context.Background(), pairs)
		var ce *CopyError
		if !errors.As(err, &ce) || ce.Failed != 2 {
			t.Fatalf("CopyFiles error = %v, want a *CopyError with 2 failures", err)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
		}
		if len(results) != len(tests) {
			t.Fatalf("got %d results, want %d", len(results), len(tests))
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := results[i]
				if tt.wantErr != nil {
					var fe *FileError
					if !errors.Is(r.Err, tt.wantErr) || !errors.As(r.Err, &fe) {
						t.Fatalf("err = %v, want a *FileError matching %v", r.Err, tt.wantErr)
					}
					if fe.Src != tt.pair.Src || fe.Step == StepNone {
						t.Errorf("FileError = %+v: wrong path or no step", fe)
					}
					return
				}
				if r.Err != nil {
					t.Fatalf("err = %v", r.Err)
				}
				got, err := os.ReadFile(tt.pair.Dst)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.want) || r.Bytes != int64(len(tt.want)) {
					t.Errorf("copied %q (%d bytes reported), want %q", got, r.Bytes, tt.want)
				}
				if !r.HasMD5 || r.MD5 != md5.Sum(tt.want) {
					t.Errorf("md5 = %x (has %v), want %x", r.MD5, r.HasMD5, md5.Sum(tt.want))
				}
				// The files as the engine saw them: the source once read,
				// the copy once published (the synchronous engine has a
				// descriptor of it where the filesystem has O_TMPFILE, as
				// a test's temporary directory does; a ring's temporary
				// name has none).
				si, err := os.Stat(tt.pair.Src)
				if err != nil {
					t.Fatal(err)
				}
				if want := (FileStat{si.Size(), si.ModTime()}); !r.HasSrcStat || !sameStat(r.SrcStat, want) {
					t.Errorf("SrcStat = %+v (has %v), want %+v", r.SrcStat, r.HasSrcStat, want)
				}
				di, err := os.Stat(tt.pair.Dst)
				if err != nil {
					t.Fatal(err)
				}
				if forceSync && !r.HasDstStat {
					t.Error("no DstStat from the synchronous engine")
				}
				if want := (FileStat{di.Size(), di.ModTime()}); r.HasDstStat && !sameStat(r.DstStat, want) {
					t.Errorf("DstStat = %+v, want %+v", r.DstStat, want)
				}
			})
		}
	})
}

// TestCopyFilesWithSizes checks that Pair.Size reaches the engine: a pair
// with a size is opened without a lookup first, so a missing source fails
// when opened; the file as opened is copied, whatever size was given.
func TestCopyFilesWithSizes(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "a"), content(9))
		e := newEngine(t, Options{ForceSync: forceSync})
		results, err := e.CopyFiles(context.Background(), []Pair{
			{Src: filepath.Join(dir, "a"), Dst: filepath.Join(dir, "out", "a"), Size: 1},
			{Src: filepath.Join(dir, "missing"), Dst: filepath.Join(dir, "out", "missing"), Size: 10},
		})
		if err == nil || len(results) != 2 {
			t.Fatalf("CopyFiles = %v, %v; want one failure", results, err)
		}
		if got, err := os.ReadFile(filepath.Join(dir, "out", "a")); err != nil || !bytes.Equal(got, content(9)) {
			t.Errorf("copy = %q, %v", got, err)
		}
		var fe *FileError
		if !errors.As(results[1].Err, &fe) || fe.Step != StepOpenSrc || !errors.Is(fe, fs.ErrNotExist) {
			t.Errorf("missing source with a size: %v, want ENOENT at %v", results[1].Err, StepOpenSrc)
		}
	})
}

func sameStat(a, b FileStat) bool { return a.Size == b.Size && a.Mtime.Equal(b.Mtime) }

func TestCopyFilesManyWithCallbacks(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		const n = 500
		var pairs []Pair
		var total int64
		for i := range n {
			s := filepath.Join(dir, "src", fmt.Sprint(i%7), fmt.Sprint(i))
			writeFile(t, s, content(i))
			total += int64(len(content(i)))
			pairs = append(pairs, Pair{Src: s, Dst: filepath.Join(dir, "dst", fmt.Sprint(i%7), fmt.Sprint(i))})
		}
		var mu sync.Mutex
		done := map[string]int64{}
		var progressCalls atomic.Int64
		var lastBytes atomic.Uint64
		e := newEngine(t, Options{
			ForceSync:        forceSync,
			ProgressInterval: time.Millisecond,
			OnFileDone: func(d FileDone) {
				mu.Lock()
				done[d.Dst] += d.Bytes
				mu.Unlock()
			},
			OnProgress: func(s Stats) {
				progressCalls.Add(1)
				if s.BytesDone < lastBytes.Load() {
					t.Errorf("bytes_done went backwards: %d < %d", s.BytesDone, lastBytes.Load())
				}
				lastBytes.Store(s.BytesDone)
			},
		})
		results, err := e.CopyFiles(context.Background(), pairs)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for i, p := range pairs {
			if results[i].Err != nil || results[i].HasMD5 {
				t.Fatalf("result %d = %+v", i, results[i])
			}
			if done[p.Dst] != results[i].Bytes {
				t.Errorf("%s: file done reported %d bytes, result %d", p.Dst, done[p.Dst], results[i].Bytes)
			}
			sum += results[i].Bytes
			got, err := os.ReadFile(p.Dst)
			if err != nil || !bytes.Equal(got, content(i)) {
				t.Fatalf("%s: content differs (%v)", p.Dst, err)
			}
		}
		st := e.Stats()
		if sum != total || st.FilesDone != n || st.BytesDone != uint64(total) || st.BytesCopied != uint64(total) {
			t.Errorf("sum %d, stats %+v; want %d files, %d bytes", sum, st, n, total)
		}
		if st.Engine == KindNone || (forceSync && st.Engine != KindSync) {
			t.Errorf("engine used = %v (force sync %v)", st.Engine, forceSync)
		}
		t.Logf("engine %v, %d progress calls", st.Engine, progressCalls.Load())
	})
}

func TestCopyTree(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "out", "dst")
		for i := range 50 {
			writeFile(t, filepath.Join(src, fmt.Sprint("d", i%5), fmt.Sprint("f", i)), content(i))
		}
		if err := os.Mkdir(filepath.Join(src, "emptydir"), 0o755); err != nil {
			t.Fatal(err)
		}
		mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		if err := os.Chtimes(filepath.Join(src, "d1", "f1"), mtime, mtime); err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, Options{ForceSync: forceSync, Preserve: true})
		if err := e.CopyTree(context.Background(), src, dst); err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			got, err := os.ReadFile(filepath.Join(dst, fmt.Sprint("d", i%5), fmt.Sprint("f", i)))
			if err != nil || !bytes.Equal(got, content(i)) {
				t.Fatalf("file %d differs (%v)", i, err)
			}
		}
		if fi, err := os.Stat(filepath.Join(dst, "emptydir")); err != nil || !fi.IsDir() {
			t.Errorf("empty dir not copied: %v", err)
		}
		if fi, err := os.Stat(filepath.Join(dst, "d1", "f1")); err != nil || !fi.ModTime().Equal(mtime) {
			t.Errorf("mtime not preserved: %v %v", fi.ModTime(), err)
		}
		if st := e.Stats(); st.FilesDone != 50 || !st.WalkDone || st.FDBudget <= 0 ||
			(st.Engine == KindURing && (st.QueueDepth <= 0 || st.BufferBytes == 0)) {
			t.Errorf("stats = %+v", st)
		}

		// The same copy again: every file is already there.
		if err := e.CopyTree(context.Background(), src, dst); err != nil {
			t.Fatal(err)
		}
		if st := e.Stats(); st.FilesSkipped != 50 || st.FilesDone != 0 {
			t.Errorf("re-run stats = %+v, want 50 skipped", st)
		}

		err := e.CopyTree(context.Background(), filepath.Join(dir, "nope"), dst)
		var pe *os.PathError
		if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
			t.Errorf("missing source: err = %v, want an *os.PathError matching fs.ErrNotExist", err)
		}
	})
}

// TestVerifyAndFsync: both options reach the engine, verified files are
// counted, and the copy is exact. (A verify mismatch is provoked in the
// native tests and the CLI's end-to-end tests, which can damage a file
// between its write and its read-back.)
func TestVerifyAndFsync(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		var total uint64
		for i := range 30 {
			writeFile(t, filepath.Join(src, fmt.Sprint("d", i%3), fmt.Sprint("f", i)), content(i))
			total += uint64(len(content(i)))
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB: the bulk path
		writeFile(t, filepath.Join(src, "big"), big)
		total += uint64(len(big))
		e := newEngine(t, Options{ForceSync: forceSync, Verify: true, Fsync: true})
		if err := e.CopyTree(context.Background(), src, dst); err != nil {
			t.Fatal(err)
		}
		if st := e.Stats(); st.FilesDone != 31 || st.FilesVerified != 31 || st.BytesVerified != total {
			t.Errorf("stats = %+v, want 31 files and %d bytes verified", st, total)
		}
		for i := range 30 {
			got, err := os.ReadFile(filepath.Join(dst, fmt.Sprint("d", i%3), fmt.Sprint("f", i)))
			if err != nil || !bytes.Equal(got, content(i)) {
				t.Fatalf("file %d differs (%v)", i, err)
			}
		}
		if got, err := os.ReadFile(filepath.Join(dst, "big")); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("big differs (%v)", err)
		}
		res, err := e.CopyFiles(context.Background(), []Pair{{Src: filepath.Join(src, "big"), Dst: filepath.Join(dir, "pair", "big")}})
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("CopyFiles: %v %+v", err, res)
		}
		if st := e.Stats(); st.FilesVerified != 1 || st.BytesVerified != uint64(len(big)) {
			t.Errorf("pair stats = %+v", st)
		}

		// Without the options nothing is read back.
		plain := newEngine(t, Options{ForceSync: forceSync})
		if err := plain.CopyTree(context.Background(), src, filepath.Join(dir, "plain")); err != nil {
			t.Fatal(err)
		}
		if st := plain.Stats(); st.FilesVerified != 0 || st.FilesDone != 31 {
			t.Errorf("plain stats = %+v", st)
		}
	})
}

func TestStepNames(t *testing.T) {
	for s, want := range map[Step]string{StepVerify: "verify", StepFsync: "fsync", StepOverlap: "overlap", Step(99): "step 99"} {
		if got := s.String(); got != want {
			t.Errorf("Step(%d) = %q, want %q", int(s), got, want)
		}
	}
	fe := &FileError{Src: "/a", Dst: "/b", Step: StepVerify, Errno: syscall.EBADMSG}
	if !strings.Contains(fe.Error(), "verify /b") || !errors.Is(fe, syscall.EBADMSG) {
		t.Errorf("FileError = %q", fe.Error())
	}
}

func TestCancel(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		pairs := srcPairs(t, dir, 300)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var e *Engine
		var once sync.Once
		e = newEngine(t, Options{ForceSync: forceSync, OnFileDone: func(FileDone) {
			once.Do(func() {
				cancel()
				e.Cancel() // allowed from callbacks; makes the stop immediate
			})
		}})
		results, err := e.CopyFiles(ctx, pairs)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECANCELED) {
			t.Fatalf("err = %v, want context.Canceled and ECANCELED", err)
		}
		canceled := 0
		for i, r := range results {
			if errors.Is(r.Err, syscall.ECANCELED) {
				canceled++
				if _, err := os.Lstat(pairs[i].Dst); err == nil {
					t.Errorf("canceled pair %d left %s behind", i, pairs[i].Dst)
				}
			}
		}
		if canceled == 0 {
			t.Errorf("no pair reports ECANCELED")
		}

		// A context cancelled before the call never starts it.
		if _, err := e.CopyFiles(ctx, pairs); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if err := e.CopyTree(ctx, filepath.Join(dir, "src"), filepath.Join(dir, "tree")); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		// The engine is usable again afterwards.
		if _, err := e.CopyFiles(context.Background(), pairs[:3]); err != nil {
			t.Errorf("after cancel: %v", err)
		}
	})
}

// TestWaitingCallHonoursItsContext: a call that waits for another on the
// same engine returns when its context ends, not when the other call does.
func TestWaitingCallHonoursItsContext(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, src, content(1))
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e := newEngine(t, Options{OnFileDone: func(FileDone) {
		once.Do(func() { close(started) })
		<-release // the first call holds the engine until the test lets go
	}})
	first := make(chan error, 1)
	go func() {
		_, err := e.CopyFiles(context.Background(), []Pair{{Src: src, Dst: filepath.Join(dir, "a")}})
		first <- err
	}()
	select {
	case <-started:
	case err := <-first:
		t.Fatalf("the first call returned before its callback: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("the first call's callback never ran")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	waited := make(chan error, 1)
	go func() {
		_, err := e.CopyFiles(ctx, []Pair{{Src: src, Dst: filepath.Join(dir, "b")}})
		waited <- err
	}()
	select {
	case err := <-waited:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the waiting call did not return when its context ended")
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first call: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "b")); err == nil {
		t.Errorf("the call that gave up copied its pair anyway")
	}
}

// TestConcurrentAndLeaks runs calls from many goroutines (serialised by the
// engine), then checks that Close leaves no goroutine behind.
func TestConcurrentAndLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, src, []byte("concurrent"))
	e, err := New(&Options{QuietFallback: true, OnFileDone: func(FileDone) {}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := e.CopyFiles(ctx, []Pair{{Src: src, Dst: filepath.Join(dir, "dst", fmt.Sprint(g, "-", i))}})
				cancel()
				if err != nil {
					t.Error(err)
				}
				_ = e.Stats()
			}
		})
	}
	wg.Wait()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.CopyFiles(context.Background(), []Pair{{Src: src, Dst: src + ".x"}}); err == nil {
		t.Error("CopyFiles on a closed engine succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines before, %d after Close", before, n)
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := New(&Options{Workers: -1}); err == nil {
		t.Error("negative workers accepted")
	}
	if _, err := New(&Options{Excludes: []string{"*.tmp\x00*"}}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("exclude pattern with a NUL byte: err = %v, want EINVAL", err)
	}
}

// TestNULInPaths checks that a path with a NUL byte is refused instead of
// reaching C cut short at the NUL (which would copy another file).
func TestNULInPaths(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	writeFile(t, filepath.Join(src, "f"), []byte("data"))
	e := newEngine(t, Options{})

	for _, tt := range []struct{ name, src, dst, bad string }{
		{"source", src + "\x00x", dst, src + "\x00x"},
		{"destination", src, dst + "\x00x", dst + "\x00x"},
	} {
		t.Run("tree/"+tt.name, func(t *testing.T) {
			err := e.CopyTree(context.Background(), tt.src, tt.dst)
			var pe *os.PathError
			if !errors.Is(err, syscall.EINVAL) || !errors.As(err, &pe) || pe.Path != tt.bad {
				t.Fatalf("err = %v, want an *os.PathError for %q wrapping EINVAL", err, tt.bad)
			}
			if _, err := os.Lstat(dst); err == nil {
				t.Fatalf("%s was created", dst)
			}
		})
	}

	good := Pair{Src: filepath.Join(src, "f"), Dst: filepath.Join(dst, "good")}
	pairs := []Pair{
		{Src: filepath.Join(src, "f") + "\x00x", Dst: filepath.Join(dst, "nul-src")},
		good,
		{Src: filepath.Join(src, "f"), Dst: filepath.Join(dst, "nul-dst") + "\x00x"},
	}
	var mu sync.Mutex
	var reported []string
	e = newEngine(t, Options{OnError: func(fe *FileError) {
		mu.Lock()
		reported = append(reported, fe.Src+" -> "+fe.Dst)
		mu.Unlock()
	}})
	results, err := e.CopyFiles(context.Background(), pairs)
	var ce *CopyError
	if !errors.As(err, &ce) || ce.Failed != 2 || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("err = %v, want a *CopyError with 2 failures wrapping EINVAL", err)
	}
	for i, step := range map[int]Step{0: StepOpenSrc, 2: StepOpenDst} { // the side with the NUL
		var fe *FileError
		if !errors.As(results[i].Err, &fe) || fe.Errno != syscall.EINVAL || fe.Step != step ||
			fe.Src != pairs[i].Src || fe.Dst != pairs[i].Dst {
			t.Errorf("pair %d: err = %#v, want EINVAL at %v naming both paths", i, results[i].Err, step)
		}
	}
	if len(reported) != 2 {
		t.Errorf("OnError saw %q, want the 2 refused pairs", reported)
	}
	if results[1].Err != nil || results[1].Bytes != 4 {
		t.Errorf("good pair: %+v", results[1])
	}
	if got, err := os.ReadFile(good.Dst); err != nil || string(got) != "data" {
		t.Errorf("good pair not copied: %q, %v", got, err)
	}
	for _, name := range []string{"nul-src", "nul-dst"} {
		if _, err := os.Lstat(filepath.Join(dst, name)); err == nil {
			t.Errorf("%s was created from a truncated path", name)
		}
	}

	// Nothing left for the engine.
	results, err = e.CopyFiles(context.Background(), pairs[:1])
	if !errors.As(err, &ce) || ce.Failed != 1 || len(results) != 1 || !errors.Is(results[0].Err, syscall.EINVAL) {
		t.Errorf("only a refused pair: results %+v, err %v", results, err)
	}
}

// TestDryRunHasNoMD5 checks that a dry run does not present zeros as a digest.
func TestDryRunHasNoMD5(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src := filepath.Join(dir, "a")
		writeFile(t, src, []byte("hello\n"))
		var mu sync.Mutex
		var done []FileDone
		e := newEngine(t, Options{ForceSync: forceSync, DryRun: true, HashMD5: true,
			OnFileDone: func(d FileDone) {
				mu.Lock()
				done = append(done, d)
				mu.Unlock()
			}})
		results, err := e.CopyFiles(context.Background(), []Pair{{Src: src, Dst: filepath.Join(dir, "b")}})
		if err != nil {
			t.Fatal(err)
		}
		if r := results[0]; r.Err != nil || r.HasMD5 {
			t.Errorf("dry run result = %+v, want no error and no MD5", r)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(done) != 1 || done[0].HasMD5 {
			t.Errorf("dry run OnFileDone saw %+v, want one file without MD5", done)
		}
	})
}

// TestCallbackPanic checks that a panic in a callback does not unwind
// through the engine's C frames (which kills the process): the call is
// cancelled, the rest of its callbacks are skipped, and the panic comes back
// as a *CallbackPanicError. The engine works normally afterwards.
func TestCallbackPanic(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for i := range 40 {
		writeFile(t, filepath.Join(src, "sub", fmt.Sprint(i)), content(i))
	}
	tests := []struct {
		callback string
		call     string // "tree" or "files"
		bad      bool   // make one entry fail
	}{
		{"OnError", "tree", true},
		{"OnError", "files", true},
		{"OnError", "refused", true}, // a pair CopyFiles refuses itself
		{"OnFileDone", "tree", false},
		{"OnFileDone", "files", false},
		{"OnProgress", "tree", false},
		{"OnProgress", "files", false},
		{"OnDelete", "tree", false},
	}
	for i, tt := range tests {
		t.Run(tt.callback+"/"+tt.call, func(t *testing.T) {
			dst := filepath.Join(dir, fmt.Sprint("dst", i))
			pairs := []Pair{{Src: filepath.Join(src, "sub", "1"), Dst: filepath.Join(dst, "1")}}
			if tt.bad {
				switch tt.call {
				case "tree": // a file where the copy needs a directory
					writeFile(t, filepath.Join(dst, "sub"), nil)
				case "files":
					pairs = append(pairs, Pair{Src: filepath.Join(src, "missing"), Dst: filepath.Join(dst, "missing")})
				case "refused":
					pairs = append(pairs, Pair{Src: filepath.Join(src, "sub", "2\x00"), Dst: filepath.Join(dst, "2")})
				}
			}
			boom := fmt.Errorf("boom in %s", tt.callback)
			var armed atomic.Bool
			var panics, seen atomic.Int64
			hit := func() {
				seen.Add(1)
				if armed.Load() {
					panics.Add(1)
					panic(boom)
				}
			}
			o := Options{ProgressInterval: time.Millisecond}
			switch tt.callback {
			case "OnError":
				o.OnError = func(*FileError) { hit() }
			case "OnFileDone":
				o.OnFileDone = func(FileDone) { hit() }
			case "OnProgress":
				o.OnProgress = func(Stats) { hit() }
			case "OnDelete": // every run finds one entry to delete
				o.Delete = true
				o.OnDelete = func(Deletion) { hit() }
			}
			e := newEngine(t, o)
			run := func() error {
				if tt.callback == "OnDelete" {
					writeFile(t, filepath.Join(dst, "extra"), nil)
				}
				if tt.call == "tree" {
					return e.CopyTree(context.Background(), src, dst)
				}
				_, err := e.CopyFiles(context.Background(), pairs)
				return err
			}

			armed.Store(true)
			err := run()
			var pe *CallbackPanicError
			if !errors.As(err, &pe) || pe.Callback != tt.callback || pe.Value != boom || !errors.Is(err, boom) {
				t.Fatalf("err = %v, want a *CallbackPanicError from %s wrapping %v", err, tt.callback, boom)
			}
			if n := panics.Load(); n != 1 {
				t.Errorf("%s ran %d times after it panicked; want the rest of the call's callbacks skipped", tt.callback, n-1)
			}

			armed.Store(false)
			before := seen.Load()
			err = run()
			if errors.As(err, &pe) {
				t.Errorf("next call: %v", err)
			}
			if seen.Load() == before {
				t.Errorf("next call: %s not called", tt.callback)
			}
		})
	}
}

// TestDelete: Delete mirrors (what the source lacks goes, excluded entries
// stay), DryRun only reports, OnDelete sees each entry with its type.
func TestDelete(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		writeFile(t, filepath.Join(src, "a", "f"), content(1))
		e := newEngine(t, Options{ForceSync: forceSync})
		if err := e.CopyTree(context.Background(), src, dst); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, "a", "old"), content(2))
		writeFile(t, filepath.Join(dst, "gone", "x"), content(3))
		writeFile(t, filepath.Join(dst, "a", "keep.log"), content(4))

		var mu sync.Mutex
		seen := map[string]fs.FileMode{}
		mirror := func(dry bool) Stats {
			t.Helper()
			e := newEngine(t, Options{ForceSync: forceSync, Delete: true, DryRun: dry, Excludes: []string{"*.log"},
				OnDelete: func(d Deletion) { mu.Lock(); seen[d.Dst] = d.Mode; mu.Unlock() }})
			if err := e.CopyTree(context.Background(), src, dst); err != nil {
				t.Fatal(err)
			}
			return e.Stats()
		}
		if st := mirror(true); st.EntriesDeleted != 3 || len(seen) != 3 {
			t.Errorf("dry run: %d deleted, seen %v; want 3", st.EntriesDeleted, seen)
		}
		if _, err := os.Stat(filepath.Join(dst, "gone", "x")); err != nil {
			t.Errorf("dry run removed something: %v", err)
		}
		seen = map[string]fs.FileMode{}
		if st := mirror(false); st.EntriesDeleted != 3 {
			t.Errorf("%d deleted, want 3", st.EntriesDeleted)
		}
		if m, ok := seen[filepath.Join(dst, "gone")]; !ok || !m.IsDir() {
			t.Errorf("OnDelete saw %v for the directory, want a directory mode", seen)
		}
		if m := seen[filepath.Join(dst, "a", "old")]; !m.IsRegular() {
			t.Errorf("OnDelete mode of a file = %v", m)
		}
		for _, p := range []string{"a/old", "gone"} {
			if _, err := os.Lstat(filepath.Join(dst, p)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s still there: %v", p, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dst, "a", "keep.log")); err != nil {
			t.Errorf("excluded file deleted: %v", err)
		}
	})
}

// TestXattrs: Xattrs copies user.* attributes; without it none arrive.
func TestXattrs(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		writeFile(t, filepath.Join(src, "f"), content(1))
		if err := syscall.Setxattr(filepath.Join(src, "f"), "user.k", []byte("v"), 0); err != nil {
			t.Skipf("no user xattrs on %s: %v", dir, err)
		}
		for _, keep := range []bool{true, false} {
			dst := filepath.Join(dir, fmt.Sprint("dst", keep))
			e := newEngine(t, Options{ForceSync: forceSync, Xattrs: keep})
			if err := e.CopyTree(context.Background(), src, dst); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 16)
			n, err := syscall.Getxattr(filepath.Join(dst, "f"), "user.k", buf)
			if keep && (err != nil || string(buf[:n]) != "v") {
				t.Errorf("Xattrs: user.k = %q, %v; want v", buf[:max(n, 0)], err)
			}
			if !keep && err == nil {
				t.Errorf("without Xattrs the copy has user.k")
			}
		}
	})
}

// TestUserXattrs: UserXattrs copies user.* attributes, and as root (the
// only one who can set them) leaves trusted.* ones behind, which Xattrs
// copies; pair copies do the same as tree copies.
func TestUserXattrs(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		f := filepath.Join(src, "f")
		writeFile(t, f, content(1))
		if err := syscall.Setxattr(f, "user.k", []byte("v"), 0); err != nil {
			t.Skipf("no user xattrs on %s: %v", dir, err)
		}
		trusted := syscall.Setxattr(f, "trusted.t", []byte("t"), 0) == nil // root only
		get := func(p, name string) (string, bool) {
			buf := make([]byte, 16)
			n, err := syscall.Getxattr(p, name, buf)
			return string(buf[:max(n, 0)]), err == nil
		}
		for _, c := range []struct {
			name string
			o    Options
		}{{"user", Options{UserXattrs: true}}, {"all", Options{Xattrs: true}}, {"both", Options{Xattrs: true, UserXattrs: true}}} {
			c.o.ForceSync = forceSync
			e := newEngine(t, c.o)
			tree, pair := filepath.Join(dir, c.name+"-tree"), filepath.Join(dir, c.name+"-pair")
			if err := e.CopyTree(context.Background(), src, tree); err != nil {
				t.Fatal(err)
			}
			res, err := e.CopyFiles(context.Background(), []Pair{{Src: f, Dst: filepath.Join(pair, "f")}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("%s: CopyFiles: %v %v", c.name, err, res[0].Err)
			}
			for _, dst := range []string{filepath.Join(tree, "f"), filepath.Join(pair, "f")} {
				if v, ok := get(dst, "user.k"); v != "v" || !ok {
					t.Errorf("%s: %s: user.k = %q (%v), want v", c.name, dst, v, ok)
				}
				if _, ok := get(dst, "trusted.t"); trusted && ok != c.o.Xattrs {
					t.Errorf("%s: %s has trusted.t: %v, want %v", c.name, dst, ok, c.o.Xattrs)
				}
			}
		}
	})
}

// TestCopyFilesMetadataFailed: a pair whose xattrs the destination cannot
// store (ramfs has none) is copied, and its result says that its metadata
// failed: the library reports that through the error callback only.
func TestCopyFilesMetadataFailed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a ramfs (a filesystem without xattrs), which needs root")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "ramfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("ramfs", mnt, "ramfs", 0, ""); err != nil {
		t.Skipf("cannot mount a ramfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	tagged, plain := filepath.Join(dir, "tagged"), filepath.Join(dir, "plain")
	writeFile(t, tagged, content(1))
	writeFile(t, plain, content(2))
	if err := syscall.Setxattr(tagged, "user.k", []byte("v"), 0); err != nil {
		t.Skipf("no user xattrs on %s: %v", dir, err)
	}
	engines(t, func(t *testing.T, forceSync bool) {
		var reported []*FileError
		e := newEngine(t, Options{ForceSync: forceSync, UserXattrs: true, HashMD5: true,
			OnError: func(fe *FileError) { reported = append(reported, fe) }})
		dst := filepath.Join(mnt, fmt.Sprint(forceSync))
		res, err := e.CopyFiles(context.Background(), []Pair{
			{Src: tagged, Dst: filepath.Join(dst, "tagged")}, {Src: plain, Dst: filepath.Join(dst, "plain")}})
		var ce *CopyError
		if !errors.As(err, &ce) || ce.Failed != 1 {
			t.Errorf("err = %v, want a CopyError with 1 failure", err)
		}
		var fe *FileError
		if !errors.As(res[0].Err, &fe) || fe.Step != StepMetadata || !errors.Is(fe, syscall.EOPNOTSUPP) || res[0].HasMD5 {
			t.Errorf("tagged: result %+v, want a metadata failure (EOPNOTSUPP) without MD5", res[0])
		}
		if res[1].Err != nil || !res[1].HasMD5 {
			t.Errorf("plain: result %+v, want success", res[1])
		}
		if b, err := os.ReadFile(filepath.Join(dst, "tagged")); err != nil || !bytes.Equal(b, content(1)) {
			t.Errorf("tagged was not copied: %v", err)
		}
		if len(reported) != 1 || reported[0].Step != StepMetadata {
			t.Errorf("OnError got %v, want the one metadata failure", reported)
		}
	})
}

// poolThreads counts the engine threads of this process (the library names
// them "usync-pool"). The kernel's io-wq workers are left out by their
// PF_IO_WORKER flag (the 9th field of stat), not by name: a new one starts
// with its creator's name and takes "iou-wrk-*" only once it first runs.
func poolThreads(t *testing.T) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("no /proc to count threads: %v", err)
	}
	const pfIoWorker = 0x10
	n := 0
	for _, task := range tasks {
		dir := filepath.Join("/proc/self/task", task.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "usync-pool" {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// Fields after the name, which may hold spaces and ')': state is the 3rd.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 7 {
			continue
		}
		if flags, err := strconv.ParseUint(fields[6], 10, 64); err == nil && flags&pfIoWorker == 0 {
			n++
		}
	}
	return n
}

// TestIdleTimeout checks that an engine keeps its threads after a call and
// lets them go after IdleTimeout, and that the next call still works.
func TestIdleTimeout(t *testing.T) {
	if _, err := New(&Options{IdleTimeout: -time.Second}); err == nil {
		t.Error("negative IdleTimeout accepted")
	}
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		writeFile(t, src, content(7))
		e := newEngine(t, Options{ForceSync: forceSync, IdleTimeout: 30 * time.Millisecond})
		before := poolThreads(t)
		for i := range 2 {
			// 65 files, two batches: the synchronous engine copies a batch
			// one worker can copy on the calling thread, without a thread.
			pairs := []Pair{{Src: src, Dst: filepath.Join(dir, fmt.Sprint("dst", i))}}
			for k := range 64 {
				pairs = append(pairs, Pair{Src: src, Dst: filepath.Join(dir, fmt.Sprint("more", i, "-", k))})
			}
			if _, err := e.CopyFiles(context.Background(), pairs); err != nil {
				t.Fatal(err)
			}
			if n := poolThreads(t); n <= before {
				t.Fatalf("call %d: no engine thread outlived the call (%d before, %d after)", i, before, n)
			}
			deadline := time.Now().Add(5 * time.Second)
			for poolThreads(t) > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := poolThreads(t); n > before {
				t.Fatalf("call %d: %d engine threads still alive after the idle timeout", i, n-before)
			}
		}
		got, err := os.ReadFile(filepath.Join(dir, "dst1"))
		if err != nil || !bytes.Equal(got, content(7)) {
			t.Errorf("second copy after the idle timeout: %q, %v", got, err)
		}
	})
}

// TestFileMode checks that Options.FileMode gives every file the engine
// creates that mode less the umask (what os.Create gives), whatever the
// source's mode, and that a mode beyond the permission bits is refused.
func TestFileMode(t *testing.T) {
	if _, err := New(&Options{FileMode: os.ModeSetuid | 0o666}); err == nil {
		t.Error("FileMode with setuid accepted")
	}
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	want := os.FileMode(0o666) &^ os.FileMode(umask)
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		modes := map[string]os.FileMode{"a": 0o755, "b": 0o444, "c": 0, "d/e": 0o700}
		var pairs []Pair
		for name, mode := range modes {
			p := filepath.Join(src, name)
			writeFile(t, p, []byte(name))
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			pairs = append(pairs, Pair{Src: p, Dst: filepath.Join(dst, "pairs", name)})
		}
		e := newEngine(t, Options{ForceSync: forceSync, FileMode: 0o666})
		if err := e.CopyTree(context.Background(), src, filepath.Join(dst, "tree")); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CopyFiles(context.Background(), pairs); err != nil {
			t.Fatal(err)
		}
		for name := range modes {
			for _, sub := range []string{"tree", "pairs"} {
				fi, err := os.Lstat(filepath.Join(dst, sub, name))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != want {
					t.Errorf("%s/%s: mode %v, want %v", sub, name, fi.Mode(), want)
				}
			}
		}
	})
}

// TestAtimeFromMtime checks that with AtimeFromMtime a copied file's access
// time is its source's modification time, to the nanosecond.
func TestAtimeFromMtime(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		writeFile(t, src, []byte("x"))
		atime := time.Date(2001, 2, 3, 4, 5, 6, 123456789, time.UTC)
		mtime := time.Date(2011, 2, 3, 4, 5, 6, 987654321, time.UTC)
		if err := os.Chtimes(src, atime, mtime); err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, Options{ForceSync: forceSync, AtimeFromMtime: true})
		dst := filepath.Join(dir, "dst")
		if _, err := e.CopyFiles(context.Background(), []Pair{{Src: src, Dst: dst}}); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(dst, &st); err != nil {
			t.Fatal(err)
		}
		if got := time.Unix(st.Atim.Unix()); !got.Equal(mtime) {
			t.Errorf("atime %v, want the source's mtime %v", got, mtime)
		}
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
			t.Errorf("mtime %v, want %v", got, mtime)
		}
	})
}

// TestNoReplace checks that with NoReplace CopyFiles copies to destinations
// that do not exist and fails, with fs.ErrExist, on one that does, which
// keeps its content.
func TestNoReplace(t *testing.T) {
	engines(t, func(t *testing.T, forceSync bool) {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		writeFile(t, src, []byte("new"))
		existing, fresh := filepath.Join(dir, "existing"), filepath.Join(dir, "fresh")
		writeFile(t, existing, []byte("old"))
		e := newEngine(t, Options{ForceSync: forceSync, NoReplace: true})
		res, err := e.CopyFiles(context.Background(), []Pair{{Src: src, Dst: existing}, {Src: src, Dst: fresh}})
		if res == nil {
			t.Fatalf("CopyFiles: %v", err)
		}
		var fe *FileError
		if !errors.As(res[0].Err, &fe) || fe.Step != StepRename || !errors.Is(res[0].Err, fs.ErrExist) {
			t.Errorf("existing destination: %v, want EEXIST at the rename", res[0].Err)
		}
		if res[1].Err != nil {
			t.Errorf("new destination: %v", res[1].Err)
		}
		for path, want := range map[string]string{existing: "old", fresh: "new"} {
			if got, err := os.ReadFile(path); err != nil || string(got) != want {
				t.Errorf("%s: %q, %v; want %q", path, got, err, want)
			}
		}
	})
}

// TestClosedEngine: every call on a closed engine fails with an error that
// matches fs.ErrClosed (as an os.File's do), and the rest is harmless.
func TestClosedEngine(t *testing.T) {
	dir := t.TempDir()
	pairs := srcPairs(t, dir, 2)
	e, err := New(&Options{QuietFallback: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if res, err := e.CopyFiles(context.Background(), pairs); !errors.Is(err, fs.ErrClosed) || res != nil {
		t.Errorf("CopyFiles: %v, %v; want fs.ErrClosed and no results", res, err)
	}
	if err := e.CopyTree(context.Background(), filepath.Join(dir, "src"), filepath.Join(dir, "tree")); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("CopyTree: %v, want fs.ErrClosed", err)
	}
	e.Cancel()
	if k := e.Kind(); k != KindNone {
		t.Errorf("Kind = %v, want KindNone", k)
	}
	if st := e.Stats(); st != (Stats{}) {
		t.Errorf("Stats = %+v, want zero", st)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "dst")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a closed engine copied: %v", err)
	}
}
