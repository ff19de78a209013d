package e2e

// Repeated and concurrent runs into one destination, and destinations whose filesystem lacks
// RENAME_NOREPLACE (NFS, CephFS, FUSE: bindfs stands in for them here).

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inodeAndCtime of every entry below root (the root itself included).
func inodesAndCtimes(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		out[p] = fmt.Sprintf("ino %d ctime %d.%09d mtime %d.%09d", st.Ino, st.Ctim.Sec, st.Ctim.Nsec, st.Mtim.Sec, st.Mtim.Nsec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRerunWritesNothing: the same command again on a complete copy changes nothing in the
// destination (no inode, ctime or mtime moves) and reports every file as up to date; a source
// file changed since is copied again; --ignore-times copies everything.
func TestRerunWritesNothing(t *testing.T) {
	for _, e := range allEngines {
		for _, mode := range [][]string{nil, {"-p"}} {
			t.Run(e.name+strings.Join(mode, ""), func(t *testing.T) {
				t.Parallel()
				dir := tempDir(t)
				src := NewTree(t, filepath.Join(dir, "src"))
				buildMany(300, 5)(t, src)
				src.File("big", Data("big", 3*mib), 0o644)
				src.Symlink("link", "big")
				dst := filepath.Join(dir, "dst")
				args := append(append([]string{}, mode...), src.Root, dst)
				copyTree(t, e, runOpts{}, 0, args...)
				before := inodesAndCtimes(t, dst)
				time.Sleep(20 * time.Millisecond) // a write now would show in ctime
				r := copyTree(t, e, runOpts{}, 0, args...)
				if n := countUpToDate(r.stderr); n != 301 {
					t.Errorf("re-run found %d files up to date, want 301\n%s", n, r)
				}
				if r.stdout != "" {
					t.Errorf("re-run -v listed entries, want none\n%s", r)
				}
				after := inodesAndCtimes(t, dst)
				for p, b := range before {
					if after[p] != b {
						t.Errorf("re-run touched %s: %s -> %s", p, b, after[p])
					}
				}
				if len(after) != len(before) {
					t.Errorf("re-run changed the number of entries: %d -> %d", len(before), len(after))
				}
				// A changed source file is copied again, and only it.
				src.File("d000/f00000", []byte("changed"), 0o644)
				r = copyTree(t, e, runOpts{}, 0, args...)
				if n := countUpToDate(r.stderr); n != 300 {
					t.Errorf("after one change, %d files up to date, want 300\n%s", n, r)
				}
				requireSameTree(t, src.Root, dst, CompareOpts{Umask: testUmask, Preserve: len(mode) > 0})
				r = copyTree(t, e, runOpts{}, 0, append([]string{"--ignore-times"}, args...)...)
				if n := countUpToDate(r.stderr); n != 0 {
					t.Errorf("--ignore-times skipped %d files\n%s", n, r)
				}
			})
		}
	}
}

// TestUpdateAndChecksum: --update keeps files that are newer in DST; --checksum copies a file
// whose bytes differ though its size and mtime match, and skips one whose bytes match.
func TestUpdateAndChecksum(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("a", []byte("source a"), 0o644)
			src.File("b", []byte("source b"), 0o644)
			dst := filepath.Join(dir, "dst")
			copyTree(t, e, runOpts{}, 0, src.Root, dst)
			// DST's a is newer; DST's b has other bytes but the same size and mtime.
			future := time.Now().Add(time.Hour)
			if err := os.WriteFile(filepath.Join(dst, "a"), []byte("newer a in dst"), 0o644); err != nil {
				t.Fatal(err)
			}
			_ = os.Chtimes(filepath.Join(dst, "a"), future, future)
			st, _ := os.Stat(filepath.Join(src.Root, "b"))
			if err := os.WriteFile(filepath.Join(dst, "b"), []byte("SOURCE B"), 0o644); err != nil {
				t.Fatal(err)
			}
			_ = os.Chtimes(filepath.Join(dst, "b"), st.ModTime(), st.ModTime())
			copyTree(t, e, runOpts{}, 0, "--update", src.Root, dst)
			if got, _ := os.ReadFile(filepath.Join(dst, "a")); string(got) != "newer a in dst" {
				t.Errorf("--update replaced a newer destination file: %q", got)
			}
			if got, _ := os.ReadFile(filepath.Join(dst, "b")); string(got) != "SOURCE B" {
				t.Errorf("the quick check should have kept b (same size and mtime): %q", got)
			}
			r := copyTree(t, e, runOpts{}, 0, "--checksum", src.Root, dst)
			if got, _ := os.ReadFile(filepath.Join(dst, "b")); string(got) != "source b" {
				t.Errorf("--checksum did not copy b whose bytes differ: %q", got)
			}
			if got, _ := os.ReadFile(filepath.Join(dst, "a")); string(got) != "source a" {
				t.Errorf("--checksum did not copy a: %q", got)
			}
			r = copyTree(t, e, runOpts{}, 0, "--checksum", src.Root, dst)
			if n := countUpToDate(r.stderr); n != 2 {
				t.Errorf("--checksum re-run: %d up to date, want 2\n%s", n, r)
			}
		})
	}
}

// TestBindfsDestination: a FUSE destination that refuses RENAME_NOREPLACE (as NFS and CephFS
// do) gets a complete copy; a re-run there is a no-op.
func TestBindfsDestination(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildMany(200, 4)(t, src)
			src.File("big", Data("bindfs-big", 2*mib+1), 0o644)
			mnt := mountBindfs(t, dir)
			// The premise: this mount refuses RENAME_NOREPLACE.
			_ = os.WriteFile(filepath.Join(mnt, "x"), nil, 0o644)
			if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(mnt, "x"), unix.AT_FDCWD, filepath.Join(mnt, "y"), unix.RENAME_NOREPLACE); err == nil {
				t.Log("note: this bindfs accepts RENAME_NOREPLACE")
			}
			_ = os.Remove(filepath.Join(mnt, "x"))
			_ = os.Remove(filepath.Join(mnt, "y"))
			dst := filepath.Join(mnt, "d")
			copyTree(t, e, runOpts{}, 0, "-p", src.Root, dst)
			requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true})
			r := copyTree(t, e, runOpts{}, 0, "-p", src.Root, dst)
			if n := countUpToDate(r.stderr); n != 201 {
				t.Errorf("re-run on bindfs: %d up to date, want 201\n%s", n, r)
			}
		})
	}
}

// runAtOnce starts the binary once per argument list, all at the same time (each with -v and e's
// flags), and returns their results in the same order.
func runAtOnce(t *testing.T, e engine, argLists ...[]string) []result {
	t.Helper()
	var wg sync.WaitGroup
	results := make([]result, len(argLists))
	for i, args := range argLists {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = run(t, runOpts{env: e.env}, append(append([]string{"-v"}, e.args...), args...)...)
		}()
	}
	wg.Wait()
	return results
}

// TestConcurrentRuns: two runs into the same destination at once both succeed, also where both
// make the same symlinks and FIFOs (a name the other run made first is up to date, not a
// failure); the result is the source, with no temporaries left.
func TestConcurrentRuns(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := scratchDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildMany(800, 10)(t, src)
			for d := range 10 {
				for i := range 30 {
					src.Symlink(fmt.Sprintf("s%d/l%d", d, i), fmt.Sprint("t", i))
					if err := src.Mknod(fmt.Sprintf("s%d/p%d", d, i), unix.S_IFIFO|0o644, 0); err != nil {
						t.Fatal(err)
					}
				}
			}
			dst := filepath.Join(dir, "dst")
			args := []string{"-p", src.Root, dst}
			results := runAtOnce(t, e, args, args)
			for _, r := range results {
				if r.code != 0 {
					t.Errorf("a concurrent run failed\n%s", r)
				}
			}
			requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true})
		})
	}
}

// TestConcurrentRunsOfTwoSources: two runs of different sources into one destination at once, both
// making the same new directories, give the union of both (as two cp -r or rsync -a runs do): a run
// that takes over the other's directory under its temporary name, while the other still builds
// it, must not take it for a killed run's leftover and remove what its source lacks, nor fail when
// the other names it first. The destination's existing directories make each run check, again
// and again, whether it is alone (Walker::begin_alone).
func TestConcurrentRunsOfTwoSources(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := scratchDir(t)
			var srcs [2]*Tree
			for k, tag := range []string{"a", "b"} {
				srcs[k] = NewTree(t, filepath.Join(dir, "src"+tag))
				for d := range 150 {
					srcs[k].Dir(fmt.Sprintf("e%d", d), 0o755)
					for i := range 5 {
						srcs[k].File(fmt.Sprintf("s%d/%s%d", d, tag, i), []byte(tag), 0o644)
					}
				}
			}
			for round := range 16 {
				dst := filepath.Join(dir, fmt.Sprint("dst", round))
				for d := range 150 {
					if err := os.MkdirAll(filepath.Join(dst, fmt.Sprintf("e%d", d)), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				results := runAtOnce(t, e, []string{srcs[0].Root, dst}, []string{srcs[1].Root, dst})
				for _, r := range results {
					if r.code != 0 || strings.Contains(r.stdout, "deleting ") {
						t.Fatalf("round %d: a run failed or deleted something\n%s", round, r)
					}
				}
				for d := range 150 {
					names, err := os.ReadDir(filepath.Join(dst, fmt.Sprintf("s%d", d)))
					if err != nil || len(names) != 10 {
						t.Fatalf("round %d: s%d has %d entries (%v), want both sources' 10", round, d, len(names), err)
					}
				}
			}
		})
	}
}

// TestDryRunListsOnlyWhatWouldChange: -n into a complete copy lists nothing (symlinks and FIFOs
// included) and counts every file as up to date; after one source file changes, one is added and a
// symlink is pointed elsewhere, it lists exactly those (and the new directory under -v), and still
// writes nothing.
func TestDryRunListsOnlyWhatWouldChange(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildMany(50, 3)(t, src)
			src.Symlink("link", "d001/f00001")
			if err := src.Mknod("fifo", unix.S_IFIFO|0o644, 0); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, "dst")
			copyTree(t, e, runOpts{}, 0, src.Root, dst)
			r := copyTree(t, e, runOpts{}, 0, "-n", src.Root, dst)
			if r.stdout != "" || countUpToDate(r.stderr) != 50 {
				t.Errorf("-n on a complete copy lists %q, %d up to date; want nothing, 50\n%s", r.stdout, countUpToDate(r.stderr), r)
			}
			src.File("d001/f00001", []byte("changed"), 0o644)
			src.File("new/file", []byte("new"), 0o644)
			if err := os.Remove(src.Root + "/link"); err != nil {
				t.Fatal(err)
			}
			src.Symlink("link", "new/file")
			before := inodesAndCtimes(t, dst)
			r = copyTree(t, e, runOpts{}, 0, "-n", src.Root, dst)
			got := strings.Fields(r.stdout)
			sort.Strings(got)
			if strings.Join(got, " ") != "d001/f00001 link new/ new/file" {
				t.Errorf("-n -v lists %q, want d001/f00001, link, new/, new/file\n%s", got, r)
			}
			if !strings.Contains(r.stderr, " 1 symlinks, 0 special;") {
				t.Errorf("want 1 symlink (and no FIFO) counted as to be made\n%s", r)
			}
			after := inodesAndCtimes(t, dst)
			if len(after) != len(before) {
				t.Errorf("-n changed the destination")
			}
			for p, b := range before {
				if after[p] != b {
					t.Errorf("-n touched %s", p)
				}
			}
		})
	}
}
