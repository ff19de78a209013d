//go:build !linux || !cgo

package uringsync

import (
	"context"
	"errors"
	"testing"
)

func TestUnsupported(t *testing.T) {
	if _, err := New(nil); !errors.Is(err, ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("New: err = %v, want ErrUnsupported", err)
	}
	var e *Engine
	if err := e.CopyTree(context.Background(), "a", "b"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("CopyTree: err = %v", err)
	}
}
