package e2e

// Whole-tree comparison of a source and its copy, through directory fds only.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// CompareOpts says what a faithful copy must keep.
type CompareOpts struct {
	// Preserve: the copy was made with -p. Modes must match in full (07777, setuid/setgid/sticky
	// included) and mtimes of regular files and directories to the nanosecond.
	Preserve bool
	// Umask applies without Preserve: a destination entry's permission bits must equal the
	// source's 0777 bits with the umask cleared (like cp -r). Special bits are not checked then.
	Umask uint32
	// Excluded source entries (and, for directories, their subtrees) must be absent from the copy.
	Excluded func(rel string) bool
	// Extra destination entries (and their subtrees) that may exist without a source entry,
	// e.g. files a pre-existing destination already held.
	AllowExtra func(rel string) bool
	// SkipRootMeta: do not compare the mode and times of the root (a pre-existing destination).
	SkipRootMeta bool
	// Owner: uids and gids must match (-o -g as root).
	Owner bool
	// Xattrs: extended attributes in the user, trusted and security namespaces must match (-X);
	// ACLs: system.posix_acl_access and _default must match (-A).
	Xattrs, ACLs bool
}

// maxDiffs bounds the differences collected per comparison.
const maxDiffs = 50

type comparer struct {
	o     CompareOpts
	diffs []string
	extra int
}

func (c *comparer) add(rel, format string, args ...any) {
	if len(c.diffs) >= maxDiffs {
		c.extra++
		return
	}
	if rel == "" {
		rel = "."
	}
	c.diffs = append(c.diffs, fmt.Sprintf("%q: ", rel)+fmt.Sprintf(format, args...))
}

// CompareTrees compares src (a directory or a single non-directory) with dst and returns the
// differences found, empty when dst is a faithful copy of src under o.
func CompareTrees(src, dst string, o CompareOpts) ([]string, error) {
	c := &comparer{o: o}
	sp, err := openRoot(filepath.Dir(src))
	if err != nil {
		return nil, err
	}
	defer unix.Close(sp)
	dp, err := openRoot(filepath.Dir(dst))
	if err != nil {
		return nil, err
	}
	defer unix.Close(dp)
	if err := c.entry(sp, filepath.Base(src), dp, filepath.Base(dst), ""); err != nil {
		return nil, err
	}
	if c.extra > 0 {
		c.diffs = append(c.diffs, fmt.Sprintf("... and %d more differences", c.extra))
	}
	return c.diffs, nil
}

// requireSameTree fails the test when dst is not a faithful copy of src.
func requireSameTree(t testing.TB, src, dst string, o CompareOpts) {
	t.Helper()
	diffs, err := CompareTrees(src, dst, o)
	if err != nil {
		t.Fatalf("compare %s with %s: %v", src, dst, err)
	}
	if len(diffs) > 0 {
		t.Fatalf("copy %s differs from source %s in %d place(s):\n  %s", dst, src, len(diffs), strings.Join(diffs, "\n  "))
	}
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "chardev"
	case unix.S_IFBLK:
		return "blockdev"
	}
	return fmt.Sprintf("type%o", mode&unix.S_IFMT)
}

// entry compares sdir/sname with ddir/dname; rel is the tree path for messages.
func (c *comparer) entry(sdir int, sname string, ddir int, dname string, rel string) error {
	var ss, ds unix.Stat_t
	if err := unix.Fstatat(sdir, sname, &ss, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lstat source %q: %w", rel, err)
	}
	if err := unix.Fstatat(ddir, dname, &ds, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			c.add(rel, "missing in copy (source is a %s)", typeName(ss.Mode))
			return nil
		}
		return fmt.Errorf("lstat copy %q: %w", rel, err)
	}
	st, dt := ss.Mode&unix.S_IFMT, ds.Mode&unix.S_IFMT
	if st != dt {
		c.add(rel, "type %s in copy, %s in source", typeName(ds.Mode), typeName(ss.Mode))
		return nil
	}
	isRoot := rel == ""
	if st != unix.S_IFLNK && !(isRoot && c.o.SkipRootMeta) {
		if c.o.Preserve {
			if ss.Mode&0o7777 != ds.Mode&0o7777 {
				c.add(rel, "mode %04o in copy, %04o in source", ds.Mode&0o7777, ss.Mode&0o7777)
			}
		} else if want := ss.Mode & 0o777 &^ c.o.Umask; ds.Mode&0o777 != want {
			c.add(rel, "permissions %04o in copy, want %04o (source %04o, umask %04o)", ds.Mode&0o777, want, ss.Mode&0o7777, c.o.Umask)
		}
	}
	if c.o.Owner && (ss.Uid != ds.Uid || ss.Gid != ds.Gid) {
		c.add(rel, "owner %d:%d in copy, %d:%d in source", ds.Uid, ds.Gid, ss.Uid, ss.Gid)
	}
	if c.o.Xattrs || c.o.ACLs {
		sx, err := xattrsAt(sdir, sname, c.o)
		if err != nil {
			return fmt.Errorf("xattrs of source %q: %w", rel, err)
		}
		dx, err := xattrsAt(ddir, dname, c.o)
		if err != nil {
			return fmt.Errorf("xattrs of copy %q: %w", rel, err)
		}
		if fmt.Sprint(sx) != fmt.Sprint(dx) {
			c.add(rel, "xattrs %q in copy, %q in source", dx, sx)
		}
	}
	switch st {
	case unix.S_IFREG:
		if ss.Size != ds.Size {
			c.add(rel, "size %d in copy, %d in source", ds.Size, ss.Size)
		} else if err := c.content(sdir, sname, ddir, dname, rel); err != nil {
			return err
		}
	case unix.S_IFLNK:
		sl, err := readlinkAt(sdir, sname)
		if err != nil {
			return fmt.Errorf("readlink source %q: %w", rel, err)
		}
		dl, err := readlinkAt(ddir, dname)
		if err != nil {
			return fmt.Errorf("readlink copy %q: %w", rel, err)
		}
		if sl != dl {
			c.add(rel, "symlink target %q in copy, %q in source", dl, sl)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if ss.Rdev != ds.Rdev {
			c.add(rel, "device %d:%d in copy, %d:%d in source", unix.Major(ds.Rdev), unix.Minor(ds.Rdev), unix.Major(ss.Rdev), unix.Minor(ss.Rdev))
		}
	case unix.S_IFDIR:
		if err := c.dir(sdir, sname, ddir, dname, rel); err != nil {
			return err
		}
	}
	// Times last: a directory's mtime is final only once its children were compared (reading
	// does not change it), and reading a file does not change its mtime.
	if c.o.Preserve && (st == unix.S_IFREG || st == unix.S_IFDIR) && !(isRoot && c.o.SkipRootMeta) {
		if ss.Mtim != ds.Mtim {
			c.add(rel, "mtime %d.%09d in copy, %d.%09d in source", ds.Mtim.Sec, ds.Mtim.Nsec, ss.Mtim.Sec, ss.Mtim.Nsec)
		}
	}
	return nil
}

// xattrSkips are the name patterns /etc/xattr.conf (libattr's) marks "skip": attributes a
// filesystem keeps for itself (XFS's second copy of each ACL, trusted.SGI_ACL_*) or that only the
// kernel writes. Copies, cp's and uring-sync's, neither copy nor remove them.
var xattrSkips = sync.OnceValue(func() []string {
	b, err := os.ReadFile("/etc/xattr.conf")
	if err != nil {
		return nil
	}
	var skips []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if f := strings.Fields(line); len(f) == 2 && f[1] == "skip" {
			skips = append(skips, f[0])
		}
	}
	return skips
})

// filesystemsOwn reports whether /etc/xattr.conf marks attribute name "skip".
func filesystemsOwn(name string) bool {
	for _, p := range xattrSkips() {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// xattrsAt returns the attributes of dir/name (not followed) that o compares, name -> value.
func xattrsAt(dir int, name string, o CompareOpts) (map[string]string, error) {
	path := fmt.Sprintf("/proc/self/fd/%d/%s", dir, name)
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(path, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, a := range strings.Split(string(buf[:n]), "\x00") {
		acl := a == "system.posix_acl_access" || a == "system.posix_acl_default"
		x := strings.HasPrefix(a, "user.") || strings.HasPrefix(a, "trusted.") || strings.HasPrefix(a, "security.")
		if ((acl && o.ACLs) || (x && o.Xattrs)) && !filesystemsOwn(a) {
			v := make([]byte, 64<<10)
			m, err := unix.Lgetxattr(path, a, v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", a, err)
			}
			out[a] = string(v[:m])
		}
	}
	return out, nil
}

func (c *comparer) content(sdir int, sname string, ddir int, dname string, rel string) error {
	sfd, err := unix.Openat(sdir, sname, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open source %q: %w", rel, err)
	}
	defer unix.Close(sfd)
	dfd, err := unix.Openat(ddir, dname, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open copy %q: %w", rel, err)
	}
	defer unix.Close(dfd)
	sb, db := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		sn, err := readFull(sfd, sb)
		if err != nil {
			return fmt.Errorf("read source %q: %w", rel, err)
		}
		dn, err := readFull(dfd, db)
		if err != nil {
			return fmt.Errorf("read copy %q: %w", rel, err)
		}
		if sn != dn || !bytes.Equal(sb[:sn], db[:dn]) {
			i := 0
			for i < sn && i < dn && sb[i] == db[i] {
				i++
			}
			c.add(rel, "content differs at byte %d", off+int64(i))
			return nil
		}
		if sn == 0 {
			return nil
		}
		off += int64(sn)
	}
}

func readFull(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Read(fd, b[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

func (c *comparer) dir(sdir int, sname string, ddir int, dname string, rel string) error {
	sfd, err := unix.Openat(sdir, sname, dirFlags, 0)
	if err != nil {
		return fmt.Errorf("open source dir %q: %w", rel, err)
	}
	defer unix.Close(sfd)
	dfd, err := unix.Openat(ddir, dname, dirFlags, 0)
	if err != nil {
		return fmt.Errorf("open copy dir %q: %w", rel, err)
	}
	defer unix.Close(dfd)
	snames, err := readDirNames(sfd)
	if err != nil {
		return fmt.Errorf("list source %q: %w", rel, err)
	}
	dnames, err := readDirNames(dfd)
	if err != nil {
		return fmt.Errorf("list copy %q: %w", rel, err)
	}
	inSrc := make(map[string]bool, len(snames))
	for _, n := range snames {
		child := joinRel(rel, n)
		if c.o.Excluded != nil && c.o.Excluded(child) {
			continue
		}
		inSrc[n] = true
		if err := c.entry(sfd, n, dfd, n, child); err != nil {
			return err
		}
	}
	for _, n := range dnames {
		child := joinRel(rel, n)
		if inSrc[n] || (c.o.AllowExtra != nil && c.o.AllowExtra(child)) {
			continue
		}
		var st unix.Stat_t
		_ = unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW)
		if c.o.Excluded != nil && c.o.Excluded(child) {
			c.add(child, "excluded %s is present in copy", typeName(st.Mode))
		} else {
			c.add(child, "extra %s in copy, not in source", typeName(st.Mode))
		}
	}
	return nil
}

// setOf returns a predicate true for the given tree paths.
func setOf(paths ...string) func(string) bool {
	m := make(map[string]bool, len(paths))
	for _, p := range paths {
		m[p] = true
	}
	return func(rel string) bool { return m[rel] }
}
