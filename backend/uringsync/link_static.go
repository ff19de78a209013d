//go:build linux && cgo && !uringsync_pkgconfig

package uringsync

// Link the engine statically from the repository's build tree (made by
// `make`), so binaries run from any directory. liburing, libxxhash, libattr and libcrypto are the
// system's shared libraries. Build with -tags uringsync_pkgconfig to link an
// installed liburingsync found by pkg-config instead.

// #cgo CFLAGS: -I${SRCDIR}/../../native/include
// #cgo LDFLAGS: ${SRCDIR}/../../build/lib/liburingsync.a -luring -lxxhash -lattr -lcrypto -lstdc++ -lm -lpthread
import "C"
