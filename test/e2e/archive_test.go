package e2e

// Archive metadata through the CLI: owners (-o -g), extended attributes (-X) and POSIX ACLs (-A),
// on both engines.

import (
	bin "encoding/binary"
	"path/filepath"
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
	for _, e := range engines {
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
			for p, b := range before {
				if a := inodesAndCtimes(t, dst)[p]; a != b {
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
