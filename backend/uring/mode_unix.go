//go:build unix

package uring

import (
	"os"
	"syscall"
)

// newFileMode is the mode local gives the files it makes: 0666 less the
// umask. The umask is read at start, before anything runs concurrently
// (reading it means setting it).
var newFileMode = func() os.FileMode {
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	return 0o666 &^ os.FileMode(umask)
}()
