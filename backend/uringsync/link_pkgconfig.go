//go:build linux && cgo && uringsync_pkgconfig

package uringsync

// Link an installed liburingsync found by pkg-config
// (PKG_CONFIG_PATH=build/lib/pkgconfig for the repository's build tree).

// #cgo pkg-config: uringsync
import "C"
