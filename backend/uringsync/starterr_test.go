//go:build linux && cgo

package uringsync

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestTreeStartErrorNamesBoth: a tree copy that cannot start names both
// trees (the library's errno does not say which it could not use), where
// it used to blame the source for a destination it could not make; the
// error still matches its errno and is an *os.PathError.
func TestTreeStartErrorNamesBoth(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "f"), content(1))
	file := filepath.Join(dir, "file")
	writeFile(t, file, nil)
	cases := []struct {
		name, src, dst string
		errno          syscall.Errno
	}{
		{"missing source", filepath.Join(dir, "nope"), filepath.Join(dir, "dst"), syscall.ENOENT},
		{"destination under /proc", src, "/proc/nope/x", syscall.ENOENT},
		{"destination under a file", src, filepath.Join(file, "x"), syscall.ENOTDIR},
	}
	if _, err := os.Stat("/sys/kernel"); err == nil {
		cases = append(cases, struct {
			name, src, dst string
			errno          syscall.Errno
		}{"destination under /sys", src, "/sys/kernel/uringsync-test/x", 0})
	}
	engines(t, func(t *testing.T, forceSync bool) {
		e := newEngine(t, Options{ForceSync: forceSync})
		for _, c := range cases {
			err := e.CopyTree(context.Background(), c.src, c.dst)
			var pe *os.PathError
			if err == nil || !errors.As(err, &pe) {
				t.Errorf("%s: err = %v, want an *os.PathError", c.name, err)
				continue
			}
			errno := c.errno
			if errno == 0 { // whatever sysfs says (EPERM, EACCES as root or not)
				errno, _ = pe.Err.(syscall.Errno)
			}
			if want := "copy tree " + c.src + " to " + c.dst + ": " + errno.Error(); err.Error() != want || !errors.Is(err, errno) {
				t.Errorf("%s: err = %q, want %q wrapping %v", c.name, err, want, errno)
			}
		}
		if err := e.CopyTree(context.Background(), filepath.Join(dir, "nope"), filepath.Join(dir, "dst")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing source: err = %v, want fs.ErrNotExist", err)
		}
	})
}

// TestTreeStartErrorCallsOnError: OnError tells which side a tree copy that
// cannot start could not use, by path and step.
func TestTreeStartErrorCallsOnError(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "f"), content(1))
	file := filepath.Join(dir, "file")
	writeFile(t, file, nil)
	var got []*FileError
	e := newEngine(t, Options{OnError: func(fe *FileError) { got = append(got, fe) }})
	for _, c := range []struct {
		src, dst string
		step     Step
	}{
		{filepath.Join(dir, "nope"), filepath.Join(dir, "dst"), StepStat},
		{src, filepath.Join(file, "x"), StepMkdir},
	} {
		got = nil
		if err := e.CopyTree(context.Background(), c.src, c.dst); err == nil {
			t.Fatalf("%s to %s: no error", c.src, c.dst)
		}
		if len(got) != 1 || got[0].Step != c.step || got[0].Src != c.src || got[0].Dst != c.dst {
			t.Errorf("%s to %s: OnError got %v, want one call at %v", c.src, c.dst, got, c.step)
		}
	}
}
