// Package uring is an rclone backend that copies local files with the
// uring-sync engine (io_uring) and does everything else exactly as rclone's
// local backend, which it wraps.
//
// Server-side copies between uring remotes (`rclone copy uring:/a uring:/b`)
// are batched from the concurrent transfers into the engine. The backend
// command copytree hands a whole tree to the engine.
package uring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rclone/rclone/backend/local"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/config/configstruct"
	"github.com/rclone/rclone/fs/fserrors"
	"github.com/rclone/rclone/fs/hash"
	"github.com/rclone/rclone/fs/list"
	"github.com/rclone/rclone/lib/encoder"
	"github.com/uringsync/uring-sync/backend/uringsync"
)

// Name is the backend's type name.
const Name = "uring"

// uringOptions are the options this backend adds to the local ones.
var uringOptions = []fs.Option{{
	Name:     "workers",
	Help:     "Engine rings or threads (0 = from the CPU count).",
	Default:  0,
	Advanced: true,
}, {
	Name:     "queue_depth",
	Help:     "Files in flight per engine ring (0 = library default, 128).",
	Default:  0,
	Advanced: true,
}, {
	Name:     "batch_size",
	Help:     "Most files handed to the engine in one call.\n\nConcurrent copies (see --transfers) are gathered into batches of up to\nthis many files.",
	Default:  4096,
	Advanced: true,
}, {
	Name: "transfers",
	Help: `Raise --transfers to this when it was left at its default.

The engine copies the files of concurrent transfers together, so more
transfers make bigger batches. This happens only once a second uring
remote is made (the engine runs only between uring remotes). 0 leaves
--transfers alone.`,
	Default:  128,
	Advanced: true,
}, {
	Name: "sync_below",
	Help: `Batches with fewer files than this use the synchronous engine.

0 (the default) lets the engine choose for every batch: its rings are
kept from call to call, and its adaptive engine copies cached files
directly and sends only files that would wait for the disk through
io_uring.`,
	Default:  0,
	Advanced: true,
}, {
	Name:     "force_sync",
	Help:     "Never use io_uring: run the engine's synchronous thread pool.",
	Default:  false,
	Advanced: true,
}, {
	Name: "hash",
	Help: `Compute MD5 while copying.

rclone verifies each copy with MD5; with this on the engine computes it
while copying, so neither file is read again afterwards.`,
	Default:  true,
	Advanced: true,
}, {
	Name:     "no_engine",
	Help:     "Disable the engine: copy like the local backend (for comparisons).",
	Default:  false,
	Advanced: true,
}}

// Options are the options of this backend beyond local's.
type Options struct {
	Workers    int  `config:"workers"`
	QueueDepth int  `config:"queue_depth"`
	BatchSize  int  `config:"batch_size"`
	Transfers  int  `config:"transfers"`
	SyncBelow  int  `config:"sync_below"`
	ForceSync  bool `config:"force_sync"`
	Hash       bool `config:"hash"`
	NoEngine   bool `config:"no_engine"`
}

// localOptions are the local backend's options this backend needs to know.
type localOptions struct {
	FollowSymlinks    bool                 `config:"copy_links"`
	TranslateSymlinks bool                 `config:"links"`
	NoSetModTime      bool                 `config:"no_set_modtime"`
	NoClone           bool                 `config:"no_clone"`
	OneFileSystem     bool                 `config:"one_file_system"`
	TimeType          string               `config:"time_type"`
	Enc               encoder.MultiEncoder `config:"encoding"`
}

// localInfo is the local backend's registration, whose options are ours too.
var localInfo *fs.RegInfo

func init() {
	var err error
	localInfo, err = fs.Find("local")
	if err != nil {
		panic("uring: local backend not registered: " + err.Error())
	}
	var options fs.Options
	for _, o := range localInfo.Options {
		if o.Name == "description" { // added again by fs.Register
			continue
		}
		// Options without a prefix (--copy-links, ...) are registered as
		// flags by local already; ours get the --uring- prefix and fall back
		// to local's flag in NewFs.
		o.NoPrefix = false
		o.ShortOpt = ""
		options = append(options, o)
	}
	options = append(options, uringOptions...)
	info := &fs.RegInfo{
		Name:         Name,
		Description:  "Local Disk, copied with the uring-sync engine (io_uring)",
		NewFs:        NewFs,
		CommandHelp:  commandHelp,
		MetadataInfo: localInfo.MetadataInfo,
		Options:      options,
	}
	// rclone v1.75.0 logs an "internal error" for backends without an entry
	// in its own documentation data; that is expected for an out-of-tree
	// backend, so keep it quiet while registering.
	ci := fs.GetConfig(context.Background())
	level := ci.LogLevel
	ci.LogLevel = fs.LogLevelEmergency
	fs.Register(info)
	ci.LogLevel = level
}

// Fs is a local file system whose server-side copies run on the engine.
type Fs struct {
	fs.Fs  // the local backend's Fs
	name   string
	root   string
	osRoot string // root as an OS path
	// under: every path osPath returns starts with this (the cleaned
	// osRoot and a separator), "" when osRoot is not absolute
	under    string
	opt      Options
	lopt     localOptions
	features *fs.Features
	wrapper  fs.Fs

	// lookNext: how many more new files must be found free by a lookup
	// before the next are copied without one (lookFirst).
	lookNext atomic.Int32
}

// NewFs makes an Fs for root. It accepts every option of the local backend.
func NewFs(ctx context.Context, name, root string, m configmap.Mapper) (fs.Fs, error) {
	m = noPrefixFlags{m}
	opt := Options{}
	if err := configstruct.Set(m, &opt); err != nil {
		return nil, err
	}
	// What the engine would refuse is refused here, naming the option,
	// instead of turning the engine off for the whole run; and a batch
	// size below 1 is not quietly taken as 1 (the slowest setting).
	for _, o := range []struct {
		name          string
		val, min, max int
	}{{"workers", opt.Workers, 0, 1024}, {"queue_depth", opt.QueueDepth, 0, 4096},
		{"sync_below", opt.SyncBelow, 0, math.MaxInt32}, {"batch_size", opt.BatchSize, 1, math.MaxInt32}} {
		if o.val < o.min || o.val > o.max {
			if o.min == 0 {
				return nil, fmt.Errorf("uring: %s %d: want 0 (the default) to %d", o.name, o.val, o.max)
			}
			return nil, fmt.Errorf("uring: %s %d: want %d to %d", o.name, o.val, o.min, o.max)
		}
	}
	lopt := localOptions{}
	if err := configstruct.Set(m, &lopt); err != nil {
		return nil, err
	}
	if fs.GetConfig(ctx).Links {
		lopt.TranslateSymlinks = true
	}
	base, err := local.NewFs(ctx, name, root, m)
	isFile := errors.Is(err, fs.ErrorIsFile)
	if err != nil && !isFile {
		return nil, err
	}
	f := &Fs{
		Fs:   base,
		name: name,
		root: base.Root(),
		opt:  opt,
		lopt: lopt,
	}
	f.osRoot = osRootOf(base.Root(), lopt.Enc)
	if root := filepath.Clean(f.osRoot); filepath.IsAbs(root) {
		f.under = strings.TrimSuffix(root, string(filepath.Separator)) + string(filepath.Separator)
	}
	f.features = (&fs.Features{
		CaseInsensitive:          base.Features().CaseInsensitive,
		CanHaveEmptyDirectories:  true,
		IsLocal:                  true,
		SlowHash:                 true,
		ReadMetadata:             true,
		WriteMetadata:            true,
		UserMetadata:             true,
		ReadDirMetadata:          true,
		WriteDirMetadata:         true,
		WriteDirSetModTime:       true,
		UserDirMetadata:          true,
		DirModTimeUpdatesOnWrite: true,
		FilterAware:              true,
		// As local: rclone writes to a .partial name and renames it, so a
		// failed write never leaves a truncated file. Engine copies go to
		// that name too (the engine writes under its own temporary name).
		PartialUploads: true,
	}).Fill(ctx, f).Mask(ctx, base).WrapsFs(f, base)
	// Copy is ours alone (local has none on Linux), so it is set after
	// masking; it also works between differently named uring remotes.
	f.features.ListP = f.ListP
	// Without the engine (no cgo, not Linux, or no_engine) uring is local.
	engine := !opt.NoEngine && uringsync.Version() != ""
	if why := streamOnly(fs.GetConfig(ctx)); engine && why != "" {
		fs.Debugf(f, "uring: %s: every copy is rclone's own", why)
		engine = false
	}
	if engine {
		f.features.Copy = f.Copy
		f.features.ServerSideAcrossConfigs = true
		raiseTransfers(ctx, name+":"+f.osRoot, opt.Transfers)
	}
	if isFile {
		return f, fs.ErrorIsFile
	}
	return f, nil
}

// osRootOf returns the OS path of local's Root() (local's own root, an OS
// path, in rclone's standard form). A "." or ".." segment of a relative
// root cannot be a name on disk, so with the Dot encoding (local's
// default) the standard form spells it "．" or "．．"; FromStandardPath
// would make those names (as it does for a remote's file called "."), so
// they are turned back here, as local's cleanRootPath keeps them.
func osRootOf(root string, enc encoder.MultiEncoder) string {
	if enc&encoder.EncodeDot == 0 {
		return filepath.FromSlash(enc.FromStandardPath(root))
	}
	parts := strings.Split(root, "/")
	for i, p := range parts {
		switch p {
		case "．":
			parts[i] = "."
		case "．．":
			parts[i] = ".."
		default:
			parts[i] = enc.FromStandardName(p)
		}
	}
	return filepath.FromSlash(strings.Join(parts, "/"))
}

// engineRoots are the uring remotes with the engine on made so far.
var (
	engineRootsMu sync.Mutex
	engineRoots   = map[string]struct{}{}
)

// raiseTransfers raises --transfers to n, unless the user chose a value,
// once root is the second uring remote (with the engine on) in this
// process. The engine only copies between uring remotes, so only then do
// more transfers make bigger engine batches; with a uring remote on one
// side only they would just run more of the other side's transfers at once
// (256 S3 uploads), which makes even local copies slower.
func raiseTransfers(ctx context.Context, root string, n int) {
	engineRootsMu.Lock()
	engineRoots[root] = struct{}{}
	second := len(engineRoots) >= 2
	engineRootsMu.Unlock()
	ci := fs.GetConfig(ctx)
	o := fs.ConfigOptionsInfo.Get("transfers")
	if !second || n <= ci.Transfers || o == nil || o.IsSet() || !o.IsDefault() || ci.Transfers != 4 {
		return
	}
	fs.Debugf(nil, "uring: raising --transfers from %d to %d (set --transfers or --uring-transfers to change)", ci.Transfers, n)
	ci.Transfers = n
}

// noPrefixFlags lets local's un-prefixed flags (--copy-links, ...) apply to
// uring remotes as they do to local ones; like any flag they override the
// config file.
type noPrefixFlags struct{ configmap.Mapper }

func (m noPrefixFlags) Get(key string) (string, bool) {
	for i := range localInfo.Options {
		if o := &localInfo.Options[i]; o.Name == key && o.NoPrefix && o.IsSet() {
			return o.String(), true
		}
	}
	return m.Mapper.Get(key)
}

// osPath returns the OS path of remote, which must stay under the root.
func (f *Fs) osPath(remote string) (string, error) {
	p := filepath.Join(f.osRoot, filepath.FromSlash(f.lopt.Enc.FromStandardPath(remote)))
	// Join cleaned p: below an absolute root it starts with the root and
	// a separator, or is the root itself. (filepath.Rel says the same at
	// several times the cost; it stays for a relative root.)
	if f.under != "" && (strings.HasPrefix(p, f.under) || p+string(filepath.Separator) == f.under) {
		return p, nil
	}
	rel, err := filepath.Rel(f.osRoot, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fserrors.NoRetryError(fmt.Errorf("%q: path escapes the root", remote))
	}
	return p, nil
}

// Name of the remote (as passed into NewFs).
func (f *Fs) Name() string { return f.name }

// Root of the remote (as passed into NewFs).
func (f *Fs) Root() string { return f.root }

// String describes the Fs.
func (f *Fs) String() string { return "uring file system at " + f.root }

// Features returns the optional features of this Fs.
func (f *Fs) Features() *fs.Features { return f.features }

// Hashes returns the supported hash types (as local).
func (f *Fs) Hashes() hash.Set { return f.Fs.Hashes() }

// Precision of the modification times (as local).
func (f *Fs) Precision() time.Duration { return f.Fs.Precision() }

// UnWrap returns the wrapped local Fs.
func (f *Fs) UnWrap() fs.Fs { return f.Fs }

// WrapFs returns the Fs wrapping this one, if any.
func (f *Fs) WrapFs() fs.Fs { return f.wrapper }

// SetWrapper sets the Fs wrapping this one.
func (f *Fs) SetWrapper(wrapper fs.Fs) { f.wrapper = wrapper }

// wrapEntries wraps local objects into uring objects, in place.
func (f *Fs) wrapEntries(entries fs.DirEntries) fs.DirEntries {
	for i, e := range entries {
		if o, ok := e.(fs.Object); ok {
			entries[i] = f.wrapObject(o)
		}
	}
	return entries
}

// List the objects and directories in dir.
func (f *Fs) List(ctx context.Context, dir string) (fs.DirEntries, error) {
	return list.WithListP(ctx, dir, f)
}

// ListP lists dir in tranches through callback.
func (f *Fs) ListP(ctx context.Context, dir string, callback fs.ListRCallback) error {
	if listP := f.Fs.Features().ListP; listP != nil {
		return listP(ctx, dir, func(entries fs.DirEntries) error {
			return callback(f.wrapEntries(entries))
		})
	}
	entries, err := f.Fs.List(ctx, dir)
	if err != nil {
		return err
	}
	return callback(f.wrapEntries(entries))
}

// ListR lists recursively (when the base can).
func (f *Fs) ListR(ctx context.Context, dir string, callback fs.ListRCallback) error {
	do := f.Fs.Features().ListR
	if do == nil {
		return fs.ErrorNotImplemented
	}
	return do(ctx, dir, func(entries fs.DirEntries) error {
		return callback(f.wrapEntries(entries))
	})
}

// NewObject finds the object at remote.
func (f *Fs) NewObject(ctx context.Context, remote string) (fs.Object, error) {
	o, err := f.Fs.NewObject(ctx, remote)
	if err != nil {
		return nil, err
	}
	return f.wrapObject(o), nil
}

// Put writes in to a new object.
func (f *Fs) Put(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) (fs.Object, error) {
	o, err := f.Fs.Put(ctx, in, src, options...)
	return f.wrapResult(o, err)
}

// PutStream writes in, of unknown size, to a new object.
func (f *Fs) PutStream(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) (fs.Object, error) {
	do := f.Fs.Features().PutStream
	if do == nil {
		return nil, fs.ErrorNotImplemented
	}
	o, err := do(ctx, in, src, options...)
	return f.wrapResult(o, err)
}

// PutUnchecked writes in without checking for an existing object.
func (f *Fs) PutUnchecked(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) (fs.Object, error) {
	do := f.Fs.Features().PutUnchecked
	if do == nil {
		return nil, fs.ErrorNotImplemented
	}
	o, err := do(ctx, in, src, options...)
	return f.wrapResult(o, err)
}

func (f *Fs) wrapResult(o fs.Object, err error) (fs.Object, error) {
	if o != nil {
		o = f.wrapObject(o)
	}
	return o, err
}

// baseObject returns the local object under src if src belongs to a uring Fs.
func baseObject(src fs.Object) (*Object, bool) {
	o, ok := src.(*Object)
	return o, ok
}

// Move src to remote with a rename (as local).
func (f *Fs) Move(ctx context.Context, src fs.Object, remote string) (fs.Object, error) {
	if o, ok := src.(*Object); ok && o.f == f && remote == o.Remote() && o.direct.CompareAndSwap(true, false) {
		return o, nil // rclone's rename of a partial the engine never made (partialFinal)
	}
	do := f.Fs.Features().Move
	o, ok := baseObject(src)
	if do == nil || !ok {
		return nil, fs.ErrorCantMove
	}
	b, err := o.base(ctx)
	if err != nil {
		return nil, err
	}
	moved, err := do(ctx, b, remote)
	if err != nil {
		return nil, err
	}
	return o.moved(f, moved), nil
}

// DirMove moves a directory of another uring Fs into this one (as local).
func (f *Fs) DirMove(ctx context.Context, src fs.Fs, srcRemote, dstRemote string) error {
	do := f.Fs.Features().DirMove
	srcFs, ok := src.(*Fs)
	if do == nil || !ok {
		return fs.ErrorCantDirMove
	}
	return do(ctx, srcFs.Fs, srcRemote, dstRemote)
}

// Purge deletes dir and everything in it, when the base can.
func (f *Fs) Purge(ctx context.Context, dir string) error {
	if do := f.Fs.Features().Purge; do != nil {
		return do(ctx, dir)
	}
	return fs.ErrorCantPurge
}

// CleanUp the trash, when the base has one.
func (f *Fs) CleanUp(ctx context.Context) error {
	if do := f.Fs.Features().CleanUp; do != nil {
		return do(ctx)
	}
	return errors.New("not supported by underlying remote")
}

// About returns usage of the file system.
func (f *Fs) About(ctx context.Context) (*fs.Usage, error) {
	if do := f.Fs.Features().About; do != nil {
		return do(ctx)
	}
	return nil, errors.New("not supported by underlying remote")
}

// ChangeNotify forwards to the base, when it has it.
func (f *Fs) ChangeNotify(ctx context.Context, notify func(string, fs.EntryType), interval <-chan time.Duration) {
	if do := f.Fs.Features().ChangeNotify; do != nil {
		do(ctx, notify, interval)
	}
}

// UserInfo forwards to the base, when it has it.
func (f *Fs) UserInfo(ctx context.Context) (map[string]string, error) {
	if do := f.Fs.Features().UserInfo; do != nil {
		return do(ctx)
	}
	return nil, fs.ErrorNotImplemented
}

// Disconnect forwards to the base, when it has it.
func (f *Fs) Disconnect(ctx context.Context) error {
	if do := f.Fs.Features().Disconnect; do != nil {
		return do(ctx)
	}
	return fs.ErrorNotImplemented
}

// MergeDirs forwards to the base, when it has it.
func (f *Fs) MergeDirs(ctx context.Context, dirs []fs.Directory) error {
	if do := f.Fs.Features().MergeDirs; do != nil {
		return do(ctx, dirs)
	}
	return errors.New("MergeDirs not supported")
}

// DirSetModTime sets the modification time of dir.
func (f *Fs) DirSetModTime(ctx context.Context, dir string, modTime time.Time) error {
	if do := f.Fs.Features().DirSetModTime; do != nil {
		return do(ctx, dir, modTime)
	}
	return fs.ErrorNotImplemented
}

// MkdirMetadata makes dir with metadata.
func (f *Fs) MkdirMetadata(ctx context.Context, dir string, metadata fs.Metadata) (fs.Directory, error) {
	if do := f.Fs.Features().MkdirMetadata; do != nil {
		return do(ctx, dir, metadata)
	}
	return nil, fs.ErrorNotImplemented
}

// DirCacheFlush forwards to the base, when it has it.
func (f *Fs) DirCacheFlush() {
	if do := f.Fs.Features().DirCacheFlush; do != nil {
		do()
	}
}

// PublicLink forwards to the base, when it has it.
func (f *Fs) PublicLink(ctx context.Context, remote string, expire fs.Duration, unlink bool) (string, error) {
	if do := f.Fs.Features().PublicLink; do != nil {
		return do(ctx, remote, expire, unlink)
	}
	return "", errors.New("PublicLink not supported")
}

// OpenWriterAt opens remote for random-access writes (multi-thread copies).
func (f *Fs) OpenWriterAt(ctx context.Context, remote string, size int64) (fs.WriterAtCloser, error) {
	if do := f.Fs.Features().OpenWriterAt; do != nil {
		return do(ctx, remote, size)
	}
	return nil, fs.ErrorNotImplemented
}

// Shutdown forwards to the base, when it has it.
func (f *Fs) Shutdown(ctx context.Context) error {
	if do := f.Fs.Features().Shutdown; do != nil {
		return do(ctx)
	}
	return nil
}

// Check the interfaces are satisfied.
var (
	_ fs.Fs              = (*Fs)(nil)
	_ fs.Copier          = (*Fs)(nil)
	_ fs.Mover           = (*Fs)(nil)
	_ fs.DirMover        = (*Fs)(nil)
	_ fs.Purger          = (*Fs)(nil)
	_ fs.Commander       = (*Fs)(nil)
	_ fs.PutStreamer     = (*Fs)(nil)
	_ fs.PutUncheckeder  = (*Fs)(nil)
	_ fs.CleanUpper      = (*Fs)(nil)
	_ fs.UnWrapper       = (*Fs)(nil)
	_ fs.Wrapper         = (*Fs)(nil)
	_ fs.ListRer         = (*Fs)(nil)
	_ fs.ListPer         = (*Fs)(nil)
	_ fs.Abouter         = (*Fs)(nil)
	_ fs.MergeDirser     = (*Fs)(nil)
	_ fs.DirSetModTimer  = (*Fs)(nil)
	_ fs.MkdirMetadataer = (*Fs)(nil)
	_ fs.DirCacheFlusher = (*Fs)(nil)
	_ fs.ChangeNotifier  = (*Fs)(nil)
	_ fs.PublicLinker    = (*Fs)(nil)
	_ fs.UserInfoer      = (*Fs)(nil)
	_ fs.Disconnecter    = (*Fs)(nil)
	_ fs.OpenWriterAter  = (*Fs)(nil)
	_ fs.Shutdowner      = (*Fs)(nil)
	_ fs.FullObject      = (*Object)(nil)
)
