//go:build !unix

package uring

import "os"

// newFileMode is unused where the engine does not run.
const newFileMode os.FileMode = 0o666
