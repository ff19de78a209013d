package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The uring backend must behave exactly as local on every flag. Each case
// runs the same rclone command twice with the same binary, once between
// :uring: remotes and once between plain (local) paths, and compares the
// exit codes and the destination trees.

// runCode runs the binary like rclone does and returns its output and exit code.
func runCode(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	return runAs(t, nil, bin, args...)
}

// runAs is runCode with the credentials cred (nil: this process's).
func runAs(t *testing.T, cred *syscall.Credential, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	if cred != nil {
		// The directory testing makes for the test, and this one, are 0700.
		for _, d := range []string{filepath.Dir(filepath.Dir(cmd.Dir)), filepath.Dir(cmd.Dir), cmd.Dir} {
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	cmd.Env = append(os.Environ(), "RCLONE_CONFIG="+filepath.Join(cmd.Dir, "rclone.conf"))
	return outputAndCode(t, cmd)
}

// outputAndCode runs cmd and returns its combined output and exit code.
func outputAndCode(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("rclone %s: %v", strings.Join(cmd.Args[1:], " "), err)
	}
	return string(out), 0
}

// entry is what the comparison sees of one file, directory or symlink.
type entry struct {
	mode     fs.FileMode
	mtime    time.Time // regular files and directories
	atime    time.Time // regular files, before the comparison reads them
	data     string    // content, or a symlink's target
	ino      uint64
	nlink    uint64
	uid, gid uint32
	xattrs   string // every extended attribute, name=value, sorted
}

// xattrsOf lists p's extended attributes (not following a symlink).
func xattrsOf(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	var kv []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("lgetxattr %s %s: %v", p, name, err)
		}
		kv = append(kv, fmt.Sprintf("%s=%q", name, v[:m]))
	}
	sort.Strings(kv)
	return strings.Join(kv, " ")
}

// readTree returns every entry under root by relative path.
func readTree(t *testing.T, root string) map[string]entry {
	t.Helper()
	tree := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{mode: fi.Mode(), ino: st.Ino, nlink: uint64(st.Nlink), uid: st.Uid, gid: st.Gid, xattrs: xattrsOf(t, p)}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.data, e.mtime, e.atime = string(b), fi.ModTime(), time.Unix(st.Atim.Unix())
		case fi.Mode()&fs.ModeSymlink != 0:
			e.data, _ = os.Readlink(p)
		case fi.IsDir():
			e.mtime = fi.ModTime()
		}
		tree[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// diffTrees lists how got differs from want: types, modes, times, bytes,
// owners, xattrs, and with atimes the access times of regular files.
func diffTrees(want, got map[string]entry, atimes bool) []string {
	var diffs []string
	for rel, w := range want {
		g, ok := got[rel]
		switch {
		case !ok:
			diffs = append(diffs, rel+": missing")
		case g.mode != w.mode:
			diffs = append(diffs, fmt.Sprintf("%s: mode %v, want %v", rel, g.mode, w.mode))
		case !g.mtime.Equal(w.mtime):
			diffs = append(diffs, fmt.Sprintf("%s: mtime %v, want %v", rel, g.mtime, w.mtime))
		case atimes && !g.atime.Equal(w.atime):
			diffs = append(diffs, fmt.Sprintf("%s: atime %v, want %v", rel, g.atime, w.atime))
		case g.data != w.data:
			diffs = append(diffs, rel+": content differs")
		case g.uid != w.uid || g.gid != w.gid:
			diffs = append(diffs, fmt.Sprintf("%s: owner %d:%d, want %d:%d", rel, g.uid, g.gid, w.uid, w.gid))
		case g.xattrs != w.xattrs:
			diffs = append(diffs, fmt.Sprintf("%s: xattrs %s, want %s", rel, g.xattrs, w.xattrs))
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			diffs = append(diffs, rel+": unexpected")
		}
	}
	sort.Strings(diffs)
	return diffs
}

// writeFile writes n bytes of a pattern with mode and mtime.
func writeFile(t *testing.T, p string, n int, mode fs.FileMode, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte(filepath.Base(p)+"\n"), n/(len(filepath.Base(p))+1)+1)[:n], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2021, 3, 4, 5, 6, 7, 890123456, time.UTC)

// smallTree is a few files of different modes, sizes and times, a
// symlink to a file and one to a directory.
func smallTree(t *testing.T, root string) {
	for i, m := range []fs.FileMode{0o755, 0o444, 0o000, 0o600, 0o640, 0o4755} {
		writeFile(t, filepath.Join(root, fmt.Sprintf("d%d", i%2), fmt.Sprintf("f%o", m)), 1000*i+1, m, t0.Add(time.Duration(i)*time.Hour))
	}
	writeFile(t, filepath.Join(root, "big"), 3<<20, 0o644, t0)
	if err := os.Symlink("big", filepath.Join(root, "link-file")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d0", filepath.Join(root, "link-dir")); err != nil {
		t.Fatal(err)
	}
}

// metaTree is a tree for --metadata: files and directories of every kind
// of mode (setuid, setgid and sticky too), of other owners (as root),
// with user.* xattrs (empty and binary values, one on a directory, names
// local rewrites: upper case, its own keys) and, as root, a trusted.* one;
// an empty directory; access times before and after the mtimes; a symlink.
func metaTree(t *testing.T, root string) {
	for i, m := range []fs.FileMode{0o644, 0o600, 0o755, 0o444, 0o4755, 0o2755 | fs.ModeSetgid, 0o1644} {
		p := filepath.Join(root, "modes", fmt.Sprintf("f%d", i))
		writeFile(t, p, 100*i+1, m.Perm(), t0.Add(time.Duration(i)*time.Minute))
		if err := unix.Chmod(p, uint32(m.Perm())|map[fs.FileMode]uint32{0o4755: unix.S_ISUID, 0o2755 | fs.ModeSetgid: unix.S_ISGID, 0o1644: unix.S_ISVTX}[m]); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "x", "plain"), 10, 0o640, t0)
	writeFile(t, filepath.Join(root, "x", "upper"), 10, 0o644, t0)
	writeFile(t, filepath.Join(root, "x", "reserved"), 10, 0o644, t0)
	writeFile(t, filepath.Join(root, "x", "trusted"), 10, 0o644, t0)
	writeFile(t, filepath.Join(root, "own", "a"), 10, 0o644, t0)
	writeFile(t, filepath.Join(root, "own", "b"), 10, 0o600, t0)
	writeFile(t, filepath.Join(root, "sticky", "f"), 10, 0o644, t0)
	writeFile(t, filepath.Join(root, "recent"), 10, 0o644, t0)
	for _, d := range []struct {
		dir  string
		mode uint32
	}{{"empty", 0o700}, {"sticky", 0o1777}, {"modes", 0o2755}} {
		if err := os.MkdirAll(filepath.Join(root, d.dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(filepath.Join(root, d.dir), d.mode); err != nil {
			t.Fatal(err)
		}
	}
	set := func(rel, name, value string) {
		if err := unix.Lsetxattr(filepath.Join(root, rel), name, []byte(value), 0); err != nil {
			t.Skipf("cannot set xattr %s on %s here: %v", name, rel, err)
		}
	}
	set("x/plain", "user.k", "v")
	set("x/plain", "user.empty", "")
	set("x/plain", "user.bin", "\x00\xff\n")
	set("x/upper", "user.Upper", "U")
	set("x/reserved", "user.mode", "0777")
	set("x", "user.dir", "d")
	set("empty", "user.e", "e")
	if os.Geteuid() == 0 {
		set("x/trusted", "trusted.t", "t")
		for _, o := range []struct {
			rel      string
			uid, gid int
		}{{"own/a", 65534, 65534}, {"own/b", 0, 65534}, {"own", 65534, 65534}} {
			if err := os.Lchown(filepath.Join(root, o.rel), o.uid, o.gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Reading a file moves an access time older than its ctime (relatime),
	// as every other here is; not one in the future.
	if err := os.Chtimes(filepath.Join(root, "recent"), time.Now().Add(time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(root, "x", "plain"), t0.Add(-time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("x/plain", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"empty", "sticky", "modes", "x", "own"} {
		if err := os.Chtimes(filepath.Join(root, d), t0, t0); err != nil {
			t.Fatal(err)
		}
	}
}

// existingDst makes a destination that already holds big (other content,
// hard-linked to big.hardlink) and an identical copy of d0/f755.
func existingDst(t *testing.T, src, dst string) {
	writeFile(t, filepath.Join(dst, "big"), 100, 0o600, t0.Add(-time.Hour))
	if err := os.Link(filepath.Join(dst, "big"), filepath.Join(dst, "big.hardlink")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(src, "d0", "f755"))
	writeFile(t, filepath.Join(dst, "d0", "f755"), len(b), 0o700, t0)
	if err := os.WriteFile(filepath.Join(dst, "d0", "f755"), b, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dst, "d0", "f755"), t0, t0); err != nil {
		t.Fatal(err)
	}
}

// manyFiles is 40 files of 200 KiB.
func manyFiles(t *testing.T, root string) {
	for i := range 40 {
		writeFile(t, filepath.Join(root, fmt.Sprint("f", i)), 200<<10, 0o644, t0)
	}
}

// writeTimes checks that every regular file copied has the time it was
// written as its mtime, not its source's (no_set_modtime).
func writeTimes(t *testing.T, tree map[string]entry) {
	t.Helper()
	for rel, e := range tree {
		if e.mode.IsRegular() && time.Since(e.mtime) > time.Hour {
			t.Errorf("%s: mtime %v, the source's; want the time it was written", rel, e.mtime)
		}
	}
}

// maxTransferTotal checks what --max-transfer let through: only whole
// files of manyFiles, no partial file left behind, and not much more
// than the limit (rclone checks it as each transfer starts and counts
// while reading, so up to one file per other transfer gets past it).
func maxTransferTotal(t *testing.T, tree map[string]entry, limit int) {
	t.Helper()
	total := 0
	for rel, e := range tree {
		if strings.Contains(rel, ".partial") || len(e.data) != 200<<10 {
			t.Errorf("%s: %d bytes left behind", rel, len(e.data))
		}
		total += len(e.data)
	}
	if total > limit {
		t.Errorf("%d bytes copied, --max-transfer %d", total, limit)
	}
}

func TestBehavesAsLocal(t *testing.T) {
	bin := rcloneBin(t)
	for _, c := range []struct {
		name string
		args []string // the command and its flags; SRC and DST are appended
		tree func(t *testing.T, root string)
		dst  func(t *testing.T, src, dst string) // an existing destination
		// inodes: existing files must keep their inode and link count.
		inodes bool
		// engine: whether the engine copies files in the uring run
		// (false: it must leave every file to rclone's own copy).
		engine bool
		// inexact: the runs may differ (which files --max-transfer lets
		// through); check each run alone instead of comparing the trees.
		inexact bool
		check   func(t *testing.T, tree map[string]entry)
		// atLeast is the least time each run may take (--bwlimit).
		atLeast time.Duration
		// meta: a --metadata case: access times are compared too, and
		// whether the engine applied the metadata of some files must be
		// engineMeta.
		meta, engineMeta bool
		// noXattrs: the destinations are on a filesystem without xattrs.
		noXattrs bool
		// nobody: rclone runs as user and group 65534 (the tree is root's
		// but for own/a, which is theirs).
		nobody bool
	}{
		{name: "copy", args: []string{"copy"}, tree: smallTree, engine: true},
		{name: "sync", args: []string{"sync"}, tree: smallTree, dst: existingDst, engine: true},
		{name: "copy-links", args: []string{"copy", "-L"}, tree: smallTree, engine: true},
		{name: "links", args: []string{"copy", "-l"}, tree: smallTree, engine: true},
		{name: "one-file-system", args: []string{"copy", "-x"}, tree: smallTree, engine: true},
		{name: "metadata", args: []string{"copy", "-M"}, tree: smallTree, engine: true, engineMeta: true},
		{name: "update", args: []string{"copy", "--update"}, tree: smallTree, dst: existingDst, engine: true},
		{name: "ignore-existing", args: []string{"copy", "--ignore-existing"}, tree: smallTree, dst: existingDst, engine: true},
		{name: "inplace", args: []string{"copy", "--inplace"}, tree: smallTree, dst: existingDst, inodes: true},
		{name: "bwlimit", args: []string{"copy", "--bwlimit", "2M"}, tree: smallTree, atLeast: time.Second},
		{name: "bwlimit-file", args: []string{"copy", "--bwlimit-file", "2M"}, tree: smallTree, atLeast: time.Second},
		{name: "max-transfer", args: []string{"copy", "--max-transfer", "1M", "--transfers", "4"}, inexact: true,
			tree:  manyFiles,
			check: func(t *testing.T, tree map[string]entry) { maxTransferTotal(t, tree, 1<<20+4*200<<10) }},
		{name: "max-transfer-cautious", args: []string{"copy", "--max-transfer", "1M", "--cutoff-mode", "cautious"}, inexact: true,
			tree:  manyFiles,
			check: func(t *testing.T, tree map[string]entry) { maxTransferTotal(t, tree, 1<<20+4*200<<10) }},
		{name: "no-clone", args: []string{"copy", "--local-no-clone", "--uring-no-clone"}, tree: smallTree},
		// The copies' mtimes are their write times (the engine sets the
		// source's): rclone copies them; the trees differ in those times.
		{name: "no-set-modtime", args: []string{"copy", "--local-no-set-modtime", "--uring-no-set-modtime"}, tree: smallTree,
			inexact: true, check: writeTimes},
		{name: "metadata-tree", args: []string{"copy", "-M"}, tree: metaTree, engine: true, meta: true, engineMeta: true},
		{name: "metadata-empty-dirs", args: []string{"copy", "-M", "--create-empty-src-dirs"}, tree: metaTree, engine: true, meta: true, engineMeta: true},
		{name: "metadata-sync", args: []string{"sync", "-M"}, tree: metaTree, dst: existingDst, engine: true, meta: true, engineMeta: true},
		{name: "metadata-links", args: []string{"copy", "-M", "-l"}, tree: metaTree, engine: true, meta: true, engineMeta: true},
		{name: "metadata-copy-links", args: []string{"copy", "-M", "-L"}, tree: metaTree, engine: true, meta: true, engineMeta: true},
		{name: "metadata-set", args: []string{"copy", "-M", "--metadata-set", "color=blue", "--metadata-set", "mode=0600"}, tree: metaTree, engine: true, meta: true},
		{name: "metadata-mapper", args: []string{"copy", "-M", "--metadata-mapper", "cat"}, tree: metaTree, engine: true, meta: true},
		{name: "metadata-no-engine", args: []string{"copy", "-M", "--uring-no-engine"}, tree: metaTree, meta: true},
		// The engine cannot set the xattrs: rclone copies those files.
		// Without privilege local fails to give a file another owner;
		// the engine keeps the caller's own.
		{name: "metadata-unprivileged", args: []string{"copy", "-M", "--retries", "1"}, tree: metaTree, engine: true, meta: true, engineMeta: true, nobody: true},
		{name: "metadata-no-xattrs", args: []string{"copy", "-M"}, tree: metaTree, engine: true, meta: true, engineMeta: true, noXattrs: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cred *syscall.Credential
			if c.nobody {
				if os.Geteuid() != 0 {
					t.Skip("runs rclone as another user, which needs root")
				}
				cred = &syscall.Credential{Uid: 65534, Gid: 65534}
			}
			dir := t.TempDir()
			if c.nobody {
				for _, d := range []string{filepath.Dir(dir), dir} {
					if err := os.Chmod(d, 0o777); err != nil {
						t.Fatal(err)
					}
				}
			}
			runBin := bin
			if c.nobody {
				// The binary may sit where user 65534 cannot reach it (a
				// test's own 0700 temporary directory): run a copy from here.
				runBin = filepath.Join(dir, "rclone")
				data, err := os.ReadFile(bin)
				if err == nil {
					err = os.WriteFile(runBin, data, 0o755)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			src := filepath.Join(dir, "src")
			c.tree(t, src)
			type run struct {
				out    string
				code   int
				before map[string]entry // the existing destination
				tree   map[string]entry
				took   time.Duration
			}
			var runs [2]run
			dstDir := dir
			if c.noXattrs {
				dstDir = ramfs(t)
			}
			for i, pre := range []string{":uring:", ""} {
				dst := filepath.Join(dstDir, fmt.Sprint("dst", i))
				var before map[string]entry
				if c.dst != nil {
					c.dst(t, src, dst)
					before = readTree(t, dst)
				}
				args := append(append([]string{"-v"}, c.args...), pre+src, pre+dst)
				start := time.Now()
				out, code := runAs(t, cred, runBin, args...)
				runs[i] = run{out, code, before, readTree(t, dst), time.Since(start)}
			}
			u, l := runs[0], runs[1]
			if u.code != l.code {
				t.Errorf("exit code %d on uring, %d on local\nuring:\n%s\nlocal:\n%s", u.code, l.code, u.out, l.out)
			}
			if n, _ := engineCopied(t, u.out); (n != "0") != c.engine {
				t.Errorf("engine copied %s files, want some: %v\n%s", n, c.engine, u.out)
			}
			if _, back := engineCopied(t, u.out); c.noXattrs && back == "0" {
				t.Errorf("no copy fell back to rclone's, though the engine could not set xattrs\n%s", u.out)
			}
			if n := engineMeta(u.out); (n != "0") != c.engineMeta {
				t.Errorf("the engine applied --metadata to %s files, want some: %v\n%s", n, c.engineMeta, u.out)
			}
			for i, r := range runs {
				if r.took < c.atLeast {
					t.Errorf("run %d took %v, want at least %v", i, r.took, c.atLeast)
				}
				if c.check != nil {
					c.check(t, r.tree)
				}
				if c.inodes {
					// Files updated in place keep their inode and links.
					for rel, b := range r.before {
						if e := r.tree[rel]; e.ino != b.ino || e.nlink != b.nlink {
							t.Errorf("run %d: %s: inode %d (%d links), was %d (%d links)", i, rel, e.ino, e.nlink, b.ino, b.nlink)
						}
					}
				}
			}
			if !c.inexact {
				for _, d := range diffTrees(l.tree, u.tree, c.meta) {
					t.Error("uring differs from local: " + d)
				}
			}
		})
	}
}

// ramfs mounts a ramfs, a filesystem without xattrs, for the test.
func ramfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounts a ramfs (a filesystem without xattrs), which needs root")
	}
	mnt := t.TempDir()
	if err := unix.Mount("ramfs", mnt, "ramfs", 0, ""); err != nil {
		t.Skipf("cannot mount a ramfs here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	return mnt
}

// TestFeaturesAsLocal compares what a uring remote tells rclone about
// itself with what local does: any other difference changes how rclone
// drives it (PartialUploads decides whether a failed write can leave a
// truncated file behind).
func TestFeaturesAsLocal(t *testing.T) {
	bin := rcloneBin(t)
	dir := t.TempDir()
	features := func(remote string) map[string]any {
		out, code := runCode(t, bin, "backend", "features", "-q", remote)
		var got struct{ Features map[string]any }
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
			t.Fatalf("features %s: %d %v\n%s", remote, code, err, out)
		}
		return got.Features
	}
	u, l := features(":uring:"+dir), features(dir)
	// What a uring remote adds: the engine's server-side copy, and being
	// a wrapper of local (rclone's own wrappers show these too).
	for _, k := range []string{"Copy", "ServerSideAcrossConfigs", "ListP", "Overlay", "SetWrapper", "UnWrap", "WrapFs"} {
		delete(u, k)
		delete(l, k)
	}
	for k, lv := range l {
		if uv, ok := u[k]; !ok || uv != lv {
			t.Errorf("feature %s: %v on uring, %v on local", k, uv, lv)
		}
	}
	for k, uv := range u {
		if _, ok := l[k]; !ok {
			t.Errorf("feature %s: %v on uring, absent on local", k, uv)
		}
	}
}

// TestTransfersRaised checks that --transfers is raised only when the
// engine can run, between two uring remotes, and never past a value the
// user gave.
func TestTransfersRaised(t *testing.T) {
	bin := rcloneBin(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "f"), 10, 0o644, t0)
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{":uring:" + src, ":uring:" + dir + "/a"}, true},
		{[]string{":uring:" + src, dir + "/b"}, false},
		{[]string{src, ":uring:" + dir + "/c"}, false},
		{[]string{":uring:" + src, ":memory:d"}, false},
		{[]string{"--transfers", "4", ":uring:" + src, ":uring:" + dir + "/e"}, false},
		{[]string{"--uring-no-engine", ":uring:" + src, ":uring:" + dir + "/f"}, false},
	} {
		out, code := runCode(t, bin, append([]string{"copy", "-vv"}, c.args...)...)
		got := strings.Contains(out, "raising --transfers")
		if got != c.want || code != 0 || got && !strings.Contains(out, "raising --transfers from 4 to 128 ") {
			t.Errorf("copy %v: exit %d, raised %v, want %v\n%s", c.args, code, got, c.want, out)
		}
	}
}

// TestCopyTreeFlags checks that copytree honours a flag or refuses it with
// an error naming it, and that its progress counts files.
func TestCopyTreeFlags(t *testing.T) {
	bin := rcloneBin(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	smallTree(t, src)
	for i, c := range []struct {
		flags  []string
		refuse string // in the error, or "" when copytree must succeed
	}{
		{nil, ""},
		{[]string{"--local-no-preallocate"}, ""}, // a local flag on a plain-path destination
		{[]string{"-l"}, ""},
		{[]string{"-L"}, "--copy-links"},
		{[]string{"-x"}, "--one-file-system"},
		{[]string{"--local-no-set-modtime"}, "no_set_modtime"},
		{[]string{"--uring-no-clone"}, "no_clone"},
		{[]string{"--exclude", "*.tmp"}, "filter flags"},
		{[]string{"--max-depth", "1"}, "--max-depth"},
		{[]string{"-M"}, "--metadata"},
		{[]string{"--max-transfer", "1M"}, "--max-transfer"},
		{[]string{"--bwlimit", "1M"}, "--bwlimit"},
	} {
		dst := filepath.Join(dir, fmt.Sprint("dst", i))
		args := append(append([]string{"backend", "copytree", "-P"}, c.flags...), ":uring:"+src, dst)
		out, code := runCode(t, bin, args...)
		if c.refuse == "" {
			if code != 0 || !strings.Contains(out, "Transferred:            7 / 7, 100%") {
				t.Errorf("copytree %v: exit %d, want 0 and 7 files counted\n%s", c.flags, code, out)
			}
			continue
		}
		if code == 0 || !strings.Contains(out, "does not support "+c.refuse) {
			t.Errorf("copytree %v: exit %d, want a refusal naming %s\n%s", c.flags, code, c.refuse, out)
		}
		if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("copytree %v: refused, but made %s", c.flags, dst)
		}
	}
	// An existing tree is rclone copy's job: copytree would rewrite it all.
	out, code := runCode(t, bin, "backend", "copytree", ":uring:"+src, filepath.Join(dir, "dst0"))
	if code == 0 || !strings.Contains(out, "is not empty") {
		t.Errorf("copytree into a non-empty directory: exit %d\n%s", code, out)
	}
}

// runIn runs the binary in directory dir and returns its output and exit code.
func runIn(t *testing.T, dir, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RCLONE_CONFIG="+filepath.Join(t.TempDir(), "rclone.conf"))
	return outputAndCode(t, cmd)
}

// TestRelativeRootsAsLocal: a uring remote whose root is relative and is
// "." or holds ".." (which rclone's standard form spells "．" and "．．")
// is the same directory local would use, for the engine's copies too.
func TestRelativeRootsAsLocal(t *testing.T) {
	bin := rcloneBin(t)
	for _, c := range []struct {
		name     string
		cwd      string // below the test's directory, where rclone runs
		src, dst string // relative to cwd; dst's tree is compared
	}{
		{"dot-destination", "to", "../src", "."},
		{"dot-source", "src", ".", "../out"},
		{"dotdot-both", "work/sub", "../../src", "../out"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var trees [2]map[string]entry
			first := ""
			for i, pre := range []string{":uring:", ""} {
				dir := t.TempDir()
				if first == "" { // one source, the same times in both runs
					first = filepath.Join(dir, "src")
					smallTree(t, first)
				} else if out, err := exec.Command("cp", "-a", first, filepath.Join(dir, "src")).CombinedOutput(); err != nil {
					t.Fatalf("cp -a: %v %s", err, out)
				}
				cwd := filepath.Join(dir, c.cwd)
				if err := os.MkdirAll(cwd, 0o755); err != nil {
					t.Fatal(err)
				}
				out, code := runIn(t, cwd, bin, "-v", "copy", pre+c.src, pre+c.dst)
				if code != 0 {
					t.Fatalf("%scopy %s %s in %s: exit %d\n%s", pre, c.src, c.dst, c.cwd, code, out)
				}
				if n, _ := engineCopied(t, out); pre != "" && n == "0" {
					t.Errorf("the engine copied nothing\n%s", out)
				}
				dst := filepath.Join(cwd, c.dst)
				trees[i] = readTree(t, dst)
				if _, err := os.Lstat(filepath.Join(cwd, "．")); err == nil {
					t.Errorf("%scopy made a directory named \"．\" in %s", pre, c.cwd)
				}
				if _, err := os.Lstat(filepath.Join(cwd, "．．")); err == nil {
					t.Errorf("%scopy made a directory named \"．．\" in %s", pre, c.cwd)
				}
			}
			for _, d := range diffTrees(trees[1], trees[0], false) {
				t.Error("uring differs from local: " + d)
			}
		})
	}
	// backend copytree, to a relative destination holding "..".
	dir := t.TempDir()
	smallTree(t, filepath.Join(dir, "src"))
	cwd := filepath.Join(dir, "work", "sub")
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, code := runIn(t, cwd, bin, "backend", "copytree", "uring:../../src", "../ct"); code != 0 {
		t.Fatalf("copytree: exit %d\n%s", code, out)
	}
	src, ct := readTree(t, filepath.Join(dir, "src")), readTree(t, filepath.Join(dir, "work", "ct"))
	for rel, e := range src {
		if e.mode.IsRegular() && ct[rel].data != e.data {
			t.Errorf("copytree to ../ct: %s missing or different", rel)
		}
	}
	if _, err := os.Lstat(filepath.Join(cwd, "．．")); err == nil {
		t.Errorf("copytree made a directory named \"．．\"")
	}
}
