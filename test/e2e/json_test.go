package e2e

// --json: every stdout line is one JSON event (schema 1), the stream starts with "start" and ends
// with "end", whose counters match the tree, and failures arrive as "error" events.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// event is one parsed line of --json output.
type event map[string]any

func (e event) str(key string) string {
	s, _ := e[key].(string)
	return s
}

func (e event) num(key string) float64 {
	n, _ := e[key].(float64)
	return n
}

func (e event) obj(key string) event {
	m, _ := e[key].(map[string]any)
	return event(m)
}

var statsFields = []string{"files_found", "bytes_found", "files_done", "bytes_done", "files_failed",
	"files_excluded", "dirs_created", "symlinks_created", "specials_created", "elapsed_ns", "walk_done",
	"engine", "workers", "queue_depth", "fd_budget", "buffer_bytes", "files_skipped", "temps_removed",
	"entries_deleted", "files_verified", "bytes_verified", "links_created", "files_inline", "files_unsized",
	"bytes_copied"}

// parseEvents parses every line of r's stdout and checks the stream's shape: valid UTF-8 JSON
// objects with schema 1 and a known type, "start" first, "end" last and nowhere else, and an end
// whose exit code is the process's and whose stats have every field.
func parseEvents(t *testing.T, r result) []event {
	t.Helper()
	if !strings.HasSuffix(r.stdout, "\n") {
		t.Fatalf("--json output does not end in a newline\n%s", r)
	}
	var evs []event
	for i, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if !utf8.ValidString(line) {
			t.Fatalf("line %d is not valid UTF-8: %q", i+1, line)
		}
		var e event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d is not a JSON object (%v): %q\n%s", i+1, err, line, r)
		}
		if e.num("schema") != 1 {
			t.Fatalf("line %d: schema %v, want 1: %q", i+1, e["schema"], line)
		}
		switch typ := e.str("type"); typ {
		case "start", "progress", "error", "delete", "file", "end":
			if (typ == "start") != (i == 0) {
				t.Fatalf("line %d: %q event; the first line and only it must be start\n%s", i+1, typ, r)
			}
		default:
			t.Fatalf("line %d: unknown type %q", i+1, typ)
		}
		evs = append(evs, e)
	}
	last := evs[len(evs)-1]
	if last.str("type") != "end" {
		t.Fatalf("last event is %q, want end\n%s", last.str("type"), r)
	}
	for _, e := range evs[:len(evs)-1] {
		if e.str("type") == "end" {
			t.Fatalf("an end event before the last line\n%s", r)
		}
	}
	if int(last.num("exit_code")) != r.code {
		t.Errorf("end.exit_code %v, process exit %d", last["exit_code"], r.code)
	}
	stats := last.obj("stats")
	for _, f := range statsFields {
		if _, ok := stats[f]; !ok {
			t.Errorf("end.stats has no %q", f)
		}
	}
	if len(stats) != len(statsFields) {
		t.Errorf("end.stats has %d fields, want %d: %v", len(stats), len(statsFields), stats)
	}
	return evs
}

func ofType(evs []event, typ string) []event {
	var out []event
	for _, e := range evs {
		if e.str("type") == typ {
			out = append(out, e)
		}
	}
	return out
}

// treeCounts counts the entries below root by type, and the bytes of its regular files.
type treeCounts struct{ files, dirs, symlinks, specials, bytes int }

func countTree(t *testing.T, root string) (c treeCounts, paths map[string]bool) {
	t.Helper()
	paths = map[string]bool{}
	fd, err := openRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// Through directory descriptors: buildRich's deep paths exceed PATH_MAX.
	err = walkFd(fd, "", func(_ int, _, rel string, st *unix.Stat_t) error {
		paths[rel] = true
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			c.files++
			c.bytes += int(st.Size)
		case unix.S_IFDIR:
			c.dirs++
		case unix.S_IFLNK:
			c.symlinks++
		default:
			c.specials++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, paths
}

// replaceInvalid replaces each byte that is not part of valid UTF-8 with U+FFFD.
func replaceInvalid(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		b.WriteRune(r) // utf8.RuneError (U+FFFD) for an invalid byte, n == 1
		s = s[n:]
	}
	return b.String()
}

// noErrorLines fails when stderr holds per-entry error lines: with --json they are events only.
// Like requireEngine, it also fails an io_uring run in which a ring fell back to the synchronous
// engine (the library says so on stderr; end.stats.engine would still say io_uring).
func noErrorLines(t *testing.T, r result) {
	t.Helper()
	if strings.Contains(r.stderr, "synchronous engine") && strings.Contains(r.cmd, "--engine=uring") {
		t.Fatalf("an io_uring run fell back to the synchronous engine\n%s", r)
	}
	for _, l := range strings.Split(r.stderr, "\n") {
		if errLine.MatchString(l) {
			t.Errorf("--json still printed an error line on stderr: %q\n%s", l, r)
		}
	}
}

func TestJSONEvents(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := tempDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			buildRich(src)
			buildMany(200, 4)(t, src)
			src.File("bad\xff", []byte("not UTF-8"), 0o644)
			if os.Geteuid() != 0 {
				src.Chmod("ro", 0o755) // a re-run as non-root could not write into it (see TestRerun)
			}
			want, paths := countTree(t, src.Root)
			dst := filepath.Join(dir, "dst")

			r := run(t, runOpts{env: e.env}, append(append([]string{}, e.args...), "--json", "-v", src.Root, dst)...)
			if r.code != 0 {
				t.Fatalf("exit %d, want 0\n%s", r.code, r)
			}
			evs := parseEvents(t, r)
			noErrorLines(t, r)
			requireSameTree(t, src.Root, dst, CompareOpts{Umask: testUmask})

			start := evs[0]
			if start.str("src") != src.Root || start.str("dst") != dst {
				t.Errorf("start names %q -> %q, want %q -> %q", start.str("src"), start.str("dst"), src.Root, dst)
			}
			if opts := start.obj("options"); opts["verbose"] != true || opts["preserve"] != false {
				t.Errorf("start.options %v: want verbose true, preserve false", opts)
			}
			if n := len(ofType(evs, "error")); n != 0 {
				t.Errorf("%d error events in a clean copy\n%s", n, r)
			}
			end := evs[len(evs)-1]
			if end.str("result") != "ok" {
				t.Errorf("end.result %q, want ok", end.str("result"))
			}
			stats := end.obj("stats")
			if stats.str("engine") != e.name {
				t.Errorf("end.stats.engine %q, want %q (fell back?)", stats.str("engine"), e.name)
			}
			for field, n := range map[string]int{
				"files_done": want.files, "files_found": want.files, "bytes_done": want.bytes, "bytes_found": want.bytes,
				"dirs_created":     want.dirs + 1, // the root too
				"symlinks_created": want.symlinks, "specials_created": want.specials,
				"files_failed": 0, "files_skipped": 0, "entries_deleted": 0,
			} {
				if int(stats.num(field)) != n {
					t.Errorf("end.stats.%s = %v, want %d", field, stats[field], n)
				}
			}
			if stats["walk_done"] != true {
				t.Errorf("end.stats.walk_done = %v", stats["walk_done"])
			}

			// -v: one file event per entry, named relative to SRC; the 0xff name as U+FFFD in
			// path, its exact bytes in path_b64.
			files := ofType(evs, "file")
			got := map[string]bool{}
			for _, f := range files {
				p := f.str("path")
				if b64, ok := f["path_b64"].(string); ok {
					raw, err := base64.StdEncoding.DecodeString(b64)
					if err != nil {
						t.Fatalf("path_b64 %q: %v", b64, err)
					}
					if utf8.Valid(raw) {
						t.Errorf("path_b64 on a valid UTF-8 name %q", raw)
					}
					if want := replaceInvalid(string(raw)); p != want {
						t.Errorf("path %q does not match path_b64 %q with U+FFFD for bad bytes", p, raw)
					}
					p = string(raw)
				}
				if got[p] {
					t.Errorf("entry %q reported twice", p)
				}
				got[p] = true
			}
			for p := range paths {
				if !got[p] {
					t.Errorf("no file event for %q", p)
				}
			}
			if len(got) != len(paths) {
				t.Errorf("%d file events, %d entries", len(got), len(paths))
			}
			if !got["bad\xff"] {
				t.Errorf("the name with byte 0xff did not come back through path_b64")
			}

			// A re-run reports every file as up to date and lists nothing without -v.
			r = run(t, runOpts{env: e.env}, append(append([]string{}, e.args...), "--json", src.Root, dst)...)
			if r.code != 0 {
				t.Fatalf("re-run: exit %d\n%s", r.code, r)
			}
			evs = parseEvents(t, r)
			if n := len(ofType(evs, "file")); n != 0 {
				t.Errorf("re-run without -v: %d file events", n)
			}
			stats = evs[len(evs)-1].obj("stats")
			if int(stats.num("files_skipped")) != want.files || int(stats.num("files_done")) != 0 {
				t.Errorf("re-run: files_skipped %v, files_done %v; want %d, 0", stats["files_skipped"], stats["files_done"], want.files)
			}
		})
	}
}

// TestJSONErrorEvents: unreadable files (the copy runs as uid 65534) become error events naming
// the path, the step and the errno; stderr has no error lines; the end event counts them.
func TestJSONErrorEvents(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			dir := nobodyDir(t)
			src := NewTree(t, filepath.Join(dir, "src"))
			src.File("ok.txt", []byte("ok"), 0o644)
			buildMany(50, 2)(t, src)
			src.File("secret", Data("secret", 3*kib), 0o000)
			src.File("sub/secret2", Data("secret2", 300*kib), 0o000)
			src.ChownAll(nobodyID, nobodyID)
			want, _ := countTree(t, src.Root)
			dst := filepath.Join(dir, "dst")
			r := run(t, runOpts{env: e.env, prefix: nobodyPrefix()},
				append(append([]string{}, e.args...), "--json", src.Root, dst)...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", r.code, r)
			}
			evs := parseEvents(t, r)
			noErrorLines(t, r)
			errs := map[string]event{}
			for _, ev := range ofType(evs, "error") {
				errs[ev.str("path")] = ev
			}
			if len(errs) != 2 {
				t.Errorf("%d error events, want 2 (secret, sub/secret2)\n%s", len(errs), r)
			}
			for _, p := range []string{"secret", "sub/secret2"} {
				ev, ok := errs[p]
				if !ok {
					t.Errorf("no error event with path %q\n%s", p, r)
					continue
				}
				if ev.num("step") != 1 || ev.str("step_name") != "open source" || ev.str("side") != "src" {
					t.Errorf("%s: step %v %q side %q, want 1 \"open source\" src", p, ev["step"], ev.str("step_name"), ev.str("side"))
				}
				if ev.num("errno") != 13 || ev.str("errno_name") != "EACCES" || ev.str("message") == "" {
					t.Errorf("%s: errno %v %q %q, want 13 EACCES and a message", p, ev["errno"], ev.str("errno_name"), ev.str("message"))
				}
				if ev.str("src") != filepath.Join(src.Root, p) || ev.str("dst") != filepath.Join(dst, p) {
					t.Errorf("%s: src %q dst %q", p, ev.str("src"), ev.str("dst"))
				}
			}
			end := evs[len(evs)-1]
			stats := end.obj("stats")
			if end.str("result") != "failures" || stats.num("files_failed") != 2 || int(stats.num("files_done")) != want.files-2 {
				t.Errorf("end: result %q, files_failed %v, files_done %v; want failures, 2, %d",
					end.str("result"), stats["files_failed"], stats["files_done"], want.files-2)
			}
			if stats.str("engine") != e.name {
				t.Errorf("end.stats.engine %q, want %q", stats.str("engine"), e.name)
			}
		})
	}
}

// TestJSONCannotStart: a copy that cannot start still gives start and end, with the reason.
func TestJSONCannotStart(t *testing.T) {
	dir := tempDir(t)
	r := run(t, runOpts{}, "--json", filepath.Join(dir, "missing"), filepath.Join(dir, "dst"))
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s", r.code, r)
	}
	evs := parseEvents(t, r)
	end := evs[len(evs)-1]
	if end.str("result") != "error" || end.obj("error").str("errno_name") != "ENOENT" {
		t.Errorf("end: result %q, error %v; want error, ENOENT", end.str("result"), end["error"])
	}
	// The side it could not use: one error event, the source's stat.
	var errs []event
	for _, ev := range evs {
		if ev.str("type") == "error" {
			errs = append(errs, ev)
		}
	}
	if len(errs) != 1 || errs[0].str("side") != "src" || errs[0].str("step_name") != "stat" {
		t.Errorf("error events %v, want one: side src, step stat", errs)
	}
	if strings.TrimSpace(r.stderr) != "" {
		t.Errorf("stderr not empty with --json\n%s", r)
	}
	// Without --json: one line, naming the side.
	r = run(t, runOpts{}, filepath.Join(dir, "missing"), filepath.Join(dir, "dst"))
	if want := "uring-sync: stat '" + filepath.Join(dir, "missing") + "': no such file or directory"; r.code != 2 ||
		!strings.EqualFold(strings.TrimSpace(r.stderr), want) {
		t.Errorf("exit %d, stderr %q; want 2, %q", r.code, r.stderr, want)
	}
}

// TestJSONInterrupted: SIGINT ends the stream with an end event whose error names the cause, with
// errno and errno_name as for a copy that cannot start.
func TestJSONInterrupted(t *testing.T) {
	dir := tempDir(t)
	src := killSource(t, filepath.Join(dir, "src"))
	for i, delay := range []time.Duration{150, 80, 40, 20, 10} {
		p := start(t, runOpts{}, "--json", src.Root, filepath.Join(dir, fmt.Sprint("dst", i)))
		time.Sleep(delay * time.Millisecond)
		p.signal(syscall.SIGINT)
		r := p.wait()
		if r.code == 0 {
			continue // finished first
		}
		if r.code != 130 {
			t.Fatalf("exit %d, want 130\n%s", r.code, r)
		}
		evs := parseEvents(t, r)
		end := evs[len(evs)-1]
		e := end.obj("error")
		if end.str("result") != "interrupted" || e.str("errno_name") != "ECANCELED" || e.num("errno") != float64(unix.ECANCELED) || e.str("message") == "" {
			t.Errorf("end: result %q, error %v; want interrupted, ECANCELED and a message", end.str("result"), end["error"])
		}
		return
	}
	t.Skip("every copy finished before its SIGINT")
}
