package uring

import (
	"context"
	"encoding/hex"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/hash"
)

// Object is a local object that may know its MD5 from an engine copy, so
// rclone's verification after the copy reads neither file again.
//
// The copy an engine copy made (newCopyObject) has no local object until
// something needs one (base): it answers Remote, Size, ModTime and
// Storable from the stat Copy made of it, so that Copy need not ask
// local's NewObject for the file it has just looked at.
type Object struct {
	fs.Object // the local backend's object; in a copy, nil until base makes it (under baseMu)
	f         *Fs
	copied    *copiedInfo // set for a copy, never changed

	baseMu sync.Mutex

	mu  sync.Mutex
	md5 *knownHash // nil when not known

	// direct: Copy was asked for rclone's partial name of this file and
	// copied it straight to its final name (partialFinal); the rename
	// rclone then asks for is already done (Move).
	direct atomic.Bool
}

// knownHash is an MD5 valid while the file keeps this size and mtime.
type knownHash struct {
	sum   string
	size  int64
	mtime time.Time
	path  string // the file's OS path, "" when not known (osPath of the remote)
	// fresh: size and mtime were just read from the file (the copy's stat
	// after the engine wrote it): the next Hash, rclone's verification of
	// the copy, need not read them again. Any later Hash does.
	fresh bool
}

// copiedInfo is what Copy saw of the file an engine copy made.
type copiedInfo struct {
	remote string
	size   int64
	mtime  time.Time // the file's mtime (local's ModTime for --local-time-type mtime)
}

func (f *Fs) wrapObject(o fs.Object) *Object {
	return &Object{Object: o, f: f}
}

// newCopyObject returns the object for the regular file at remote in f that
// an engine copy made, which had this size and mtime; local's object for
// it is made when first needed. Only for --local-time-type mtime, where
// local's ModTime is the mtime.
func (f *Fs) newCopyObject(remote string, size int64, mtime time.Time) *Object {
	return &Object{f: f, copied: &copiedInfo{remote: remote, size: size, mtime: mtime}}
}

// loaded returns the local object, or nil for a copy whose local object
// has not been made yet.
func (o *Object) loaded() fs.Object {
	if o.copied == nil {
		return o.Object
	}
	o.baseMu.Lock()
	defer o.baseMu.Unlock()
	return o.Object
}

// base returns the local object, made first for a copy (local's NewObject:
// it looks at the file as it is now).
func (o *Object) base(ctx context.Context) (fs.Object, error) {
	if o.copied == nil {
		return o.Object, nil
	}
	o.baseMu.Lock()
	defer o.baseMu.Unlock()
	if o.Object == nil {
		b, err := o.f.Fs.NewObject(ctx, o.copied.remote)
		if err != nil {
			return nil, err
		}
		o.Object = b
	}
	return o.Object, nil
}

// Remote returns the remote path.
func (o *Object) Remote() string {
	if o.copied != nil {
		return o.copied.remote
	}
	return o.Object.Remote()
}

// Size returns the size in bytes.
func (o *Object) Size() int64 {
	if b := o.loaded(); b != nil {
		return b.Size()
	}
	return o.copied.size
}

// ModTime returns the modification time.
func (o *Object) ModTime(ctx context.Context) time.Time {
	if b := o.loaded(); b != nil {
		return b.ModTime(ctx)
	}
	return o.copied.mtime
}

// Storable says whether the object can be copied (a copy is a regular
// file: it can).
func (o *Object) Storable() bool {
	if b := o.loaded(); b != nil {
		return b.Storable()
	}
	return true
}

// Open opens the file for reading.
func (o *Object) Open(ctx context.Context, options ...fs.OpenOption) (io.ReadCloser, error) {
	b, err := o.base(ctx)
	if err != nil {
		return nil, err
	}
	return b.Open(ctx, options...)
}

// moved returns the object for the result of moving o within or into f,
// keeping a known hash.
func (o *Object) moved(f *Fs, base fs.Object) *Object {
	n := f.wrapObject(base)
	o.mu.Lock()
	if k := o.md5; k != nil {
		moved := *k
		moved.path = "" // n's own path
		moved.fresh = false
		n.md5 = &moved
	}
	o.mu.Unlock()
	return n
}

// setMD5 records sum for the file as the object last saw it; path is the
// object's OS path (osPath of its remote), which Hash then need not work
// out again. Only plain mtimes can be checked cheaply, so other time types
// record nothing.
// fresh: the object's size and mtime were read from the file just now
// (see knownHash).
func (o *Object) setMD5(ctx context.Context, sum [16]byte, path string, fresh bool) {
	if !plainMtime(o.f.lopt.TimeType) {
		return
	}
	k := &knownHash{sum: hex.EncodeToString(sum[:]), size: o.Size(), mtime: o.ModTime(ctx), path: path, fresh: fresh}
	o.mu.Lock()
	o.md5 = k
	o.mu.Unlock()
}

// plainMtime says whether local's --local-time-type t makes an object's
// ModTime its file's mtime.
func plainMtime(t string) bool { return t == "" || t == "mtime" }

// Fs returns the uring Fs the object belongs to.
func (o *Object) Fs() fs.Info { return o.f }

// UnWrap returns the local object (nil for a copy whose file has gone
// before anything needed its local object).
func (o *Object) UnWrap() fs.Object {
	b, err := o.base(context.Background())
	if err != nil {
		return nil
	}
	return b
}

// String returns the remote path.
func (o *Object) String() string {
	if o == nil {
		return "<nil>"
	}
	if o.copied != nil {
		return o.copied.remote // as local's String
	}
	return o.Object.String()
}

// Hash returns the hash of type ht. An MD5 computed by the engine is
// returned without reading the file while the file's size and mtime have
// not changed since (for a fresh one, the first time without looking).
func (o *Object) Hash(ctx context.Context, ht hash.Type) (string, error) {
	if ht == hash.MD5 {
		o.mu.Lock()
		k := o.md5
		fresh := k != nil && k.fresh
		if fresh {
			k.fresh = false
		}
		o.mu.Unlock()
		if k != nil && (fresh || o.unchanged(k)) {
			return k.sum, nil
		}
	}
	b, err := o.base(ctx)
	if err != nil {
		return "", err
	}
	return b.Hash(ctx, ht)
}

func (o *Object) unchanged(k *knownHash) bool {
	p := k.path
	if p == "" {
		var err error
		if p, err = o.f.osPath(o.Remote()); err != nil {
			return false
		}
	}
	return hashStat(p, o.f.lopt.FollowSymlinks, k.size, k.mtime)
}

// hashStat is statMatches (a variable for the tests that count lookups).
var hashStat = statMatches

// forget drops a known hash after the content may have changed.
func (o *Object) forget() {
	o.mu.Lock()
	o.md5 = nil
	o.mu.Unlock()
}

// Update replaces the object's content with in.
func (o *Object) Update(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) error {
	o.forget()
	b, err := o.base(ctx)
	if err != nil {
		return err
	}
	return b.Update(ctx, in, src, options...)
}

// SetModTime sets the modification time.
func (o *Object) SetModTime(ctx context.Context, t time.Time) error {
	o.forget()
	b, err := o.base(ctx)
	if err != nil {
		return err
	}
	return b.SetModTime(ctx, t)
}

// Remove the object.
func (o *Object) Remove(ctx context.Context) error {
	o.forget()
	b, err := o.base(ctx)
	if err != nil {
		return err
	}
	return b.Remove(ctx)
}

// Metadata returns the object's metadata (as local).
func (o *Object) Metadata(ctx context.Context) (fs.Metadata, error) {
	b, err := o.base(ctx)
	if err != nil {
		return nil, err
	}
	if do, ok := b.(fs.Metadataer); ok {
		return do.Metadata(ctx)
	}
	return nil, nil
}

// SetMetadata sets the object's metadata (as local).
func (o *Object) SetMetadata(ctx context.Context, metadata fs.Metadata) error {
	b, err := o.base(ctx)
	if err != nil {
		return err
	}
	if do, ok := b.(fs.SetMetadataer); ok {
		return do.SetMetadata(ctx, metadata)
	}
	return fs.ErrorNotImplemented
}

// ID returns "" (local objects have no ID).
func (o *Object) ID() string {
	if do, ok := o.UnWrap().(fs.IDer); ok {
		return do.ID()
	}
	return ""
}

// MimeType returns the base's MIME type, if any.
func (o *Object) MimeType(ctx context.Context) string {
	if do, ok := o.UnWrap().(fs.MimeTyper); ok {
		return do.MimeType(ctx)
	}
	return ""
}

// GetTier returns "" (local files have no tier).
func (o *Object) GetTier() string {
	if do, ok := o.UnWrap().(fs.GetTierer); ok {
		return do.GetTier()
	}
	return ""
}

// SetTier is not supported by local files.
func (o *Object) SetTier(tier string) error {
	if do, ok := o.UnWrap().(fs.SetTierer); ok {
		return do.SetTier(tier)
	}
	return fs.ErrorNotImplemented
}
