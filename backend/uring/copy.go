package uring

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/hash"
	"github.com/rclone/rclone/fs/rc"
	"github.com/rclone/rclone/lib/atexit"
	"github.com/rclone/rclone/lib/transferaccounter"
	"github.com/uringsync/uring-sync/backend/uringsync"
)

// Counters of engine work in this process, logged at exit with -v and
// shown by the "stats" backend command.
var (
	filesCopied   atomic.Int64 // files copied by the engine in Copy
	bytesCopied   atomic.Int64
	batchesRun    atomic.Int64
	filesFellBack atomic.Int64 // Copy calls handed back to rclone's own copy
	filesDirect   atomic.Int64 // new files copied straight to their final name (partialFinal)
	filesWithMeta atomic.Int64 // engine copies that got -M's metadata from the engine
	summaryOnce   sync.Once
)

func logSummary() {
	if n := filesCopied.Load() + filesFellBack.Load(); n > 0 {
		fs.Infof(Name, "engine copied %d files (%d bytes) in %d batches; %d fell back to rclone's copy; %d got --metadata from the engine",
			filesCopied.Load(), bytesCopied.Load(), batchesRun.Load(), filesFellBack.Load(), filesWithMeta.Load())
	}
}

// Copy copies src, an object of any uring remote, to remote in f with the
// engine. Concurrent calls are batched into one engine call. It returns
// fs.ErrorCantCopy, so rclone copies by itself, whenever the engine cannot.
func (f *Fs) Copy(ctx context.Context, src fs.Object, remote string) (fs.Object, error) {
	srcObj, ok := src.(*Object)
	if !ok {
		return nil, fs.ErrorCantCopy
	}
	srcFs := srcObj.f
	ci := fs.GetConfig(ctx) // a lookup through ctx's chain: once per Copy
	if why := f.declines(ci, srcFs, src.Remote(), remote); why != "" {
		fs.Debugf(src, "uring: using rclone's copy: %s", why)
		filesFellBack.Add(1)
		return nil, fs.ErrorCantCopy
	}
	srcPath, err := srcFs.osPath(src.Remote())
	if err != nil {
		return nil, err
	}
	target, direct := remote, false
	if final, ok := partialFinal(ctx, ci.PartialSuffix, src, remote); ok {
		target, direct = final, true
	}
	dstPath, err := f.osPath(target)
	if err != nil {
		return nil, err
	}
	// Only a new file goes straight to its final name: an existing one must
	// stay as it was if rclone's verification fails, so it is replaced by
	// rclone's rename of the partial, as with local. The engine publishes a
	// direct copy only where the name is free (NoReplace); the name is
	// looked up first only where a wasted copy would cost more (lookFirst).
	if direct && f.lookFirst(src.Size()) {
		if _, err := lstat(dstPath); errors.Is(err, os.ErrNotExist) {
			if f.lookNext.Load() > 0 {
				f.lookNext.Add(-1)
			}
		} else {
			f.lookNext.Store(lookAfterTaken)
			target, direct = remote, false
			if dstPath, err = f.osPath(remote); err != nil {
				return nil, err
			}
		}
	}
	wantMD5 := f.opt.Hash && f.Hashes().Contains(hash.MD5) && srcFs.Hashes().Contains(hash.MD5) &&
		!ci.IgnoreChecksum
	// With --metadata the engine applies what local's SetMetadata would,
	// where it gives the same result; before is the source as it saw it.
	var before *srcStat
	if ci.Metadata {
		why := metaOptionsSet(ci)
		if why == "" {
			before, why = engineMeta(srcPath)
		}
		if why != "" {
			fs.Debugf(src, "uring: --metadata set by local after the engine's copy: %s", why)
		}
	}
	req := &request{
		ctx:  ctx,
		pair: uringsync.Pair{Src: srcPath, Dst: dstPath, Size: src.Size()}, // as listed: no lookup first
		size: src.Size(),
		ta:   transferaccounter.Get(ctx),
	}
	req.ta.Start()
	res, err := f.engineCopy(req, wantMD5, before != nil, direct)
	if err == nil && direct && nameTaken(res.Err) {
		// The file exists after all: copy it as an existing one, to
		// rclone's partial name.
		f.lookNext.Store(lookAfterTaken)
		target, direct = remote, false
		if req.pair.Dst, err = f.osPath(remote); err != nil {
			return nil, err
		}
		dstPath = req.pair.Dst
		res, err = f.engineCopy(req, wantMD5, before != nil, direct)
	}
	if errors.Is(err, errNoEngine) || errors.Is(err, errBandwidthLimit) {
		fs.Debugf(src, "uring: using rclone's copy: %v", err)
		filesFellBack.Add(1)
		return nil, fs.ErrorCantCopy
	}
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		var fe *uringsync.FileError
		if direct && errors.As(res.Err, &fe) && fe.Step == uringsync.StepMetadata {
			// Published without all its metadata: not the file rclone
			// will make of its partial.
			_ = os.Remove(dstPath)
		}
		// Also for a source removed since it was listed: local's copy then
		// fails as local does ("failed to open source object: lstat ..."),
		// not with fs.ErrorObjectNotFound, which rclone exits 4 for.
		fs.Debugf(src, "uring: engine copy failed, using rclone's copy: %v", res.Err)
		filesFellBack.Add(1)
		return nil, fs.ErrorCantCopy
	}
	filesCopied.Add(1)
	bytesCopied.Add(res.Bytes)
	if direct {
		filesDirect.Add(1)
	}
	return f.finishCopy(ctx, ci, srcObj, src, target, srcPath, dstPath, direct, before, res)
}

// lstat is os.Lstat, copyStat statRegular (variables for the tests that
// count lookups).
var (
	lstat    = os.Lstat
	copyStat = statRegular
)

// A direct copy of a file this large looks for an existing file first: the
// lookup costs nothing beside the copy, which NoReplace would otherwise make
// and throw away when the name is taken.
const lookFirstFrom = 1 << 20

// Once a name was found taken, files are looked for first until this many
// in a row were found free: a run that updates existing files does not copy
// each one twice, nor does one that mixes new and existing files.
const lookAfterTaken = 64

// lookFirst says whether a new file of this size that is to be copied
// straight to its final name is looked for (Lstat) before the engine runs.
// Otherwise only the engine's NoReplace keeps an existing file from being
// replaced, which costs a copy when the name is taken; rclone lists the
// destination before it copies, so on a first copy that is rare.
func (f *Fs) lookFirst(size int64) bool {
	return size >= lookFirstFrom || f.lookNext.Load() > 0
}

// nameTaken reports whether a NoReplace copy failed because its destination
// exists (and was left as it was).
func nameTaken(err error) bool {
	if err == nil {
		return false // before fe, which escapes to the heap: Copy asks after every direct copy
	}
	var fe *uringsync.FileError
	return errors.As(err, &fe) && fe.Step == uringsync.StepRename && errors.Is(err, os.ErrExist)
}

// errNoEngine: the engine could not be started; rclone copies instead.
var errNoEngine = errors.New("engine unavailable")

// errBandwidthLimit: a bandwidth limit was set through rc when the batch
// was to start; rclone copies instead, through its limiter.
var errBandwidthLimit = errors.New("bandwidth limit (set through rc)")

// engineCopy runs req (again, after a copy whose name was taken: the bytes
// it accounted stay counted) through the runner for these options;
// noReplace: leave an existing destination as it is (direct copies).
func (f *Fs) engineCopy(req *request, md5, meta, noReplace bool) (uringsync.Result, error) {
	opt := f.engineOptions(md5, meta)
	opt.NoReplace = noReplace
	r, err := getRunner(opt, f.opt.BatchSize, f.opt.SyncBelow)
	if err != nil {
		return uringsync.Result{}, fmt.Errorf("%w: %v", errNoEngine, err)
	}
	req.done = make(chan struct{})
	return r.do(req)
}

// finishCopy gives the engine's copy at dstPath what local's Put would
// (mode, mtime, metadata) and returns its object; before: the engine set
// --metadata's (engineMeta). A copy made straight under its final name is
// removed again when that fails, as rclone would remove its partial.
func (f *Fs) finishCopy(ctx context.Context, ci *fs.ConfigInfo, srcObj *Object, src fs.Object, target, srcPath, dstPath string, direct bool,
	before *srcStat, res uringsync.Result) (_ fs.Object, err error) {
	if direct {
		defer func() {
			if err != nil {
				_ = os.Remove(dstPath)
			}
		}()
	}

	// rclone sets times and metadata after a server-side copy through the
	// backend: do as local's Put does. local makes every new file 0666
	// less the umask whatever the source's mode (--metadata sets the
	// source's below); so does the engine without its preserve flag
	// (engineOptions' FileMode).
	if before != nil {
		// The engine set the mode, owner, group, user.* xattrs and times.
		if err := setTimesAfter(srcPath, dstPath, before); err != nil {
			return nil, err
		}
		filesWithMeta.Add(1)
	}
	dst := f.copyObject(ctx, ci, src, target, dstPath, before, res)
	if dst == nil {
		if dst, err = f.localCopyObject(ctx, ci, src, target, before); err != nil {
			return nil, err
		}
	}
	dst.direct.Store(direct)
	if res.HasMD5 {
		// The hash is recorded with the source's size and mtime as listed.
		// When the engine saw those once it had read the file, the
		// verification that follows takes the hash without a second look;
		// otherwise it checks the file first (and reads it again, unless it
		// is as listed). The copy's size and mtime were read just now
		// (copyObject, or local's NewObject): its verification takes the
		// hash without a second look.
		srcObj.setMD5(ctx, res.MD5, srcPath, res.HasSrcStat && res.SrcStat.Size == src.Size() &&
			res.SrcStat.Mtime.Equal(src.ModTime(ctx)))
		dst.setMD5(ctx, res.MD5, dstPath, true)
	}
	return dst, nil
}

// localCopyObject returns the object for the engine's copy at target
// through local's NewObject, and gives it the mtime and --metadata that
// local's Put would (when the engine did not: before).
func (f *Fs) localCopyObject(ctx context.Context, ci *fs.ConfigInfo, src fs.Object, target string, before *srcStat) (*Object, error) {
	base, err := f.Fs.NewObject(ctx, target)
	if err != nil {
		return nil, err
	}
	if before == nil && !f.lopt.NoSetModTime {
		// local sets both times to the source's mtime. The engine gave
		// the file the mtime of the source it copied, and that as its
		// atime (engineOptions' AtimeFromMtime): nothing to do when that
		// is the mtime rclone asks for, to the nanosecond. (With another
		// --local-time-type ModTime is not the mtime: always set it.)
		mtime := src.ModTime(ctx)
		if !plainMtime(f.lopt.TimeType) || !base.ModTime(ctx).Equal(mtime) {
			if err := base.SetModTime(ctx, mtime); err != nil {
				return nil, err
			}
		}
	}
	dst := f.wrapObject(base)
	if ci.Metadata && before == nil {
		meta, err := fs.GetMetadataOptions(ctx, f, src, fs.MetadataAsOpenOptions(ctx))
		if err != nil {
			return nil, err
		}
		if meta != nil {
			if err := dst.SetMetadata(ctx, meta); err != nil {
				return nil, err
			}
		}
	}
	return dst, nil
}

// copyObject returns the object for the engine's copy at dstPath (target
// in f) without local's NewObject, which would look the file up again,
// when all that is left to do is what finishCopy does for a plain copy:
// no --metadata, mtimes as local's ModTime, and the copy has the mtime
// rclone sets (the engine gave it its source's) or none is set. Otherwise
// nil: finishCopy goes through local's object. The copy's size and mtime
// are those the engine saw of it once published, or looked up here.
func (f *Fs) copyObject(ctx context.Context, ci *fs.ConfigInfo, src fs.Object, target, dstPath string, before *srcStat,
	res uringsync.Result) *Object {
	if before != nil || ci.Metadata || !plainMtime(f.lopt.TimeType) {
		return nil
	}
	size, mtime, ok := res.DstStat.Size, res.DstStat.Mtime, res.HasDstStat
	if !ok {
		size, mtime, ok = copyStat(dstPath, f.lopt.FollowSymlinks)
	}
	if !ok || (!f.lopt.NoSetModTime && !mtime.Equal(src.ModTime(ctx))) {
		return nil
	}
	return f.newCopyObject(target, size, mtime)
}

// partialFinal recognises the partial name rclone copies a file to before
// renaming it to its final name (operations' checkPartial: the final name,
// "." and eight hex digits of a CRC-32 of that name and the source's
// fingerprint, then --partial-suffix), and returns that final name. The
// engine publishes every file atomically under its name (complete or not
// at all), which is what the partial name is for; so a new file is copied
// straight to its final name and the rename that follows is a no-op
// (Move). The CRC is checked, so a file that merely looks like a partial
// (or a partial of a truncated long name) is copied to the name given.
func partialFinal(ctx context.Context, suffix string, src fs.ObjectInfo, remote string) (string, bool) {
	n := len(remote) - len(suffix) - 9 // "." + 8 hex digits
	if suffix == "" || n <= 0 || !strings.HasSuffix(remote, suffix) || remote[n] != '.' {
		return "", false
	}
	digits := remote[n+1 : n+9]
	want, err := strconv.ParseUint(digits, 16, 32)
	if err != nil || strings.ToLower(digits) != digits {
		return "", false
	}
	final := remote[:n]
	if partialSum(ctx, src, final) != uint32(want) {
		return "", false
	}
	return final, true
}

// partialSum is the CRC-32 of final and fs.Fingerprint(ctx, src, true) that
// checkPartial puts in a partial name. Fingerprint formats through fmt,
// which cost more than the rest of partialFinal; for a source whose
// fingerprint holds no hash (uring's and local's: SlowHash) it is made
// here without fmt, byte for byte the same (TestFingerprintBytes).
func partialSum(ctx context.Context, src fs.ObjectInfo, final string) uint32 {
	var buf [128]byte
	b := append(buf[:0], final...)
	if fp, ok := appendFingerprint(ctx, b, src); ok {
		return crc32.ChecksumIEEE(fp)
	}
	return crc32.ChecksumIEEE(append(b, fs.Fingerprint(ctx, src, true)...))
}

// fingerprintTime is the layout time.Time's String uses (after UTC(),
// which drops the monotonic reading String would add).
const fingerprintTime = "2006-01-02 15:04:05.999999999 -0700 MST"

// appendFingerprint appends fs.Fingerprint(ctx, o, true) to b, or reports
// false when the fingerprint would hold a hash (left to fs.Fingerprint).
func appendFingerprint(ctx context.Context, b []byte, o fs.ObjectInfo) ([]byte, bool) {
	f := o.Fs()
	features := f.Features()
	if !features.SlowHash && f.Hashes().GetOne() != hash.None {
		return nil, false
	}
	b = strconv.AppendInt(b, o.Size(), 10)
	if !features.SlowModTime && f.Precision() != fs.ModTimeNotSupported {
		b = append(b, ',')
		b = o.ModTime(ctx).UTC().AppendFormat(b, fingerprintTime)
	}
	return b, true
}

// engineOptions are the engine's options for a copy; meta: it applies
// what local's SetMetadata would for rclone's --metadata (see engineMeta).
// Files are created 0666 less the umask, as local's os.OpenFile makes
// them (Preserve then sets the source's mode).
func (f *Fs) engineOptions(md5, meta bool) uringsync.Options {
	return uringsync.Options{
		FileMode:       0o666,
		AtimeFromMtime: !meta,
		Workers:        f.opt.Workers,
		QueueDepth:     f.opt.QueueDepth,
		ForceSync:      f.opt.ForceSync,
		HashMD5:        md5,
		QuietFallback:  true,
		Preserve:       meta,
		Owner:          meta,
		Group:          meta,
		UserXattrs:     meta,
	}
}

// metaOptionsSet says which of rclone's options make --metadata's result
// other than the source's own metadata, or "": then local's SetMetadata
// applies it.
func metaOptionsSet(ci *fs.ConfigInfo) string {
	switch {
	case len(ci.MetadataSet) > 0:
		return "--metadata-set"
	case len(ci.MetadataMapper) > 0:
		return "--metadata-mapper"
	}
	return ""
}

// declines says why the engine must not copy srcRemote of srcFs to remote
// in f, or "" when it may. The engine copies a whole file to a new inode as
// fast as it can; whatever asks for anything else goes to rclone's own copy,
// which is local's.
func (f *Fs) declines(ci *fs.ConfigInfo, srcFs *Fs, srcRemote, remote string) string {
	if why := streamOnly(ci); why != "" {
		return why
	}
	switch {
	case f.lopt.NoClone || srcFs.lopt.NoClone:
		// The engine reflinks large files where the filesystem can.
		return "no_clone"
	case f.lopt.NoSetModTime:
		// The engine gives every copy its source's mtime; local leaves
		// the time it was written.
		return "no_set_modtime"
	case (srcFs.lopt.TranslateSymlinks && strings.HasSuffix(srcRemote, fs.LinkSuffix)) ||
		(f.lopt.TranslateSymlinks && strings.HasSuffix(remote, fs.LinkSuffix)):
		return "symlinks stored as .rclonelink files"
	}
	return ""
}

// streamOnly says which of rclone's options make every copy local's
// streaming copy, or "". With them set a uring remote offers no Copy at
// all, so rclone takes the same path as with local: a Copy that declines
// still changes rclone's accounting (--cutoff-mode cautious counts the
// pending bytes of the transfer it resets).
func streamOnly(ci *fs.ConfigInfo) string {
	switch {
	case ci.Inplace:
		// local rewrites the existing file (same inode, hard links kept);
		// the engine would make a new one and rename it over.
		return "--inplace"
	case ci.MaxTransfer >= 0:
		// rclone counts the limit while reading, and stops a copy at it;
		// an engine batch would copy whole files past it.
		return "--max-transfer"
	case slotSet(ci.BwLimit) || slotSet(ci.BwLimitFile):
		// The engine cannot be throttled; rclone's copy reads through
		// the bandwidth limiter. (A limit set later through rc is seen
		// by bandwidthLimited before each engine batch.)
		return "--bwlimit"
	}
	return ""
}

// slotSet reports whether any slot of a --bwlimit timetable sets a limit.
func slotSet(t fs.BwTimetable) bool {
	for _, slot := range t {
		if slot.Bandwidth.IsSet() {
			return true
		}
	}
	return false
}

// bandwidthLimited reports whether rclone's limiter slows local's copies
// right now, through a limit set with rc's core/bwlimit after start.
func bandwidthLimited(ctx context.Context) bool {
	call := rc.Calls.Get("core/bwlimit")
	if call == nil {
		return false
	}
	out, err := call.Fn(ctx, rc.Params{}) // only reads the rate
	if err != nil {
		return false
	}
	// Only the limit on accounted bytes slows local's copy (separate
	// upload and download limits apply to network transports).
	n, err := out.GetInt64("bytesPerSecond")
	return err == nil && n > 0
}

// request is one Copy waiting for its batch.
type request struct {
	ctx       context.Context
	pair      uringsync.Pair
	size      int64
	ta        *transferaccounter.TransferAccounter
	accounted int64 // bytes already added to ta (under runner.mu)
	res       uringsync.Result
	err       error
	done      chan struct{}
}

// runner owns the engines for one set of options and batches requests into
// them: whatever arrived while a lane was busy goes into its next engine
// call. Batches below syncBelow go to the synchronous engine, whose calls
// start faster.
type runner struct {
	lanes     []*lane
	reqs      chan *request
	maxBatch  int
	syncBelow int
}

// lane runs one engine call at a time. A runner has lanesPerRunner of them,
// so that one batch is copied while rclone finishes the transfers of the one
// before (verification, accounting, the next file) and queues the next: with
// a single lane the engine and rclone took turns, and neither kept both CPUs
// busy.
type lane struct {
	eng     *uringsync.Engine // io_uring (when the kernel allows it)
	syncEng *uringsync.Engine // synchronous thread pool

	mu        sync.Mutex // guards the fields below, used by engine callbacks
	cur       []*request
	lastBytes uint64
}

// lanesPerRunner: engine calls in flight at once for one set of options.
var lanesPerRunner = 2

// runnerKey is the part of the engine options a runner is shared by.
type runnerKey struct {
	workers, queueDepth int
	forceSync, md5      bool
	meta, noReplace     bool
	maxBatch, syncBelow int
}

var (
	runnersMu sync.Mutex
	runners   = map[runnerKey]*runner{}
)

// getRunner returns the process-wide runner for these engine options.
func getRunner(opt uringsync.Options, maxBatch, syncBelow int) (*runner, error) {
	runnersMu.Lock()
	defer runnersMu.Unlock()
	key := runnerKey{opt.Workers, opt.QueueDepth, opt.ForceSync, opt.HashMD5, opt.Preserve, opt.NoReplace, maxBatch, syncBelow}
	if r := runners[key]; r != nil {
		return r, nil
	}
	r := &runner{reqs: make(chan *request, maxBatch), maxBatch: maxBatch, syncBelow: syncBelow}
	for range lanesPerRunner {
		l, err := newLane(opt, syncBelow)
		if err != nil {
			r.close()
			return nil, err
		}
		r.lanes = append(r.lanes, l)
	}
	runners[key] = r
	summaryOnce.Do(func() { atexit.Register(logSummary) })
	go r.loop()
	return r, nil
}

// newLane makes a lane's engines for these options.
func newLane(opt uringsync.Options, syncBelow int) (*lane, error) {
	l := &lane{}
	o := opt
	o.OnProgress = l.progress
	eng, err := uringsync.New(&o)
	if err != nil {
		return nil, err
	}
	l.eng, l.syncEng = eng, eng
	if !opt.ForceSync && eng.Kind() == uringsync.KindURing && syncBelow > 1 {
		o.ForceSync = true
		if l.syncEng, err = uringsync.New(&o); err != nil {
			_ = eng.Close()
			return nil, err
		}
	}
	return l, nil
}

// close closes the engines of the lanes made so far (getRunner's failure).
func (r *runner) close() {
	for _, l := range r.lanes {
		if l.syncEng != l.eng {
			_ = l.syncEng.Close()
		}
		_ = l.eng.Close()
	}
}

// do queues req and waits for its result.
func (r *runner) do(req *request) (uringsync.Result, error) {
	select {
	case r.reqs <- req:
	case <-req.ctx.Done():
		return uringsync.Result{}, req.ctx.Err()
	}
	select {
	case <-req.done:
		return req.res, req.err
	case <-req.ctx.Done():
		// The batch carries on; rclone removes what it leaves behind.
		return uringsync.Result{}, req.ctx.Err()
	}
}

func (r *runner) loop() {
	free := make(chan *lane, len(r.lanes))
	for _, l := range r.lanes {
		free <- l
	}
	linger := time.NewTimer(0)
	<-linger.C
	for {
		// A lane first, then its batch: what arrives while every lane is
		// busy makes the next batch bigger.
		l := <-free
		first, ok := <-r.reqs
		if !ok {
			return
		}
		batch := []*request{first}
		// Take what is queued; if that is little, give the transfers that
		// are just finishing their previous file a moment to join, since
		// each engine call has a fixed cost.
		lingering := false
	gather:
		for len(batch) < r.maxBatch {
			select {
			case req := <-r.reqs:
				batch = append(batch, req)
				continue
			default:
			}
			if lingering || len(batch) >= lingerBelow {
				break
			}
			lingering = true
			linger.Reset(lingerFor)
			for len(batch) < r.maxBatch {
				select {
				case req := <-r.reqs:
					batch = append(batch, req)
				case <-linger.C:
					break gather
				}
			}
			if !linger.Stop() {
				<-linger.C
			}
		}
		go func() {
			l.run(batch, r.syncBelow)
			free <- l
		}()
	}
}

// A batch smaller than lingerBelow waits up to lingerFor for more files.
var (
	lingerBelow = 64
	lingerFor   = 500 * time.Microsecond
)

// run copies one batch and completes its requests.
func (l *lane) run(batch []*request, syncBelow int) {
	// Asked once per batch rather than per file (it goes through rc and
	// allocates): the engine cannot be throttled, so a limit set through
	// rc's core/bwlimit sends the whole batch back to rclone's copy.
	if bandwidthLimited(context.Background()) {
		for _, req := range batch {
			req.err = errBandwidthLimit
			close(req.done)
		}
		return
	}
	pairs := make([]uringsync.Pair, len(batch))
	for i, req := range batch {
		pairs[i] = req.pair
	}
	l.mu.Lock()
	l.cur, l.lastBytes = batch, 0
	l.mu.Unlock()

	// The batch stops early only when every caller has given up.
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() {
		for _, req := range batch {
			select {
			case <-req.ctx.Done():
			case <-finished:
				return
			}
		}
		cancel()
	}()
	eng := l.eng
	if len(batch) < syncBelow {
		eng = l.syncEng
	}
	results, err := eng.CopyFiles(ctx, pairs)
	close(finished)
	cancel()
	batchesRun.Add(1)
	fs.Debugf(Name, "engine batch of %d files (%v engine): %v", len(batch), eng.Stats().Engine, err)

	l.mu.Lock()
	l.cur = nil
	l.mu.Unlock()
	for i, req := range batch {
		if results == nil {
			req.err = fs.ErrorCantCopy
			if errors.Is(err, context.Canceled) && req.ctx.Err() != nil {
				req.err = req.ctx.Err()
			}
		} else {
			req.res = results[i]
			if errors.Is(req.res.Err, syscall.ECANCELED) && req.ctx.Err() != nil {
				// Not copied because every caller gave up (a batch whose
				// context ended before the engine started, or while it
				// waited, has every pair so): this one's own error.
				req.err = req.ctx.Err()
			}
			if req.res.Err == nil && req.accounted < req.res.Bytes {
				req.ta.Add(req.res.Bytes - req.accounted)
			}
			if req.res.Err == nil && req.ctx.Err() != nil {
				// The caller gave up and was told the copy failed, so the
				// file the batch finished later must not stay. It is
				// rclone's .partial name (Copy declines --inplace).
				_ = os.Remove(req.pair.Dst)
			}
		}
		close(req.done)
	}
}

// progress spreads the bytes written so far over the batch's transfers, in
// order, so --progress moves during long batches; run tops each up to its
// real size at the end. (No per-file callback: a call from an engine
// thread into Go costs more than the copy of a small file.)
func (l *lane) progress(s uringsync.Stats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.BytesDone <= l.lastBytes {
		return
	}
	delta := int64(s.BytesDone - l.lastBytes)
	l.lastBytes = s.BytesDone
	for _, req := range l.cur {
		if delta == 0 {
			break
		}
		if req.accounted >= req.size {
			continue
		}
		n := min(delta, req.size-req.accounted)
		req.ta.Add(n)
		req.accounted += n
		delta -= n
	}
}
