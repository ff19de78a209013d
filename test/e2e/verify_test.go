package e2e

// --verify and --fsync end to end, on both engines: good copies are verified and counted; a file
// damaged between its write and its read-back (an LD_PRELOAD shim plays the faulty device) fails
// with exit status 1 and never appears under its name.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// corruptShim is interposed on posix_fadvise, which the engine calls (POSIX_FADV_DONTNEED) on a
// written file just before reading it back for --verify. A file whose first bytes are
// "CORRUPT" gets its first byte changed through a descriptor of its own, and a line in
// $USYNC_CORRUPT_LOG says so. Nothing else is touched.
const corruptShim = `
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void damage(int fd, int advice) {
  char head[7];
  if (advice != POSIX_FADV_DONTNEED || pread(fd, head, sizeof head, 0) != (ssize_t)sizeof head ||
      memcmp(head, "CORRUPT", sizeof head) != 0)
    return;
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  int w = open(proc, O_WRONLY | O_CLOEXEC);
  if (w < 0 || pwrite(w, "c", 1, 0) != 1) abort();
  close(w);
  const char *log = getenv("USYNC_CORRUPT_LOG");
  FILE *f = log ? fopen(log, "a") : NULL;
  if (f) { fputs("damaged\n", f); fclose(f); }
}

int posix_fadvise(int fd, off_t off, off_t len, int advice) {
  static int (*real)(int, off_t, off_t, int);
  if (!real) real = (int (*)(int, off_t, off_t, int))dlsym(RTLD_NEXT, "posix_fadvise");
  damage(fd, advice);
  return real(fd, off, len, advice);
}
int posix_fadvise64(int fd, off_t off, off_t len, int advice) { return posix_fadvise(fd, off, len, advice); }
`

func buildShim(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler to build the LD_PRELOAD shim")
	}
	dir := t.TempDir()
	src, lib := filepath.Join(dir, "corrupt.c"), filepath.Join(dir, "corrupt.so")
	if err := os.WriteFile(src, []byte(corruptShim), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-O1", "-o", lib, src, "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("building the shim: %v\n%s", err, out)
	}
	return lib
}

var verifiedLine = regexp.MustCompile(`uring-sync: (\d+) files \(.*\) read back and verified`)

func countVerified(t *testing.T, stderr string) int {
	t.Helper()
	m := verifiedLine.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no \"read back and verified\" line in\n%s", stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestVerifyAndFsyncCopyExactly(t *testing.T) {
	for _, e := range allEngines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			for i := range 40 {
				src.File(filepath.Join("d"+strconv.Itoa(i%4), "f"+strconv.Itoa(i)), Data("f"+strconv.Itoa(i), i*523), 0o644)
			}
			src.File("big", Data("big", 3<<20+11), 0o600) // the bulk path
			src.File("empty", nil, 0o644)
			src.Dir("emptydir", 0o755)
			src.Symlink("link", "big")
			for _, flags := range [][]string{{"--verify"}, {"--fsync"}, {"--verify", "--fsync"}} {
				dst := filepath.Join(dir, "dst"+strings.Join(flags, ""))
				args := append(append([]string{"-p"}, flags...), src.Root, dst)
				r := copyTree(t, e, runOpts{}, 0, args...)
				requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true})
				if flags[0] == "--verify" {
					if n := countVerified(t, r.stderr); n != 42 {
						t.Errorf("%v: %d files verified, want 42\n%s", flags, n, r)
					}
				} else if verifiedLine.MatchString(r.stderr) {
					t.Errorf("%v: a verify summary without --verify\n%s", flags, r)
				}
			}
		})
	}
}

func TestVerifyMismatchIsReportedAndNotPublished(t *testing.T) {
	shim := buildShim(t)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("good", Data("good", 9000), 0o644)
			src.File("sub/bad", append([]byte("CORRUPT"), Data("bad", 5000)...), 0o644)
			src.File("bigbad", append([]byte("CORRUPT"), Data("bigbad", 2<<20)...), 0o644) // the bulk path
			src.File("replaced", []byte("CORRUPT new"), 0o644)
			dst := NewTree(t, filepath.Join(dir, "dst"))
			dst.File("replaced", []byte("the older copy"), 0o644)
			log := filepath.Join(dir, "damage.log")
			o := runOpts{env: []string{"LD_PRELOAD=" + shim, "USYNC_CORRUPT_LOG=" + log}}

			r := copyTree(t, e, o, 1, "--verify", src.Root, dst.Root)
			if got, _ := os.ReadFile(log); bytes.Count(got, []byte("damaged\n")) != 3 {
				t.Fatalf("the shim damaged %d files, want 3 (not preloaded?)\n%s", bytes.Count(got, []byte("damaged\n")), r)
			}
			requireErrorsReported(t, r, "sub/bad", "bigbad", "replaced")
			if n := strings.Count(r.stderr, "contents differ from the source"); n != 3 {
				t.Errorf("%d \"contents differ\" messages, want 3\n%s", n, r)
			}
			if strings.Contains(r.stderr, "Bad message") {
				t.Errorf("raw strerror in the output\n%s", r)
			}
			if dst.Exists("sub/bad") || dst.Exists("bigbad") {
				t.Errorf("a file that failed verification was published: %v", dst.Paths())
			}
			if got := string(dst.ReadFile("replaced")); got != "the older copy" {
				t.Errorf("replaced = %q: a failed copy must leave the older file as it was", got)
			}
			if !bytes.Equal(dst.ReadFile("good"), Data("good", 9000)) {
				t.Errorf("good was not copied")
			}
			for _, p := range dst.Paths() {
				if strings.Contains(p, ".usync-") {
					t.Errorf("temporary left behind: %s", p)
				}
			}
			if n := countVerified(t, r.stderr); n != 1 {
				t.Errorf("%d files verified, want 1\n%s", n, r)
			}

			// The same shim without --verify: nothing is read back, so nothing is damaged.
			_ = os.Remove(log)
			plain := filepath.Join(dir, "plain")
			copyTree(t, e, o, 0, src.Root, plain)
			if _, err := os.Stat(log); err == nil {
				t.Errorf("the shim acted without --verify")
			}
			requireSameTree(t, src.Root, plain, CompareOpts{Umask: testUmask})
		})
	}
}

// TestVerifyFileItsOwnerCannotRead: a source readable to others but not to its owner (mode 0044)
// becomes a copy its owner (the user running the copy) cannot read either; --verify must still read
// it back, and leave it with that mode. Runs as uid 65534 (root would bypass the check).
func TestVerifyFileItsOwnerCannotRead(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dir := nobodyDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("others-only", Data("others-only", 70000), 0o044) // root's: nobody reads it as "other"
			src.File("plain", []byte("plain"), 0o644)
			dst := filepath.Join(dir, "dst")
			r := copyTree(t, e, runOpts{prefix: nobodyPrefix()}, 0, "--verify", "-p", src.Root, dst)
			if n := countVerified(t, r.stderr); n != 2 {
				t.Errorf("%d files verified, want 2\n%s", n, r)
			}
			requireSameTree(t, src.Root, dst, CompareOpts{Preserve: true})
		})
	}
}
