//go:build !linux || !cgo

package uringsync

import "context"

// Engine is unavailable in this build: New always fails with ErrUnsupported.
type Engine struct{}

// Version returns "" when the library is not linked.
func Version() string { return "" }

// New returns an error wrapping ErrUnsupported.
func New(opts *Options) (*Engine, error) { return nil, ErrUnsupported }

// Close does nothing.
func (e *Engine) Close() error { return nil }

// Cancel does nothing.
func (e *Engine) Cancel() {}

// Kind returns KindNone.
func (e *Engine) Kind() Kind { return KindNone }

// Stats returns zero counters.
func (e *Engine) Stats() Stats { return Stats{} }

// CopyTree returns ErrUnsupported.
func (e *Engine) CopyTree(ctx context.Context, src, dst string) error { return ErrUnsupported }

// CopyFiles returns ErrUnsupported.
func (e *Engine) CopyFiles(ctx context.Context, pairs []Pair) ([]Result, error) {
	return nil, ErrUnsupported
}
