//go:build linux && cgo

package uring

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/filter"
	"github.com/rclone/rclone/fs/hash"
	"github.com/rclone/rclone/fs/operations"
	"github.com/rclone/rclone/fs/rc"
	"github.com/rclone/rclone/fs/sync"
	"github.com/rclone/rclone/fstest"
	"github.com/rclone/rclone/lib/encoder"
	"github.com/rclone/rclone/lib/transferaccounter"
	"github.com/uringsync/uring-sync/backend/uringsync"
	"golang.org/x/sys/unix"
)

func init() { fstest.Initialise() }

// makeTree writes n files over a few directories and returns their contents
// by relative path.
func makeTree(t *testing.T, dir string, n int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for i := range n {
		rel := filepath.Join(fmt.Sprint("d", i%9), fmt.Sprint("file", i, ".txt"))
		data := bytes.Repeat([]byte(fmt.Sprintf("%d,", i)), i%500)
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Date(2020, 1, 2, 3, 4, 5, i*1000, time.UTC)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		files[rel] = data
	}
	return files
}

func checkTree(t *testing.T, src, dst string, files map[string][]byte) {
	t.Helper()
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: content differs (%v)", rel, err)
		}
		si, _ := os.Stat(filepath.Join(src, rel))
		di, _ := os.Stat(filepath.Join(dst, rel))
		if !si.ModTime().Equal(di.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, di.ModTime(), si.ModTime())
		}
	}
}

// newRemote makes a configured uring remote called name at dir.
func newRemote(t *testing.T, ctx context.Context, name, dir string) *Fs {
	t.Helper()
	config.FileSetValue(name, "type", Name)
	f, err := fs.NewFs(ctx, name+":"+dir)
	if err != nil {
		t.Fatal(err)
	}
	return f.(*Fs)
}

// TestCopyDirBatched copies a tree between two differently named uring
// remotes with rclone's copy and checks that the engine did it in batches.
func TestCopyDirBatched(t *testing.T) {
	ctx, ci := fs.AddConfig(context.Background())
	ci.Transfers = 32
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	files := makeTree(t, src, 400)
	fsrc := newRemote(t, ctx, "usrc", src)
	fdst := newRemote(t, ctx, "udst", dst)

	copied, batches, fellBack := filesCopied.Load(), batchesRun.Load(), filesFellBack.Load()
	if err := sync.CopyDir(ctx, fdst, fsrc, false); err != nil {
		t.Fatal(err)
	}
	checkTree(t, src, dst, files)
	if n := filesCopied.Load() - copied; n != int64(len(files)) {
		t.Errorf("engine copied %d files, want %d", n, len(files))
	}
	if n := filesFellBack.Load() - fellBack; n != 0 {
		t.Errorf("%d files fell back to rclone's copy", n)
	}
	b := batchesRun.Load() - batches
	if b >= int64(len(files)) {
		t.Errorf("%d engine calls for %d files: not batched", b, len(files))
	}
	t.Logf("%d files in %d engine calls", len(files), b)
}

// TestEngineOptionsCopy copies a tree between uring remotes with each of
// the README's engine options set (rclone's own suites run with the
// defaults only): the copy is whole, with its mtimes, and made by the
// engine (by rclone's copy with no_engine).
func TestEngineOptionsCopy(t *testing.T) {
	for _, opts := range []string{"force_sync=true", "sync_below=1000", "hash=false", "workers=1,queue_depth=1",
		"batch_size=1", "transfers=2", "no_engine=true"} {
		t.Run(opts, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			files := makeTree(t, src, 150)
			fsrc, err := fs.NewFs(ctx, ":uring,"+opts+":"+src)
			if err != nil {
				t.Fatal(err)
			}
			fdst, err := fs.NewFs(ctx, ":uring,"+opts+":"+dst)
			if err != nil {
				t.Fatal(err)
			}
			copied := filesCopied.Load()
			if err := sync.CopyDir(ctx, fdst, fsrc, false); err != nil {
				t.Fatal(err)
			}
			checkTree(t, src, dst, files)
			want := int64(len(files))
			if opts == "no_engine=true" {
				want = 0
			}
			if n := filesCopied.Load() - copied; n != want {
				t.Errorf("engine copied %d files, want %d", n, want)
			}
		})
	}
}

// TestPartialsAreNotMadeForNewFiles: rclone's copy asks for a partial name
// and renames it; a new file is copied straight to its final name instead
// (the engine publishes it atomically), while a file that exists keeps the
// partial round trip, so that a failed verification leaves it as it was.
// Run through rclone's own operations.Copy, so the partial names are
// rclone's, not this test's idea of them.
func TestPartialsAreNotMadeForNewFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	files := makeTree(t, src, 20)
	fsrc := newRemote(t, ctx, "upsrc", src)
	fdst := newRemote(t, ctx, "updst", dst)
	direct, copied := filesDirect.Load(), filesCopied.Load()
	if err := sync.CopyDir(ctx, fdst, fsrc, false); err != nil {
		t.Fatal(err)
	}
	checkTree(t, src, dst, files)
	if n := filesDirect.Load() - direct; n != int64(len(files)) {
		t.Errorf("%d of %d new files went straight to their names", n, len(files))
	}
	// Change every source file: the copies exist, so each goes through a
	// partial and rclone's rename.
	for rel := range files {
		p := filepath.Join(src, rel)
		files[rel] = append(files[rel], "changed"...)
		if err := os.WriteFile(p, files[rel], 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	direct, copied = filesDirect.Load(), filesCopied.Load()
	fsrc = newRemote(t, ctx, "upsrc", src)
	if err := sync.CopyDir(ctx, fdst, fsrc, false); err != nil {
		t.Fatal(err)
	}
	checkTree(t, src, dst, files)
	if n := filesCopied.Load() - copied; n != int64(len(files)) {
		t.Errorf("engine copied %d updated files, want %d", n, len(files))
	}
	if n := filesDirect.Load() - direct; n != 0 {
		t.Errorf("%d existing files were replaced without rclone's partial", n)
	}
	// Nothing partial is left anywhere.
	_ = filepath.Walk(dst, func(p string, _ os.FileInfo, _ error) error {
		if strings.HasSuffix(p, ".partial") {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

// A name that only looks like a partial (wrong CRC) is copied to that name.
func TestPartialLookalikeKeepsItsName(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newRemote(t, ctx, "ulook", dir)
	src, err := f.NewObject(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	const name = "b.0badc0de.partial"
	got, err := f.Copy(ctx, src, name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Remote() != name {
		t.Fatalf("copied to %q, want %q", got.Remote(), name)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// TestCopyKnowsHash checks that Copy returns objects whose MD5 needs no
// read, and that a changed file is hashed again.
func TestCopyKnowsHash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := []byte("some content to hash")
	if err := os.WriteFile(filepath.Join(dir, "a"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newRemote(t, ctx, "uhash", dir)
	src, err := f.NewObject(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Copy(ctx, src, "sub/b")
	if err != nil {
		t.Fatal(err)
	}
	want := md5.Sum(data)
	for _, o := range []fs.Object{src, got} {
		if o.(*Object).md5 == nil {
			t.Fatalf("%v: MD5 from the engine not kept", o)
		}
		if sum, err := o.Hash(ctx, hash.MD5); err != nil || sum != hex.EncodeToString(want[:]) {
			t.Fatalf("%v: Hash = %q, %v", o, sum, err)
		}
	}
	// Hash looks at the file (its size and mtime) to check a known hash,
	// except the first time: the engine saw both files as they were once
	// copied (the source as listed), and that Hash is rclone's
	// verification, which follows at once. Nor does Copy look the copy up.
	looks, copyLooks := 0, 0
	hashStat = func(p string, follow bool, size int64, mtime time.Time) bool {
		looks++
		return statMatches(p, follow, size, mtime)
	}
	copyStat = func(p string, follow bool) (int64, time.Time, bool) {
		copyLooks++
		return statRegular(p, follow)
	}
	defer func() { hashStat, copyStat = statMatches, statRegular }()
	again, err := f.Copy(ctx, src, "sub/c")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []fs.Object{src, again, src, again} {
		if sum, err := o.Hash(ctx, hash.MD5); err != nil || sum != hex.EncodeToString(want[:]) {
			t.Fatalf("%v: Hash = %q, %v", o, sum, err)
		}
	}
	if looks != 2 || copyLooks != 0 {
		t.Errorf("Copy and four Hash calls looked at the files %d and %d times, want 0 and 2 (not the first of each)",
			copyLooks, looks)
	}

	// A source that changed after it was listed: the hash of what the
	// engine read is not the listed file's, so its first Hash looks, and
	// reads the file (as local would) when it is not as listed.
	listed, err := f.NewObject(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	grown := []byte("some content to hash, and more")
	if err := os.WriteFile(filepath.Join(dir, "a"), grown, 0o644); err != nil {
		t.Fatal(err)
	}
	looks = 0
	if _, err := f.Copy(ctx, listed, "sub/f"); err != nil {
		t.Fatal(err)
	}
	wantGrown := md5.Sum(grown)
	if sum, err := listed.Hash(ctx, hash.MD5); err != nil || sum != hex.EncodeToString(wantGrown[:]) || looks != 1 {
		t.Errorf("changed source: Hash = %q, %v after %d looks, want %x after 1", sum, err, looks, wantGrown)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if src, err = f.NewObject(ctx, "a"); err != nil {
		t.Fatal(err)
	}

	// Change the copy: the known hash must not be used any more.
	changed := []byte("changed")
	if err := os.WriteFile(filepath.Join(dir, "sub", "b"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	wantChanged := md5.Sum(changed)
	if sum, _ := got.Hash(ctx, hash.MD5); sum != hex.EncodeToString(wantChanged[:]) {
		t.Errorf("stale hash %q after the file changed", sum)
	}

	// A moved object checks its known hash against its new path, not the
	// one it was copied to: put the copied bytes back at the old path (same
	// size and mtime) and change the moved file.
	got, err = f.Copy(ctx, src, "sub/d")
	if err != nil {
		t.Fatal(err)
	}
	moved, err := f.Features().Move(ctx, got, "sub/e")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "d"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	other := []byte("other content, not hashed")
	if err := os.WriteFile(filepath.Join(dir, "sub", "e"), other, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d", "e"} {
		mtime := got.ModTime(ctx)
		if err := os.Chtimes(filepath.Join(dir, "sub", p), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	wantOther := md5.Sum(other)
	if sum, _ := moved.Hash(ctx, hash.MD5); sum != hex.EncodeToString(wantOther[:]) {
		t.Errorf("moved object: hash %q, want that of its own file", sum)
	}
}

// TestCopyFallsBack checks that engine failures hand the copy back to rclone.
func TestCopyFallsBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newRemote(t, ctx, "ufall", dir)
	src, err := f.NewObject(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Copy(ctx, src, "file/under/a/file"); !errors.Is(err, fs.ErrorCantCopy) {
		t.Errorf("err = %v, want fs.ErrorCantCopy", err)
	}
	if err := os.Remove(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Copy(ctx, src, "b"); !errors.Is(err, fs.ErrorCantCopy) {
		t.Errorf("vanished source: err = %v, want fs.ErrorCantCopy (local's copy then fails as local does)", err)
	}
	// Objects of other backends are never copied by the engine.
	if _, err := f.Copy(ctx, src.(*Object).Object, "c"); !errors.Is(err, fs.ErrorCantCopy) {
		t.Errorf("local object: err = %v, want fs.ErrorCantCopy", err)
	}
}

// TestVanishedSourceFailsAsLocal: a source file removed after rclone
// listed it fails its copy with local's error ("failed to open source
// object: lstat ...: no such file or directory"), not fs.ErrorObjectNotFound,
// which rclone's exit code tells apart (4, "file not found", where local
// exits 1).
func TestVanishedSourceFailsAsLocal(t *testing.T) {
	ctx := context.Background()
	var errs []error
	for _, engine := range []bool{true, false} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		var fsrc, fdst fs.Fs
		if engine {
			fsrc, fdst = newRemote(t, ctx, "uvanish", dir), newRemote(t, ctx, "uvanish2", filepath.Join(dir, "dst"))
		} else {
			var err error
			if fsrc, err = fs.NewFs(ctx, ":local:"+dir); err != nil {
				t.Fatal(err)
			}
			if fdst, err = fs.NewFs(ctx, ":local:"+filepath.Join(dir, "dst")); err != nil {
				t.Fatal(err)
			}
		}
		src, err := fsrc.NewObject(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "a")); err != nil {
			t.Fatal(err)
		}
		_, err = operations.Copy(ctx, fdst, nil, "a", src)
		if err == nil {
			t.Fatalf("engine %v: copy of a vanished source succeeded", engine)
		}
		errs = append(errs, err)
		if _, err := os.Lstat(filepath.Join(dir, "dst", "a")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("engine %v: the vanished source left a copy (%v)", engine, err)
		}
	}
	if errors.Is(errs[0], fs.ErrorObjectNotFound) != errors.Is(errs[1], fs.ErrorObjectNotFound) ||
		!errors.Is(errs[0], os.ErrNotExist) || !strings.Contains(errs[0].Error(), "failed to open source object") {
		t.Errorf("uring: %v\nlocal: %v", errs[0], errs[1])
	}
}

func TestCopyTreeCommand(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := makeTree(t, src, 60)
	if err := os.MkdirAll(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "d1", "x.skip"), []byte("skip me"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newRemote(t, context.Background(), "utree", src)

	t.Run("whole tree", func(t *testing.T) {
		dst := filepath.Join(dir, "whole")
		out, err := f.Command(context.Background(), "copytree", []string{dst}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkTree(t, src, dst, files)
		if _, err := os.Stat(filepath.Join(dst, "empty")); err != nil {
			t.Errorf("empty dir not copied: %v", err)
		}
		if s := out.(treeSummary); s.Mode != "tree" || s.Files != uint64(len(files)+1) {
			t.Errorf("summary %+v", s)
		}
	})
	t.Run("refuses filters", func(t *testing.T) {
		fi, err := filter.NewFilter(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := fi.AddRule("- *.skip"); err != nil {
			t.Fatal(err)
		}
		ctx := filter.ReplaceConfig(context.Background(), fi)
		dst := filepath.Join(dir, "filtered")
		if _, err := f.Command(ctx, "copytree", []string{dst}, nil); err == nil || !strings.Contains(err.Error(), "filter flags") {
			t.Fatalf("err = %v, want a refusal of filter flags", err)
		}
		if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("refused copytree created %s (%v)", dst, err)
		}
	})
	t.Run("refuses no_engine", func(t *testing.T) {
		// The engine is off: nothing may run on it, copytree included.
		g, err := fs.NewFs(context.Background(), ":uring,no_engine=true:"+src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, "noengine")
		if _, err := g.(*Fs).Command(context.Background(), "copytree", []string{dst}, nil); err == nil ||
			!strings.Contains(err.Error(), "no_engine") {
			t.Fatalf("err = %v, want a refusal naming no_engine", err)
		}
		if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("refused copytree created %s (%v)", dst, err)
		}
	})
	t.Run("refuses a non-empty destination", func(t *testing.T) {
		dst := filepath.Join(dir, "whole") // made by "whole tree"
		if _, err := f.Command(context.Background(), "copytree", []string{dst}, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("err = %v, want a refusal", err)
		}
	})
	t.Run("dry run", func(t *testing.T) {
		ctx, ci := fs.AddConfig(context.Background())
		ci.DryRun = true
		dst := filepath.Join(dir, "dry")
		if _, err := f.Command(ctx, "copytree", []string{dst}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("dry run created %s (%v)", dst, err)
		}
	})
	t.Run("usage", func(t *testing.T) {
		if _, err := f.Command(context.Background(), "copytree", nil, nil); err == nil {
			t.Error("no destination accepted")
		}
	})
	t.Run("destination it cannot make", func(t *testing.T) {
		// The engine's error names both trees, not the source alone.
		dst := "/proc/nope/x"
		_, err := f.Command(context.Background(), "copytree", []string{dst}, nil)
		if want := "copy tree " + src + " to " + dst + ": "; err == nil || !strings.Contains(err.Error(), want) ||
			!errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want one containing %q and matching os.ErrNotExist", err, want)
		}
	})
}

// TestEngineMeta: the engine applies --metadata only to files whose
// metadata it would copy as local does.
func TestEngineMeta(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		make  func(p string) error
		takes bool
	}{
		{"plain", func(p string) error { return nil }, true},
		{"user-xattr", func(p string) error { return unix.Setxattr(p, "user.k", []byte("v"), 0) }, true},
		{"setuid", func(p string) error { return unix.Chmod(p, 0o4755) }, false},
		{"sticky", func(p string) error { return unix.Chmod(p, 0o1644) }, false},
		{"upper-xattr", func(p string) error { return unix.Setxattr(p, "user.Key", []byte("v"), 0) }, false},
		{"local-key-xattr", func(p string) error { return unix.Setxattr(p, "user.mtime", []byte("v"), 0) }, false},
		{"symlink", func(p string) error { _ = os.Remove(p); return os.Symlink("plain", p) }, false},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, []byte(c.name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := c.make(p); err != nil {
			t.Skipf("%s: %v", c.name, err)
		}
		before, why := engineMeta(p)
		if (before != nil) != c.takes || (why == "") != c.takes {
			t.Errorf("%s: engine applies it: %v (%q), want %v", c.name, before != nil, why, c.takes)
		}
	}
}

// TestNewFilesAreNotLookedFor: a small new file is copied straight to its
// name without a lookup of that name first; the engine's NoReplace keeps a
// file that exists after all, which is then copied as an existing one
// (rclone's partial and rename), and the next files are looked for first.
// Large files are always looked for (a wasted copy would cost more).
func TestNewFilesAreNotLookedFor(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	files := makeTree(t, src, 20)
	var looked []string
	lstat = func(p string) (os.FileInfo, error) {
		looked = append(looked, p) // Copy calls run concurrently, but the test's are serial
		return os.Lstat(p)
	}
	defer func() { lstat = os.Lstat }()
	fsrc := newRemote(t, ctx, "lfsrc", src)
	fdst := newRemote(t, ctx, "lfdst", dst)
	ctx, ci := fs.AddConfig(ctx)
	ci.Transfers = 1
	if err := sync.CopyDir(ctx, fdst, fsrc, false); err != nil {
		t.Fatal(err)
	}
	checkTree(t, src, dst, files)
	if len(looked) != 0 {
		t.Errorf("new files looked for before their copy: %q", looked)
	}

	// A name taken after rclone looked (dst nil: rclone saw no file).
	writeSrc := func(name string, data []byte) fs.Object {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		o, err := fsrc.NewObject(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	taken := filepath.Join(dst, "taken")
	if err := os.WriteFile(taken, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	direct, copied := filesDirect.Load(), filesCopied.Load()
	if _, err := operations.Copy(ctx, fdst, nil, "taken", writeSrc("taken", []byte("new"))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(taken); string(got) != "new" {
		t.Errorf("taken name holds %q, want the copy", got)
	}
	if filesDirect.Load() != direct || filesCopied.Load() != copied+1 {
		t.Errorf("a taken name: %d direct, %d engine copies; want 0, 1",
			filesDirect.Load()-direct, filesCopied.Load()-copied)
	}
	if n := fdst.lookNext.Load(); n != lookAfterTaken {
		t.Errorf("after a taken name %d files are looked for first, want %d", n, lookAfterTaken)
	}
	looked = nil
	if _, err := operations.Copy(ctx, fdst, nil, "next", writeSrc("next", []byte("next"))); err != nil {
		t.Fatal(err)
	}
	if len(looked) != 1 {
		t.Errorf("the file after a taken name: looked for %q, want once", looked)
	}

	fdst.lookNext.Store(0)
	looked = nil
	if _, err := operations.Copy(ctx, fdst, nil, "big", writeSrc("big", make([]byte, lookFirstFrom))); err != nil {
		t.Fatal(err)
	}
	if len(looked) != 1 {
		t.Errorf("a large new file: looked for %q, want once", looked)
	}
	_ = filepath.Walk(dst, func(p string, _ os.FileInfo, _ error) error {
		if strings.HasSuffix(p, ".partial") || strings.Contains(p, ".usync-") {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

// TestFingerprintBytes: partialSum's fingerprint is rclone's, byte for byte,
// for mtimes with and without fractions, odd years and both time types.
func TestFingerprintBytes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := newRemote(t, ctx, "ufp", dir)
	for i, mt := range []time.Time{
		time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 100, time.FixedZone("X", 3600)),
		time.Date(1969, 7, 20, 20, 17, 40, 500000000, time.UTC),
		time.Date(2262, 4, 11, 0, 0, 0, 1000, time.UTC),
		time.Now(),
	} {
		name := fmt.Sprint("f", i)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte("x"), i*1000), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		o, err := f.NewObject(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendFingerprint(ctx, nil, o)
		if want := fs.Fingerprint(ctx, o, true); !ok || string(got) != want {
			t.Errorf("%v: fingerprint %q (%v), want %q", mt, got, ok, want)
		}
		// The CRC is operations' own: a partial name rclone makes is
		// recognised (TestPartialsAreNotMadeForNewFiles runs it end to end).
		final := "dir/" + name
		h := crc32.NewIEEE()
		_, _ = h.Write([]byte(final))
		_, _ = h.Write([]byte(fs.Fingerprint(ctx, o, true)))
		if sum := partialSum(ctx, o, final); sum != h.Sum32() {
			t.Errorf("%v: partialSum %08x, want %08x", mt, sum, h.Sum32())
		}
	}
}

// TestBwlimitThroughRC: a bandwidth limit set through rc after start sends
// copies to rclone's own (throttled) copy; once it is off the engine copies.
func TestBwlimitThroughRC(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newRemote(t, ctx, "ubw", dir)
	src, err := f.NewObject(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	bwlimit := func(rate string) {
		t.Helper()
		if _, err := rc.Calls.Get("core/bwlimit").Fn(ctx, rc.Params{"rate": rate}); err != nil {
			t.Fatal(err)
		}
	}
	bwlimit("1M")
	defer bwlimit("off")
	if _, err := f.Copy(ctx, src, "b"); !errors.Is(err, fs.ErrorCantCopy) {
		t.Errorf("with a limit: err = %v, want fs.ErrorCantCopy", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("with a limit the engine made the copy (%v)", err)
	}
	bwlimit("off")
	if _, err := f.Copy(ctx, src, "c"); err != nil {
		t.Errorf("without a limit: %v", err)
	}
}

// TestOsPath: osPath's prefix test agrees with filepath.Rel's on paths
// inside, at and outside the root, for a root of "/" too.
func TestOsPath(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	escaped := 0
	for i, root := range []string{dir, dir + "/", "/", dir, "/"} {
		name := fmt.Sprint("uospath", i)
		if i >= 3 { // without local's encoding of "." and ".."
			config.FileSetValue(name, "encoding", "None")
		}
		f := newRemote(t, ctx, name, root)
		for _, remote := range []string{"", "a", "a/b", "a//b/", "./a", "..", "../x", "a/../..", "a/../../x",
			"..a", "a/..b", "../" + filepath.Base(dir) + "x/y", "/abs", "a/./../b"} {
			got, err := f.osPath(remote)
			want := filepath.Join(f.osRoot, filepath.FromSlash(f.lopt.Enc.FromStandardPath(remote)))
			rel, rerr := filepath.Rel(f.osRoot, want)
			escapes := rerr != nil || rel == ".." || strings.HasPrefix(rel, "../")
			if escapes {
				escaped++
			}
			if escapes != (err != nil) || (err == nil && got != want) {
				t.Errorf("root %q, remote %q: osPath = %q, %v; want %q, escapes %v", root, remote, got, err, want, escapes)
			}
		}
	}
	if escaped == 0 {
		t.Error("no remote escaped the root: the test tests nothing")
	}
}

// TestCopyObject: the object Copy returns for an engine copy is made from
// Copy's own stat of the file, with local's object made only when needed,
// and says what local's would. A source whose mtime changed after it was
// listed still gets rclone's (the listed) mtime on its copy.
func TestCopyObject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := []byte("copy object content")
	listed := time.Date(2021, 5, 6, 7, 8, 9, 123456789, time.UTC)
	p := filepath.Join(dir, "a")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, listed, listed); err != nil {
		t.Fatal(err)
	}
	f := newRemote(t, ctx, "ucopyobj", dir)
	src, err := f.NewObject(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Copy(ctx, src, "sub/b")
	if err != nil {
		t.Fatal(err)
	}
	o := got.(*Object)
	if o.copied == nil || o.loaded() != nil {
		t.Fatalf("copy object made through local's NewObject")
	}
	if o.Remote() != "sub/b" || o.String() != "sub/b" || o.Size() != int64(len(data)) ||
		!o.ModTime(ctx).Equal(listed) || !o.Storable() {
		t.Errorf("copy object: %q %q %d %v %v", o.Remote(), o.String(), o.Size(), o.ModTime(ctx), o.Storable())
	}
	want, err := f.Fs.NewObject(ctx, "sub/b")
	if err != nil {
		t.Fatal(err)
	}
	if want.Size() != o.Size() || !want.ModTime(ctx).Equal(o.ModTime(ctx)) {
		t.Errorf("local says %d %v, the copy object %d %v", want.Size(), want.ModTime(ctx), o.Size(), o.ModTime(ctx))
	}
	in, err := o.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	read, _ := io.ReadAll(in)
	_ = in.Close()
	if !bytes.Equal(read, data) || o.UnWrap() == nil {
		t.Errorf("read %q through the copy object", read)
	}
	if err := o.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "sub", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Remove left the copy (%v)", err)
	}

	// The source's mtime moves after listing: the engine copies the new
	// one, rclone asks for the listed one, as local's Put would set.
	later := listed.Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	got, err = f.Copy(ctx, src, "sub/c")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "sub", "c"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(listed) || !got.ModTime(ctx).Equal(listed) {
		t.Errorf("copy of a source touched since listing: mtime %v, object %v, want %v", fi.ModTime(), got.ModTime(ctx), listed)
	}
}

// TestBatchesOverlap: the runner keeps more than one engine call in flight,
// so a file queued while a long batch is being copied is copied beside it,
// not after it. With one call at a time, rclone's transfers and the engine
// took turns (rclone finishing a batch's transfers while the engine waited
// for the next batch, and the other way round).
func TestBatchesOverlap(t *testing.T) {
	if lanesPerRunner < 2 {
		t.Fatalf("lanesPerRunner = %d: batches cannot overlap", lanesPerRunner)
	}
	ctx := context.Background()
	dir := t.TempDir()
	big, small := filepath.Join(dir, "big"), filepath.Join(dir, "small")
	block := bytes.Repeat([]byte{0x5a}, 1<<20)
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 256; i++ {
		block[0] = byte(i)
		if _, err := f.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(small, []byte("small"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := getRunner(uringsync.Options{}, 4093, 0) // a batch size no other test uses: a runner of its own
	if err != nil {
		t.Fatal(err)
	}
	newReq := func(src string, size int64) *request {
		return &request{ctx: ctx, pair: uringsync.Pair{Src: src, Dst: src + ".copy"}, size: size,
			ta: transferaccounter.Get(ctx), done: make(chan struct{})}
	}
	bigReq := newReq(big, 256<<20)
	bigErr := make(chan error, 1)
	go func() {
		res, err := r.do(bigReq)
		bigErr <- errors.Join(err, res.Err)
	}()
	busy := func() bool { // a lane has taken the large file's batch
		for _, l := range r.lanes {
			l.mu.Lock()
			n := len(l.cur)
			l.mu.Unlock()
			if n > 0 {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !busy(); time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatal("no lane took the large file")
		}
	}
	res, err := r.do(newReq(small, 5))
	if err = errors.Join(err, res.Err); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bigReq.done:
		t.Error("the small file's copy waited for the large file's batch to end")
	default:
	}
	if err := <-bigErr; err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{big, small} {
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(p + ".copy")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: copy differs (%v)", p, err)
		}
	}
}

// TestOsRootOf: local's Root() spells a relative root's "." and ".."
// segments "．" and "．．"; the OS path has the dots again.
func TestOsRootOf(t *testing.T) {
	enc := encoder.EncodeSlash | encoder.EncodeDot // local's default
	for in, want := range map[string]string{
		"．":         ".",
		"．．/src":    "../src",
		"．．/．．/a/b": "../../a/b",
		"/tmp/x":    "/tmp/x",
	} {
		if got := osRootOf(in, enc); got != want {
			t.Errorf("osRootOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBadEngineOptions: an engine option out of range is an error naming
// it, not an engine silently turned off.
func TestBadEngineOptions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, opt := range []string{"queue_depth=100000", "workers=-5", "sync_below=-1", "batch_size=0", "batch_size=-5"} {
		_, err := fs.NewFs(ctx, ":uring,"+opt+":"+dir)
		name, _, _ := strings.Cut(opt, "=")
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want one naming %s", opt, err, name)
		}
	}
	if _, err := fs.NewFs(ctx, ":uring,queue_depth=64,workers=2,batch_size=1:"+dir); err != nil {
		t.Errorf("good options refused: %v", err)
	}
}
