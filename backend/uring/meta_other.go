//go:build !linux

package uring

import (
	"os"
	"time"
)

// srcStat is what engineMeta saw of a source.
type srcStat struct{}

// engineMeta: the engine runs on Linux only.
func engineMeta(string) (*srcStat, string) { return nil, "not Linux" }

func setTimesAfter(string, string, *srcStat) error { return nil }

// statMatches reports whether path (followed when follow is set) is a
// regular file of this size and mtime.
func statMatches(path string, follow bool, size int64, mtime time.Time) bool {
	n, t, ok := statRegular(path, follow)
	return ok && n == size && t.Equal(mtime)
}

// statRegular returns the size and mtime of path (followed when follow is
// set) if it is a regular file.
func statRegular(path string, follow bool) (size int64, mtime time.Time, ok bool) {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, time.Time{}, false
	}
	return fi.Size(), fi.ModTime(), true
}
