package e2e

// Table-driven end-to-end copies: each case builds a source tree, copies it with uring-sync under
// every engine, and compares source and copy as whole trees.

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type copyCase struct {
	name string
	// build populates the source tree.
	build func(t *testing.T, src *Tree)
	// prepDst, when set, pre-populates the destination (merge into an existing DST).
	prepDst func(t *testing.T, dst *Tree)
	// args are the options given before SRC DST.
	args []string
	// prefix wraps the command (e.g. a different umask).
	prefix []string
	// opts says what the comparison checks; Umask defaults to the test umask unless Preserve.
	opts CompareOpts
	// checkFirst runs after the copy and before the comparison (which reads, and so changes atimes).
	checkFirst func(t *testing.T, src, dst *Tree, r result)
}

// sizesAround returns boundary sizes around each chunk size.
func sizesAround(chunks ...int) []int {
	out := []int{0, 1}
	for _, c := range chunks {
		out = append(out, c-1, c, c+1, 2*c-1, 2*c, 2*c+1)
	}
	return out
}

func buildSizes(sizes []int) func(*testing.T, *Tree) {
	return func(t *testing.T, src *Tree) {
		for _, n := range sizes {
			name := fmt.Sprintf("size-%d", n)
			src.File(name, Data(name, n), 0o644)
			src.File("sub/"+name, Data("sub"+name, n), 0o600)
		}
	}
}

func buildMany(files, dirs int) func(*testing.T, *Tree) {
	return func(t *testing.T, src *Tree) {
		for i := 0; i < files; i++ {
			name := fmt.Sprintf("d%03d/f%05d", i%dirs, i)
			src.File(name, Data(name, (i*37)%(8*kib+1)), 0o644)
		}
	}
}

// buildModes makes every permission combination -p must keep, with stamped times.
func buildModes(t *testing.T, src *Tree) {
	modes := []uint32{0o600, 0o644, 0o755, 0o444, 0o4755, 0o2755, 0o6711, 0o1755, 0o777}
	if os.Geteuid() == 0 {
		modes = append(modes, 0o000) // only root can read it back
	}
	for _, m := range modes {
		src.File(fmt.Sprintf("file-%04o", m), Data(fmt.Sprint(m), int(m)), m)
	}
	src.Dir("dir-1777", 0o1777)
	src.File("dir-1777/f", []byte("in sticky dir"), 0o666)
	src.Dir("dir-2775", 0o2775)
	src.File("dir-2775/f", []byte("in setgid dir"), 0o664)
	src.Dir("dir-0700", 0o700)
	src.Dir("dir-0711/inner", 0o755)
	src.Chmod("dir-0711", 0o711)
	src.Dir("dir-0555", 0o755)
	src.File("dir-0555/a", []byte("a"), 0o644)
	src.File("dir-0555/sub/b", []byte("b"), 0o640)
	src.Chmod("dir-0555/sub", 0o555)
	src.Chmod("dir-0555", 0o555)
	src.Symlink("link", "file-0644")
	src.File("big", Data("big", 3*mib+5), 0o640)
	src.StampAll()
}

// requireStampedAtimes checks that every regular file and directory of dst kept the atime
// StampAll gave its source: must run before anything reads dst.
func requireStampedAtimes(t *testing.T, src, dst *Tree, _ result) {
	for _, rel := range src.Paths() {
		sst, _ := src.Lstat(rel)
		typ := sst.Mode & unix.S_IFMT
		if typ != unix.S_IFREG && typ != unix.S_IFDIR {
			continue
		}
		want := stampFor(rel)
		dst, ok := dst.Lstat(rel)
		if !ok {
			continue // the comparison reports it
		}
		if dst.Atim != want.atime {
			t.Errorf("%q: atime %d.%09d in copy, want the source's %d.%09d", rel, dst.Atim.Sec, dst.Atim.Nsec, want.atime.Sec, want.atime.Nsec)
		}
	}
}

func copyCases() []copyCase {
	return []copyCase{
		{name: "empty files", build: func(t *testing.T, src *Tree) {
			for i := 0; i < 20; i++ {
				src.File(fmt.Sprintf("e%02d", i), nil, 0o644)
				src.File(fmt.Sprintf("sub/e%02d", i), nil, 0o600)
			}
		}},
		{name: "chunk boundaries 64K", args: []string{"-c", "64K"}, build: buildSizes(sizesAround(64 * kib))},
		{name: "chunk boundaries default 128K", build: buildSizes(sizesAround(128 * kib))},
		{name: "chunk boundaries 1M", args: []string{"--chunk-size", "1M"}, build: buildSizes(sizesAround(mib))},
		{name: "chunk size in plain bytes", args: []string{"-c", "65536"}, build: buildSizes(sizesAround(64 * kib))},
		{name: "large files", build: func(t *testing.T, src *Tree) {
			src.File("big-3M", Data("big-3M", 3*mib+13), 0o644)
			src.File("sub/big-8M", Data("big-8M", 8*mib), 0o644)
			src.File("sub/big-17M", Data("big-17M", 17*mib-1), 0o600)
			src.File("small", []byte("small beside big"), 0o644)
		}},
		{name: "large files -j1 -q1 -c 64K", args: []string{"-j1", "-q1", "-c", "64K"}, build: func(t *testing.T, src *Tree) {
			src.File("big-5M", Data("big-5M", 5*mib+3), 0o644)
			src.File("big-2M", Data("big-2M", 2*mib), 0o644)
			src.File("small", []byte("small"), 0o644)
		}},
		{name: "progress output", args: []string{"--progress"}, build: buildMany(1000, 10)},
		{name: "empty directories", build: func(t *testing.T, src *Tree) {
			src.Dir("a", 0o755)
			src.Dir("b/c/d/e", 0o755)
			src.Dir("b/c/empty2", 0o700)
			src.File("b/file", []byte("x"), 0o644)
			for i := 0; i < 30; i++ {
				src.Dir(fmt.Sprintf("many/%02d", i), 0o755)
			}
		}},
		{name: "odd names", build: func(t *testing.T, src *Tree) {
			for i, n := range weirdNames {
				src.File(n, Data(n, i*1000), 0o644)
				src.Dir("dirs/"+n, 0o755)
				src.File("dirs/"+n+"/"+n, []byte(n), 0o644)
				src.Symlink("links/"+n, n)
			}
		}},
		{name: "paths beyond PATH_MAX", build: func(t *testing.T, src *Tree) {
			deep := deepDir("deep")
			src.File(deep+"/bottom.txt", []byte("at the bottom"), 0o644)
			src.File(deep+"/bottom.bin", Data("bottom", 200*kib+3), 0o644)
			src.Dir(deep+"/empty", 0o755)
			src.Symlink(deep+"/link", "bottom.txt")
			src.File(deep+"/"+nameOf("long-", 255), []byte("long name at the bottom"), 0o644)
			src.File(deepDir("other")+"/"+deepDir("more")+"/f", []byte("twice past PATH_MAX"), 0o644)
		}},
		{name: "symlinks", build: func(t *testing.T, src *Tree) {
			src.File("target.txt", []byte("target"), 0o644)
			src.Dir("dir", 0o755)
			src.File("dir/in", []byte("in"), 0o644)
			src.Symlink("rel", "target.txt")
			src.Symlink("rel-up", "../src/target.txt")
			src.Symlink("sub/rel-parent", "../target.txt")
			src.Symlink("abs", "/etc/hostname")
			src.Symlink("abs-dir", "/usr")
			src.Symlink("dangling", "does/not/exist")
			src.Symlink("to-dir", "dir")
			src.Symlink("loop-a", "loop-b")
			src.Symlink("loop-b", "loop-a")
			src.Symlink("self", "self")
			src.Symlink("odd-target", "\xff\n target with spaces/..//")
			src.Symlink("long-target", nameOf("t/", 4000))
		}},
		{name: "special files", build: func(t *testing.T, src *Tree) {
			if err := src.Mknod("fifo", unix.S_IFIFO|0o644, 0); err != nil {
				t.Fatalf("mkfifo: %v", err)
			}
			if err := src.Mknod("sub/fifo-0600", unix.S_IFIFO|0o600, 0); err != nil {
				t.Fatalf("mkfifo: %v", err)
			}
			if err := src.Mknod("socket", unix.S_IFSOCK|0o755, 0); err != nil {
				t.Fatalf("mknod socket: %v", err)
			}
			if err := src.Mknod("null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
				t.Logf("no device node in this case (mknod: %v)", err)
			}
			src.File("regular", []byte("beside specials"), 0o644)
		}},
		{name: "many files", build: buildMany(5000, 50)},
		{name: "many files -j1 -q1", args: []string{"-j", "1", "-q", "1"}, build: buildMany(600, 6)},
		{name: "many files -j8 -q512", args: []string{"--jobs", "8", "--queue-depth", "512"}, build: buildMany(2000, 20)},
		{name: "ulimit -n 64", prefix: []string{"sh", "-c", `ulimit -n 64 && exec "$0" "$@"`}, build: func(t *testing.T, src *Tree) {
			for d := 0; d < 40; d++ {
				for i := 0; i < 25; i++ {
					name := fmt.Sprintf("d%02d/e%02d/f%02d", d, d, i)
					src.File(name, Data(name, i*300), 0o644)
				}
			}
		}},
		{name: "rich tree", build: func(t *testing.T, src *Tree) { buildRich(src) }},
		{name: "rich tree -p", args: []string{"-p"}, opts: CompareOpts{Preserve: true}, build: func(t *testing.T, src *Tree) { buildRich(src) }},
		{name: "modes and times -p", args: []string{"--preserve"}, opts: CompareOpts{Preserve: true}, build: buildModes, checkFirst: requireStampedAtimes},
		{name: "modes without -p follow umask 027", prefix: umaskPrefix(0o027), opts: CompareOpts{Umask: 0o027}, build: buildModes},
		{name: "merge into existing DST", build: func(t *testing.T, src *Tree) {
			src.File("same-size.txt", []byte("NEW!"), 0o644)
			src.File("was-longer.txt", []byte("short"), 0o644)
			src.File("was-shorter.txt", Data("grow", 300*kib), 0o644)
			src.File("was-readonly.txt", []byte("replaced"), 0o644)
			src.File("sub/new.txt", []byte("new in existing dir"), 0o644)
			src.File("sub/changed.bin", Data("changed", 130*kib), 0o644)
			src.File("newdir/f", []byte("f"), 0o644)
		}, prepDst: func(t *testing.T, dst *Tree) {
			dst.File("same-size.txt", []byte("OLD!"), 0o644)
			dst.File("was-longer.txt", Data("old-long", 200*kib), 0o644)
			dst.File("was-shorter.txt", []byte("tiny"), 0o644)
			dst.File("was-readonly.txt", []byte("read-only stale content"), 0o444)
			dst.File("sub/changed.bin", Data("stale", 130*kib), 0o644)
			dst.File("sub/stale-extra.txt", []byte("stays"), 0o644)
			dst.File("extra.txt", []byte("stays"), 0o644)
			dst.File("extradir/deeper/f", []byte("stays"), 0o644)
			// Stale files are older than the source: files created within one
			// clock tick share an mtime, and same size plus same mtime is the
			// quick check's "already copied".
			old := time.Date(2000, 1, 2, 3, 4, 5, 0, time.UTC)
			for _, rel := range []string{"same-size.txt", "was-longer.txt", "was-shorter.txt", "was-readonly.txt", "sub/changed.bin"} {
				if err := os.Chtimes(filepath.Join(dst.Root, rel), old, old); err != nil {
					t.Fatal(err)
				}
			}
		}, opts: CompareOpts{SkipRootMeta: true, AllowExtra: setOf("sub/stale-extra.txt", "extra.txt", "extradir")}},
		{name: "excludes with ** and classes", args: []string{
			"--exclude", "**/b.log", "--exclude", "a/**", "--exclude", "x[!a]", "--exclude", "/sub/deep",
		}, build: func(t *testing.T, src *Tree) {
			for _, f := range []string{
				"x.log", "sub/deep/b.log", "sub/deep/keep", "deep/b.log", "deep/c.log", "a/b/c/z.log", "a/keep",
				"sub/keep", "xa", "xb", "other/a/keep",
			} {
				src.File(f, []byte(f), 0o644)
			}
		}, opts: CompareOpts{Excluded: setOf("sub/deep", "deep/b.log", "a/b", "a/keep", "xb", "other/a/keep")}},
		{name: "excludes", args: []string{
			"--exclude", "*.log", "--exclude", "/top.tmp", "--exclude", "build/",
			"--exclude", "/docs/**/*.md", "--exclude", "f?.dat", "--exclude", "img[0-2].png",
		}, build: func(t *testing.T, src *Tree) {
			for _, f := range []string{
				"keep.txt", "a.log", "sub/a.log", "sub/deep/b.log", "sub/keep.c", "top.tmp", "sub/top.tmp",
				"build/out.o", "build/nested/x", "sub/build/y", "x/build",
				"docs/a.md", "docs/x/b.md", "docs/x/y/c.md", "docs/x/keep.txt", "sub/docs/a.md",
				"f1.dat", "fa.dat", "f10.dat", "img0.png", "img2.png", "img3.png",
			} {
				src.File(f, []byte(f), 0o644)
			}
		}, opts: CompareOpts{Excluded: setOf(
			"a.log", "sub/a.log", "sub/deep/b.log", "top.tmp", "build", "sub/build",
			"docs/a.md", "docs/x/b.md", "docs/x/y/c.md", "f1.dat", "fa.dat", "img0.png", "img2.png",
		)}},
	}
}

func TestCopy(t *testing.T) {
	binary(t)
	for _, tc := range copyCases() {
		for _, e := range allEngines {
			t.Run(tc.name+"/"+e.name, func(t *testing.T) {
				t.Parallel()
				dir := tempDir(t)
				src := NewTree(t, filepath.Join(dir, "src"))
				tc.build(t, src)
				dstPath := filepath.Join(dir, "dst")
				if tc.prepDst != nil {
					tc.prepDst(t, NewTree(t, dstPath))
				}
				args := append(append([]string{}, tc.args...), src.Root, dstPath)
				r := copyTree(t, e, runOpts{prefix: tc.prefix}, 0, args...)
				dst := &Tree{t: t, Root: dstPath}
				if tc.checkFirst != nil {
					tc.checkFirst(t, src, dst, r)
				}
				o := tc.opts
				if !o.Preserve && o.Umask == 0 {
					o.Umask = testUmask
				}
				requireSameTree(t, src.Root, dstPath, o)
			})
		}
	}
}
