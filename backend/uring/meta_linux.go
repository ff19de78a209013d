//go:build linux

package uring

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// localMetaKeys are the names local keeps for itself in --metadata: an
// xattr user.<name> of one of them is not copied (see localMetaRewrites).
var localMetaKeys = map[string]bool{
	"mode": true, "uid": true, "gid": true, "rdev": true, "atime": true, "mtime": true, "btime": true,
}

// srcStat is what engineMeta saw of a source before the engine copied it.
type srcStat struct{ atime, mtime unix.Timespec }

// engineMeta says whether the engine, with the permission bits, owner,
// group and user.* xattrs it keeps (metaOptions), gives the copy of
// srcPath the metadata local's SetMetadata would (rclone copy -M), and
// if not, why. Local sets the permission bits but never setuid, setgid
// or sticky, and chowns to the source's owner (as root, or failing as
// anyone who could not make the file theirs); its user metadata is the
// user.* xattrs, by names it lowercases and among which its own keys are
// dropped.
func engineMeta(srcPath string) (*srcStat, string) {
	var st unix.Stat_t
	if err := unix.Lstat(srcPath, &st); err != nil {
		return nil, err.Error()
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, "not a regular file (a symlink followed with -L)"
	case st.Mode&(unix.S_ISUID|unix.S_ISGID|unix.S_ISVTX) != 0:
		return nil, "setuid, setgid or sticky bit (local drops them)"
	case !canChown(st.Uid, st.Gid):
		return nil, fmt.Sprintf("owner %d:%d, which local fails to set without privilege", st.Uid, st.Gid)
	}
	if why := localMetaRewrites(srcPath); why != "" {
		return nil, why
	}
	return &srcStat{atime: st.Atim, mtime: st.Mtim}, ""
}

// canChown reports whether chown(uid, gid) of a file this process made
// succeeds, as it always does for root; the engine keeps the caller's own
// owner otherwise, where local's chown fails.
func canChown(uid, gid uint32) bool {
	euid := unix.Geteuid()
	if euid == 0 {
		return true
	}
	if int(uid) != euid {
		return false
	}
	if int(gid) == unix.Getegid() {
		return true
	}
	groupsOnce.Do(func() { groups, _ = unix.Getgroups() })
	for _, g := range groups {
		if uint32(g) == gid {
			return true
		}
	}
	return false
}

var (
	groupsOnce sync.Once
	groups     []int
)

// localMetaRewrites says how local would copy the xattrs of path other than
// the engine with user.* only ("" when it would not).
func localMetaRewrites(path string) string {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			if n, err = unix.Llistxattr(path, nil); err == nil {
				buf = make([]byte, n+256)
				continue
			}
		}
		if err != nil {
			// local turns xattrs off (with an error logged) where they
			// are not supported: leave that to it.
			return "xattrs: " + err.Error()
		}
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			key, user := strings.CutPrefix(name, "user.")
			switch {
			case !user:
			case strings.ToLower(name) != name:
				return fmt.Sprintf("xattr %q, which local copies lowercased", name)
			case localMetaKeys[key]:
				return fmt.Sprintf("xattr %q, which local does not copy", name)
			}
		}
		return ""
	}
}

// setTimesAfter gives dst the source's atime and mtime as they are now, as
// local's --metadata (read after its copy) does, where they differ from
// those the engine set (the ones before it read the file: reading it may
// have moved its atime).
func setTimesAfter(srcPath, dstPath string, before *srcStat) error {
	var st unix.Stat_t
	if err := unix.Lstat(srcPath, &st); err != nil {
		return err
	}
	if st.Atim == before.atime && st.Mtim == before.mtime {
		return nil
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dstPath, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
}

// statMatches reports whether path (followed when follow is set) is a
// regular file of this size and mtime. It is os.Lstat's test without the
// FileInfo os.Lstat allocates (Hash asks it twice per copied file).
func statMatches(path string, follow bool, size int64, mtime time.Time) bool {
	n, t, ok := statRegular(path, follow)
	return ok && n == size && t.Equal(mtime)
}

// statRegular returns the size and mtime of path (followed when follow is
// set) if it is a regular file, without allocating an os.FileInfo.
func statRegular(path string, follow bool) (size int64, mtime time.Time, ok bool) {
	var st unix.Stat_t
	var err error
	if follow {
		err = unix.Stat(path, &st)
	} else {
		err = unix.Lstat(path, &st)
	}
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, time.Time{}, false
	}
	return st.Size, time.Unix(st.Mtim.Unix()), true
}
