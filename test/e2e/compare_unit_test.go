package e2e

// Tests of the tree comparer itself: it must call faithful copies equal and catch every kind of
// difference. These do not need the uring-sync binary.

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCompareIdenticalTrees: two builds of the same fixture (deep paths and odd names included)
// compare equal, with and without Preserve.
func TestCompareIdenticalTrees(t *testing.T) {
	dir := tempDir(t)
	buildRich(NewTree(t, filepath.Join(dir, "a")))
	buildRich(NewTree(t, filepath.Join(dir, "b")))
	requireSameTree(t, filepath.Join(dir, "a"), filepath.Join(dir, "b"), CompareOpts{Preserve: true})
	requireSameTree(t, filepath.Join(dir, "a"), filepath.Join(dir, "b"), CompareOpts{})
}

// TestCompareCpA: a `cp -a` copy of a tree (no deep paths: GNU cp fails past PATH_MAX) is equal.
func TestCompareCpA(t *testing.T) {
	dir := tempDir(t)
	src := NewTree(t, filepath.Join(dir, "src"))
	buildRich(src)
	// cp cannot handle the PATH_MAX chain; drop it from this source.
	if out, err := exec.Command("rm", "-rf", filepath.Join(src.Root, strings.SplitN(deepDir("deep"), "/", 2)[0])).CombinedOutput(); err != nil {
		t.Fatalf("rm: %v: %s", err, out)
	}
	src.Times("emptydir", ts(1_000_000_000, 0), ts(1_000_000_001, 42))
	dst := filepath.Join(dir, "dst")
	if out, err := exec.Command("cp", "-a", "-T", src.Root, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true})
}

// TestCompareDetectsDifferences: each mutation of an identical copy yields a difference naming it.
func TestCompareDetectsDifferences(t *testing.T) {
	deep := deepDir("deep")
	cases := []struct {
		name   string
		opts   CompareOpts
		mutate func(tr *Tree)
		want   string // substring of the reported difference
	}{
		{"changed byte", CompareOpts{}, func(tr *Tree) {
			b := Data("data.bin", 300*kib+7)
			b[200*kib] ^= 1
			tr.File("data.bin", b, 0o640)
		}, "content differs at byte 204800"},
		{"changed byte deep", CompareOpts{}, func(tr *Tree) { tr.File(deep+"/bottom.txt", []byte("at the bottoM"), 0o644) }, "content differs at byte 12"},
		{"truncated file", CompareOpts{}, func(tr *Tree) { tr.File("small.txt", []byte("hell"), 0o644) }, "size 4 in copy, 6 in source"},
		{"mode", CompareOpts{}, func(tr *Tree) { tr.Chmod("exec.sh", 0o644) }, "permissions 0644 in copy, want 0755"},
		{"setuid bit with -p", CompareOpts{Preserve: true}, func(tr *Tree) { tr.Chmod("setuid", 0o755) }, "mode 0755 in copy, 4755 in source"},
		{"sticky dir with -p", CompareOpts{Preserve: true}, func(tr *Tree) { tr.Chmod("sticky", 0o777) }, "mode 0777 in copy, 1777 in source"},
		{"symlink target", CompareOpts{}, func(tr *Tree) {
			tr.Remove("links/rel")
			tr.Symlink("links/rel", "../small.txT")
		}, `symlink target "../small.txT" in copy`},
		{"missing file", CompareOpts{}, func(tr *Tree) { tr.Remove("weird/" + weirdNames[3]) }, "missing in copy"},
		{"missing deep file", CompareOpts{}, func(tr *Tree) { tr.Remove(deep + "/bottom.txt") }, "missing in copy"},
		{"missing empty dir", CompareOpts{}, func(tr *Tree) { tr.Remove("emptydir") }, "missing in copy (source is a dir)"},
		{"extra file", CompareOpts{}, func(tr *Tree) { tr.File("emptydir/stray", nil, 0o644) }, "extra file in copy"},
		{"type change", CompareOpts{}, func(tr *Tree) {
			tr.Remove("special/fifo")
			tr.File("special/fifo", nil, 0o640)
		}, "type file in copy, fifo in source"},
		{"file mtime ns", CompareOpts{Preserve: true}, func(tr *Tree) {
			tr.Times("data.bin", ts(1_000_000_000, 111_111_111), ts(1_100_000_000, 123_456_788))
		}, "mtime 1100000000.123456788 in copy"},
		{"dir mtime", CompareOpts{Preserve: true}, func(tr *Tree) {
			tr.Times("emptydir", ts(1_000_000_000, 0), ts(1_000_000_002, 42))
		}, "mtime 1000000002.000000042 in copy"},
		{"excluded present", CompareOpts{Excluded: setOf("small.txt")}, func(*Tree) {}, "excluded file is present"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			a, b := NewTree(t, filepath.Join(dir, "a")), NewTree(t, filepath.Join(dir, "b"))
			buildRich(a)
			buildRich(b)
			// Writing inside "ro" or changing entries changes directory mtimes; the mutations
			// above only touch files whose parents' mtimes are not compared, or set times last.
			tc.mutate(b)
			diffs, err := CompareTrees(a.Root, b.Root, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) == 0 {
				t.Fatalf("comparer found no difference after %q", tc.name)
			}
			joined := strings.Join(diffs, "\n")
			if len(diffs) != 1 || !strings.Contains(joined, tc.want) {
				t.Fatalf("want exactly one difference mentioning %q, got:\n%s", tc.want, joined)
			}
		})
	}
}

// TestComparePathMaxIsReal: the deep fixture really exceeds PATH_MAX, so the path-string
// syscalls would fail on it (ENAMETOOLONG) and only the fd walk reaches it.
func TestComparePathMaxIsReal(t *testing.T) {
	dir := tempDir(t)
	tr := NewTree(t, dir)
	deep := deepDir("deep")
	tr.File(deep+"/f", []byte("x"), 0o644)
	full := filepath.Join(dir, deep, "f")
	if len(full) <= unix.PathMax {
		t.Fatalf("deep path is only %d bytes", len(full))
	}
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != unix.ENAMETOOLONG {
		t.Fatalf("lstat of a %d-byte path: got %v, want ENAMETOOLONG", len(full), err)
	}
	if !tr.Exists(deep + "/f") {
		t.Fatal("fd walk does not find the deep file")
	}
}
