package uring_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rclone/rclone/fstest"
	"github.com/rclone/rclone/fstest/fstests"
	"github.com/uringsync/uring-sync/backend/uring"
)

// TestIntegration runs rclone's backend integration suite against a uring
// remote in a temporary directory (or against -remote NAME: if given).
func TestIntegration(t *testing.T) {
	opt := fstests.Opt{
		RemoteName: *fstest.RemoteName,
		NilObject:  (*uring.Object)(nil),
		// The local backend has no chunked uploads (it does multi-thread
		// writes through OpenWriterAt, which uring forwards), so there is
		// nothing to wrap.
		UnimplementableFsMethods:     []string{"OpenChunkWriter"},
		UnimplementableObjectMethods: []string{},
	}
	if opt.RemoteName == "" {
		opt.ExtraConfig = []fstests.ExtraConfigItem{
			{Name: "TestUring", Key: "type", Value: uring.Name},
		}
		// A remote without a path is the working directory.
		opt.RemoteName = "TestUring:"
		opt.QuickTestOK = true
	}
	// Work in a temporary directory, where fstests also finds the (empty)
	// set of test server scripts it looks for above the working directory.
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "fstest", "testserver", "init.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	fstests.Run(t, &opt)
}
