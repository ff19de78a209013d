// Package e2e holds the end-to-end tests of the uring-sync command-line tool.
//
// The tests run the built binary (env URING_SYNC_BIN, else <repo>/build/bin/uring-sync)
// against generated trees and compare source and destination as whole trees: paths, types,
// bytes, symlink targets, modes and, with -p, nanosecond mtimes of files and directories.
// Every tree operation goes through directory file descriptors and the *at system calls,
// so trees deeper than PATH_MAX and names holding any byte but '/' and NUL work.
//
// Run with `go test ./test/e2e/...` (or `make test-e2e`) after `make`.
package e2e
