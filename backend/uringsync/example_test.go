//go:build linux && cgo

package uringsync_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/uringsync/uring-sync/backend/uringsync"
)

func Example() {
	dir, err := os.MkdirTemp("", "uringsync-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	_ = os.MkdirAll(filepath.Join(src, "photos"), 0o755)
	_ = os.WriteFile(filepath.Join(src, "photos", "a.jpg"), []byte("not really a photo"), 0o644)

	e, err := uringsync.New(&uringsync.Options{Preserve: true, QuietFallback: true})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	// Copy a whole tree, like cp -rT src dst.
	if err := e.CopyTree(context.Background(), src, filepath.Join(dir, "dst")); err != nil {
		log.Fatal(err)
	}
	st := e.Stats()
	fmt.Println("files copied:", st.FilesDone, "bytes:", st.BytesDone)

	// Copy explicit pairs, one result each.
	results, err := e.CopyFiles(context.Background(), []uringsync.Pair{
		{Src: filepath.Join(src, "photos", "a.jpg"), Dst: filepath.Join(dir, "backup", "a.jpg")},
		{Src: filepath.Join(src, "missing.jpg"), Dst: filepath.Join(dir, "backup", "b.jpg")},
	})
	fmt.Println("batch error:", err != nil)
	for _, r := range results {
		fmt.Println(r.Bytes, r.Err != nil)
	}
	// Output:
	// files copied: 1 bytes: 18
	// batch error: true
	// 18 false
	// 0 true
}
