package uring

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/accounting"
	"github.com/rclone/rclone/fs/cache"
	"github.com/rclone/rclone/fs/filter"
	"github.com/rclone/rclone/fs/operations"
	"github.com/rclone/rclone/fs/walk"
	"github.com/uringsync/uring-sync/backend/uringsync"
)

var commandHelp = []fs.CommandHelp{{
	Name:  "copytree",
	Short: "Copy the whole tree to a local directory with the engine.",
	Long: `Hands the whole tree under the remote to the uring-sync engine, which
makes the destination a copy of it (like cp -rT): directories (also
empty ones), files, symlinks, modes and times.

    rclone backend copytree uring:/src /dst

The destination is a local path, or a uring: or local remote. With
filter flags (--include, --exclude, --filter-from, --min-size,
--max-age, --max-depth, ...) rclone lists the source and the engine
copies the files that pass; empty directories are then not copied.
--dry-run lists what would be copied. Progress shows with -P.

Options:

    -o workers=N       engine rings or threads
    -o force_sync      do not use io_uring

Prints a JSON summary.`,
	Opts: map[string]string{
		"workers":    "Engine rings or threads (default: the remote's workers option).",
		"force_sync": "Do not use io_uring (default: the remote's force_sync option).",
	},
}, {
	Name:  "stats",
	Short: "Show what the engine did in this process.",
	Long: `Prints the engine kind that would be used and the counters of Copy
calls run by the engine in this rclone process (useful from rclone rcd).`,
}}

// Command runs a backend command: copytree and stats, or local's own.
func (f *Fs) Command(ctx context.Context, name string, arg []string, opt map[string]string) (any, error) {
	switch name {
	case "copytree":
		return f.copyTree(ctx, arg, opt)
	case "stats":
		kind := uringsync.KindNone
		if e, err := uringsync.New(&uringsync.Options{ForceSync: f.opt.ForceSync, QuietFallback: true}); err == nil {
			kind = e.Kind()
			_ = e.Close()
		}
		return map[string]any{
			"engine":          kind.String(),
			"version":         uringsync.Version(),
			"files_copied":    filesCopied.Load(),
			"bytes_copied":    bytesCopied.Load(),
			"batches":         batchesRun.Load(),
			"files_fell_back": filesFellBack.Load(),
		}, nil
	}
	if do, ok := f.Fs.(fs.Commander); ok {
		return do.Command(ctx, name, arg, opt)
	}
	return nil, fs.ErrorCommandNotFound
}

// treeSummary is what copytree prints.
type treeSummary struct {
	Source      string  `json:"source"`
	Destination string  `json:"destination"`
	Engine      string  `json:"engine"`
	Mode        string  `json:"mode"` // "tree" (whole tree) or "files" (filtered list)
	DryRun      bool    `json:"dry_run,omitempty"`
	Files       uint64  `json:"files"`
	Bytes       uint64  `json:"bytes"`
	Dirs        uint64  `json:"dirs"`
	Symlinks    uint64  `json:"symlinks"`
	Failed      uint64  `json:"failed"`
	Seconds     float64 `json:"seconds"`
}

// localDir returns the OS path of a destination argument: a path, or a
// uring: or local remote.
func localDir(ctx context.Context, arg string) (string, error) {
	dst, err := cache.Get(ctx, arg)
	if err != nil && !errors.Is(err, fs.ErrorIsFile) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("destination %q is a file", arg)
	}
	for dst != nil {
		if u, ok := dst.(*Fs); ok {
			return u.osRoot, nil
		}
		if dst.Features().IsLocal && fs.Fs(dst).Name() == "local" {
			return filepath.FromSlash(dst.Root()), nil
		}
		unwrap := dst.Features().UnWrap
		if unwrap == nil {
			break
		}
		dst = unwrap()
	}
	return "", fmt.Errorf("destination %q is not a local directory", arg)
}

func (f *Fs) copyTree(ctx context.Context, arg []string, opt map[string]string) (any, error) {
	if len(arg) != 1 {
		return nil, errors.New("usage: rclone backend copytree uring:SRC DST")
	}
	dst, err := localDir(ctx, arg[0])
	if err != nil {
		return nil, err
	}
	ci := fs.GetConfig(ctx)
	fi := filter.GetConfig(ctx)
	stats := accounting.Stats(ctx)
	eopt := uringsync.Options{
		Workers:       f.opt.Workers,
		QueueDepth:    f.opt.QueueDepth,
		ForceSync:     f.opt.ForceSync,
		Preserve:      !f.lopt.NoSetModTime,
		QuietFallback: true,
	}
	if v, ok := opt["workers"]; ok {
		if _, err := fmt.Sscan(v, &eopt.Workers); err != nil {
			return nil, fmt.Errorf("bad workers %q: %w", v, err)
		}
	}
	if v, ok := opt["force_sync"]; ok {
		eopt.ForceSync = v == "" || v == "true"
	}
	// One rclone transfer stands for the whole tree, so -P and the stats
	// follow the engine's byte counters without a cost per file.
	tr := stats.NewTransferRemoteSize("copytree", -1, f, nil)
	acc := tr.Account(ctx, nil)
	acc.ServerSideTransferStart()
	var accounted uint64 // engine callbacks run one at a time
	account := func(s uringsync.Stats) {
		if s.BytesDone > accounted {
			acc.ServerSideTransferEnd(int64(s.BytesDone - accounted))
			accounted = s.BytesDone
		}
		if s.FilesFound > s.FilesDone {
			stats.SetTransferQueue(int(s.FilesFound-s.FilesDone), int64(s.BytesFound-s.BytesDone))
		}
	}
	defer func() {
		stats.SetTransferQueue(0, 0)
		_ = acc.Close()
		tr.Done(ctx, nil)
	}()
	eopt.OnError = func(e *uringsync.FileError) {
		fs.Errorf(strings.TrimPrefix(e.Src, f.osRoot+string(filepath.Separator)), "copytree: %v", e)
		_ = stats.Error(e)
	}
	eopt.OnProgress = account
	eng, err := uringsync.New(&eopt)
	if err != nil {
		return nil, err
	}
	defer func() { _ = eng.Close() }()

	sum := treeSummary{Source: f.osRoot, Destination: dst, Engine: eng.Kind().String(), DryRun: ci.DryRun}
	if fi.InActive() && !ci.DryRun && ci.MaxDepth < 0 {
		sum.Mode = "tree"
		err = eng.CopyTree(ctx, f.osRoot, dst)
		st := eng.Stats()
		account(st)
		sum.Files, sum.Bytes, sum.Failed = st.FilesDone, st.BytesDone, st.FilesFailed
		sum.Dirs, sum.Symlinks, sum.Seconds = st.DirsCreated, st.SymlinksCreated, st.Elapsed.Seconds()
		return sum, err
	}

	// Filters: rclone lists, the engine copies what passes.
	sum.Mode = "files"
	var pairs []uringsync.Pair
	var size int64
	err = walk.ListR(ctx, f, "", false, ci.MaxDepth, walk.ListObjects, func(entries fs.DirEntries) error {
		for _, e := range entries {
			o, ok := e.(fs.Object)
			if !ok {
				continue
			}
			if f.lopt.TranslateSymlinks && strings.HasSuffix(o.Remote(), fs.LinkSuffix) {
				fs.Logf(o, "copytree: skipping translated symlink")
				continue
			}
			if operations.SkipDestructive(ctx, o, "copy") {
				sum.Files++
				sum.Bytes += uint64(o.Size())
				continue
			}
			src, err := f.osPath(o.Remote())
			if err != nil {
				return err
			}
			pairs = append(pairs, uringsync.Pair{Src: src, Dst: filepath.Join(dst, filepath.FromSlash(f.lopt.Enc.FromStandardPath(o.Remote())))})
			size += o.Size()
		}
		return nil
	})
	if err != nil || len(pairs) == 0 {
		return sum, err
	}
	stats.SetTransferQueue(len(pairs), size)
	const chunk = 16384 // engine calls per chunk keep cancellation and memory bounded
	var errs []error
	for start := 0; start < len(pairs); start += chunk {
		results, err := eng.CopyFiles(ctx, pairs[start:min(start+chunk, len(pairs))])
		st := eng.Stats()
		account(st)
		accounted = 0 // counters restart with each call
		sum.Files += st.FilesDone
		sum.Bytes += st.BytesDone
		sum.Seconds += st.Elapsed.Seconds()
		for _, r := range results {
			if r.Err != nil {
				sum.Failed++
			}
		}
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	return sum, errors.Join(errs...)
}
