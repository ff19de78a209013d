package e2e

// Helpers of the fault suite (fault_test.go): copies that run while something else changes the
// trees, bind mounts, snapshots, and checks of what a destination may hold afterwards.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// needRoot skips the test when not running as root, saying what for.
func needRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to %s", what)
	}
}

// bindMount bind-mounts dir on target (created if missing) until the test ends.
func bindMount(t *testing.T, dir, target string) {
	t.Helper()
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dir, target, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount (%v): needs CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
}

// scratchDir returns a fresh directory for a test that creates and copies thousands of files
// several times: on a tmpfs of its own when it can mount one (creating a file on this project's
// ext4 test disk costs about a millisecond, on tmpfs a few microseconds), else a temporary
// directory. The 512 MiB cap also stops a copy that writes without end from eating the memory.
func scratchDir(t *testing.T) string {
	t.Helper()
	dir := tempDir(t)
	if os.Geteuid() != 0 {
		return dir
	}
	mnt := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=512m,mode=0755"); err != nil {
		t.Logf("no tmpfs (%v): working on the disk", err)
		return dir
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	return mnt
}

// startCopy starts a copy under engine e with -v (for the engine summary).
func startCopy(t *testing.T, e engine, o runOpts, args ...string) *proc {
	t.Helper()
	o.env = append(append([]string{}, o.env...), e.env...)
	return start(t, o, append(append([]string{"-v"}, e.args...), args...)...)
}

// requireExit fails the test unless the copy exited with one of codes; a copy that ran (0 or 1)
// must also have run on the engine asked for.
func requireExit(t *testing.T, e engine, r result, codes ...int) {
	t.Helper()
	if !slices.Contains(codes, r.code) {
		t.Fatalf("exit %d, want one of %v\n%s", r.code, codes, r)
	}
	if r.code == 0 || r.code == 1 {
		requireEngine(t, e, r)
	}
}

// snapshot describes every entry below root (type, mode, size, content digest, symlink target,
// mtime), skipping the subtrees for which skip is true.
func snapshot(t *testing.T, root string, skip func(rel string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	fd, err := openRoot(root)
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	defer unix.Close(fd)
	var walk func(dirfd int, rel string) error
	walk = func(dirfd int, rel string) error {
		names, err := readDirNames(dirfd)
		if err != nil {
			return err
		}
		for _, n := range names {
			child := joinRel(rel, n)
			if skip != nil && skip(child) {
				continue
			}
			var st unix.Stat_t
			if err := unix.Fstatat(dirfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			desc := fmt.Sprintf("%s %04o mtime=%d.%09d", typeName(st.Mode), st.Mode&0o7777, st.Mtim.Sec, st.Mtim.Nsec)
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				f, err := unix.Openat(dirfd, n, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				data, err := readAll(f)
				unix.Close(f)
				if err != nil {
					return err
				}
				desc += fmt.Sprintf(" size=%d sha256=%x", len(data), sha256.Sum256(data))
			case unix.S_IFLNK:
				target, err := readlinkAt(dirfd, n)
				if err != nil {
					return err
				}
				desc += " -> " + target
			case unix.S_IFDIR:
				sub, err := unix.Openat(dirfd, n, dirFlags, 0)
				if err != nil {
					return err
				}
				err = walk(sub, child)
				unix.Close(sub)
				if err != nil {
					return err
				}
			}
			out[child] = desc
		}
		return nil
	}
	if err := walk(fd, ""); err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return out
}

// requireSameSnapshot fails the test when two snapshots differ, naming the differences.
func requireSameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for rel, b := range before {
		if a, ok := after[rel]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q: gone (was %s)", rel, b))
		} else if a != b {
			diffs = append(diffs, fmt.Sprintf("%q: now %s (was %s)", rel, a, b))
		}
	}
	for rel, a := range after {
		if _, ok := before[rel]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q: new %s", rel, a))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... %d differences in all", len(diffs)))
		}
		t.Errorf("%s changed:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

// maxDepth returns the most components of any path below root (0 for an empty or missing root).
func maxDepth(t *testing.T, root string) int {
	t.Helper()
	fd, err := openRoot(root)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	depth := 0
	_ = walkFd(fd, "", func(_ int, _, rel string, _ *unix.Stat_t) error {
		depth = max(depth, strings.Count(rel, "/")+1)
		return nil
	})
	return depth
}

// problems collects what a check found wrong, reporting the first few in full.
type problems struct {
	what  string
	lines []string
	n     int
}

func (p *problems) add(format string, args ...any) {
	if p.n++; p.n <= 15 {
		p.lines = append(p.lines, fmt.Sprintf(format, args...))
	}
}

func (p *problems) report(t *testing.T, r result) {
	t.Helper()
	if p.n > 0 {
		t.Errorf("%s: %d problem(s):\n  %s\n%s", p.what, p.n, strings.Join(p.lines, "\n  "), r)
	}
}

// eachRegular calls fn for every regular file below root with its path, size and (when the
// size is at most limit) bytes; it returns the other entries' types by path.
func eachRegular(t *testing.T, root string, limit int64, fn func(rel string, size int64, data []byte)) map[string]uint32 {
	t.Helper()
	others := map[string]uint32{}
	fd, err := openRoot(root)
	if errors.Is(err, unix.ENOENT) {
		return others
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	err = walkFd(fd, "", func(dirfd int, name, rel string, st *unix.Stat_t) error {
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			others[rel] = st.Mode & unix.S_IFMT
			return nil
		}
		var data []byte
		if st.Size <= limit {
			f, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			data, err = readAll(f)
			unix.Close(f)
			if err != nil {
				return err
			}
		}
		fn(rel, st.Size, data)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return others
}

// requireOnlyWorkStrays checks that every path below dst that is not a source path lies under a
// component named .usync-* (the engine's work names), and so does every entry of dst's parent
// other than dst itself and the names in keep.
func requireOnlyWorkStrays(t *testing.T, src *Tree, dst string, keep ...string) {
	t.Helper()
	names := map[string]bool{}
	for _, rel := range src.Paths() {
		names[rel] = true
	}
	work := func(rel string) bool {
		for _, c := range splitRel(rel) {
			if strings.HasPrefix(c, ".usync-") {
				return true
			}
		}
		return false
	}
	bad := 0
	if d := (&Tree{t: t, Root: dst}); d.Exists("") {
		for _, rel := range d.Paths() {
			if !names[rel] && !work(rel) {
				if bad++; bad <= 10 {
					t.Errorf("%q in the destination is neither a source path nor under a .usync-* work name", rel)
				}
			}
		}
	}
	parent, err := os.ReadDir(filepath.Dir(dst))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range parent {
		n := de.Name()
		if n != filepath.Base(dst) && !slices.Contains(keep, n) && !strings.HasPrefix(n, ".usync-") {
			t.Errorf("%q appeared beside the destination", n)
		}
	}
}

// requireNoWorkLeft checks that a copy that ended (not killed) left no .usync-* work name in dst
// or beside it.
func requireNoWorkLeft(t *testing.T, dst string) {
	t.Helper()
	var left []string
	if d := (&Tree{t: t, Root: dst}); d.Exists("") {
		for _, rel := range d.Paths() {
			if strings.Contains(rel, ".usync-") {
				left = append(left, rel)
			}
		}
	}
	parent, _ := os.ReadDir(filepath.Dir(dst))
	for _, de := range parent {
		if strings.HasPrefix(de.Name(), ".usync-") {
			left = append(left, "../"+de.Name())
		}
	}
	if len(left) > 0 {
		t.Errorf("the copy ended but left %d work entries behind, e.g. %q", len(left), left[0])
	}
}

// busySource writes n files into dirs directories: most small, every 40th one large enough to
// take several chunks (and the bulk path). It returns the tree and each file's bytes.
func busySource(t *testing.T, root string, n, dirs int) (*Tree, map[string][]byte) {
	t.Helper()
	src := NewTree(t, root)
	files := make(map[string][]byte, n)
	for i := 0; i < n; i++ {
		rel := fmt.Sprintf("d%02d/f%04d", i%dirs, i)
		size := (i * 131) % (8 * kib)
		if i%40 == 0 {
			size = 192*kib + (i*7919)%(1100*kib)
		}
		data := Data(rel, size)
		src.File(rel, data, 0o644)
		files[rel] = data
	}
	return src, files
}

// restore puts back the original regular files at rels, whatever replaced them.
func restore(t *testing.T, src *Tree, files map[string][]byte, rels map[string]bool) {
	t.Helper()
	for rel := range rels {
		if err := os.Remove(filepath.Join(src.Root, rel)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		src.File(rel, files[rel], 0o644)
	}
}

// racer runs fn repeatedly, paced, from a short random delay until stop is closed or it has run
// limit times; wait returns how many times it ran and the first error.
type racer struct {
	stop chan struct{}
	done chan struct{}
	runs int
	err  error
}

func race(rng *rand.Rand, limit int, pace time.Duration, fn func(i int) error) *racer {
	r := &racer{stop: make(chan struct{}), done: make(chan struct{})}
	initial := time.Duration(rng.Int64N(int64(20 * time.Millisecond)))
	go func() {
		defer close(r.done)
		select {
		case <-time.After(initial):
		case <-r.stop:
			return
		}
		for i := 0; i < limit; i++ {
			select {
			case <-r.stop:
				return
			default:
			}
			if err := fn(i); err != nil {
				r.err = err
				return
			}
			r.runs++
			time.Sleep(pace)
		}
	}()
	return r
}

// halt stops the racer and waits for it.
func (r *racer) halt() (int, error) {
	close(r.stop)
	<-r.done
	return r.runs, r.err
}

// raceCopy runs a copy while fn races it, and returns the copy's result once both stopped.
func raceCopy(t *testing.T, e engine, o runOpts, rng *rand.Rand, limit int, pace time.Duration, fn func(i int) error, args ...string) (result, int) {
	t.Helper()
	p := startCopy(t, e, o, args...)
	rc := race(rng, limit, pace, fn)
	<-p.done
	runs, err := rc.halt()
	r := p.wait()
	if err != nil {
		t.Fatalf("the racing goroutine failed: %v", err)
	}
	return r, runs
}

// racedRuns calls run(rep) for rep 0, 1, … until three runs raced the copy (run returns true),
// at most 12 times. A copy can end before the racing goroutine first runs (a fast copy, a loaded
// machine): that run tested nothing and is made again; fewer than three that raced fail the test.
func racedRuns(t *testing.T, what string, run func(rep int) bool) {
	t.Helper()
	const want, most = 3, 12
	tested, rep := 0, 0
	for ; tested < want && rep < most && !t.Failed(); rep++ {
		if run(rep) {
			tested++
		}
	}
	if !t.Failed() && tested < want {
		t.Fatalf("only %d of %d copies ran while %s: nothing was tested", tested, rep, what)
	}
}

// isPrefixOfOne reports whether data is a prefix of one of versions.
func isPrefixOfOne(data []byte, versions [][]byte) bool {
	for _, v := range versions {
		if bytes.HasPrefix(v, data) {
			return true
		}
	}
	return false
}
