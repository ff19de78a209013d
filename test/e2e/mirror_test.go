package e2e

// --delete (mirror mode) through the CLI, on both engines and on a FUSE destination.

import (
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// extras adds to the complete copy dst what the source lacks: files, a tree, a symlink to a
// directory outside dst (never followed), entries of the wrong kind, and one excluded file.
func extras(t *testing.T, dir, dst string) []string {
	d := NewTree(t, dst)
	d.File("extra/deep/er/z", []byte("z"), 0o644)
	d.File("d000/old", []byte("old"), 0o644)
	d.File("d001/notes.log", []byte("excluded: kept"), 0o644)
	outside := NewTree(t, filepath.Join(dir, "outside"))
	outside.File("precious", []byte("p"), 0o644)
	d.Symlink("d002/link", outside.Root)
	d.Remove("big")
	d.File("big/in-the-way", []byte("a directory where the source has a file"), 0o644)
	return []string{"big/", "big/in-the-way", "d000/old", "d002/link", "extra/", "extra/deep/", "extra/deep/er/",
		"extra/deep/er/z"}
}

// deletedLines are the "deleting NAME" lines of -v/-n, sorted.
func deletedLines(stdout string) []string {
	var out []string
	for _, l := range strings.Split(stdout, "\n") {
		if name, ok := strings.CutPrefix(l, "deleting "); ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// TestDeleteMirrors: -n --delete lists what would go and changes nothing; --delete then makes
// DST an exact copy, keeps excluded entries, follows no symlink; --delete-excluded removes
// those too.
func TestDeleteMirrors(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildMany(60, 3)(t, src)
			src.File("big", Data("mirror-big", 2*mib+1), 0o644)
			dst := filepath.Join(dir, "dst")
			copyTree(t, e, runOpts{}, 0, "-p", src.Root, dst)
			want := extras(t, dir, dst)

			before := inodesAndCtimes(t, dst)
			r := copyTree(t, e, runOpts{}, 0, "-n", "--delete", "--exclude", "*.log", src.Root, dst)
			if got := deletedLines(r.stdout); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("-n --delete lists %q, want %q\n%s", got, want, r)
			}
			if !strings.Contains(r.stderr, "would delete 8 entries") {
				t.Errorf("no dry-run deletion count\n%s", r)
			}
			after := inodesAndCtimes(t, dst)
			if len(after) != len(before) {
				t.Errorf("a dry run changed the destination: %d -> %d entries", len(before), len(after))
			}

			r = copyTree(t, e, runOpts{}, 0, "-p", "--delete", "--exclude", "*.log", src.Root, dst)
			if got := deletedLines(r.stdout); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("--delete -v lists %q, want %q\n%s", got, want, r)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "outside", "precious")); err != nil || string(b) != "p" {
				t.Errorf("a file outside DST was touched through a symlink: %q %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(dst, "d001", "notes.log")); err != nil {
				t.Fatalf("the excluded file was deleted: %v", err)
			}
			for _, p := range want {
				if _, err := os.Lstat(filepath.Join(dst, p)); err == nil && p != "big/" {
					t.Errorf("%s is still there", p)
				}
			}
			if b, err := os.ReadFile(filepath.Join(dst, "big")); err != nil || len(b) != 2*mib+1 {
				t.Errorf("big was not copied over the directory in its way: %d bytes, %v", len(b), err)
			}

			r = copyTree(t, e, runOpts{}, 0, "-p", "--delete-excluded", "--exclude", "*.log", src.Root, dst)
			if got := deletedLines(r.stdout); strings.Join(got, " ") != "d001/notes.log" {
				t.Errorf("--delete-excluded lists %q, want d001/notes.log\n%s", got, r)
			}
			requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true})
		})
	}
}

// TestDeleteOnFuseDestination: mirroring into bindfs (no RENAME_NOREPLACE, like NFS).
func TestDeleteOnFuseDestination(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildMany(60, 3)(t, src)
			src.File("big", Data("mirror-fuse-big", 2*mib+1), 0o644)
			mnt := mountBindfs(t, dir)
			dst := filepath.Join(mnt, "d")
			copyTree(t, e, runOpts{}, 0, "-p", src.Root, dst)
			extras(t, dir, dst)
			copyTree(t, e, runOpts{}, 0, "-p", "--delete", "--delete-excluded", "--exclude", "*.log", src.Root, dst)
			requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true})
		})
	}
}

// TestDeleteKeepsWhatItCannotCheck: with -L, a source symlink whose target went away (an
// unmounted share) is reported, and its copy in DST is kept, not deleted as "not in the source".
func TestDeleteKeepsWhatItCannotCheck(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			target := NewTree(t, filepath.Join(dir, "share"))
			target.File("f1", []byte("1"), 0o644).File("sub/f2", []byte("2"), 0o644)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("own", []byte("o"), 0o644)
			src.Symlink("data", target.Root)
			dst := filepath.Join(dir, "dst")
			copyTree(t, e, runOpts{}, 0, "-L", src.Root, dst)
			if err := os.Rename(target.Root, target.Root+".offline"); err != nil {
				t.Fatal(err)
			}
			r := copyTree(t, e, runOpts{}, 1, "-L", "--delete", src.Root, dst)
			requireErrorsReported(t, r, "data")
			if got := deletedLines(r.stdout); len(got) != 0 {
				t.Errorf("deleted %q although the source entry could not be checked", got)
			}
			for _, p := range []string{"data/f1", "data/sub/f2"} {
				if _, err := os.Stat(filepath.Join(dst, p)); err != nil {
					t.Errorf("%s: %v", p, err)
				}
			}
		})
	}
}

// TestDeleteMatchesRsync: --delete with excludes leaves the destination rsync -r --delete leaves,
// on small random trees whose destination has extra entries at every depth, excluded ones among
// them (inside directories the source lacks too), on both engines. Directory-only patterns are
// left out: where an excluded directory is in the way of a source file, the two differ on purpose
// (README, Known limits).
func TestDeleteMatchesRsync(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync is not installed (make deps installs it)")
	}
	names := []string{"a", "b", "c.keep", "d.log", "cache", "x.tmp", "e", "keep"}
	patterns := [][]string{{"*.keep"}, {"*.log", "keep"}, {"/e"}, {"e/*.keep"}, {"**/c.keep"}, {"keep"}, {"*.tmp", "d.log"}}
	var build func(rnd *rand.Rand, dir string, depth int)
	build = func(rnd *rand.Rand, dir string, depth int) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, i := range rnd.Perm(len(names))[:1+rnd.Intn(5)] {
			p := filepath.Join(dir, names[i])
			if depth > 0 && rnd.Intn(10) < 4 {
				build(rnd, p, depth-1)
			} else if _, err := os.Lstat(p); err != nil {
				if err := os.WriteFile(p, []byte(names[i]), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			for seed := int64(0); seed < 60; seed++ {
				rnd := rand.New(rand.NewSource(seed))
				dir := tempDir(t)
				src, dst, ref := filepath.Join(dir, "s"), filepath.Join(dir, "d"), filepath.Join(dir, "r")
				build(rnd, src, 2)
				build(rnd, dst, 3)
				if out, err := exec.Command("cp", "-a", dst, ref).CombinedOutput(); err != nil {
					t.Fatalf("cp -a: %v\n%s", err, out)
				}
				var ex []string
				for _, p := range patterns[rnd.Intn(len(patterns))] {
					ex = append(ex, "--exclude", p)
				}
				r := run(t, runOpts{env: e.env}, append(append(append(append([]string{}, e.args...), "--delete"), ex...), src, dst)...)
				out, rerr := exec.Command("rsync", append(append([]string{"-r", "--delete"}, ex...), src+"/", ref+"/")...).CombinedOutput()
				got, want := NewTree(t, dst).Paths(), NewTree(t, ref).Paths()
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("seed %d, excludes %q: uring-sync (exit %d) left\n  %q\nrsync (%v) left\n  %q\n%s\n%s",
						seed, ex, r.code, got, rerr, want, r, out)
				}
			}
		})
	}
}
