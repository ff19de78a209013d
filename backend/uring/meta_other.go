//go:build !linux

package uring

// srcStat is what engineMeta saw of a source.
type srcStat struct{}

// engineMeta: the engine runs on Linux only.
func engineMeta(string) (*srcStat, string) { return nil, "not Linux" }

func setTimesAfter(string, string, *srcStat) error { return nil }
