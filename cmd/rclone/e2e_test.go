package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// rcloneBin returns the rclone binary under test: $URING_RCLONE (as set by
// make test), or one built from this package into a temporary directory.
func rcloneBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("URING_RCLONE"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	if testing.Short() {
		t.Skip("builds rclone; set URING_RCLONE to use a built binary")
	}
	bin := filepath.Join(t.TempDir(), "rclone")
	out, err := exec.Command("go", "build", "-p", "2", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// rclone runs the binary in a scratch working directory with an empty
// config and returns its combined output.
func rclone(t *testing.T, bin string, wantOK bool, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "RCLONE_CONFIG="+filepath.Join(cmd.Dir, "rclone.conf"))
	out, err := cmd.CombinedOutput()
	if (err == nil) != wantOK {
		t.Fatalf("rclone %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeTree writes a tree of files with distinct content and mtimes.
func makeTree(t *testing.T, root string) []string {
	t.Helper()
	var rels []string
	for i := range 300 {
		ext := ".dat"
		if i%10 == 0 {
			ext = ".tmp"
		}
		rel := filepath.Join(fmt.Sprint("dir", i%7), fmt.Sprint("sub", i%3), fmt.Sprint("f", i, ext))
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte(fmt.Sprint(i, " ")), i*7%4096), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Date(2019, 5, 6, 7, 8, 9, i, time.UTC)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	return rels
}

// sameFiles compares content and mtime of each file; skip says which
// must be absent from dst instead.
func sameFiles(t *testing.T, src, dst string, rels []string, skip func(string) bool) {
	t.Helper()
	for _, rel := range rels {
		dp := filepath.Join(dst, rel)
		if skip != nil && skip(rel) {
			if _, err := os.Lstat(dp); !os.IsNotExist(err) {
				t.Errorf("%s: should not have been copied (%v)", rel, err)
			}
			continue
		}
		want, _ := os.ReadFile(filepath.Join(src, rel))
		got, err := os.ReadFile(dp)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: content differs (%v)", rel, err)
		}
		si, _ := os.Stat(filepath.Join(src, rel))
		di, _ := os.Stat(dp)
		if !si.ModTime().Equal(di.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, di.ModTime(), si.ModTime())
		}
	}
}

var engineLine = regexp.MustCompile(`uring: engine copied (\d+) files \(\d+ bytes\) in \d+ batches; (\d+) fell back`)

var engineMetaLine = regexp.MustCompile(`; (\d+) got --metadata from the engine`)

// engineMeta returns the number of files whose --metadata the engine
// applied, from -v output.
func engineMeta(out string) string {
	if m := engineMetaLine.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return "0"
}

// engineCopied returns the number of files the engine copied, from -v output.
func engineCopied(t *testing.T, out string) (copied, fellBack string) {
	t.Helper()
	m := engineLine.FindStringSubmatch(out)
	if m == nil {
		return "0", "0"
	}
	return m[1], m[2]
}

func TestRcloneBinary(t *testing.T) {
	bin := rcloneBin(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	rels := makeTree(t, src)
	isTmp := func(rel string) bool { return strings.HasSuffix(rel, ".tmp") }

	t.Run("copy", func(t *testing.T) {
		dst := filepath.Join(dir, "copy")
		out := rclone(t, bin, true, "copy", "-v", "--transfers", "16", "uring:"+src, "uring:"+dst)
		if c, f := engineCopied(t, out); c != fmt.Sprint(len(rels)) || f != "0" {
			t.Fatalf("engine copied %s files, %s fell back; want %d, 0\n%s", c, f, len(rels), out)
		}
		sameFiles(t, src, dst, rels, nil)
		rclone(t, bin, true, "check", src, dst)
	})

	t.Run("sync exclude between named remotes", func(t *testing.T) {
		dst := filepath.Join(dir, "sync")
		stale := filepath.Join(dst, "stale.dat")
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(stale, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("RCLONE_CONFIG_FASTA_TYPE", "uring")
		t.Setenv("RCLONE_CONFIG_FASTB_TYPE", "uring")
		out := rclone(t, bin, true, "sync", "-v", "--exclude", "*.tmp", "fasta:"+src, "fastb:"+dst)
		want := 0
		for _, rel := range rels {
			if !isTmp(rel) {
				want++
			}
		}
		if c, f := engineCopied(t, out); c != fmt.Sprint(want) || f != "0" {
			t.Fatalf("engine copied %s files, %s fell back; want %d, 0\n%s", c, f, want, out)
		}
		sameFiles(t, src, dst, rels, isTmp)
		if _, err := os.Lstat(stale); !os.IsNotExist(err) {
			t.Errorf("sync left %s (%v)", stale, err)
		}
		rclone(t, bin, true, "check", "--exclude", "*.tmp", src, dst)
		rclone(t, bin, false, "check", src, dst) // the .tmp files are missing
	})

	t.Run("fallback is visible", func(t *testing.T) {
		dst := filepath.Join(dir, "noengine")
		out := rclone(t, bin, true, "copy", "-v", "--uring-no-engine", "uring:"+src, "uring:"+dst)
		if c, _ := engineCopied(t, out); c != "0" {
			t.Fatalf("engine used with --uring-no-engine\n%s", out)
		}
		rclone(t, bin, true, "check", src, dst)
	})

	t.Run("copytree", func(t *testing.T) {
		dst := filepath.Join(dir, "tree")
		out := rclone(t, bin, true, "backend", "copytree", "uring:"+src, dst)
		if !strings.Contains(out, `"mode": "tree"`) {
			t.Errorf("unexpected summary:\n%s", out)
		}
		sameFiles(t, src, dst, rels, nil)
		rclone(t, bin, true, "check", src, dst)

		dst = filepath.Join(dir, "tree-dry")
		rclone(t, bin, true, "backend", "copytree", "--dry-run", "uring:"+src, dst)
		if _, err := os.Lstat(dst); !os.IsNotExist(err) {
			t.Errorf("--dry-run created %s", dst)
		}
	})
}

// TestConfigFileDefinesUring: the predefined uring: remote is a default: a
// remote called uring in the user's config file (here an alias of another
// directory) is the one used, as rclone uses every remote of its config
// file, instead of the local disk under the working directory. Without one,
// uring: is the predefined remote.
func TestConfigFileDefinesUring(t *testing.T) {
	bin := rcloneBin(t)
	dir := t.TempDir()
	target, work := filepath.Join(dir, "target"), filepath.Join(dir, "work")
	for _, f := range []string{filepath.Join(target, "only-in-target"), filepath.Join(work, "only-in-work")} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ conf, want, not string }{
		{"[uring]\ntype = alias\nremote = " + target + "\n", "only-in-target", "only-in-work"},
		{"[other]\ntype = alias\nremote = " + target + "\n", "only-in-work", "only-in-target"},
	} {
		conf := filepath.Join(dir, "rclone.conf")
		if err := os.WriteFile(conf, []byte(c.conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "lsf", "uring:")
		cmd.Dir = work
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "RCLONE_CONFIG") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "RCLONE_CONFIG="+conf)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) || strings.Contains(string(out), c.not) {
			t.Errorf("config %q: rclone lsf uring: %v, want %s listed and not %s\n%s", c.conf, err, c.want, c.not, out)
		}
	}
}
