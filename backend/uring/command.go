package uring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rclone/rclone/backend/local"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/accounting"
	"github.com/rclone/rclone/fs/cache"
	"github.com/rclone/rclone/fs/config/configstruct"
	"github.com/rclone/rclone/fs/filter"
	"github.com/uringsync/uring-sync/backend/uringsync"
)

var commandHelp = []fs.CommandHelp{{
	Name:  "copytree",
	Short: "Copy the whole tree to a local directory with the engine.",
	Long: `Hands the whole tree under the remote to the uring-sync engine, which
makes a new copy of it (like cp -rT): directories (also empty ones),
files, symlinks, permission bits and times.

    rclone backend copytree uring:/src /dst

The destination is a local path, or a uring: or local remote, and must
be missing or empty: copytree makes new copies only, it does not compare
or update (use rclone copy or sync for that). It copies the whole tree,
so it refuses the flags that would change what or how it copies (filters,
--max-depth, --metadata, --max-transfer, --bwlimit, --inplace,
--copy-links, --one-file-system, no_clone, no_set_modtime, no_engine)
with an error. --dry-run shows what would be copied. Progress shows with -P.

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
			"files_direct":    filesDirect.Load(),
			"files_metadata":  filesWithMeta.Load(),
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
	Mode        string  `json:"mode"` // "tree" (kept for scripts that read it)
	DryRun      bool    `json:"dry_run,omitempty"`
	Files       uint64  `json:"files"`
	Bytes       uint64  `json:"bytes"`
	Dirs        uint64  `json:"dirs"`
	Symlinks    uint64  `json:"symlinks"`
	Failed      uint64  `json:"failed"`
	Seconds     float64 `json:"seconds"`
}

// localDir returns the OS path of a destination argument (a path, or a
// uring: or local remote) and the local options that apply to it.
func localDir(ctx context.Context, arg string) (string, localOptions, error) {
	dst, err := cache.Get(ctx, arg)
	if err != nil && !errors.Is(err, fs.ErrorIsFile) {
		return "", localOptions{}, err
	}
	if err != nil {
		return "", localOptions{}, fmt.Errorf("destination %q is a file", arg)
	}
	for dst != nil {
		switch d := dst.(type) {
		case *Fs:
			return d.osRoot, d.lopt, nil
		case *local.Fs:
			// Its name is "local{…}" when flags or a connection string
			// set options; those come from the flags and the config.
			var lopt localOptions
			name, _, _ := strings.Cut(d.Name(), "{")
			m := fs.ConfigMap(localInfo.Prefix, localInfo.Options, name, nil)
			if err := configstruct.Set(m, &lopt); err != nil {
				return "", localOptions{}, err
			}
			return osRootOf(d.Root(), lopt.Enc), lopt, nil
		}
		unwrap := dst.Features().UnWrap
		if unwrap == nil {
			break
		}
		dst = unwrap()
	}
	return "", localOptions{}, fmt.Errorf("destination %q is not a local directory", arg)
}

// treeRefuses names the first flag set that copytree does not honour, or
// "". Each would make rclone copy do something a whole-tree engine copy
// does not: choose files, keep other metadata, limit or pace the copy,
// follow links, stay on one filesystem, skip reflinks or times.
func (f *Fs) treeRefuses(ctx context.Context, dst localOptions) string {
	ci := fs.GetConfig(ctx)
	if why := streamOnly(ci); why != "" {
		return why
	}
	switch {
	case f.opt.NoEngine:
		// The engine is off: uring behaves as local, which has no copytree.
		return "no_engine"
	case !filter.GetConfig(ctx).InActive():
		return "filter flags (--include, --exclude, --min-size, --max-age, ...)"
	case ci.MaxDepth >= 0:
		return "--max-depth"
	case ci.Metadata:
		return "--metadata"
	case f.lopt.FollowSymlinks:
		return "--copy-links"
	case f.lopt.OneFileSystem:
		return "--one-file-system"
	case f.lopt.NoClone || dst.NoClone:
		return "no_clone"
	case f.lopt.NoSetModTime || dst.NoSetModTime:
		return "no_set_modtime"
	}
	return ""
}

// emptyOrMissing returns an error unless dir is missing or an empty directory.
func emptyOrMissing(dir string) error {
	d, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	if _, err := d.Readdirnames(1); errors.Is(err, io.EOF) {
		return nil
	} else if err != nil {
		return err
	}
	return fmt.Errorf("destination %q is not empty: copytree makes new copies only (rclone copy or sync update an existing tree)", dir)
}

func (f *Fs) copyTree(ctx context.Context, arg []string, opt map[string]string) (any, error) {
	if len(arg) != 1 {
		return nil, errors.New("usage: rclone backend copytree uring:SRC DST")
	}
	dst, dlopt, err := localDir(ctx, arg[0])
	if err != nil {
		return nil, err
	}
	if why := f.treeRefuses(ctx, dlopt); why != "" {
		return nil, fmt.Errorf("copytree copies whole trees and does not support %s: use rclone copy", why)
	}
	if err := emptyOrMissing(dst); err != nil {
		return nil, err
	}
	ci := fs.GetConfig(ctx)
	stats := accounting.Stats(ctx)
	eopt := uringsync.Options{
		Workers:       f.opt.Workers,
		QueueDepth:    f.opt.QueueDepth,
		ForceSync:     f.opt.ForceSync,
		Preserve:      true,
		DryRun:        ci.DryRun,
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
	// One rclone transfer carries the bytes of the whole tree, so -P and
	// the stats follow the engine's byte counters without a cost per file;
	// it stands for the first file, and each further file done is counted
	// with an empty transfer as the engine reports progress.
	//
	// rclone prunes finished transfers beyond the last 100, merging each
	// one's time range into a list that it only shortens before the oldest
	// running transfer, which here is the tree's, running all along: every
	// file would add a range and a sort of all of them (O(n²): 116 s of CPU
	// for 100K files).  The finished per-file transfers are kept instead
	// (a small struct each) while the tree copies.
	stats.SetMaxCompletedTransfers(-1)
	defer stats.SetMaxCompletedTransfers(accounting.MaxCompletedTransfers)
	tr := stats.NewTransferRemoteSize("copytree", -1, f, nil)
	acc := tr.Account(ctx, nil)
	acc.ServerSideTransferStart()
	var accounted, counted uint64 = 0, 1 // engine callbacks run one at a time
	account := func(s uringsync.Stats) {
		if s.BytesDone > accounted {
			acc.ServerSideTransferEnd(int64(s.BytesDone - accounted))
			accounted = s.BytesDone
		}
		for ; counted < s.FilesDone; counted++ {
			stats.NewTransferRemoteSize("copytree file", 0, f, nil).Done(ctx, nil)
		}
		if s.FilesFound > s.FilesDone {
			// BytesFound can trail: a file that grew, or one queued unwalked
			// and not opened yet (its size counts from then).
			var left int64
			if s.BytesFound > s.BytesDone {
				left = int64(s.BytesFound - s.BytesDone)
			}
			stats.SetTransferQueue(int(s.FilesFound-s.FilesDone), left)
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

	sum := treeSummary{Source: f.osRoot, Destination: dst, Engine: eng.Kind().String(), Mode: "tree", DryRun: ci.DryRun}
	err = eng.CopyTree(ctx, f.osRoot, dst)
	st := eng.Stats()
	account(st)
	sum.Files, sum.Bytes, sum.Failed = st.FilesDone, st.BytesDone, st.FilesFailed
	sum.Dirs, sum.Symlinks, sum.Seconds = st.DirsCreated, st.SymlinksCreated, st.Elapsed.Seconds()
	return sum, err
}
