package e2e

// Running the uring-sync binary.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testUmask is set for the whole test process (children inherit it) so that expected
// permissions do not depend on the caller's shell.
const testUmask = 0o022

func TestMain(m *testing.M) {
	unix.Umask(testUmask)
	os.Exit(m.Run())
}

// binary returns the uring-sync binary under test: $URING_SYNC_BIN, else <repo>/build/bin/uring-sync.
// A missing binary fails the test: an end-to-end suite that silently skips proves nothing.
func binary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("URING_SYNC_BIN")
	if p == "" {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			t.Fatal(err)
		}
		p = filepath.Join(root, "build", "bin", "uring-sync")
	}
	st, err := os.Stat(p)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("uring-sync binary not found or not executable at %s (%v): run `make` first, or set URING_SYNC_BIN", p, err)
	}
	return p
}

// engine is one way of running the copy; every case runs under each.
type engine struct {
	name    string
	args    []string
	env     []string
	summary string // substring of the -v summary line
}

// The io_uring variant forces the ring path: on its own (auto) the engine picks
// the synchronous one for sources on tmpfs, which would hide the rings there.
var engines = []engine{
	{name: "io_uring", args: []string{"--engine=uring"}, summary: "engine: io_uring"},
	{name: "sync", args: []string{"--engine=sync"}, summary: "engine: sync"},
}

// allEngines adds the engine as it runs by default, adaptive: on a disk filesystem the rings'
// threads copy the files whose pages are cached themselves and give the rings the others (on
// tmpfs it is the synchronous engine). The tests where that split can matter run it too.
var allEngines = append(engines[:len(engines):len(engines)], engine{name: "auto", summary: "engine: "})

// result is one finished run.
type result struct {
	cmd    string
	code   int // exit status, or 128+N after signal N
	stdout string
	stderr string
	maxRSS int64     // wait4 rusage peak: includes the go test process's own peak (vfork+exec)
	ended  time.Time // when the process was reaped
}

func (r result) String() string {
	return fmt.Sprintf("$ %s\nexit %d\n--- stdout:\n%s--- stderr:\n%s", r.cmd, r.code, clip(r.stdout), clip(r.stderr))
}

func clip(s string) string {
	const max = 4000
	if len(s) > max {
		return s[:max] + fmt.Sprintf("\n... (%d more bytes)\n", len(s)-max)
	}
	return s
}

// runOpts are the less common knobs of a run.
type runOpts struct {
	env     []string // extra environment
	prefix  []string // command prefix, e.g. setpriv ... or sh -c 'umask 027; exec "$0" "$@"'
	timeout time.Duration
}

// proc is a started run of the binary, in its own process group.
type proc struct {
	t        testing.TB
	cmd      *exec.Cmd
	argv     []string
	timeout  time.Duration
	stdout   bytes.Buffer
	stderr   bytes.Buffer
	done     chan struct{} // closed once the process is reaped
	err      error
	ended    time.Time
	timedOut atomic.Bool
}

// start starts the binary with args. After o.timeout (default 60 s) the whole process group
// is killed, and wait fails the test: a hang never hangs go test.
func start(t testing.TB, o runOpts, args ...string) *proc {
	t.Helper()
	bin := binary(t)
	if o.timeout == 0 {
		o.timeout = 60 * time.Second
	}
	p := &proc{t: t, timeout: o.timeout, done: make(chan struct{})}
	p.argv = append(append(append([]string{}, o.prefix...), bin), args...)
	p.cmd = exec.Command(p.argv[0], p.argv[1:]...)
	p.cmd.Env = append(os.Environ(), o.env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("cannot run %s: %v", shellQuote(p.argv), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.ended = time.Now()
		close(p.done)
	}()
	go func() {
		select {
		case <-p.done:
		case <-time.After(o.timeout):
			p.timedOut.Store(true)
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
	return p
}

// signal sends sig to the process (not its group) and returns when it was sent, and false if
// the process had already exited.
func (p *proc) signal(sig syscall.Signal) (time.Time, bool) {
	select {
	case <-p.done:
		return time.Time{}, false
	default:
	}
	at := time.Now()
	return at, p.cmd.Process.Signal(sig) == nil
}

// exited reports whether the process has been reaped.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process and returns its outcome; it fails the test if the process timed
// out (it was killed then) or could not be waited for.
func (p *proc) wait() result {
	p.t.Helper()
	<-p.done
	r := result{cmd: shellQuote(p.argv), stdout: p.stdout.String(), stderr: p.stderr.String(), ended: p.ended}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss * 1024
	}
	var ee *exec.ExitError
	switch {
	case errors.As(p.err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = 128 + int(ws.Signal())
		}
	case p.err != nil:
		p.t.Fatalf("cannot wait for %s: %v", r.cmd, p.err)
	}
	if p.timedOut.Load() {
		p.t.Fatalf("timed out after %v (killed the process group):\n%s", p.timeout, r)
	}
	return r
}

// run runs the binary with args and returns its outcome; it fails the test only if the
// process cannot be started or times out.
func run(t testing.TB, o runOpts, args ...string) result {
	t.Helper()
	return start(t, o, args...).wait()
}

// copyTree runs one copy under engine e and checks the exit code and the engine summary line.
func copyTree(t testing.TB, e engine, o runOpts, wantCode int, args ...string) result {
	t.Helper()
	o.env = append(append([]string{}, o.env...), e.env...)
	full := append(append([]string{"-v"}, e.args...), args...)
	r := run(t, o, full...)
	if r.code != wantCode {
		t.Fatalf("exit code %d, want %d\n%s", r.code, wantCode, r)
	}
	if wantCode != 2 {
		requireEngine(t, e, r)
	}
	return r
}

// requireEngine checks that the -v summary names the engine that was asked for: an io_uring
// run that quietly fell back to the synchronous engine fails.
func requireEngine(t testing.TB, e engine, r result) {
	t.Helper()
	if !strings.Contains(r.stderr, e.summary) {
		t.Fatalf("summary does not say %q (io_uring unavailable or silently fell back?)\n%s", e.summary, r)
	}
	// A worker that could not set up its ring copies synchronously while the summary still
	// says io_uring: then the io_uring path was not (fully) tested.
	if strings.Contains(e.summary, "io_uring") && strings.Contains(r.stderr, "synchronous engine") {
		t.Fatalf("an io_uring run fell back to the synchronous engine\n%s", r)
	}
}

// errLine is the contract's per-entry error report.
var errLine = regexp.MustCompile(`^uring-sync: \S.* '.*': .+$`)

// requireErrorsReported checks that every name in names appears in a well-formed error line on stderr.
func requireErrorsReported(t testing.TB, r result, names ...string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if errLine.MatchString(l) {
			lines = append(lines, l)
		}
	}
	var missing []string
	for _, n := range names {
		found := false
		for _, l := range lines {
			if strings.Contains(l, n) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Errorf("no error line \"uring-sync: <step> '<path>': <reason>\" for %q\n%s", missing, r)
	}
}

func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,+") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// umaskPrefix runs the binary under a different umask.
func umaskPrefix(mask uint32) []string {
	return []string{"sh", "-c", fmt.Sprintf(`umask %03o; exec "$0" "$@"`, mask)}
}

// nobody is the unprivileged user the permission cases run as (root bypasses permission checks).
const nobodyID = 65534

func nobodyPrefix() []string {
	return []string{"setpriv", fmt.Sprintf("--reuid=%d", nobodyID), fmt.Sprintf("--regid=%d", nobodyID), "--clear-groups"}
}

// nobodyDir returns a fresh directory owned by the unprivileged user and reachable by it,
// or skips the test when not running as root.
func nobodyDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the permission cases run the copy as uid 65534 via setpriv, and only root can switch users")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("setpriv (util-linux) not found: %v", err)
	}
	dir, err := os.MkdirTemp("", "uring-sync-e2e-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobodyID, nobodyID); err != nil {
		t.Fatal(err)
	}
	// The binary must be reachable by that user too.
	r := exec.Command("setpriv", append(nobodyPrefix()[1:], "test", "-x", binary(t))...)
	if err := r.Run(); err != nil {
		t.Fatalf("uid %d cannot execute %s (%v): make its directories world-searchable", nobodyID, binary(t), err)
	}
	return dir
}

// mountTmpfs mounts a fresh tmpfs on a new directory and unmounts it when the test ends,
// or skips the test with the reason when that is impossible.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	return mountTmpfsWith(t, "size=512m,mode=0755")
}

// mountTmpfsWith is mountTmpfs with the given mount options (size=, nr_inodes=, ...).
func mountTmpfsWith(t *testing.T, options string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := tempDir(t)
	mnt := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, options); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): the tmpfs case needs CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt
}

// mountBindfs mounts a bindfs (FUSE) view of a new directory under dir, with bindfs's options,
// unmounts it when the test ends, and returns the mount point; it skips the test (saying why)
// where that cannot be done.
func mountBindfs(t *testing.T, dir string, options ...string) string {
	t.Helper()
	needRoot(t, "mounts a FUSE filesystem")
	if _, err := exec.LookPath("bindfs"); err != nil {
		t.Skip("bindfs is not installed (the Makefile installs it: apt-get install bindfs)")
	}
	real, mnt := filepath.Join(dir, "real"), filepath.Join(dir, "mnt")
	for _, d := range []string{real, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("bindfs", append(options, real, mnt)...).CombinedOutput(); err != nil {
		t.Skipf("bindfs cannot mount here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("fusermount", "-u", mnt).Run(); _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	return mnt
}
