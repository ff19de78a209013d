package e2e

// Source tree fixtures shared by the comparer tests and the end-to-end cases.

import (
	"fmt"
	"strings"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// nameOf returns a name of exactly n bytes starting with prefix.
func nameOf(prefix string, n int) string {
	if len(prefix) >= n {
		return prefix[:n]
	}
	return prefix + strings.Repeat("x", n-len(prefix))
}

// deepDir returns a chain of directories whose path exceeds PATH_MAX (4096 bytes):
// 24 components of 200 bytes each, 4824 bytes with separators.
func deepDir(prefix string) string {
	parts := make([]string, 24)
	for i := range parts {
		parts[i] = nameOf(fmt.Sprintf("%s%02d-", prefix, i), 200)
	}
	return strings.Join(parts, "/")
}

// weirdNames are names that break naive tools: whitespace, control characters, leading
// dashes, glob and quote characters, non-UTF-8 bytes, and a 255-byte name (NAME_MAX).
var weirdNames = []string{
	"with space",
	" leading space",
	"trailing space ",
	"new\nline",
	"tab\there",
	"-leading-dash",
	"--help",
	"-v",
	"star*question?[bracket]",
	"quote'double\"back\\slash",
	"\xff\xfe non-utf8 \x80",
	"caf\xc3\xa9 utf8",
	"\x01\x1b ctrl",
	nameOf("long-", 255),
}

// buildRich makes a small tree holding one of everything the comparer checks.
func buildRich(tr *Tree) {
	tr.File("empty", nil, 0o644)
	tr.File("small.txt", []byte("hello\n"), 0o644)
	tr.File("data.bin", Data("data.bin", 300*kib+7), 0o640)
	tr.File("exec.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	tr.File("setuid", []byte("s"), 0o4755)
	tr.Dir("emptydir", 0o755)
	tr.Dir("sticky", 0o1777)
	tr.File("sticky/in", []byte("in sticky"), 0o600)
	for i, n := range weirdNames {
		tr.File("weird/"+n, Data(n, i*100), 0o644)
	}
	tr.Dir("weird/"+weirdNames[0]+" dir", 0o755)
	tr.File("weird/"+weirdNames[0]+" dir/"+weirdNames[3], []byte("nested"), 0o644)
	deep := deepDir("deep")
	tr.File(deep+"/bottom.txt", []byte("at the bottom"), 0o644)
	tr.Symlink(deep+"/up", "../../..")
	tr.Symlink("links/rel", "../small.txt")
	tr.Symlink("links/abs", "/etc/hostname")
	tr.Symlink("links/dangling", "does/not/exist")
	tr.Symlink("links/todir", "../emptydir")
	tr.Symlink("links/self", "self")
	if err := tr.Mknod("special/fifo", 0o010640, 0); err != nil { // S_IFIFO
		tr.t.Fatalf("mkfifo: %v", err)
	}
	tr.Dir("ro", 0o755)
	tr.File("ro/inside", []byte("inside read-only dir"), 0o444)
	tr.Chmod("ro", 0o555)
	// Times last (creating entries changes a directory's mtime).
	tr.StampAll()
	tr.Times("data.bin", ts(1_000_000_000, 111_111_111), ts(1_100_000_000, 123_456_789))
	tr.Times("small.txt", ts(1_200_000_000, 1), ts(1_300_000_000, 999_999_999))
	tr.Times(deep+"/bottom.txt", ts(1_400_000_000, 5), ts(1_500_000_000, 6))
	tr.Times("ro", ts(1_600_000_000, 7), ts(1_600_000_000, 8))
	tr.Times("emptydir", ts(1_000_000_000, 0), ts(1_000_000_001, 42))
}
