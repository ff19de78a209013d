package e2e

// Tree building and inspection through directory file descriptors.
//
// A path inside a tree is a slash-separated relative path ("a/b/c"); its components may hold
// any byte except '/' and NUL. No helper here ever hands a full path string to the kernel:
// each component is resolved with openat(dirfd, name, O_NOFOLLOW), so paths longer than
// PATH_MAX (4096 bytes) work, and a symlink is never followed where a directory is expected.

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// splitRel splits a relative tree path into its components; "" and "." mean the root.
func splitRel(rel string) []string {
	if rel == "" || rel == "." {
		return nil
	}
	return strings.Split(rel, "/")
}

// joinRel joins tree path components.
func joinRel(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" && p != "." {
			out = append(out, p)
		}
	}
	return strings.Join(out, "/")
}

// openRoot opens a (short) root directory path.
func openRoot(root string) (int, error) {
	return unix.Open(root, dirFlags&^unix.O_NOFOLLOW, 0)
}

// openDirAt walks the components of rel below dirfd and returns an fd of the final directory.
// With create, missing directories are made with mode 0755 (filtered by the umask).
// dirfd itself is not closed.
func openDirAt(dirfd int, rel string, create bool) (int, error) {
	fd, err := unix.Dup(dirfd)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	for _, c := range splitRel(rel) {
		nfd, err := unix.Openat(fd, c, dirFlags, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				nfd, err = unix.Openat(fd, c, dirFlags, 0)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("open dir component %q of %q: %w", c, rel, err)
		}
		fd = nfd
	}
	return fd, nil
}

// Tree builds and inspects a directory tree rooted at Root. Every method fails the test on error.
type Tree struct {
	t    testing.TB
	Root string
}

// NewTree returns a Tree rooted at root, creating the root directory if it is missing.
func NewTree(t testing.TB, root string) *Tree {
	t.Helper()
	if err := unix.Mkdir(root, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		t.Fatalf("mkdir %s: %v", root, err)
	}
	return &Tree{t: t, Root: root}
}

// at runs fn with an fd of the parent directory of rel (created if missing) and rel's base name.
func (tr *Tree) at(rel string, fn func(dirfd int, name string) error) {
	tr.t.Helper()
	if err := tr.try(rel, fn); err != nil {
		tr.t.Fatalf("tree %s: %q: %v", tr.Root, rel, err)
	}
}

func (tr *Tree) try(rel string, fn func(dirfd int, name string) error) error {
	parts := splitRel(rel)
	if len(parts) == 0 {
		return fmt.Errorf("empty path")
	}
	root, err := openRoot(tr.Root)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	dir, err := openDirAt(root, strings.Join(parts[:len(parts)-1], "/"), true)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	return fn(dir, parts[len(parts)-1])
}

// Dir makes rel and any missing parents, then sets rel's mode exactly (no umask).
func (tr *Tree) Dir(rel string, mode uint32) *Tree {
	tr.t.Helper()
	tr.at(rel, func(dirfd int, name string) error {
		if err := unix.Mkdirat(dirfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		return unix.Fchmodat(dirfd, name, mode, 0)
	})
	return tr
}

// File writes data to rel (replacing any previous file) and sets its mode exactly.
func (tr *Tree) File(rel string, data []byte, mode uint32) *Tree {
	tr.t.Helper()
	tr.at(rel, func(dirfd int, name string) error {
		fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for len(data) > 0 {
			n, err := unix.Write(fd, data)
			if err != nil {
				return err
			}
			data = data[n:]
		}
		return unix.Fchmod(fd, mode)
	})
	return tr
}

// Symlink makes rel a symlink holding target verbatim.
func (tr *Tree) Symlink(rel, target string) *Tree {
	tr.t.Helper()
	tr.at(rel, func(dirfd int, name string) error { return unix.Symlinkat(target, dirfd, name) })
	return tr
}

// Mknod makes a special file (S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK in mode) and sets its permissions exactly.
func (tr *Tree) Mknod(rel string, mode uint32, dev int) error {
	tr.t.Helper()
	return tr.try(rel, func(dirfd int, name string) error {
		if err := unix.Mknodat(dirfd, name, mode, dev); err != nil {
			return err
		}
		return unix.Fchmodat(dirfd, name, mode&0o7777, 0)
	})
}

// Chmod sets rel's mode exactly (rel must not be a symlink).
func (tr *Tree) Chmod(rel string, mode uint32) *Tree {
	tr.t.Helper()
	tr.at(rel, func(dirfd int, name string) error { return unix.Fchmodat(dirfd, name, mode, 0) })
	return tr
}

// Times sets rel's atime and mtime (nanosecond precision) without following a symlink.
func (tr *Tree) Times(rel string, atime, mtime unix.Timespec) *Tree {
	tr.t.Helper()
	tr.at(rel, func(dirfd int, name string) error {
		return unix.UtimesNanoAt(dirfd, name, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW)
	})
	return tr
}

// Remove unlinks rel (a directory must be empty).
func (tr *Tree) Remove(rel string) *Tree {
	tr.t.Helper()
	tr.at(rel, func(dirfd int, name string) error {
		err := unix.Unlinkat(dirfd, name, 0)
		if errors.Is(err, unix.EISDIR) {
			err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		}
		return err
	})
	return tr
}

// Lstat returns rel's stat without following a symlink, and whether it exists.
func (tr *Tree) Lstat(rel string) (unix.Stat_t, bool) {
	tr.t.Helper()
	var st unix.Stat_t
	if len(splitRel(rel)) == 0 {
		if err := unix.Lstat(tr.Root, &st); err != nil {
			return st, false
		}
		return st, true
	}
	err := tr.try(rel, func(dirfd int, name string) error {
		return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return st, false
		}
		tr.t.Fatalf("lstat %q in %s: %v", rel, tr.Root, err)
	}
	return st, true
}

// Exists reports whether rel exists (a dangling symlink exists).
func (tr *Tree) Exists(rel string) bool {
	tr.t.Helper()
	_, ok := tr.Lstat(rel)
	return ok
}

// ReadFile returns rel's bytes.
func (tr *Tree) ReadFile(rel string) []byte {
	tr.t.Helper()
	var out []byte
	tr.at(rel, func(dirfd int, name string) error {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		out, err = readAll(fd)
		return err
	})
	return out
}

// ChownAll changes the owner of every entry of the tree (root included) without following symlinks.
func (tr *Tree) ChownAll(uid, gid int) {
	tr.t.Helper()
	if err := unix.Lchown(tr.Root, uid, gid); err != nil {
		tr.t.Fatal(err)
	}
	root, err := openRoot(tr.Root)
	if err != nil {
		tr.t.Fatal(err)
	}
	defer unix.Close(root)
	if err := walkFd(root, "", func(dirfd int, name, rel string, st *unix.Stat_t) error {
		return unix.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		tr.t.Fatal(err)
	}
}

// Paths lists every entry below the root (pre-order, sorted per directory).
func (tr *Tree) Paths() []string {
	tr.t.Helper()
	var out []string
	root, err := openRoot(tr.Root)
	if err != nil {
		tr.t.Fatal(err)
	}
	defer unix.Close(root)
	if err := walkFd(root, "", func(_ int, _, rel string, _ *unix.Stat_t) error {
		out = append(out, rel)
		return nil
	}); err != nil {
		tr.t.Fatal(err)
	}
	return out
}

// walkFd calls fn for every entry below dirfd (pre-order), then descends into directories.
func walkFd(dirfd int, rel string, fn func(dirfd int, name, rel string, st *unix.Stat_t) error) error {
	names, err := readDirNames(dirfd)
	if err != nil {
		return fmt.Errorf("list %q: %w", rel, err)
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("lstat %q: %w", joinRel(rel, name), err)
		}
		if err := fn(dirfd, name, joinRel(rel, name), &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			sub, err := unix.Openat(dirfd, name, dirFlags, 0)
			if err != nil {
				return fmt.Errorf("open %q: %w", joinRel(rel, name), err)
			}
			err = walkFd(sub, joinRel(rel, name), fn)
			unix.Close(sub)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// readDirNames lists a directory fd with getdents64, sorted, without "." and "..".
func readDirNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", dirFlags, 0) // own offset, dirfd stays untouched
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	slices.Sort(names)
	return names, nil
}

func readAll(fd int) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, 1<<20)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out.Bytes(), nil
		}
		out.Write(buf[:n])
	}
}

func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Data returns n deterministic pseudo-random bytes for a seed string.
func Data(seed string, n int) []byte {
	var key [32]byte
	copy(key[:], seed)
	for i := 32; i < len(seed); i++ {
		key[i%32] ^= seed[i]
	}
	key[31] ^= byte(n)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// ts builds a timespec.
func ts(sec, nsec int64) unix.Timespec { return unix.Timespec{Sec: sec, Nsec: nsec} }

// StampAll gives every entry (symlinks and the root included) distinct deterministic atimes
// and mtimes with nanosecond parts, derived from its path, so two builds of one fixture are
// identical and a copy that drops or rounds times is caught.
func (tr *Tree) StampAll() {
	tr.t.Helper()
	root, err := openRoot(tr.Root)
	if err != nil {
		tr.t.Fatal(err)
	}
	defer unix.Close(root)
	// List everything first, then set times: listing a directory updates its atime.
	rels := tr.Paths()
	for _, rel := range rels {
		s := stampFor(rel)
		tr.at(rel, func(dirfd int, name string) error {
			return unix.UtimesNanoAt(dirfd, name, []unix.Timespec{s.atime, s.mtime}, unix.AT_SYMLINK_NOFOLLOW)
		})
	}
	if err := unix.UtimesNano(tr.Root, []unix.Timespec{ts(1_234_567_890, 1), ts(1_234_567_891, 2)}); err != nil {
		tr.t.Fatal(err)
	}
}

type stamp struct{ atime, mtime unix.Timespec }

// stampFor returns the times StampAll gives the entry at rel.
func stampFor(rel string) stamp {
	h := fnv.New64a()
	h.Write([]byte(rel))
	v := int64(h.Sum64() >> 1)
	return stamp{
		atime: ts(1_000_000_000+v%100_000_000, v%1_000_000_000),
		mtime: ts(1_100_000_000+(v/7)%100_000_000, (v/3)%1_000_000_000),
	}
}

// tempDir returns t.TempDir() and, for its removal, first makes every directory below it
// writable and searchable again: a test may leave read-only (0555) or locked (0000) directories,
// which a non-root user could not empty.
func tempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { makeWritable(dir) })
	return dir
}

func makeWritable(root string) {
	_ = unix.Chmod(root, 0o755)
	fd, err := openRoot(root)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_ = walkFd(fd, "", func(dirfd int, name, _ string, st *unix.Stat_t) error {
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			_ = unix.Fchmodat(dirfd, name, 0o755, 0)
		}
		return nil
	})
}
