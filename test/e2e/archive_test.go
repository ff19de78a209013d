package e2e

// Archive metadata through the CLI: owners (-o -g), extended attributes (-X) and POSIX ACLs (-A),
// on both engines.

import (
	bin "encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// aclXattr encodes a POSIX ACL the way the kernel stores it in system.posix_acl_*: version 2,
// then (tag, perm, id) entries. Each entry is {tag, perm, id}; id is ignored for the *_OBJ,
// MASK and OTHER tags.
func aclXattr(entries ...[3]uint32) []byte {
	b := bin.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = bin.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = bin.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = bin.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

const (
	aclUserObj, aclUser, aclGroupObj, aclGroup, aclMask, aclOther = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
	noID                                                          = 0xffffffff
)

// A user:65534:rwx entry with mask rwx, and the owner/group/other bits of mode 0640.
var testACL = aclXattr([3]uint32{aclUserObj, 6, noID}, [3]uint32{aclUser, 7, 65534}, [3]uint32{aclGroupObj, 4, noID},
	[3]uint32{aclMask, 7, noID}, [3]uint32{aclOther, 0, noID})

func setXattr(t *testing.T, path, name string, value []byte) {
	t.Helper()
	if err := unix.Lsetxattr(path, name, value, 0); err != nil {
		t.Skipf("cannot set %s on %s here: %v", name, path, err)
	}
}

// TestArchiveMetadata: -p -o -g -X -A keeps owners, xattrs (also on directories and symlinks)
// and ACLs (access and default); a re-run writes nothing; a changed xattr alone is brought over
// on a re-run; without the flags none of it is copied.
func TestArchiveMetadata(t *testing.T) {
	needRoot(t, "gives files away to another owner and sets trusted.* attributes")
	for _, e := range allEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildMany(40, 2)(t, src)
			src.File("big", Data("archive-big", 2*mib+3), 0o644)
			src.File("acl/file", []byte("acl"), 0o640)
			src.File("suid", []byte("#!/bin/true\n"), 0o755)
			src.Symlink("link", "big")
			if err := src.Mknod("fifo", unix.S_IFIFO|0o644, 0); err != nil {
				t.Fatal(err)
			}
			setXattr(t, src.Root+"/d000/f00000", "user.color", []byte("blue"))
			setXattr(t, src.Root+"/big", "user.big", []byte{0, 1, 2, 255})
			setXattr(t, src.Root+"/d001", "user.dir", []byte("x"))
			setXattr(t, src.Root+"/link", "trusted.link", []byte("on a symlink"))
			setXattr(t, src.Root+"/acl/file", "system.posix_acl_access", testACL)
			setXattr(t, src.Root+"/acl", "system.posix_acl_default", testACL)
			for _, p := range []string{"d000/f00000", "big", "fifo", "suid", "acl"} {
				if err := unix.Lchown(src.Root+"/"+p, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			}
			if err := unix.Lchown(src.Root+"/link", 65534, 0); err != nil {
				t.Fatal(err)
			}
			src.Chmod("suid", 0o4755) // after chown, which clears it
			dst := filepath.Join(dir, "dst")
			all := CompareOpts{Preserve: true, Owner: true, Xattrs: true, ACLs: true}

			copyTree(t, e, runOpts{}, 0, "-p", "-o", "-g", "-X", "-A", src.Root, dst)
			requireSameTree(t, src.Root, dst, all)

			before := inodesAndCtimes(t, dst)
			time.Sleep(20 * time.Millisecond)
			r := copyTree(t, e, runOpts{}, 0, "-p", "-o", "-g", "-X", "-A", src.Root, dst)
			after := inodesAndCtimes(t, dst)
			for p, b := range before {
				if a := after[p]; a != b {
					t.Errorf("re-run touched %s: %s -> %s\n%s", p, b, a, r)
				}
			}

			// An xattr changed in the source (its mtime does not move): the re-run fixes the copy's.
			setXattr(t, src.Root+"/d000/f00000", "user.color", []byte("green"))
			setXattr(t, dst+"/d001", "user.stale", []byte("only in the copy"))
			copyTree(t, e, runOpts{}, 0, "-p", "-o", "-g", "-X", "-A", src.Root, dst)
			requireSameTree(t, src.Root, dst, all)

			// Without the flags: no owners, xattrs or ACLs.
			plain := filepath.Join(dir, "plain")
			copyTree(t, e, runOpts{}, 0, "-p", src.Root, plain)
			if d, _ := CompareTrees(src.Root, plain, all); len(d) == 0 {
				t.Errorf("a copy without -o -g -X -A has the same owners, xattrs and ACLs")
			}
			var st unix.Stat_t
			if err := unix.Lstat(plain+"/big", &st); err != nil || st.Uid != 0 {
				t.Errorf("without -o the copy is owned by %d, want 0 (%v)", st.Uid, err)
			}
		})
	}
}

// TestACLsReplaceInheritedOnes: a destination directory with a default ACL gives new files an
// ACL the source files do not have; -A removes it.
func TestACLsReplaceInheritedOnes(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("f", []byte("f"), 0o644)
			src.File("sub/g", []byte("g"), 0o644)
			dst := NewTree(t, filepath.Join(dir, "dst"))
			setXattr(t, dst.Root, "system.posix_acl_default", testACL)
			copyTree(t, e, runOpts{}, 0, "-A", src.Root, dst.Root)
			requireSameTree(t, src.Root, dst.Root, CompareOpts{Preserve: true, ACLs: true, SkipRootMeta: true,
				AllowExtra: func(string) bool { return false }})
		})
	}
}

// TestOneFileSystem: -x copies a mount point inside the source as an empty directory with the
// mounted directory's mode, and nothing below it; without -x its contents are copied.
func TestOneFileSystem(t *testing.T) {
	needRoot(t, "mounts a tmpfs inside the source")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("a/f", []byte("f"), 0o644)
			src.Dir("a/mnt", 0o755)
			mnt := src.Root + "/a/mnt"
			if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=8m,mode=0711"); err != nil {
				t.Skipf("cannot mount a tmpfs: %v", err)
			}
			t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
			src.File("a/mnt/inside/g", []byte("g"), 0o644)

			dst := filepath.Join(dir, "x")
			copyTree(t, e, runOpts{}, 0, "-p", "-x", src.Root, dst)
			var st unix.Stat_t
			if err := unix.Lstat(dst+"/a/mnt", &st); err != nil || st.Mode&0o7777 != 0o711 {
				t.Errorf("-x: mount point copied as mode %o (%v), want an empty 0711 directory", st.Mode&0o7777, err)
			}
			if names, _ := filepath.Glob(dst + "/a/mnt/*"); len(names) != 0 {
				t.Errorf("-x crossed into the mount: %v", names)
			}
			if _, err := os.Stat(dst + "/a/f"); err != nil {
				t.Errorf("-x lost a file on the source's own filesystem: %v", err)
			}
			all := filepath.Join(dir, "all")
			copyTree(t, e, runOpts{}, 0, "-p", src.Root, all)
			requireSameTree(t, src.Root, all, CompareOpts{Preserve: true})
		})
	}
}

// TestCopyLinks: -L copies what symlinks point to (files and directories, inside or outside the
// tree); a dangling symlink and a symlink to an ancestor fail with a message and the rest is
// copied; without -L symlinks stay symlinks.
func TestCopyLinks(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("real/a", []byte("a"), 0o644)
			outside := NewTree(t, filepath.Join(dir, "outside"))
			outside.File("sub/o", []byte("o"), 0o600)
			src.Symlink("alink", "real/a")
			src.Symlink("out", outside.Root)
			want := filepath.Join(dir, "want")
			NewTree(t, want).File("real/a", []byte("a"), 0o644).File("alink", []byte("a"), 0o644).
				File("out/sub/o", []byte("o"), 0o600)
			dst := filepath.Join(dir, "dst")
			copyTree(t, e, runOpts{}, 0, "-L", src.Root, dst)
			requireSameTree(t, want, dst, CompareOpts{Umask: testUmask, SkipRootMeta: true})

			src.Symlink("dangling", "nowhere")
			src.Symlink("real/up", "..")
			r := copyTree(t, e, runOpts{}, 1, "-L", src.Root, filepath.Join(dir, "dst2"))
			requireErrorsReported(t, r, "dangling", "real/up")
			requireSameTree(t, want, filepath.Join(dir, "dst2"), CompareOpts{Umask: testUmask, SkipRootMeta: true})

			plain := filepath.Join(dir, "plain")
			copyTree(t, e, runOpts{}, 0, src.Root, plain)
			requireSameTree(t, src.Root, plain, CompareOpts{Umask: testUmask})
		})
	}
}

// linkGroups maps each inode under root with more than one path to its sorted paths (walked
// through directory descriptors: paths may be longer than PATH_MAX).
func linkGroups(t *testing.T, root string) map[uint64][]string {
	t.Helper()
	fd, err := openRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	groups := map[uint64][]string{}
	err = walkFd(fd, "", func(_ int, _, rel string, st *unix.Stat_t) error {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			groups[st.Ino] = append(groups[st.Ino], rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for ino, paths := range groups {
		if len(paths) < 2 {
			delete(groups, ino)
		} else {
			sort.Strings(paths)
		}
	}
	return groups
}

func groupSet(g map[uint64][]string) []string {
	var out []string
	for _, paths := range g {
		out = append(out, strings.Join(paths, "+"))
	}
	sort.Strings(out)
	return out
}

// TestHardLinks: -H gives every group of in-tree links one inode in the copy (small files on
// the rings, big ones on the bulk path, groups spread over many directories, a group with a link
// outside the tree), copies each group's bytes once, and a re-run writes nothing and repairs a
// link that was broken in the copy. Without -H each path is its own file.
func TestHardLinks(t *testing.T) {
	for _, e := range allEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			const groups = 400
			for i := 0; i < groups; i++ {
				src.File(fmt.Sprintf("d%02d/f%04d", i%20, i), Data(fmt.Sprint("hl", i), 100+i), 0o644)
				for k := 1; k <= 1+i%3; k++ {
					if err := os.Link(src.Root+fmt.Sprintf("/d%02d/f%04d", i%20, i),
						src.Root+fmt.Sprintf("/e%02d/l%04d-%d", (i+k)%7, i, k)); err != nil {
						if err := os.MkdirAll(src.Root+fmt.Sprintf("/e%02d", (i+k)%7), 0o755); err != nil {
							t.Fatal(err)
						}
						if err := os.Link(src.Root+fmt.Sprintf("/d%02d/f%04d", i%20, i),
							src.Root+fmt.Sprintf("/e%02d/l%04d-%d", (i+k)%7, i, k)); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			src.File("big/a", Data("hl-big", 3*mib), 0o644)
			if err := os.Link(src.Root+"/big/a", src.Root+"/big/b"); err != nil {
				t.Fatal(err)
			}
			src.File("half/in", []byte("one link is outside the tree"), 0o644)
			if err := os.Link(src.Root+"/half/in", filepath.Join(dir, "outside")); err != nil {
				t.Fatal(err)
			}
			src.File("solo", []byte("no links"), 0o644)

			dst := filepath.Join(dir, "dst")
			r := copyTree(t, e, runOpts{}, 0, "-p", "-H", src.Root, dst)
			requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true})
			if got, want := groupSet(linkGroups(t, dst)), groupSet(linkGroups(t, src.Root)); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("link groups differ:\ncopy   %v\nsource %v", got, want)
			}
			// Each group's bytes are copied once: groups + big + half/in + solo files.
			if !strings.Contains(r.stderr, fmt.Sprintf(" %d files (", groups+3)) {
				t.Errorf("want %d files copied, the rest linked\n%s", groups+3, clip(r.stderr))
			}

			before := inodesAndCtimes(t, dst)
			time.Sleep(20 * time.Millisecond)
			r = copyTree(t, e, runOpts{}, 0, "-p", "-H", src.Root, dst)
			after := inodesAndCtimes(t, dst)
			for p, b := range before {
				if a := after[p]; a != b {
					t.Fatalf("re-run touched %s: %s -> %s\n%s", p, b, a, clip(r.stderr))
				}
			}

			// A link broken in the copy (replaced by another inode) is made again.
			if err := os.Remove(dst + "/e01/l0000-1"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst+"/e01/l0000-1", Data("hl0", 100), 0o644); err != nil {
				t.Fatal(err)
			}
			copyTree(t, e, runOpts{}, 0, "-p", "-H", src.Root, dst)
			if got, want := groupSet(linkGroups(t, dst)), groupSet(linkGroups(t, src.Root)); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("after repair, link groups differ:\ncopy   %v\nsource %v", got, want)
			}

			plain := filepath.Join(dir, "plain")
			copyTree(t, e, runOpts{}, 0, src.Root, plain)
			if g := linkGroups(t, plain); len(g) != 0 {
				t.Errorf("without -H the copy has %d link groups", len(g))
			}
		})
	}
}

// TestHardLinksOfSpecialEntries: -H keeps hard links between symlinks, FIFOs and device nodes
// too (as cp -a and rsync -aH do), across directories; a re-run changes nothing, and a link
// broken in the copy is made again.
func TestHardLinksOfSpecialEntries(t *testing.T) {
	needRoot(t, "makes device nodes")
	for _, e := range allEngines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("a/file", []byte("x"), 0o644)
			src.Symlink("a/sym", "file")
			for _, m := range []struct {
				name string
				mode uint32
				dev  int
			}{{"a/fifo", unix.S_IFIFO | 0o640, 0}, {"a/null", unix.S_IFCHR | 0o666, int(unix.Mkdev(1, 3))}} {
				if err := src.Mknod(m.name, m.mode, m.dev); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range []string{"sym", "fifo", "null"} {
				for _, to := range []string{"a/" + p + "2", "b/" + p} {
					if err := os.MkdirAll(filepath.Dir(src.Root+"/"+to), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.Link(src.Root+"/a/"+p, src.Root+"/"+to); err != nil {
						t.Fatal(err)
					}
				}
			}
			dst := filepath.Join(dir, "dst")
			copyTree(t, e, runOpts{}, 0, "-a", src.Root, dst)
			requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true, Owner: true})
			want := strings.Join(groupSet(linkGroups(t, src.Root)), " ")
			if got := strings.Join(groupSet(linkGroups(t, dst)), " "); got != want {
				t.Fatalf("link groups differ:\ncopy   %v\nsource %v", got, want)
			}

			before := inodesAndCtimes(t, dst)
			time.Sleep(20 * time.Millisecond)
			r := copyTree(t, e, runOpts{}, 0, "-a", src.Root, dst)
			for p, b := range before {
				if a := inodesAndCtimes(t, dst)[p]; a != b {
					t.Fatalf("re-run touched %s: %s -> %s\n%s", p, b, a, clip(r.stderr))
				}
			}

			if err := os.Remove(dst + "/b/fifo"); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mkfifo(dst+"/b/fifo", 0o640); err != nil {
				t.Fatal(err)
			}
			copyTree(t, e, runOpts{}, 0, "-a", src.Root, dst)
			if got := strings.Join(groupSet(linkGroups(t, dst)), " "); got != want {
				t.Fatalf("after repair, link groups differ:\ncopy   %v\nsource %v", got, want)
			}
		})
	}
}

// sparseFile writes a file of size bytes that holds data only at the given offsets (4 KiB each).
func sparseFile(t *testing.T, path string, size int64, at ...int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, off := range at {
		if _, err := f.WriteAt(Data(fmt.Sprint("sparse", off), 4096), off); err != nil {
			t.Fatal(err)
		}
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestSparse: -S keeps holes (a copy allocates what its source does, data in the middle, at the
// start, a hole at the end) on both engines; without -S the copy is written out in full.
func TestSparse(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.Dir("s", 0o755)
			sparseFile(t, src.Root+"/s/middle", 64*mib, 20*mib, 40*mib+4096)
			sparseFile(t, src.Root+"/s/head", 8*mib, 0)
			sparseFile(t, src.Root+"/s/small", 256*1024, 128*1024) // below the bulk size
			sparseFile(t, src.Root+"/s/empty", 5*mib)
			src.File("s/dense", Data("dense", 3*mib), 0o644)
			if a := allocated(t, src.Root+"/s/middle"); a >= 1*mib {
				t.Skipf("this filesystem does not keep holes (%d bytes allocated)", a)
			}
			dst := filepath.Join(dir, "dst")
			copyTree(t, e, runOpts{}, 0, "-p", "-S", src.Root, dst)
			requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true})
			for _, f := range []string{"middle", "head", "small", "empty", "dense"} {
				s, d := allocated(t, src.Root+"/s/"+f), allocated(t, dst+"/s/"+f)
				if d > s+64*1024 {
					t.Errorf("-S: %s allocates %d bytes in the copy, %d in the source", f, d, s)
				}
			}
			// Verified: the read-back sees the holes as zeros, as the source digest does.
			verified := filepath.Join(dir, "verified")
			r := copyTree(t, e, runOpts{}, 0, "-p", "-S", "--verify", src.Root, verified)
			requireSameTree(t, src.Root, verified, CompareOpts{Preserve: true})
			if !regexp.MustCompile(`5 files \([^)]*\) read back and verified`).MatchString(r.stderr) || allocated(t, verified+"/s/middle") > allocated(t, src.Root+"/s/middle")+64*1024 {
				t.Errorf("-S --verify: not all verified or not sparse\n%s", r)
			}
			plain := filepath.Join(dir, "plain")
			copyTree(t, e, runOpts{}, 0, "-p", src.Root, plain)
			if d := allocated(t, plain+"/s/middle"); d < 60*mib {
				t.Errorf("without -S the copy allocates only %d bytes: holes kept without being asked?", d)
			}
		})
	}
}

// fidelity is one attribute TestArchiveFidelity checks: lost(src, dst) says how the copy dst lost
// it ("" when it kept it).
type fidelity struct {
	name string
	lost func(src, dst string) string
}

// fidelityChecks are the attributes TestArchiveFidelity checks.
func fidelityChecks(t *testing.T) []fidelity {
	// Each attribute is checked apart from the path beyond PATH_MAX (its own row), so that a tool
	// that cannot copy that one path is still judged on the others.
	// The other rows judge what a tool did copy: an entry it left out (rclone copies no FIFO or
	// device) counts against the first row only.
	// A lost attribute is told by its first differences, for the README's table.
	why := func(d []string, err error) string {
		switch {
		case err != nil:
			return err.Error()
		case len(d) > 4:
			return strings.Join(d[:4], "; ") + fmt.Sprintf("; and %d more", len(d)-4)
		}
		return strings.Join(d, "; ")
	}
	same := func(o CompareOpts) func(src, dst string) string {
		return func(src, dst string) string {
			d, err := CompareTrees(src, dst, o)
			var kept []string
			for _, diff := range d {
				if !strings.HasPrefix(diff, `"aaaa`) && !strings.Contains(diff, ": missing in copy") {
					kept = append(kept, diff)
				}
			}
			return why(kept, err)
		}
	}
	return []fidelity{
		{"content, types, symlinks, specials", func(src, dst string) string {
			// Strict: every entry there (modes and times are the next rows').
			d, err := CompareTrees(src, dst, CompareOpts{Preserve: true})
			var kept []string
			for _, diff := range d {
				if !strings.HasPrefix(diff, `"aaaa`) && !strings.Contains(diff, ": mode ") && !strings.Contains(diff, ": mtime ") {
					kept = append(kept, diff)
				}
			}
			return why(kept, err)
		}},
		{"a path longer than PATH_MAX", func(src, dst string) string {
			fd, err := openRoot(dst)
			if err != nil {
				return err.Error()
			}
			defer unix.Close(fd)
			long := ""
			for i := 0; i < 25; i++ {
				long += strings.Repeat(string(rune('a'+i)), 200) + "/"
			}
			leaf, err := openDirAt(fd, strings.TrimSuffix(long, "/"), false)
			if err != nil {
				return "not copied"
			}
			defer unix.Close(leaf)
			var st unix.Stat_t
			if unix.Fstatat(leaf, "leaf", &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Size != 15 {
				return "not copied"
			}
			return ""
		}},
		{"modes (setuid/sticky too), ns mtimes", same(CompareOpts{Preserve: true})},
		{"owners and groups", same(CompareOpts{Owner: true})},
		{"xattrs (files, dirs, symlinks)", same(CompareOpts{Xattrs: true})},
		{"ACLs (access, default)", same(CompareOpts{ACLs: true})},
		{"hard links", func(src, dst string) string {
			s, d := strings.Join(groupSet(linkGroups(t, src)), " "), strings.Join(groupSet(linkGroups(t, dst)), " ")
			if s != d {
				return fmt.Sprintf("linked: %q, want %q", d, s)
			}
			return ""
		}},
		{"sparse files stay sparse", func(src, dst string) string {
			if s, d := allocated(t, src+"/sparse"), allocated(t, dst+"/sparse"); d > s+64*1024 {
				return fmt.Sprintf("%d bytes allocated, source %d", d, s)
			}
			return ""
		}},
	}
}

// TestArchiveFidelity: -a keeps everything on a tree with every kind of entry and attribute, on
// both engines. For the README's table, cp -a and rsync -aHAXS get the same checks (logged, not
// asserted: they are the peers).
func TestArchiveFidelity(t *testing.T) {
	needRoot(t, "gives files to other owners and sets trusted.* attributes")
	dir := tempDir(t)
	src := NewTree(t, filepath.Join(dir, "src"))
	buildMany(30, 3)(t, src)
	src.File("suid", []byte("#!/bin/true\n"), 0o755)
	src.Dir("sticky", 0o1777)
	src.File("deep/"+strings.Repeat("n", 200)+"/f", []byte("long names"), 0o600)
	src.Symlink("link", "suid")
	if err := src.Mknod("fifo", unix.S_IFIFO|0o640, 0); err != nil {
		t.Fatal(err)
	}
	if err := src.Mknod("null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	sparseFile(t, src.Root+"/sparse", 32*mib, 8*mib)
	if err := os.Link(src.Root+"/d000/f00000", src.Root+"/d001/hard"); err != nil {
		t.Fatal(err)
	}
	setXattr(t, src.Root+"/d000/f00000", "user.k", []byte("v"))
	setXattr(t, src.Root+"/d002", "user.dir", []byte("d"))
	setXattr(t, src.Root+"/link", "trusted.l", []byte("l"))
	setXattr(t, src.Root+"/d001/f00001", "system.posix_acl_access", testACL)
	setXattr(t, src.Root+"/d002", "system.posix_acl_default", testACL)
	for _, p := range []string{"suid", "fifo", "d001", "d000/f00003"} {
		if err := unix.Lchown(src.Root+"/"+p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	src.Chmod("suid", 0o4755)
	src.Times("d002/f00002", unix.Timespec{Sec: 1e9, Nsec: 123456789}, unix.Timespec{Sec: 1e9, Nsec: 987654321})
	src.File("odd/new\nline", []byte("newline"), 0o644)
	src.File("odd/bad\xff\xfe", []byte("not UTF-8"), 0o644)
	src.Symlink("odd/dangling", "nowhere/at\nall")
	src.Symlink("odd/absolute", "/etc/hostname")
	long := ""
	for i := 0; i < 25; i++ { // 25 × 201 bytes: beyond PATH_MAX
		long += strings.Repeat(string(rune('a'+i)), 200) + "/"
	}
	src.File(long+"leaf", []byte("beyond PATH_MAX"), 0o640)
	if err := os.Link(src.Root+"/suid", filepath.Join(src.Root, "odd", "suid-link")); err != nil {
		t.Fatal(err)
	}

	checks := fidelityChecks(t)
	for _, e := range engines {
		for _, fs := range []string{"ext4", "tmpfs"} {
			t.Run(e.name+"/"+fs, func(t *testing.T) {
				base := dir
				if fs == "tmpfs" {
					base = mountTmpfs(t)
				} else if !onFilesystem(dir, unix.EXT4_SUPER_MAGIC) {
					t.Skipf("%s is not on ext4 here", dir)
				}
				dst := filepath.Join(base, "a-"+e.name)
				copyTree(t, e, runOpts{}, 0, "-a", src.Root, dst)
				for _, c := range checks {
					if why := c.lost(src.Root, dst); why != "" {
						t.Errorf("-a lost: %s: %s", c.name, why)
					}
				}
				requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true, Owner: true, Xattrs: true, ACLs: true})
			})
		}
	}
	peers := map[string][]string{"cp -a": {"cp", "-a"}, "rsync -aHAXS": {"rsync", "-aHAXS"}}
	// This project's rclone (build/bin/rclone, built by `make rclone`) with --metadata, --links and
	// empty directories: what rclone keeps of a local tree, on uring remotes (the engine copies) and,
	// for comparison, on plain paths (rclone's own local backend, same binary).
	rclone := filepath.Join(filepath.Dir(binary(t)), "rclone")
	rcloneArgs := []string{rclone, "copy", "-M", "--links", "--create-empty-src-dirs"}
	const rcloneURing, rcloneLocal = "rclone copy -M", "rclone copy -M (local)"
	if _, err := os.Stat(rclone); err == nil {
		peers[rcloneURing] = rcloneArgs
		peers[rcloneLocal] = rcloneArgs
	} else {
		t.Logf("rclone copy -M: %s not built (make rclone)", rclone)
	}
	names := make([]string, 0, len(peers))
	for name := range peers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		argv := peers[name]
		if _, err := exec.LookPath(argv[0]); err != nil {
			t.Logf("%s: not installed", name)
			continue
		}
		dst := filepath.Join(dir, strings.NewReplacer(" ", "", "(", "", ")", "").Replace(name))
		from, to := src.Root, dst
		switch name {
		case "rsync -aHAXS":
			from += "/"
		case rcloneURing:
			from, to = ":uring:"+from, ":uring:"+to
		}
		cmd := exec.Command(argv[0], append(argv[1:], from, to)...)
		cmd.Env = append(os.Environ(), "RCLONE_CONFIG=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("%s: %v %.200s", name, err, out)
		}
		for _, c := range checks {
			why := c.lost(src.Root, dst)
			t.Logf("fidelity %-22s %-40s %v %.300s", name, c.name, why == "", why)
		}
	}
}

// TestChownKeepsSetuid: a re-run with -a that fixes only the owner of a setuid file (a -p copy
// before) keeps its setuid bit (chown clears it; the mode is applied after).
func TestChownKeepsSetuid(t *testing.T) {
	needRoot(t, "gives a file to another owner")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("suid", []byte("#!/bin/true\n"), 0o755)
			if err := unix.Chown(src.Root+"/suid", 1000, 1000); err != nil {
				t.Fatal(err)
			}
			src.Chmod("suid", 0o6755)
			dst := filepath.Join(dir, "dst")
			copyTree(t, e, runOpts{}, 0, "-p", src.Root, dst)
			copyTree(t, e, runOpts{}, 0, "-a", src.Root, dst)
			requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true, Owner: true, SkipRootMeta: true})
		})
	}
}

// TestXattrsUnprivileged: -X run by an unprivileged user copies user.* attributes and leaves
// alone the namespaces it cannot set (a file capability): the file is still copied, exit 0.
func TestXattrsUnprivileged(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			base := nobodyDir(t)
			src := NewTree(t, filepath.Join(base, "src"))
			src.File("tool", []byte("#!/bin/true\n"), 0o755)
			src.File("plain", []byte("p"), 0o644)
			setXattr(t, src.Root+"/tool", "user.note", []byte("kept"))
			// security.capability v2, cap_net_raw permitted: only root may set it.
			capv2 := []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			setXattr(t, src.Root+"/tool", "security.capability", capv2)
			src.ChownAll(nobodyID, nobodyID)
			dst := filepath.Join(base, "dst")
			copyTree(t, e, runOpts{prefix: nobodyPrefix()}, 0, "-X", src.Root, dst)
			buf := make([]byte, 64)
			if n, err := unix.Lgetxattr(dst+"/tool", "user.note", buf); err != nil || string(buf[:n]) != "kept" {
				t.Errorf("user.note = %q, %v; want kept", buf[:max(n, 0)], err)
			}
			if _, err := unix.Lgetxattr(dst+"/tool", "security.capability", buf); err == nil {
				t.Errorf("an unprivileged copy has the file capability")
			}
		})
	}
}

// TestReadOnlyDirectoriesUnprivileged: without privilege, a re-run (with and without -p, and with
// --delete) still updates and removes inside directories that are read-only in the source and so
// in the copy (0500, nested, and the root), as rsync does: it gives the directory its owner's rwx
// while it works in it and puts the mode back.
func TestReadOnlyDirectoriesUnprivileged(t *testing.T) {
	for _, e := range engines {
		for _, flags := range [][]string{{"-p"}, nil} {
			t.Run(e.name+strings.Join(flags, ""), func(t *testing.T) {
				base := nobodyDir(t)
				src := NewTree(t, filepath.Join(base, "src"))
				src.File("ro/f", []byte("v1"), 0o644)
				src.File("ro/old", []byte("gone"), 0o644)
				src.File("ro/in/g", []byte("g1"), 0o644)
				src.File("ro/gone/deep/h", []byte("h"), 0o644)
				src.ChownAll(nobodyID, nobodyID)
				src.Chmod("ro/gone/deep", 0o500)
				src.Chmod("ro/gone", 0o500)
				src.Chmod("ro/in", 0o500)
				src.Chmod("ro", 0o500)
				if err := os.Chmod(src.Root, 0o500); err != nil {
					t.Fatal(err)
				}
				dst := filepath.Join(base, "dst")
				as := runOpts{prefix: nobodyPrefix()}
				copyTree(t, e, as, 0, append(flags, src.Root, dst)...)

				for _, p := range []string{".", "ro", "ro/in"} {
					if err := os.Chmod(filepath.Join(src.Root, p), 0o700); err != nil {
						t.Fatal(err)
					}
				}
				src.File("ro/f", []byte("v2, longer"), 0o644)
				src.File("ro/in/g", []byte("g2, longer"), 0o644)
				if err := os.Remove(src.Root + "/ro/old"); err != nil {
					t.Fatal(err)
				}
				for _, p := range []string{"ro/gone", "ro/gone/deep"} {
					if err := os.Chmod(filepath.Join(src.Root, p), 0o700); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.RemoveAll(src.Root + "/ro/gone"); err != nil {
					t.Fatal(err)
				}
				src.ChownAll(nobodyID, nobodyID)
				src.Chmod("ro/in", 0o500)
				src.Chmod("ro", 0o500)
				if err := os.Chmod(src.Root, 0o500); err != nil {
					t.Fatal(err)
				}
				copyTree(t, e, as, 0, append(flags, "--delete", src.Root, dst)...)
				modes := map[string]os.FileMode{}
				for _, p := range []string{".", "ro", "ro/in"} {
					fi, err := os.Lstat(filepath.Join(dst, p))
					if err != nil {
						t.Fatal(err)
					}
					modes[p] = fi.Mode().Perm()
				}
				for _, p := range []string{".", "ro", "ro/in"} {
					if err := os.Chmod(filepath.Join(dst, p), 0o700); err != nil {
						t.Fatal(err)
					}
				}
				for p, want := range map[string]string{"ro/f": "v2, longer", "ro/in/g": "g2, longer"} {
					if b, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(b) != want {
						t.Errorf("%s = %q, %v; want %q", p, b, err, want)
					}
				}
				for _, p := range []string{"ro/old", "ro/gone"} {
					if _, err := os.Lstat(filepath.Join(dst, p)); err == nil {
						t.Errorf("%s was not removed", p)
					}
				}
				if modes["."] != 0o500 || modes["ro"] != 0o500 || modes["ro/in"] != 0o500 {
					t.Errorf("modes after the re-run: %v; want the source's 0500", modes)
				}
			})
		}
	}
}

// TestXattrsOnADestinationWithout: -X into a FUSE mount without xattrs (bindfs --xattr-none)
// reports each file whose attributes could not be set (exit 1), still copies its bytes, and leaves
// it without its times, so that it never looks complete: a re-run tries it again.
func TestXattrsOnADestinationWithout(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("tagged", []byte("t"), 0o644).File("plain", []byte("p"), 0o644)
			setXattr(t, src.Root+"/tagged", "user.k", []byte("v"))
			for i := 0; i < 7; i++ { // more of the same kind: one line for them all
				src.File(fmt.Sprintf("more/t%d", i), []byte("t"), 0o644)
				setXattr(t, src.Root+fmt.Sprintf("/more/t%d", i), "user.k", []byte("v"))
			}
			mnt := mountBindfs(t, dir, "--xattr-none")
			dst := filepath.Join(mnt, "d")
			r := copyTree(t, e, runOpts{}, 1, "-X", src.Root, dst)
			if n := strings.Count(r.stderr, "set attributes '"); n != 1 {
				t.Errorf("%d lines for one kind of attribute the destination cannot store, want 1\n%s", n, r)
			}
			if !strings.Contains(r.stderr, "... and 7 more entries whose attributes could not all be set") {
				t.Errorf("no count of the others\n%s", r)
			}
			if b, err := os.ReadFile(dst + "/tagged"); err != nil || string(b) != "t" {
				t.Fatalf("the file's bytes were not copied: %q %v", b, err)
			}
			var s, d unix.Stat_t
			_ = unix.Stat(src.Root+"/tagged", &s)
			_ = unix.Stat(dst+"/tagged", &d)
			if s.Mtim == d.Mtim {
				t.Errorf("a file without its xattrs has the source's mtime: it looks complete")
			}
			r = copyTree(t, e, runOpts{}, 1, "-X", src.Root, dst)
			if n := countUpToDate(r.stderr); n != 1 {
				t.Errorf("re-run: %d up to date, want 1 (plain; the tagged files are tried again)\n%s", n, r)
			}
		})
	}
}

func onFilesystem(path string, magic int64) bool {
	var sf unix.Statfs_t
	return unix.Statfs(path, &sf) == nil && int64(sf.Type) == magic
}

// mountXFS formats a sparse image under dir as XFS, mounts it (loop) until the test ends, and
// returns the mount point; it skips the test, saying why, where that cannot be done.
func mountXFS(t *testing.T, dir string) string {
	t.Helper()
	needRoot(t, "mounts an XFS image")
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Skip("mkfs.xfs is not installed (the Makefile installs it: apt-get install xfsprogs)")
	}
	img, mnt := filepath.Join(dir, "xfs.img"), filepath.Join(dir, "xfs")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 320<<20); err != nil { // XFS wants 300 MiB at least
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount an image here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt
}

// TestFilesystemsOwnXattrsAreLeftAlone: -X neither copies nor removes the attributes that
// /etc/xattr.conf marks "skip" (as cp -a does): XFS keeps each POSIX ACL a second time as
// trusted.SGI_ACL_FILE / trusted.SGI_ACL_DEFAULT, which a source on another filesystem lacks.
// Removing them from an XFS copy as stale removed its ACLs on every second run, with exit 0;
// copying them from an XFS source left junk attributes on other filesystems.
func TestFilesystemsOwnXattrsAreLeftAlone(t *testing.T) {
	needRoot(t, "sets trusted.* attributes")
	if _, err := os.Stat("/etc/xattr.conf"); err != nil {
		t.Skipf("no /etc/xattr.conf (libattr's) on this machine: %v", err)
	}
	for _, e := range allEngines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			// Any filesystem with trusted.*: one such attribute in the copy, one in the source.
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("f", []byte("f"), 0o644)
			src.File("g", []byte("g"), 0o644)
			setXattr(t, src.Root+"/g", "trusted.SGI_ACL_FILE", []byte("xfs internal"))
			setXattr(t, src.Root+"/g", "user.kept", []byte("yes"))
			dst := filepath.Join(dir, "dst")
			copyTree(t, e, runOpts{}, 0, "-a", src.Root, dst)
			setXattr(t, dst+"/f", "trusted.SGI_ACL_FILE", []byte("the destination's own"))
			copyTree(t, e, runOpts{}, 0, "-a", src.Root, dst)
			buf := make([]byte, 64)
			if _, err := unix.Lgetxattr(dst+"/f", "trusted.SGI_ACL_FILE", buf); err != nil {
				t.Errorf("the destination's trusted.SGI_ACL_FILE was removed: %v", err)
			}
			if _, err := unix.Lgetxattr(dst+"/g", "trusted.SGI_ACL_FILE", buf); err == nil {
				t.Errorf("trusted.SGI_ACL_FILE was copied from the source")
			}
			if n, err := unix.Lgetxattr(dst+"/g", "user.kept", buf); err != nil || string(buf[:n]) != "yes" {
				t.Errorf("user.kept = %q, %v", buf[:n], err)
			}

			// The case as users meet it: an ACL'd tree re-run into XFS keeps its ACLs.
			xfs := mountXFS(t, dir)
			acl := NewTree(t, filepath.Join(dir, "acl"))
			acl.File("d/f", []byte("x"), 0o640)
			setXattr(t, acl.Root+"/d/f", "system.posix_acl_access", testACL)
			setXattr(t, acl.Root+"/d", "system.posix_acl_default", testACL)
			out := filepath.Join(xfs, "out")
			all := CompareOpts{Preserve: true, Owner: true, Xattrs: true, ACLs: true}
			for run := 1; run <= 3; run++ {
				copyTree(t, e, runOpts{}, 0, "-a", acl.Root, out)
				if d, _ := CompareTrees(acl.Root, out, all); len(d) != 0 {
					t.Fatalf("run %d into XFS: %v", run, d)
				}
			}
		})
	}
}
