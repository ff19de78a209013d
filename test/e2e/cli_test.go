package e2e

// End-to-end cases that are not a plain tree copy: the command line, refusals, dry runs,
// single files, re-runs, permission failures, tmpfs, planted symlinks and killed copies.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestVersionAndHelp(t *testing.T) {
	r := run(t, runOpts{}, "--version")
	if r.code != 0 || !strings.ContainsAny(r.stdout+r.stderr, "0123456789") {
		t.Errorf("--version: want exit 0 and a version number\n%s", r)
	}
	for _, h := range []string{"-h", "--help"} {
		r := run(t, runOpts{}, h)
		out := r.stdout + r.stderr
		if r.code != 0 || !strings.Contains(strings.ToLower(out), "usage") {
			t.Errorf("%s: want exit 0 and a usage text\n%s", h, r)
		}
		for _, opt := range []string{"--jobs", "--chunk-size", "--queue-depth", "--preserve", "--dry-run", "--exclude", "--engine", "--fail-fast"} {
			if !strings.Contains(out, opt) {
				t.Errorf("%s does not document %s", h, opt)
			}
		}
	}
}

// TestUsageErrors: bad command lines exit 2 and write nothing.
func TestUsageErrors(t *testing.T) {
	dir := tempDir(t)
	src := NewTree(t, filepath.Join(dir, "src"))
	src.File("f", []byte("x"), 0o644)
	dst := filepath.Join(dir, "dst")
	cases := map[string][]string{
		"no arguments":       {},
		"one argument":       {src.Root},
		"three arguments":    {src.Root, dst, filepath.Join(dir, "third")},
		"unknown option":     {"--no-such-option", src.Root, dst},
		"bad chunk size":     {"-c", "12Q", src.Root, dst},
		"bad jobs":           {"-j", "many", src.Root, dst},
		"bad queue depth":    {"-q", "-5", src.Root, dst},
		"bad engine":         {"--engine=warp", src.Root, dst},
		"missing option arg": {src.Root, dst, "--exclude"},
		"bad exclude /":      {"--exclude", "*.tmp", "--exclude", "/", src.Root, dst},
		"bad exclude empty":  {"--exclude", "", src.Root, dst},
		"bad exclude a\\":    {"--exclude", `a\`, src.Root, dst},
		"bad exclude [abc":   {"--exclude", "[abc", src.Root, dst},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			r := run(t, runOpts{}, args...)
			if r.code != 2 {
				t.Errorf("want exit 2 (usage error)\n%s", r)
			}
			if strings.TrimSpace(r.stderr) == "" {
				t.Errorf("usage error without a message on stderr\n%s", r)
			}
			// A bad pattern is named, quoted, among good ones.
			if bad, ok := strings.CutPrefix(name, "bad exclude "); ok {
				if bad == "empty" {
					bad = ""
				}
				if want := "--exclude pattern '" + bad + "'"; !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not name %q\n%s", want, r)
				}
			}
			if _, err := os.Lstat(dst); err == nil {
				t.Fatalf("usage error still created %s\n%s", dst, r)
			}
		})
	}
}

// TestRefusals: a job that cannot start exits 2 with a message and writes nothing.
func TestRefusals(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildMany(50, 5)(t, src)
			before := src.Paths()
			if err := os.Symlink(src.Root, filepath.Join(dir, "via-link")); err != nil {
				t.Fatal(err)
			}
			outer := NewTree(t, filepath.Join(dir, "outer"))
			outer.File("inner/src/f", []byte("x"), 0o644)
			cases := []struct {
				name     string
				src, dst string
				created  string // must not exist afterwards
			}{
				{"SRC missing", filepath.Join(dir, "missing"), filepath.Join(dir, "d1"), filepath.Join(dir, "d1")},
				{"SRC empty", "", filepath.Join(dir, "d2"), filepath.Join(dir, "d2")},
				{"DST inside SRC", src.Root, filepath.Join(src.Root, "d000", "copy"), filepath.Join(src.Root, "d000", "copy")},
				{"DST is SRC", src.Root, src.Root, ""},
				{"DST inside SRC via symlink", src.Root, filepath.Join(dir, "via-link", "copy"), filepath.Join(src.Root, "copy")},
				{"DST inside SRC with dot-dot", src.Root, dir + "/outer/../src/copy2", filepath.Join(src.Root, "copy2")},
				{"SRC inside DST", filepath.Join(outer.Root, "inner", "src"), outer.Root, ""},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					r := copyTree(t, e, runOpts{timeout: 20 * time.Second}, 2, c.src, c.dst)
					if strings.TrimSpace(r.stderr) == "" {
						t.Errorf("refused without a message\n%s", r)
					}
					// Only an overlap may be called one (every -EINVAL once was).
					overlap := !strings.HasPrefix(c.name, "SRC missing") && !strings.HasPrefix(c.name, "SRC empty")
					if strings.Contains(r.stderr, "overlap") != overlap {
						t.Errorf("message should say overlap: %v\n%s", overlap, r)
					}
					if c.created != "" {
						if _, err := os.Lstat(c.created); err == nil {
							t.Errorf("refused job still created %s\n%s", c.created, r)
						}
					}
					if after := src.Paths(); strings.Join(after, "\n") != strings.Join(before, "\n") {
						t.Errorf("source tree changed: %d entries before, %d after", len(before), len(after))
					}
					if got := outer.Paths(); len(got) != 3 {
						t.Errorf("outer tree changed: %q", got)
					}
				})
			}
		})
	}
}

// TestDryRun: -n writes nothing, whether DST is missing or holds stale files.
func TestDryRun(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildRich(src)
			missing := filepath.Join(dir, "missing")
			copyTree(t, e, runOpts{}, 0, "-n", src.Root, missing)
			if _, err := os.Lstat(missing); err == nil {
				t.Fatalf("-n created %s", missing)
			}
			// An existing destination stays exactly as it was (times included).
			ref := NewTree(t, filepath.Join(dir, "ref"))
			dst := NewTree(t, filepath.Join(dir, "dst"))
			for _, tr := range []*Tree{ref, dst} {
				tr.File("small.txt", []byte("stale"), 0o600)
				tr.File("other", []byte("other"), 0o644)
				tr.Dir("emptydir", 0o700)
				tr.StampAll()
			}
			copyTree(t, e, runOpts{}, 0, "--dry-run", "-p", src.Root, dst.Root)
			requireSameTree(t, ref.Root, dst.Root, CompareOpts{Preserve: true})
		})
	}
}

// TestSingleFile: SRC may be a single file.
func TestSingleFile(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("one.bin", Data("one", 200*kib+1), 0o640)
			src.File("setuid", Data("setuid", 10), 0o4750)
			src.StampAll()
			// Into a missing DST.
			dst := filepath.Join(dir, "out.bin")
			copyTree(t, e, runOpts{}, 0, filepath.Join(src.Root, "one.bin"), dst)
			requireSameTree(t, filepath.Join(src.Root, "one.bin"), dst, CompareOpts{Umask: testUmask})
			// Over an existing, different file, with -p.
			other := NewTree(t, filepath.Join(dir, "other"))
			other.File("x", Data("stale", 300*kib), 0o600)
			copyTree(t, e, runOpts{}, 0, "-p", filepath.Join(src.Root, "one.bin"), filepath.Join(other.Root, "x"))
			requireSameTree(t, filepath.Join(src.Root, "one.bin"), filepath.Join(other.Root, "x"), CompareOpts{Preserve: true})
			copyTree(t, e, runOpts{}, 0, "-p", filepath.Join(src.Root, "setuid"), filepath.Join(dir, "setuid-copy"))
			requireSameTree(t, filepath.Join(src.Root, "setuid"), filepath.Join(dir, "setuid-copy"), CompareOpts{Preserve: true})
			// A symlink SRC is copied as a symlink, not followed.
			src.Symlink("link", "one.bin")
			copyTree(t, e, runOpts{}, 0, filepath.Join(src.Root, "link"), filepath.Join(dir, "link-copy"))
			requireSameTree(t, filepath.Join(src.Root, "link"), filepath.Join(dir, "link-copy"), CompareOpts{Umask: testUmask})
		})
	}
}

// TestRerun: copying again onto a complete copy succeeds and changes nothing.
func TestRerun(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildRich(src)
			buildMany(300, 3)(t, src)
			if os.Geteuid() != 0 {
				// A non-root user cannot replace files inside the read-only directory a first
				// run made (nor can cp -r); that is the permission system, not the copier.
				src.Chmod("ro", 0o755)
			}
			for _, preserve := range []bool{false, true} {
				dst := filepath.Join(dir, fmt.Sprintf("dst-p=%v", preserve))
				args, o := []string{src.Root, dst}, CompareOpts{Umask: testUmask}
				if preserve {
					args, o = append([]string{"-p"}, args...), CompareOpts{Preserve: true}
				}
				for i := 0; i < 2; i++ {
					copyTree(t, e, runOpts{}, 0, args...)
					requireSameTree(t, src.Root, dst, o)
				}
			}
		})
	}
}

func TestEngineSelection(t *testing.T) {
	dir := tempDir(t)
	src := NewTree(t, filepath.Join(dir, "src"))
	src.File("f", []byte("x"), 0o644)
	// auto: io_uring, except for a source on tmpfs (nothing to overlap there).
	auto := "engine: io_uring"
	var sfs unix.Statfs_t
	if err := unix.Statfs(src.Root, &sfs); err == nil && sfs.Type == unix.TMPFS_MAGIC {
		auto = "engine: sync"
	}
	cases := []struct {
		name string
		e    engine
	}{
		{"--engine=uring", engine{args: []string{"--engine=uring"}, summary: "engine: io_uring"}},
		{"--engine auto", engine{args: []string{"--engine", "auto"}, summary: auto}},
		{"URING_SYNC_FORCE_SYNC=1", engine{env: []string{"URING_SYNC_FORCE_SYNC=1"}, summary: "engine: sync"}},
		{"URING_SYNC_FORCE_SYNC=1 --engine=auto", engine{args: []string{"--engine=auto"}, env: []string{"URING_SYNC_FORCE_SYNC=1"}, summary: "engine: sync"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := filepath.Join(dir, fmt.Sprintf("dst%d", i))
			copyTree(t, c.e, runOpts{}, 0, src.Root, dst)
			requireSameTree(t, src.Root, dst, CompareOpts{Umask: testUmask})
		})
	}
	t.Run("auto with a tmpfs source", func(t *testing.T) {
		onTmpfs := NewTree(t, filepath.Join(mountTmpfs(t), "src"))
		onTmpfs.File("f", []byte("x"), 0o644)
		dst := filepath.Join(dir, "dst-from-tmpfs")
		copyTree(t, engine{summary: "engine: sync"}, runOpts{}, 0, onTmpfs.Root, dst)
		requireSameTree(t, onTmpfs.Root, dst, CompareOpts{Umask: testUmask})
	})
}

// TestUnreadableSource: entries the user cannot read are reported (exit 1) while everything else
// is copied, and no file is left under their names. Runs as uid 65534: root bypasses permissions.
func TestUnreadableSource(t *testing.T) {
	for _, e := range engines {
		for _, failFast := range []bool{false, true} {
			name := e.name
			if failFast {
				name += "/fail-fast"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				dir := nobodyDir(t)
				src := NewTree(t, filepath.Join(dir, "src"))
				src.File("ok1.txt", []byte("ok1"), 0o644)
				src.File("sub/ok2.txt", Data("ok2", 100*kib), 0o644)
				buildMany(200, 4)(t, src)
				src.File("secret", Data("secret", 3*kib), 0o000)
				src.File("sub/deep/secret2", Data("secret2", 300*kib), 0o200)
				src.File("sub/deep/ok3.txt", []byte("ok3"), 0o644)
				src.File("locked/inner.txt", []byte("unreachable"), 0o644)
				src.Chmod("locked", 0o000)
				src.ChownAll(nobodyID, nobodyID)
				dst := &Tree{t: t, Root: filepath.Join(dir, "dst")}
				args := []string{src.Root, dst.Root}
				if failFast {
					args = append([]string{"--fail-fast"}, args...)
				}
				r := copyTree(t, e, runOpts{prefix: nobodyPrefix()}, 1, args...)
				if failFast {
					return // the rest is not promised to be copied
				}
				requireErrorsReported(t, r, "secret", "secret2", "locked")
				for _, rel := range []string{"secret", "sub/deep/secret2", "locked/inner.txt"} {
					if dst.Exists(rel) {
						t.Errorf("%q exists in the copy although it could not be read", rel)
					}
				}
				if st, ok := dst.Lstat("locked"); ok {
					if st.Mode&unix.S_IFMT != unix.S_IFDIR {
						t.Errorf("locked: %s in copy", typeName(st.Mode))
					}
				}
				requireSameTree(t, src.Root, dst.Root, CompareOpts{
					Umask:      testUmask,
					Excluded:   setOf("secret", "sub/deep/secret2", "locked"),
					AllowExtra: setOf("locked"), // may exist, compared above; no other stray (temp) file may
				})
			})
		}
	}
}

// TestUnwritableDestination: files that cannot be created are reported (exit 1); the rest is copied.
func TestUnwritableDestination(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := nobodyDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("ok.txt", []byte("ok"), 0o644)
			src.File("ro/f1", []byte("f1"), 0o644)
			src.File("ro/f2", Data("f2", 200*kib), 0o644)
			src.File("rw/f3", []byte("f3"), 0o644)
			src.ChownAll(nobodyID, nobodyID)
			dst := NewTree(t, filepath.Join(dir, "dst"))
			dst.Dir("ro", 0o755) // owned by root: uid 65534 can neither write nor chmod it
			if err := os.Chown(dst.Root, nobodyID, nobodyID); err != nil {
				t.Fatal(err)
			}
			r := copyTree(t, e, runOpts{prefix: nobodyPrefix()}, 1, src.Root, dst.Root)
			requireErrorsReported(t, r, "f1", "f2")
			requireSameTree(t, src.Root, dst.Root, CompareOpts{
				Umask: testUmask, SkipRootMeta: true, Excluded: setOf("ro/f1", "ro/f2"),
			})
		})
	}
}

// TestTmpfs: copies onto and from a freshly mounted tmpfs.
func TestTmpfs(t *testing.T) {
	mnt := mountTmpfs(t)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildRich(src)
			buildMany(500, 5)(t, src)
			onTmpfs := filepath.Join(mnt, e.name)
			copyTree(t, e, runOpts{}, 0, "-p", src.Root, onTmpfs)
			requireSameTree(t, src.Root, onTmpfs, CompareOpts{Preserve: true})
			back := filepath.Join(dir, "back")
			copyTree(t, e, runOpts{}, 0, "-p", onTmpfs, back)
			requireSameTree(t, onTmpfs, back, CompareOpts{Preserve: true})
		})
	}
}

// TestPlantedSymlinkInDestination: a symlink already in DST where SRC has a file or a directory
// never redirects a write outside DST.
func TestPlantedSymlinkInDestination(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			outside := NewTree(t, filepath.Join(dir, "outside"))
			outside.File("target.txt", []byte("must not change"), 0o644)
			outside.Dir("targetdir", 0o755)
			ref := NewTree(t, filepath.Join(dir, "outside-ref"))
			ref.File("target.txt", []byte("must not change"), 0o644)
			ref.Dir("targetdir", 0o755)
			outside.StampAll()
			ref.StampAll()
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("victim", []byte("from source"), 0o644)
			src.File("victimdir/f", []byte("from source"), 0o644)
			dst := NewTree(t, filepath.Join(dir, "dst"))
			dst.Symlink("victim", filepath.Join(outside.Root, "target.txt"))
			dst.Symlink("victimdir", filepath.Join(outside.Root, "targetdir"))
			r := run(t, runOpts{}, append(append([]string{"-v"}, e.args...), src.Root, dst.Root)...)
			if r.code != 0 && r.code != 1 {
				t.Fatalf("exit %d\n%s", r.code, r)
			}
			requireSameTree(t, ref.Root, outside.Root, CompareOpts{Preserve: true})
			if got := dst.ReadFile("victim"); !bytes.Equal(got, []byte("from source")) {
				t.Errorf("victim holds %q, want the source's bytes", got)
			}
			if st, _ := dst.Lstat("victim"); st.Mode&unix.S_IFMT != unix.S_IFREG {
				t.Errorf("victim is a %s in the copy, want a regular file", typeName(st.Mode))
			}
			if r.code == 0 {
				requireSameTree(t, src.Root, dst.Root, CompareOpts{Umask: testUmask, SkipRootMeta: true})
			}
		})
	}
}

// killSource builds a source whose copy takes long enough to be interrupted: a few large files
// (in flight for a while) and many small ones.
func killSource(t *testing.T, root string) *Tree {
	src := NewTree(t, root)
	for i := 0; i < 4; i++ {
		src.File(fmt.Sprintf("big%d", i), Data(fmt.Sprint("big", i), 20*mib+i), 0o644)
	}
	buildMany(600, 6)(t, src)
	return src
}

// startAndSignal starts a copy, sends sig after delay, and reports whether the copy had already
// finished by then.
func startAndSignal(t *testing.T, e engine, sig syscall.Signal, delay time.Duration, args ...string) (finished bool) {
	t.Helper()
	cmd := exec.Command(binary(t), append(append([]string{}, e.args...), args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return true
		}
		if sig != syscall.SIGKILL && strings.Contains(stderr.String(), "panic") {
			t.Errorf("copy crashed on %v:\n%s", sig, clip(stderr.String()))
		}
		return false
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("copy did not stop within 20 s of %v", sig)
	}
	return false
}

// startAndKillAfterFirstFile starts a copy with --json -v, SIGKILLs it as soon as it reports its
// first regular file copied, and returns whether it had finished anyway and that file's path.
func startAndKillAfterFirstFile(t *testing.T, e engine, args ...string) (finished bool, first string) {
	t.Helper()
	cmd := exec.Command(binary(t), append(append(append([]string{}, e.args...), "--json", "-v"), args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer timer.Stop()
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var ev struct{ Type, Kind, Path string }
		if json.Unmarshal(lines.Bytes(), &ev) == nil && ev.Type == "file" && ev.Kind == "file" {
			first = ev.Path
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			break
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if first == "" {
		t.Fatalf("the copy reported no file before it ended (%v)", err)
	}
	return err == nil, first
}

// requireCompleteOrAbsent checks that every regular file of dst under a source name holds the
// complete source bytes or, when stale is non-nil, the stale bytes it held before. Entries
// under other names (temporaries) are ignored.
func requireCompleteOrAbsent(t *testing.T, src, dst *Tree, stale func(rel string) []byte, what string) {
	t.Helper()
	if _, ok := dst.Lstat(""); !ok {
		return
	}
	names := map[string]bool{}
	for _, rel := range src.Paths() {
		names[rel] = true
	}
	bad := 0
	for _, rel := range dst.Paths() {
		st, _ := dst.Lstat(rel)
		if !names[rel] || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		got := dst.ReadFile(rel)
		if bytes.Equal(got, src.ReadFile(rel)) || (stale != nil && bytes.Equal(got, stale(rel))) {
			continue
		}
		if bad++; bad <= 10 {
			sst, _ := src.Lstat(rel)
			t.Errorf("%s: %q is under its final name with %d bytes that are neither the source's %d bytes nor the old file", what, rel, st.Size, sst.Size)
		}
	}
	if bad > 10 {
		t.Errorf("%s: ... %d partial files in all", what, bad)
	}
}

// TestInterruptedCopyLeavesNoPartialFile: a copy stopped by SIGINT or SIGTERM at various moments
// leaves, under each final name, either nothing or the complete file.
func TestInterruptedCopyLeavesNoPartialFile(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := killSource(t, filepath.Join(dir, "src"))
			interrupted := 0
			for i, delay := range []time.Duration{5 * time.Millisecond, 30 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond} {
				for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
					dst := &Tree{t: t, Root: filepath.Join(dir, fmt.Sprintf("dst%d-%d", i, sig))}
					if !startAndSignal(t, e, sig, delay, src.Root, dst.Root) {
						interrupted++
					}
					requireCompleteOrAbsent(t, src, dst, nil, fmt.Sprintf("%v after %v", sig, delay))
				}
			}
			if interrupted == 0 {
				t.Error("every copy finished before its signal: nothing was tested")
			}
		})
	}
}

// TestKilledCopyIntoExistingDestination: files replaced in an existing destination go through a
// temporary name, so even SIGKILL leaves each one either old or complete, never partial.
func TestKilledCopyIntoExistingDestination(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := killSource(t, filepath.Join(dir, "src"))
			stale := func(rel string) []byte { return Data("stale "+rel, 3000) }
			interrupted := 0
			for i, delay := range []time.Duration{10 * time.Millisecond, 60 * time.Millisecond, 200 * time.Millisecond} {
				dst := NewTree(t, filepath.Join(dir, fmt.Sprintf("dst%d", i)))
				for _, rel := range src.Paths() {
					if st, _ := src.Lstat(rel); st.Mode&unix.S_IFMT == unix.S_IFREG {
						dst.File(rel, stale(rel), 0o644)
					}
				}
				if !startAndSignal(t, e, syscall.SIGKILL, delay, src.Root, dst.Root) {
					interrupted++
				}
				requireCompleteOrAbsent(t, src, dst, stale, fmt.Sprintf("SIGKILL after %v", delay))
			}
			if interrupted == 0 {
				t.Error("every copy finished before its kill: nothing was tested")
			}
		})
	}
}

// TestKilledCopyResumes: a copy killed with SIGKILL (into a new DST, and into a new directory
// of an existing one) leaves every final path complete or absent; re-running the same command
// finishes the copy, leaves no temporaries behind, and does not copy again what was done.
func TestKilledCopyResumes(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := killSource(t, filepath.Join(dir, "src"))
			interrupted, reused := 0, 0
			for i, delay := range []time.Duration{30 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
				fresh := filepath.Join(dir, fmt.Sprintf("fresh%d", i))
				existing := NewTree(t, filepath.Join(dir, fmt.Sprintf("existing%d", i)))
				existing.File("keep", []byte("not in the source"), 0o644)
				for _, final := range []string{fresh, filepath.Join(existing.Root, "new")} {
					what := fmt.Sprintf("SIGKILL after %v", delay)
					if startAndSignal(t, e, syscall.SIGKILL, delay, src.Root, final) {
						continue
					}
					interrupted++
					requireCompleteOrAbsent(t, src, &Tree{t: t, Root: final}, nil, what)
					r := copyTree(t, e, runOpts{}, 0, src.Root, final)
					requireSameTree(t, src.Root, final, CompareOpts{Umask: testUmask})
					if n := countUpToDate(r.stderr); n > 0 {
						reused++
					}
				}
				if got := existing.ReadFile("keep"); string(got) != "not in the source" {
					t.Errorf("an existing file outside the copy changed: %q", got)
				}
			}
			if interrupted == 0 {
				t.Error("every copy finished before SIGKILL: nothing was tested")
			}
			// Kills at fixed delays may all land before any file is complete on a loaded
			// machine, so the reuse check kills right after the first file is reported copied:
			// that file is whole under its name, and the re-run must not copy it again.
			for _, final := range []string{filepath.Join(dir, "fresh-after-file"), filepath.Join(dir, "existing0", "after-file")} {
				finished, first := startAndKillAfterFirstFile(t, e, src.Root, final)
				if finished {
					t.Logf("%s: the copy finished before its kill", final)
					continue
				}
				requireCompleteOrAbsent(t, src, &Tree{t: t, Root: final}, nil, "SIGKILL after "+first)
				r := copyTree(t, e, runOpts{}, 0, src.Root, final)
				requireSameTree(t, src.Root, final, CompareOpts{Umask: testUmask})
				if n := countUpToDate(r.stderr); n == 0 {
					t.Errorf("killed after %s was reported copied, the re-run copied everything again\n%s", first, r)
				}
				reused++
			}
			if reused == 0 {
				t.Error("every copy finished before the kill after its first file: reuse was not tested")
			}
			// No temporaries anywhere (the tree comparisons above would also
			// report them as extra entries).
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), ".usync-") {
					t.Errorf("temporary left behind: %s", p)
				}
				return nil
			})
		})
	}
}

// countUpToDate reads "N up to date" from the -v summary line.
func countUpToDate(stderr string) int {
	i := strings.Index(stderr, " up to date")
	if i < 0 {
		return 0
	}
	j := strings.LastIndex(stderr[:i], " ")
	n := 0
	fmt.Sscanf(stderr[j+1:i], "%d", &n)
	return n
}

// humanBytes formats n as the CLI's summary does (progress.cc's human_bytes).
func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	u := 0
	for n >= 1024 && u < len(units)-1 {
		n /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[u])
}

// TestNoSpace: when the destination fills up, the files that did not fit are reported (exit 1)
// and none is left partially written under its final name, nor under a temporary one.
func TestNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			for i := 0; i < 6; i++ {
				src.File(fmt.Sprintf("f%d", i), Data(fmt.Sprint("nospace", i), 700*kib), 0o644)
			}
			mnt := filepath.Join(dir, "mnt")
			if err := os.Mkdir(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
				t.Skipf("cannot mount a tmpfs: %v", err)
			}
			t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
			dst := &Tree{t: t, Root: filepath.Join(mnt, "dst")}
			r := copyTree(t, e, runOpts{}, 1, src.Root, dst.Root)
			if !strings.Contains(r.stderr, "No space left on device") {
				t.Errorf("ENOSPC not reported\n%s", r)
			}
			requireCompleteOrAbsent(t, src, dst, nil, "ENOSPC")
			names := map[string]bool{}
			for _, rel := range src.Paths() {
				names[rel] = true
			}
			copied := 0
			for _, rel := range dst.Paths() {
				if !names[rel] {
					t.Errorf("stray %q left in the destination", rel)
				}
				copied++
			}
			// Files written concurrently may all hit ENOSPC (and be removed), so 0 copied is fine.
			if copied == 6 {
				t.Errorf("all 6 files fit into a 2 MiB tmpfs: the case did not exercise ENOSPC")
			}
			// The summary counts the bytes of the files copied, not those written into
			// files that then failed (it said "2 files (3.9 MiB)" into this 2 MiB tmpfs).
			if want := fmt.Sprintf(" %d files (%s),", copied, humanBytes(float64(copied*700*kib))); !strings.Contains(r.stderr, want) {
				t.Errorf("summary does not say %q\n%s", want, r)
			}
			// More space, the same command: the copy completes.
			if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_REMOUNT, "size=64m"); err != nil {
				t.Fatalf("remount bigger: %v", err)
			}
			copyTree(t, e, runOpts{}, 0, src.Root, dst.Root)
			requireSameTree(t, src.Root, dst.Root, CompareOpts{Umask: testUmask})
		})
	}
}

// TestTypeConflicts: where DST holds a directory and SRC a file of that name (or the reverse),
// the entry is reported (exit 1), DST's entry is left alone and everything else is copied.
func TestTypeConflicts(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("x", []byte("file in source"), 0o644)
			src.File("y/f", []byte("dir in source"), 0o644)
			src.File("ok/fine", []byte("copied"), 0o644)
			dst := NewTree(t, filepath.Join(dir, "dst"))
			dst.File("x/g", []byte("dir in destination"), 0o644)
			dst.File("y", []byte("file in destination"), 0o644)
			r := copyTree(t, e, runOpts{}, 1, src.Root, dst.Root)
			requireErrorsReported(t, r, "x", "y")
			if got := dst.ReadFile("x/g"); string(got) != "dir in destination" {
				t.Errorf("x/g changed to %q", got)
			}
			if got := dst.ReadFile("y"); string(got) != "file in destination" {
				t.Errorf("y changed to %q", got)
			}
			if got := dst.ReadFile("ok/fine"); string(got) != "copied" {
				t.Errorf("ok/fine holds %q", got)
			}
			if p := dst.Paths(); len(p) != 5 {
				t.Errorf("destination holds %q, want x, x/g, y, ok, ok/fine (no temporaries)", p)
			}
		})
	}
}

// TestVerboseListsEveryEntryOnOneLine: -v names directories, symlinks and specials
// too, and a name holding a newline or invalid UTF-8 is escaped into one line.
func TestVerboseListsEveryEntryOnOneLine(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("d/two\nlines", []byte("x"), 0o644)
			src.File("d/bad\xff", []byte("y"), 0o644)
			if err := os.Symlink("two\nlines", filepath.Join(src.Root, "d", "link")); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mkfifo(filepath.Join(src.Root, "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
			r := copyTree(t, e, runOpts{}, 0, src.Root, filepath.Join(dir, "dst"))
			got := map[string]bool{}
			for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
				got[l] = true
			}
			for _, want := range []string{"d/", `d/two\nlines`, `d/bad\xff`, "d/link", "fifo"} {
				if !got[want] {
					t.Errorf("-v does not list %q\n%s", want, r)
				}
			}
			if len(got) != 5 {
				t.Errorf("-v printed %d lines, want 5\n%s", len(got), r)
			}
		})
	}
}

// TestClosedStdout: `uring-sync -v … | head -1` stops the copy cleanly and says that stdout was
// closed, not that it was interrupted; every file under its name is complete.
func TestClosedStdout(t *testing.T) {
	dir := tempDir(t)
	src := NewTree(t, filepath.Join(dir, "src"))
	buildMany(10000, 100)(t, src) // stdout is a pipe: lines come out 4 KiB at a time
	dst := filepath.Join(dir, "dst")
	cmd := exec.Command(binary(t), "-v", src.Root, dst)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatalf("no first line: %v", err)
	}
	_ = stdout.Close()
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 && !strings.Contains(stderr.String(), "stdout was closed") {
		t.Errorf("exit %d without saying stdout was closed:\n%s", code, clip(stderr.String()))
	}
	if strings.Contains(stderr.String(), "interrupted\n") && !strings.Contains(stderr.String(), "left by interrupted") {
		t.Errorf("a closed stdout reported as an interruption:\n%s", clip(stderr.String()))
	}
	requireCompleteOrAbsent(t, src, &Tree{t: t, Root: dst}, nil, "after stdout was closed")
}
