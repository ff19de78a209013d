//go:build linux && cgo

package uringsync

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBadOptionsAreNamed: every option New refuses is named in the error
// (its Options field, its value; the pattern of an exclude), refused in Go
// before the library is asked, and the error wraps EINVAL.
func TestBadOptionsAreNamed(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{Workers: -1}, "uringsync: Options.Workers -1 out of range (0 to 1024)"},
		{Options{Workers: 1025}, "uringsync: Options.Workers 1025 out of range (0 to 1024)"},
		{Options{QueueDepth: 1 << 30}, "uringsync: Options.QueueDepth 1073741824 out of range (0 to 4096)"},
		{Options{QueueDepth: -3}, "uringsync: Options.QueueDepth -3 out of range (0 to 4096)"},
		{Options{IOWQMaxWorkers: 2000}, "uringsync: Options.IOWQMaxWorkers 2000 out of range (0 to 1024)"},
		{Options{ChunkSize: -5}, "uringsync: Options.ChunkSize -5 out of range (0, or 4096 to 67108864)"},
		{Options{ChunkSize: 100}, "uringsync: Options.ChunkSize 100 out of range (0, or 4096 to 67108864)"},
		{Options{ChunkSize: 64<<20 + 1}, "uringsync: Options.ChunkSize 67108865 out of range (0, or 4096 to 67108864)"},
		{Options{BufferBudget: 4095}, "uringsync: Options.BufferBudget 4095 out of range (0, or at least 4096)"},
		{Options{BufferBudget: -1}, "uringsync: Options.BufferBudget -1 out of range (0, or at least 4096)"},
		{Options{FileMode: 0o7777}, "uringsync: Options.FileMode 07777 out of range (permission bits: 0777 at most)"},
		{Options{IdleTimeout: -time.Second}, "uringsync: Options.IdleTimeout -1s out of range (0 to 1193h2m47.295s)"},
		{Options{ProgressInterval: -time.Millisecond}, "uringsync: Options.ProgressInterval -1ms out of range (0 to 1193h2m47.295s)"},
		{Options{ProgressInterval: 5000 * time.Hour}, "uringsync: Options.ProgressInterval 5000h0m0s out of range (0 to 1193h2m47.295s)"},
		{Options{Excludes: []string{"*.tmp", "[abc"}}, `uringsync: Options.Excludes[1] "[abc": invalid pattern`},
		{Options{Excludes: []string{"ok/", "trailing\\"}}, `uringsync: Options.Excludes[1] "trailing\\": invalid pattern`},
		{Options{Excludes: []string{"/"}}, `uringsync: Options.Excludes[0] "/": invalid pattern`},
		{Options{Excludes: []string{""}}, `uringsync: Options.Excludes[0] "": invalid pattern`},
		{Options{Excludes: []string{"a", "*.tmp\x00*"}}, `uringsync: Options.Excludes[1] "*.tmp\x00*": invalid pattern`},
	} {
		_, err := New(&tt.o)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("err = %v, want %q… wrapping EINVAL", err, tt.want)
		}
	}
	// The limits themselves are accepted.
	for _, o := range []Options{
		{Workers: 1024, QueueDepth: 4096, IOWQMaxWorkers: 1024, ChunkSize: 64 << 20, BufferBudget: 4096, FileMode: 0o777},
		{ChunkSize: 4096, IdleTimeout: time.Millisecond, ProgressInterval: time.Millisecond},
		{Excludes: []string{"*.tmp", "[abc]", "/anchored/", "a\\*", "**/x"}},
	} {
		o.QuietFallback = true
		e, err := New(&o)
		if err != nil {
			t.Errorf("valid options refused: %v", err)
			continue
		}
		_ = e.Close()
	}
}
