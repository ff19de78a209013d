package e2e

// The fault suite: what real machines do to a copy while it runs, or before — aliases of the
// source through bind mounts and symlinks, files swapped for FIFOs and devices, signals, a full
// disk, a small descriptor limit, a large chunk size, permissions, files and directories changed
// under the walker, symlinks planted in the destination — each followed by a check of the trees.
// Helpers are in faultkit_test.go.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// seed drives every random choice of the suite; timing still varies from run to run.
const seed = 0x75736e63

func newRand(t *testing.T, salt string) *rand.Rand {
	var s uint64 = seed
	for _, c := range t.Name() + salt {
		s = s*131 + uint64(c)
	}
	return rand.New(rand.NewPCG(s, seed))
}

// TestOverlapThroughAliases: SRC and DST that are one tree under two names (bind mounts,
// symlinks) are refused like plain overlaps: exit 2, "overlap" on stderr, SRC unchanged and
// nothing created. Each case runs on a small tmpfs (2,000 inodes), so a copy that recurses into
// itself ends soon.
func TestOverlapThroughAliases(t *testing.T) {
	needRoot(t, "bind-mount and mount a tmpfs")
	type paths struct{ dir, src string }
	cases := []struct {
		name string
		// prepare makes the aliases and returns SRC and DST arguments.
		prepare func(t *testing.T, p paths) (src, dst string)
	}{
		{"DST inside a bind mount of SRC", func(t *testing.T, p paths) (string, string) {
			bindMount(t, p.src, filepath.Join(p.dir, "alias"))
			return p.src, filepath.Join(p.dir, "alias", "sub")
		}},
		{"DST is a bind mount of SRC", func(t *testing.T, p paths) (string, string) {
			bindMount(t, p.src, filepath.Join(p.dir, "alias"))
			return p.src, filepath.Join(p.dir, "alias")
		}},
		{"SRC is a bind mount, DST inside the original", func(t *testing.T, p paths) (string, string) {
			bindMount(t, p.src, filepath.Join(p.dir, "alias"))
			return filepath.Join(p.dir, "alias"), filepath.Join(p.src, "sub")
		}},
		{"DST inside a bind mount of a directory of SRC", func(t *testing.T, p paths) (string, string) {
			bindMount(t, filepath.Join(p.src, "inner"), filepath.Join(p.dir, "inner-alias"))
			return p.src, filepath.Join(p.dir, "inner-alias", "copy")
		}},
		{"DST through a symlink to a directory inside SRC", func(t *testing.T, p paths) (string, string) {
			if err := os.Symlink(filepath.Join(p.src, "inner", "deeper"), filepath.Join(p.dir, "link")); err != nil {
				t.Fatal(err)
			}
			return p.src, filepath.Join(p.dir, "link", "copy")
		}},
		{"DST is a symlink to SRC", func(t *testing.T, p paths) (string, string) {
			if err := os.Symlink(p.src, filepath.Join(p.dir, "link")); err != nil {
				t.Fatal(err)
			}
			return p.src, filepath.Join(p.dir, "link")
		}},
		{"DST is SRC through a relative path", func(t *testing.T, p paths) (string, string) {
			return p.src, filepath.Join(p.dir, "src", "inner", "..", "..", "src")
		}},
	}
	for _, e := range engines {
		for _, c := range cases {
			t.Run(e.name+"/"+c.name, func(t *testing.T) {
				dir := mountTmpfsWith(t, "size=16m,nr_inodes=2000,mode=0755")
				src := NewTree(t, filepath.Join(dir, "src"))
				buildMany(60, 3)(t, src)
				src.File("inner/deeper/f", []byte("deep"), 0o644)
				srcArg, dstArg := c.prepare(t, paths{dir: dir, src: src.Root})
				beside, _ := os.ReadDir(dir)
				before := snapshot(t, src.Root, nil)
				r := startCopy(t, e, runOpts{timeout: 30 * time.Second}, srcArg, dstArg).wait()
				if r.code != 2 || !strings.Contains(r.stderr, "overlap") {
					t.Errorf("want exit 2 and a message saying \"overlap\"\n%s", r)
				}
				requireSameSnapshot(t, "SRC", before, snapshot(t, src.Root, nil))
				if after, _ := os.ReadDir(dir); len(after) != len(beside) {
					t.Errorf("entries beside SRC: %d before, %d after", len(beside), len(after))
				}
			})
		}
	}
}

// TestSourceHoldsBindMountOfDestinationParent: a source that contains a bind mount of the
// directory DST is created in would copy DST into itself without end. The copy must finish,
// fail (exit non-zero), leave SRC's own files alone, and not recurse (DST stays shallow).
func TestSourceHoldsBindMountOfDestinationParent(t *testing.T) {
	needRoot(t, "bind-mount and mount a tmpfs")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := mountTmpfsWith(t, "size=64m,nr_inodes=20000,mode=0755")
			out := filepath.Join(dir, "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			src := NewTree(t, filepath.Join(dir, "src"))
			buildMany(100, 4)(t, src)
			src.File("a/b/c/f", []byte("deepest"), 0o644)
			bindMount(t, out, filepath.Join(src.Root, "mnt"))
			inMount := func(rel string) bool { return rel == "mnt" || strings.HasPrefix(rel, "mnt/") }
			before := snapshot(t, src.Root, inMount)
			const srcDepth = 4 // a/b/c/f
			r := startCopy(t, e, runOpts{timeout: 30 * time.Second}, src.Root, filepath.Join(out, "dst")).wait()
			if r.code != 1 && r.code != 2 {
				t.Errorf("exit %d, want 1 or 2: the source contains the destination\n%s", r.code, r)
			}
			requireSameSnapshot(t, "SRC outside the mount", before, snapshot(t, src.Root, inMount))
			// dst/a/b/c/f is 5 components below out; a copy of the mount once more adds a few.
			if d := maxDepth(t, out); d > srcDepth+3 {
				t.Errorf("the destination is %d levels deep (source: %d): the copy recursed into itself\n%s", d, srcDepth, r)
			}
		})
	}
}

// swapKind is a way to replace a source file during the copy.
type swapKind struct {
	name string
	// make creates the replacement at path and returns an fd to hold open (a writer), or -1.
	make func(path string) (hold int, err error)
	feed bool // write into the held fd for as long as the copy runs
}

func swapKinds() []swapKind {
	fifo := func(path string) (int, error) { return -1, unix.Mkfifo(path, 0o644) }
	held := func(path string) (int, error) {
		if err := unix.Mkfifo(path, 0o644); err != nil {
			return -1, err
		}
		return unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}
	return []swapKind{
		{name: "fifo", make: fifo},
		{name: "fifo with an idle writer", make: held},
		{name: "fifo with a writer feeding it", make: held, feed: true},
		{name: "symlink to /dev/zero", make: func(path string) (int, error) { return -1, os.Symlink("/dev/zero", path) }},
		{name: "char device 1:5 (/dev/zero)", make: func(path string) (int, error) {
			return -1, unix.Mknod(path, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5)))
		}},
	}
}

// TestFilesSwappedForSpecials: regular files replaced (atomically, by rename) by a FIFO, a
// symlink or a device while the copy runs. The copy must end (no read that never returns, no
// endless file), exit 0 or 1, and every regular file it leaves must be the original bytes: never
// bigger than the largest source file, never the device's or the pipe's bytes.
func TestFilesSwappedForSpecials(t *testing.T) {
	for _, k := range swapKinds() {
		for _, e := range allEngines {
			t.Run(k.name+"/"+e.name, func(t *testing.T) {
				t.Parallel()
				if strings.HasPrefix(k.name, "char") {
					needRoot(t, "mknod a character device")
				}
				dir := scratchDir(t)
				src, files := busySource(t, filepath.Join(dir, "src"), 2000, 20)
				racedRuns(t, "files were swapped", func(rep int) bool {
					swapped, raced := swapRun(t, k, e, rep, dir, src, files)
					restore(t, src, files, swapped)
					return raced
				})
			})
		}
	}
}

// swapRun copies src while files are swapped for k; it returns the files swapped, and false
// when the copy ended before any was (then nothing is checked).
func swapRun(t *testing.T, k swapKind, e engine, rep int, dir string, src *Tree, files map[string][]byte) (map[string]bool, bool) {
	staging := filepath.Join(dir, fmt.Sprint("staging", rep))
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	var largest int64
	names := make([]string, 0, len(files))
	for rel, data := range files {
		largest = max(largest, int64(len(data)))
		names = append(names, rel)
	}
	slices.Sort(names)
	rng := newRand(t, fmt.Sprint(rep))
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })

	var mu sync.Mutex
	var held []int
	swapped := map[string]bool{}
	stopFeed := make(chan struct{})
	feedDone := make(chan struct{})
	go func() { // a writer that keeps the held FIFOs full
		defer close(feedDone)
		chunk := bytes.Repeat([]byte("pipe"), 4*kib)
		for {
			select {
			case <-stopFeed:
				return
			case <-time.After(time.Millisecond):
			}
			if !k.feed {
				continue
			}
			mu.Lock()
			for _, fd := range held {
				_, _ = unix.Write(fd, chunk) // EAGAIN when full: fine
			}
			mu.Unlock()
		}
	}()
	defer func() {
		close(stopFeed)
		<-feedDone
		for _, fd := range held {
			unix.Close(fd)
		}
	}()

	dst := filepath.Join(dir, fmt.Sprint("dst", rep))
	r, runs := raceCopy(t, e, runOpts{timeout: 20 * time.Second}, rng, 300, 300*time.Microsecond, func(i int) error {
		rel := names[i]
		tmp := filepath.Join(staging, fmt.Sprint(i))
		fd, err := k.make(tmp)
		if err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("cannot create a %s (%v): run as root with CAP_MKNOD", k.name, err)
			}
			return err
		}
		mu.Lock()
		if fd >= 0 {
			held = append(held, fd)
		}
		swapped[rel] = true
		mu.Unlock()
		return os.Rename(tmp, filepath.Join(src.Root, rel))
	}, src.Root, dst)
	requireExit(t, e, r, 0, 1)
	if runs == 0 {
		t.Logf("run %d: the copy ended before any file was swapped; it is made again", rep)
		_ = os.RemoveAll(dst)
		return swapped, false
	}
	t.Logf("run %d: %d files swapped during the copy, exit %d", rep, runs, r.code)
	bad := &problems{what: fmt.Sprintf("run %d, %d files swapped for a %s", rep, runs, k.name)}
	if strings.Contains(r.stderr, "No space left on device") {
		// The scratch filesystem holds the source many times over.
		bad.add("the destination filled up: the copy wrote without end (from a device or a pipe?)")
	}
	seen := map[string]bool{}
	others := eachRegular(t, dst, largest, func(rel string, size int64, data []byte) {
		seen[rel] = true
		orig, ok := files[rel]
		switch {
		case !ok:
			bad.add("%q: a regular file (%d bytes) that is not a source file", rel, size)
		case size > largest:
			bad.add("%q: %d bytes, bigger than the largest source file (%d)", rel, size, largest)
		case !bytes.Equal(data, orig):
			bad.add("%q: %d bytes that are not the original %d (swapped: %v)", rel, size, len(orig), swapped[rel])
		}
	})
	for rel := range others {
		if _, ok := files[rel]; ok && !swapped[rel] {
			bad.add("%q: a %s in the copy, but it was never swapped", rel, typeName(others[rel]))
		}
	}
	for rel := range files {
		if _, ok := others[rel]; !seen[rel] && !ok && !swapped[rel] {
			bad.add("%q: missing from the copy, but it was never swapped", rel)
		}
	}
	bad.report(t, r)
	requireNoWorkLeft(t, dst)
	_ = os.RemoveAll(dst)
	return swapped, true
}

// signalSource is killSource plus the time an uninterrupted copy of it takes under e, measured
// once (and checked).
func signalSource(t *testing.T, dir string, e engine) (*Tree, time.Duration) {
	t.Helper()
	src := killSource(t, filepath.Join(dir, "src"))
	full := filepath.Join(dir, "full")
	began := time.Now()
	copyTree(t, e, runOpts{}, 0, src.Root, full)
	took := time.Since(began)
	requireSameTree(t, src.Root, full, CompareOpts{Umask: testUmask})
	return src, took
}

// TestSignalStopsWithinASecond: SIGINT or SIGTERM at a random moment of the copy makes it exit
// with 130 within 1 s of the signal, and no final path holds wrong bytes.
func TestSignalStopsWithinASecond(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src, took := signalSource(t, dir, e)
			rng := newRand(t, "")
			interrupted := 0
			for i := 0; i < 6; i++ {
				sig := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM}[i%2]
				delay := time.Duration(rng.Int64N(int64(took)*9/10 + 1))
				dst := &Tree{t: t, Root: filepath.Join(dir, fmt.Sprintf("dst%d", i))}
				p := startCopy(t, e, runOpts{timeout: 30 * time.Second}, src.Root, dst.Root)
				time.Sleep(delay)
				sent, ok := p.signal(sig)
				r := p.wait()
				what := fmt.Sprintf("%v after %v", sig, delay.Round(time.Millisecond))
				switch {
				case !ok:
					requireSameTree(t, src.Root, dst.Root, CompareOpts{Umask: testUmask})
					continue
				case r.code == 0: // it was done when the signal came
					requireSameTree(t, src.Root, dst.Root, CompareOpts{Umask: testUmask})
					continue
				case r.code != 130:
					t.Errorf("%s: exit %d, want 130\n%s", what, r.code, r)
				}
				interrupted++
				if lat := r.ended.Sub(sent); lat > time.Second {
					t.Errorf("%s: exited %v after the signal, want at most 1 s\n%s", what, lat.Round(time.Millisecond), r)
				} else {
					t.Logf("%s: exit %d %v after the signal", what, r.code, lat.Round(time.Millisecond))
				}
				requireCompleteOrAbsent(t, src, dst, nil, what)
			}
			if interrupted == 0 {
				t.Errorf("every copy finished before its signal (a full copy takes %v): nothing was tested", took)
			}
		})
	}
}

// TestKillAtRandomPoints: SIGKILL at a random moment leaves every final path absent or complete
// (or, in an existing DST, as it was), and partial work only under .usync-* names.
func TestKillAtRandomPoints(t *testing.T) {
	for _, e := range allEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := scratchDir(t)
			src, took := signalSource(t, dir, e)
			stale := func(rel string) []byte { return Data("stale "+rel, 1000) }
			rng := newRand(t, "")
			killed := 0
			// Four runs, and up to four more while no SIGKILL has landed: the first
			// (timed) copy can take longer than the later ones, whose delays would
			// then all fall after their end. A run that finished first shortens
			// the range the next delays are drawn from to its own length.
			for i := 0; i < 4 || (killed == 0 && i < 8); i++ {
				parent := filepath.Join(dir, fmt.Sprintf("run%d", i))
				if err := os.Mkdir(parent, 0o755); err != nil {
					t.Fatal(err)
				}
				dst := &Tree{t: t, Root: filepath.Join(parent, "dst")}
				var old func(string) []byte
				if i%2 == 1 { // into an existing DST holding older versions of some files
					NewTree(t, dst.Root)
					for j, rel := range src.Paths() {
						if st, _ := src.Lstat(rel); st.Mode&unix.S_IFMT == unix.S_IFREG && j%3 == 0 {
							dst.File(rel, stale(rel), 0o644)
						}
					}
					old = stale
				}
				delay := time.Duration(rng.Int64N(int64(took)*9/10 + 1))
				began := time.Now()
				p := startCopy(t, e, runOpts{timeout: 30 * time.Second}, src.Root, dst.Root)
				time.Sleep(delay)
				if _, ok := p.signal(syscall.SIGKILL); ok {
					killed++
				} else {
					took = min(took, time.Since(began))
				}
				p.wait()
				what := fmt.Sprintf("SIGKILL after %v", delay.Round(time.Millisecond))
				requireCompleteOrAbsent(t, src, dst, old, what)
				requireOnlyWorkStrays(t, src, dst.Root)
			}
			if killed == 0 {
				t.Errorf("every copy finished before SIGKILL (a full copy takes %v): nothing was tested", took)
			}
		})
	}
}

// TestNoSpaceIsReportedOnce: a destination that fills up (bytes or inodes) fails the copy with
// exit 1 and a message that names a path and says "No space left on device" — at most 10 such
// lines, not one per file — and leaves no partial file under a final name and no temporary.
func TestNoSpaceIsReportedOnce(t *testing.T) {
	needRoot(t, "mount a small tmpfs")
	cases := []struct{ name, options string }{
		{"bytes", "size=2m,mode=0755"},
		{"inodes", "size=64m,nr_inodes=300,mode=0755"},
	}
	for _, c := range cases {
		for _, e := range engines {
			t.Run(c.name+"/"+e.name, func(t *testing.T) {
				dir := scratchDir(t)
				src := NewTree(t, filepath.Join(dir, "src"))
				for i := 0; i < 2000; i++ {
					rel := fmt.Sprintf("d%02d/f%04d", i%20, i)
					src.File(rel, Data(rel, 4*kib+i%100), 0o644)
				}
				for i := 0; i < 3; i++ {
					src.File(fmt.Sprintf("big%d", i), Data(fmt.Sprint("big", i), mib+i), 0o644)
				}
				dst := &Tree{t: t, Root: filepath.Join(mountTmpfsWith(t, c.options), "dst")}
				r := copyTree(t, e, runOpts{}, 1, src.Root, dst.Root)
				var enospc []string
				for _, l := range strings.Split(r.stderr, "\n") {
					if strings.Contains(l, "No space left on device") {
						enospc = append(enospc, l)
					}
				}
				named := regexp.MustCompile(`'[^']*/[^']*'`)
				switch {
				case len(enospc) == 0:
					t.Errorf("no line says \"No space left on device\"\n%s", r)
				case !slices.ContainsFunc(enospc, named.MatchString):
					t.Errorf("no \"No space left on device\" line names a path\n%s", r)
				case len(enospc) > 10:
					t.Errorf("%d lines say \"No space left on device\", want at most 10 (one cause, not one line per file)\n%s", len(enospc), r)
				}
				requireCompleteOrAbsent(t, src, dst, nil, "ENOSPC")
				requireOnlyWorkStrays(t, src, dst.Root)
				requireNoWorkLeft(t, dst.Root)
			})
		}
	}
}

// TestFileSizeLimit: under RLIMIT_FSIZE (ulimit -f, like a quota on one file) a write past the
// limit fails that file, which is reported ("File too large"), exit 1, and the rest is still
// copied, as rsync does; SIGXFSZ must not kill the copy at its first large file. No partial file
// is left under a final name, and the same command without the limit completes the copy.
func TestFileSizeLimit(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) not found: %v", err)
	}
	for _, e := range allEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := scratchDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			var big []string
			for i := 0; i < 3; i++ {
				rel := fmt.Sprintf("d%d/big", i)
				src.File(rel, Data(rel, 2*mib+i), 0o644)
				big = append(big, rel)
			}
			for i := 0; i < 300; i++ {
				rel := fmt.Sprintf("d%d/f%03d", i%3, i)
				src.File(rel, Data(rel, 100+i*50), 0o644)
			}
			dst := &Tree{t: t, Root: filepath.Join(dir, "dst")}
			o := runOpts{prefix: []string{"prlimit", fmt.Sprintf("--fsize=%d", mib), "--"}}
			r := copyTree(t, e, o, 1, src.Root, dst.Root)
			requireErrorsReported(t, r, big...)
			if !strings.Contains(r.stderr, "File too large") {
				t.Errorf("no line says \"File too large\"\n%s", r)
			}
			requireSameTree(t, src.Root, dst.Root, CompareOpts{Umask: testUmask, Excluded: setOf(big...)})
			requireNoWorkLeft(t, dst.Root)
			copyTree(t, e, runOpts{}, 0, src.Root, dst.Root)
			requireSameTree(t, src.Root, dst.Root, CompareOpts{Umask: testUmask})
		})
	}
}

// buildChain makes a chain of depth directories below root, each holding one file, through
// directory fds (the path is far beyond PATH_MAX).
func buildChain(t *testing.T, root string, depth int) {
	t.Helper()
	NewTree(t, root)
	fd, err := openRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { unix.Close(fd) }()
	for i := 0; i < depth; i++ {
		f, err := unix.Openat(fd, "f", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		_, err = unix.Write(f, Data(fmt.Sprint("chain", i), i%700))
		unix.Close(f)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("level-%04d", i)
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, dirFlags, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = next
	}
}

// TestDescriptorLimit: the copy keeps within RLIMIT_NOFILE whatever the tree's shape — a chain
// of 1,200 directories, or 50 directories of 40 files — and the number of rings or threads.
func TestDescriptorLimit(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) not found: %v", err)
	}
	dir := scratchDir(t)
	deep := filepath.Join(dir, "deep")
	buildChain(t, deep, 1200)
	wide := NewTree(t, filepath.Join(dir, "wide"))
	for d := 0; d < 50; d++ {
		for f := 0; f < 40; f++ {
			rel := fmt.Sprintf("d%02d/f%02d", d, f)
			wide.File(rel, Data(rel, (d*40+f)*13%5000), 0o644)
		}
	}
	n := 0
	for _, e := range allEngines {
		for _, limit := range []int{16, 20, 64, 1024} {
			for _, tree := range []string{deep, wide.Root} {
				for _, jobs := range [][]string{nil, {"-j", "8"}} {
					name := fmt.Sprintf("%s/nofile=%d/%s%s", e.name, limit, filepath.Base(tree), strings.Join(jobs, ""))
					t.Run(name, func(t *testing.T) {
						n++
						dst := filepath.Join(dir, fmt.Sprintf("dst%d", n))
						o := runOpts{prefix: []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", limit, limit), "--"}}
						r := startCopy(t, e, o, append(append([]string{}, jobs...), tree, dst)...).wait()
						if r.code != 0 {
							t.Fatalf("exit %d, want 0\n%s", r.code, r)
						}
						if !strings.Contains(r.stderr, e.summary) || strings.Contains(r.stderr, "synchronous engine") {
							t.Logf("ran on another engine than %s at this limit:\n%s", e.name, clip(r.stderr))
						}
						requireSameTree(t, tree, dst, CompareOpts{Umask: testUmask})
					})
				}
			}
		}
	}
}

// TestChunkSizeMemoryBudget: -c 64M asks for big buffers, not for 64 MiB per slot: the copy of a
// small tree peaks below 300 MiB resident. It runs with its address space capped at 2 GiB, so a
// copy that would pin gigabytes fails at once instead of pushing the machine into swap.
func TestChunkSizeMemoryBudget(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) not found: %v", err)
	}
	dir := tempDir(t)
	src := NewTree(t, filepath.Join(dir, "src"))
	buildMany(300, 3)(t, src)
	src.File("big", Data("big", 5*mib+3), 0o644)
	src.File("mid", Data("mid", 300*kib), 0o644)
	const limit = 300 * mib
	n := 0
	for _, e := range engines {
		for _, extra := range [][]string{nil, {"-j", "8", "-q", "512"}} {
			t.Run(e.name+"/-c64M"+strings.Join(extra, ""), func(t *testing.T) {
				n++
				dst := filepath.Join(dir, fmt.Sprintf("dst%d", n))
				// GNU time forks the copy, so its peak is the copy's own: the
				// rusage of a child that Go starts (vfork, then exec) also keeps
				// the peak of the go test process that it shared memory with.
				o := runOpts{prefix: []string{"/usr/bin/time", "-f", rssMarker + "%M",
					"prlimit", fmt.Sprintf("--as=%d", 2<<30), "--"}}
				args := append(append([]string{"-c", "64M"}, extra...), src.Root, dst)
				r := copyTree(t, e, o, 0, args...)
				peak := peakRSS(t, r)
				if peak > limit {
					t.Errorf("peak RSS %d MiB, want below %d MiB\n%s", peak/mib, limit/mib, r)
				} else {
					t.Logf("peak RSS %d MiB", peak/mib)
				}
				requireSameTree(t, src.Root, dst, CompareOpts{Umask: testUmask})
			})
		}
	}
}

// TestUnreadableSourceDirectories extends TestUnreadableSource with the two half-open directory
// modes: listable but not searchable (0444: names without entries) and searchable but not
// listable (0111). Their contents are reported and absent; everything else is copied.
func TestUnreadableSourceDirectories(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := nobodyDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("ok.txt", []byte("ok"), 0o644)
			buildMany(100, 3)(t, src)
			src.File("listonly/a", []byte("a"), 0o644)
			src.File("listonly/sub/b", []byte("b"), 0o644)
			src.File("searchonly/c", []byte("c"), 0o644)
			src.File("after/d", []byte("d"), 0o644)
			src.ChownAll(nobodyID, nobodyID)
			src.Chmod("listonly", 0o444)
			src.Chmod("searchonly", 0o111)
			dst := &Tree{t: t, Root: filepath.Join(dir, "dst")}
			r := copyTree(t, e, runOpts{prefix: nobodyPrefix()}, 1, src.Root, dst.Root)
			requireErrorsReported(t, r, "listonly", "searchonly")
			for _, rel := range []string{"listonly/a", "listonly/sub", "listonly/sub/b", "searchonly/c"} {
				if dst.Exists(rel) {
					t.Errorf("%q exists in the copy although it could not be read", rel)
				}
			}
			requireSameTree(t, src.Root, dst.Root, CompareOpts{
				Umask:      testUmask,
				Excluded:   setOf("listonly", "searchonly"),
				AllowExtra: setOf("listonly", "searchonly"), // may exist (empty), checked above
			})
		})
	}
}

// mutation changes one source file during the copy and returns the versions of its bytes the copy
// may show (a prefix of exactly one of them).
type mutation struct {
	name string
	// apply mutates rel (currently holding cur) and returns its versions.
	apply func(src *Tree, attic string, rel string, cur []byte, i int) ([][]byte, error)
	// again: the same file may be mutated more than once.
	again bool
}

func mutations() []mutation {
	return []mutation{
		{name: "grow", again: true, apply: func(src *Tree, _ string, rel string, cur []byte, i int) ([][]byte, error) {
			more := Data(fmt.Sprint(rel, "+", i), 1+(i*977)%(64*kib))
			f, err := os.OpenFile(filepath.Join(src.Root, rel), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return nil, err
			}
			_, err = f.Write(more)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return [][]byte{append(append([]byte{}, cur...), more...)}, err
		}},
		{name: "shrink", apply: func(src *Tree, _ string, rel string, cur []byte, i int) ([][]byte, error) {
			return [][]byte{cur}, os.Truncate(filepath.Join(src.Root, rel), int64(len(cur)*(i%3)/4))
		}},
		{name: "vanish", apply: func(src *Tree, _ string, rel string, cur []byte, i int) ([][]byte, error) {
			return [][]byte{cur}, os.Remove(filepath.Join(src.Root, rel))
		}},
		{name: "rotate", apply: func(src *Tree, attic string, rel string, cur []byte, i int) ([][]byte, error) {
			// Like a log rotation: rename away, then create and write the new file (not atomic).
			path := filepath.Join(src.Root, rel)
			if err := os.Rename(path, filepath.Join(attic, fmt.Sprint(i))); err != nil {
				return nil, err
			}
			next := Data(rel+"#rotated", 1+(len(cur)*5/4+i*31)%(1500*kib))
			if len(cur) > 0 && next[0] == cur[0] {
				next[0] ^= 0xff // versions differ from the first byte: a prefix belongs to one only
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return nil, err
			}
			half := len(next) / 2
			_, err = f.Write(next[:half])
			if err == nil {
				time.Sleep(50 * time.Microsecond)
				_, err = f.Write(next[half:])
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return [][]byte{cur, next}, err
		}},
	}
}

// TestFilesChangedDuringCopy: files that grow, shrink, vanish or are rotated while the copy runs.
// Every file in the copy is a prefix of exactly one version of its source (never bytes of two
// files spliced, never bytes from nowhere) or absent; untouched files are copied exactly.
func TestFilesChangedDuringCopy(t *testing.T) {
	for _, m := range mutations() {
		for _, e := range allEngines {
			t.Run(m.name+"/"+e.name, func(t *testing.T) {
				t.Parallel()
				dir := scratchDir(t)
				src, files := busySource(t, filepath.Join(dir, "src"), 2000, 20)
				racedRuns(t, "files changed", func(rep int) bool {
					changed, raced := mutateRun(t, m, e, rep, dir, src, files)
					restore(t, src, files, changed)
					return raced
				})
			})
		}
	}
}

// slowerCopy returns, for every other repetition, options that copy one file at a time in 64 KiB
// reads: a longer copy with each large file in flight for longer, so changes land mid-file.
func slowerCopy(rep int) []string {
	if rep%2 == 1 {
		return []string{"-j", "1", "-q", "1", "-c", "64K"}
	}
	return nil
}

// mutateRun copies src while files are changed by m; it returns the files changed, and false
// when the copy ended before any was (then nothing is checked).
func mutateRun(t *testing.T, m mutation, e engine, rep int, dir string, src *Tree, files map[string][]byte) (map[string]bool, bool) {
	attic := filepath.Join(dir, fmt.Sprint("attic", rep))
	if err := os.Mkdir(attic, 0o755); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for rel := range files {
		names = append(names, rel)
	}
	slices.Sort(names)
	rng := newRand(t, fmt.Sprint(rep))
	versions := map[string][][]byte{}
	current := map[string][]byte{}
	for rel, data := range files {
		current[rel] = data
	}
	pick := rng.Perm(len(names))
	var large []string // in flight for many reads: where a change lands mid-copy
	for _, rel := range names {
		if len(files[rel]) >= 192*kib {
			large = append(large, rel)
		}
	}
	dst := filepath.Join(dir, fmt.Sprint("dst", rep))
	r, runs := raceCopy(t, e, runOpts{timeout: 30 * time.Second}, rng, 300, 200*time.Microsecond, func(i int) error {
		rel := names[pick[i%len(pick)]]
		if rng.IntN(2) == 0 {
			rel = large[rng.IntN(len(large))]
		}
		if _, done := versions[rel]; done && !m.again {
			return nil
		}
		vs, err := m.apply(src, attic, rel, current[rel], i)
		if err != nil {
			return err
		}
		versions[rel] = vs
		current[rel] = vs[len(vs)-1]
		return nil
	}, append(slowerCopy(rep), src.Root, dst)...)
	requireExit(t, e, r, 0, 1)
	if runs == 0 {
		t.Logf("run %d: the copy ended before any file changed; it is made again", rep)
		_ = os.RemoveAll(dst)
		return nil, false
	}
	t.Logf("run %d %v: %d changes during the copy, exit %d", rep, slowerCopy(rep), runs, r.code)
	bad := &problems{what: fmt.Sprintf("run %d, %d changes (%s)", rep, runs, m.name)}
	seen := map[string]bool{}
	others := eachRegular(t, dst, 1<<40, func(rel string, size int64, data []byte) {
		seen[rel] = true
		orig, ok := files[rel]
		vs, changed := versions[rel]
		switch {
		case !ok:
			bad.add("%q: a regular file (%d bytes) that is not a source file", rel, size)
		case !changed && !bytes.Equal(data, orig):
			bad.add("%q: untouched, but the copy's %d bytes are not the source's %d", rel, size, len(orig))
		case changed && !isPrefixOfOne(data, vs):
			sizes := []int{}
			for _, v := range vs {
				sizes = append(sizes, len(v))
			}
			bad.add("%q: %d bytes that are no prefix of any version (sizes %v) of the source", rel, size, sizes)
		}
	})
	for rel, typ := range others {
		if _, ok := files[rel]; ok {
			bad.add("%q: a %s in the copy, a regular file in the source", rel, typeName(typ))
		}
	}
	for rel := range files {
		if _, changed := versions[rel]; !changed && !seen[rel] {
			bad.add("%q: untouched, but missing from the copy", rel)
		}
	}
	bad.report(t, r)
	requireNoWorkLeft(t, dst)
	_ = os.RemoveAll(dst)
	changed := map[string]bool{}
	for rel := range versions {
		changed[rel] = true
	}
	return changed, true
}

// TestDirectoriesRenamedDuringWalk: directories renamed and moved under the walker. The copy
// ends, exits 0 or 1, and every file in the copy is the complete bytes of a source file that was
// at that path at some moment; files whose directories never moved are all there.
func TestDirectoriesRenamedDuringWalk(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			// Three runs that raced; a run whose copy ended before the first
			// rename (a loaded machine) is checked all the same and repeated.
			raced := 0
			for rep := 0; rep < 8 && raced < 3 && !t.Failed(); rep++ {
				if renameRun(t, e, rep) > 0 {
					raced++
				}
			}
			if raced == 0 && !t.Failed() {
				t.Fatalf("no copy was still running at the first rename, in 8 runs: nothing was tested")
			}
		})
	}
}

// renameRun runs one copy with renames racing it and checks the copy; it returns how many
// renames happened while the copy ran.
func renameRun(t *testing.T, e engine, rep int) int {
	dir := scratchDir(t)
	src := NewTree(t, filepath.Join(dir, "src"))
	byContent := map[string]int{}  // bytes -> file id
	where := []string{}            // file id -> current path
	history := []map[string]bool{} // file id -> every path it had
	var subdirs, tops []string
	for d := 0; d < 40; d++ {
		tops = append(tops, fmt.Sprintf("d%02d", d))
		for s := 0; s < 3; s++ {
			sub := fmt.Sprintf("d%02d/s%d", d, s)
			subdirs = append(subdirs, sub)
			for f := 0; f < 10; f++ {
				id := len(where)
				rel := fmt.Sprintf("%s/f%d", sub, f)
				data := Data(fmt.Sprint("file", id), 1+(id*97)%6000)
				src.File(rel, data, 0o644)
				byContent[string(data)] = id
				where = append(where, rel)
				history = append(history, map[string]bool{rel: true})
			}
		}
	}
	moved := func(from, to string) {
		for id, p := range where {
			if strings.HasPrefix(p, from+"/") {
				where[id] = to + p[len(from):]
				history[id][where[id]] = true
			}
		}
		for i, s := range subdirs {
			if s == from || strings.HasPrefix(s, from+"/") {
				subdirs[i] = to + s[len(from):]
			}
		}
	}
	rng := newRand(t, fmt.Sprint(rep))
	dst := filepath.Join(dir, "dst")
	r, runs := raceCopy(t, e, runOpts{timeout: 30 * time.Second}, rng, 300, 500*time.Microsecond, func(i int) error {
		var from, to string
		switch i % 3 {
		case 0: // rename a subdirectory in place
			from = subdirs[rng.IntN(len(subdirs))]
			to = from + "r"
		case 1: // move a subdirectory into another top-level directory
			from = subdirs[rng.IntN(len(subdirs))]
			to = fmt.Sprintf("%s/m%d", tops[rng.IntN(len(tops))], i)
		default: // rename a top-level directory
			k := rng.IntN(len(tops))
			from = tops[k]
			to = fmt.Sprintf("%st%d", from, i)
			tops[k] = to
		}
		if err := os.Rename(filepath.Join(src.Root, from), filepath.Join(src.Root, to)); err != nil {
			return err
		}
		moved(from, to)
		return nil
	}, src.Root, dst)
	requireExit(t, e, r, 0, 1)
	t.Logf("run %d: %d renames during the copy, exit %d", rep, runs, r.code)
	bad := &problems{what: fmt.Sprintf("run %d, %d renames", rep, runs)}
	found := map[int]bool{}
	eachRegular(t, dst, 1<<20, func(rel string, size int64, data []byte) {
		id, ok := byContent[string(data)]
		switch {
		case !ok:
			bad.add("%q: %d bytes that are no source file's", rel, size)
		case !history[id][rel]:
			bad.add("%q: holds the bytes of a file that never was at that path (it was at %v)", rel, keys(history[id]))
		default:
			found[id] = true
		}
	})
	for id, h := range history {
		if len(h) == 1 && !found[id] {
			bad.add("%q: never moved, but missing from the copy", where[id])
		}
	}
	bad.report(t, r)
	requireNoWorkLeft(t, dst)
	return runs
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// outsideTree is a directory beside DST that must not change: a target file, an empty target
// directory, and a twin to compare it with.
func outsideTree(t *testing.T, dir string) (outside, ref *Tree) {
	outside = NewTree(t, filepath.Join(dir, "outside"))
	ref = NewTree(t, filepath.Join(dir, "outside-ref"))
	for _, tr := range []*Tree{outside, ref} {
		for i := 0; i < 4; i++ {
			tr.File(fmt.Sprintf("target%d.txt", i), []byte("must not change"), 0o640)
			tr.Dir(fmt.Sprintf("targetdir%d", i), 0o750)
		}
		tr.StampAll()
	}
	return outside, ref
}

// TestPlantedSymlinksEverywhere extends TestPlantedSymlinkInDestination: symlinks planted in
// DST below the top level, with relative targets, where SRC holds a symlink, a FIFO or an empty
// directory, with and without -p (whose chmod and utimes must not follow them either). Nothing
// outside DST changes: no bytes, modes or times.
func TestPlantedSymlinksEverywhere(t *testing.T) {
	for _, e := range engines {
		for _, preserve := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/p=%v", e.name, preserve), func(t *testing.T) {
				t.Parallel()
				dir := tempDir(t)
				outside, ref := outsideTree(t, dir)
				src := NewTree(t, filepath.Join(dir, "src"))
				src.File("sub/victim", []byte("from source"), 0o600)
				src.File("sub/victimdir/f", []byte("from source"), 0o600)
				src.Symlink("sub/link", "elsewhere")
				if err := src.Mknod("sub/fifo", unix.S_IFIFO|0o600, 0); err != nil {
					t.Fatal(err)
				}
				src.Dir("sub/emptydir", 0o700)
				src.StampAll()
				dst := NewTree(t, filepath.Join(dir, "dst"))
				dst.Dir("sub", 0o755)
				dst.Symlink("sub/victim", "../../outside/target0.txt")
				dst.Symlink("sub/victimdir", filepath.Join(outside.Root, "targetdir0"))
				dst.Symlink("sub/link", "../../outside/target1.txt")
				dst.Symlink("sub/fifo", filepath.Join(outside.Root, "target2.txt"))
				dst.Symlink("sub/emptydir", "../../outside/targetdir1")
				args := []string{src.Root, dst.Root}
				if preserve {
					args = append([]string{"-p"}, args...)
				}
				r := startCopy(t, e, runOpts{}, args...).wait()
				requireExit(t, e, r, 0, 1)
				requireSameTree(t, ref.Root, outside.Root, CompareOpts{Preserve: true})
				if got := dst.ReadFile("sub/victim"); string(got) != "from source" {
					t.Errorf("sub/victim holds %q, want the source's bytes", got)
				}
				if r.code == 0 {
					o := CompareOpts{Umask: testUmask, SkipRootMeta: true}
					if preserve {
						o = CompareOpts{Preserve: true, SkipRootMeta: true}
					}
					requireSameTree(t, src.Root, dst.Root, o)
				}
			})
		}
	}
}

// TestSymlinkPlantedDuringCopy: while a copy merges into an existing DST, its directories are
// swapped for symlinks to directories outside DST. No write may follow them: the outside
// directories stay empty and unchanged.
func TestSymlinkPlantedDuringCopy(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			// A rep whose copy ends before the racer's first swap (it starts after a random delay
			// of up to 20 ms, and a fast engine copies these 1,200 files in about that time) tests
			// nothing: it is run again, up to 15 times for 3 that raced.
			raced := 0
			for rep := 0; raced < 3 && rep < 15 && !t.Failed(); rep++ {
				dir := scratchDir(t)
				src := NewTree(t, filepath.Join(dir, "src"))
				dst := NewTree(t, filepath.Join(dir, "dst"))
				outside := NewTree(t, filepath.Join(dir, "outside"))
				ref := NewTree(t, filepath.Join(dir, "outside-ref"))
				attic := NewTree(t, filepath.Join(dir, "attic"))
				var dirs []string
				for d := 0; d < 40; d++ {
					for _, sub := range []string{fmt.Sprintf("d%02d", d), fmt.Sprintf("d%02d/inner", d)} {
						dirs = append(dirs, sub)
						dst.Dir(sub, 0o755)
						for f := 0; f < 15; f++ {
							rel := fmt.Sprintf("%s/f%02d", sub, f)
							src.File(rel, Data(rel, 1+f*400), 0o644)
						}
					}
				}
				for i := range dirs {
					outside.Dir(fmt.Sprintf("o%03d", i), 0o755)
					ref.Dir(fmt.Sprintf("o%03d", i), 0o755)
				}
				outside.StampAll()
				ref.StampAll()
				rng := newRand(t, fmt.Sprint(rep))
				order := rng.Perm(len(dirs))
				r, runs := raceCopy(t, e, runOpts{timeout: 30 * time.Second}, rng, len(dirs), 300*time.Microsecond, func(i int) error {
					k := order[i]
					path := filepath.Join(dst.Root, dirs[k])
					if err := os.Rename(path, filepath.Join(attic.Root, fmt.Sprint(k))); err != nil {
						if errors.Is(err, os.ErrNotExist) {
							return nil // its parent was swapped already
						}
						return err
					}
					err := os.Symlink(filepath.Join(outside.Root, fmt.Sprintf("o%03d", k)), path)
					if errors.Is(err, os.ErrExist) {
						return nil // the copy made the directory again between the rename and the symlink
					}
					return err
				}, src.Root, dst.Root)
				requireExit(t, e, r, 0, 1)
				if runs > 0 {
					raced++
				}
				requireSameTree(t, ref.Root, outside.Root, CompareOpts{Preserve: true})
			}
			if raced < 3 && !t.Failed() {
				t.Fatalf("only %d of 15 copies were still running at the first swap: nothing was tested", raced)
			}
		})
	}
}

const rssMarker = "uring-sync-test-maxrss-kib="

// peakRSS reads the peak resident set that /usr/bin/time -f rssMarker%M printed.
func peakRSS(t *testing.T, r result) int64 {
	t.Helper()
	i := strings.LastIndex(r.stderr, rssMarker)
	if i < 0 {
		t.Fatalf("no peak RSS from /usr/bin/time\n%s", r)
	}
	var kib int64
	if _, err := fmt.Sscanf(r.stderr[i+len(rssMarker):], "%d", &kib); err != nil {
		t.Fatalf("peak RSS: %v\n%s", err, r)
	}
	return kib * 1024
}
