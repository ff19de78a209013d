// The per-file state machine, driven by scripted completions: every
// transition and every error edge, without a ring.
#include "file_copy.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

namespace usync {
namespace {

struct Batch {
  std::vector<OpReq> ops;
};

Batch Next(FileCopy& fc) {
  OpReq ops[FileCopy::kMaxOps];
  const int n = fc.next(ops);
  return Batch{std::vector<OpReq>(ops, ops + n)};
}

void ExpectKinds(const Batch& b, std::vector<OpKind> kinds) {
  ASSERT_EQ(b.ops.size(), kinds.size());
  for (size_t i = 0; i < kinds.size(); ++i) EXPECT_EQ(b.ops[i].kind, kinds[i]) << "op " << i;
}

// Opens the source and reports it checked with `size` bytes.
void Opened(FileCopy& fc, uint64_t size, uint32_t chunk = 4096, bool split = false) {
  fc.start(chunk, false, false, split);
  ExpectKinds(Next(fc), {OpKind::kOpenSrc});
  fc.complete(OpKind::kOpenSrc, 5);
  fc.source_checked(size);
}

void CompleteAll(FileCopy& fc, const Batch& b, std::vector<int> res) {
  ASSERT_EQ(b.ops.size(), res.size());
  for (size_t i = 0; i < res.size(); ++i) fc.complete(b.ops[i].kind, res[i]);
}

TEST(FileCopy, InstallHandsTheDestinationToAPlainDescriptorBeforeClosingIt) {
  FileCopy fc;
  fc.start(4096, false, true);
  ExpectKinds(Next(fc), {OpKind::kOpenSrc});
  fc.complete(OpKind::kOpenSrc, 5);
  fc.source_checked(100);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kRead, OpKind::kOpenDst, OpKind::kWrite, OpKind::kInstallDst, OpKind::kCloseDst,
                  OpKind::kCloseSrc});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.ops[static_cast<size_t>(i)].link, Link::kSoft) << i;
  CompleteAll(fc, b, {100, 0, 100, 9, 0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());

  // With fsync, every op fits in one batch: the sync comes before the install.
  fc.start(4096, true, true);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 5);
  fc.source_checked(0);
  b = Next(fc);
  ExpectKinds(b, {OpKind::kRead});  // size unknown: read to EOF
  CompleteAll(fc, b, {0});
  b = Next(fc);
  ExpectKinds(b, {OpKind::kOpenDst, OpKind::kFsyncDst, OpKind::kInstallDst, OpKind::kCloseDst, OpKind::kCloseSrc});
  fc.start(4096, true, true);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 5);
  fc.source_checked(4096);
  b = Next(fc);
  ASSERT_EQ(b.ops.size(), static_cast<size_t>(FileCopy::kMaxOps));
  ExpectKinds(b, {OpKind::kRead, OpKind::kOpenDst, OpKind::kWrite, OpKind::kFsyncDst, OpKind::kInstallDst,
                  OpKind::kCloseDst, OpKind::kCloseSrc});
}

TEST(FileCopy, FailedInstallFailsTheFileAndClosesWhatIsOpen) {
  FileCopy fc;
  fc.start(4096, false, true);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 5);
  fc.source_checked(100);
  const Batch b = Next(fc);
  // The chain broke at the install: the closes behind it did not run.
  CompleteAll(fc, b, {100, 0, 100, -EMFILE, -ECANCELED, -ECANCELED});
  const Batch closes = Next(fc);
  ExpectKinds(closes, {OpKind::kCloseSrc, OpKind::kCloseDst});
  CompleteAll(fc, closes, {0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.error(), EMFILE);
  EXPECT_EQ(fc.step(), USYNC_STEP_OPEN_DST);
}

TEST(FileCopy, SmallFileTakesTwoBatches) {
  FileCopy fc;
  fc.start(4096);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kOpenSrc});  // alone: the driver checks the descriptor before reading
  EXPECT_EQ(b.ops[0].link, Link::kNone);
  fc.complete(OpKind::kOpenSrc, 5);
  fc.source_checked(100);
  b = Next(fc);
  ExpectKinds(b, {OpKind::kRead, OpKind::kOpenDst, OpKind::kWrite, OpKind::kCloseDst, OpKind::kCloseSrc});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.ops[static_cast<size_t>(i)].link, Link::kSoft) << i;
  EXPECT_EQ(b.ops[4].link, Link::kNone);
  EXPECT_EQ(b.ops[0].len, 100u);  // the size as opened, not a whole chunk
  EXPECT_EQ(b.ops[2].len, 100u);
  EXPECT_EQ(b.ops[2].offset, 0u);
  CompleteAll(fc, b, {100, 0, 100, 0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 100u);
  EXPECT_FALSE(fc.src_open());
  EXPECT_FALSE(fc.dst_open());
}

TEST(FileCopy, EmptyFileIsReadToEofAndCreated) {
  FileCopy fc;
  Opened(fc, 0);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kRead});  // size 0: read until EOF (files in /proc say 0)
  EXPECT_EQ(b.ops[0].link, Link::kNone);
  fc.complete(OpKind::kRead, 0);
  b = Next(fc);
  ExpectKinds(b, {OpKind::kOpenDst, OpKind::kCloseDst, OpKind::kCloseSrc});
  CompleteAll(fc, b, {0, 0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_TRUE(fc.dst_created());
}

TEST(FileCopy, SizeZeroWithContentIsCopiedToEof) {
  FileCopy fc;
  Opened(fc, 0);
  fc.complete(OpKind::kRead, Next(fc).ops.size() == 1 ? 300 : -1);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kOpenDst, OpKind::kWrite});
  CompleteAll(fc, b, {0, 300});
  b = Next(fc);
  ExpectKinds(b, {OpKind::kRead});
  EXPECT_EQ(b.ops[0].offset, 300u);
  fc.complete(OpKind::kRead, 0);
  b = Next(fc);
  ExpectKinds(b, {OpKind::kCloseDst, OpKind::kCloseSrc});
  CompleteAll(fc, b, {0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 300u);
}

TEST(FileCopy, OpenSourceFailure) {
  FileCopy fc;
  fc.start(4096);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, -ENOENT);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.error(), ENOENT);
  EXPECT_EQ(fc.step(), USYNC_STEP_OPEN_SRC);
  EXPECT_FALSE(fc.dst_created());
}

TEST(FileCopy, ReplacedSourceIsClosedUnread) {
  FileCopy fc;
  fc.start(4096);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 5);
  fc.source_changed(ESTALE);  // a FIFO, a device, another file...
  ExpectKinds(Next(fc), {OpKind::kCloseSrc});
  fc.complete(OpKind::kCloseSrc, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_CHANGED);
  EXPECT_EQ(fc.error(), ESTALE);
  EXPECT_FALSE(fc.dst_created());
}

TEST(FileCopy, UncheckedSourceIsNeverRead) {
  FileCopy fc;
  fc.start(4096);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 5);  // a driver that forgot the check
  ExpectKinds(Next(fc), {OpKind::kCloseSrc});
  fc.complete(OpKind::kCloseSrc, 0);
  Next(fc);
  EXPECT_TRUE(fc.failed());
}

TEST(FileCopy, ReadFailureClosesSource) {
  FileCopy fc;
  Opened(fc, 10);
  CompleteAll(fc, Next(fc), {-EIO, -ECANCELED, -ECANCELED, -ECANCELED, -ECANCELED});
  ExpectKinds(Next(fc), {OpKind::kCloseSrc});
  fc.complete(OpKind::kCloseSrc, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_READ);
  EXPECT_EQ(fc.error(), EIO);
  EXPECT_FALSE(fc.dst_created());
}

TEST(FileCopy, FileThatShrankIsCopiedToItsNewEnd) {
  FileCopy fc;
  Opened(fc, 100);
  // The short read breaks the chain: nothing was created yet.
  CompleteAll(fc, Next(fc), {60, -ECANCELED, -ECANCELED, -ECANCELED, -ECANCELED});
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kOpenDst, OpKind::kWrite, OpKind::kCloseDst, OpKind::kCloseSrc});
  EXPECT_EQ(b.ops[1].len, 60u);
  CompleteAll(fc, b, {0, 60, 0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 60u);
}

TEST(FileCopy, FileThatGrewIsCopiedAsOpenedAndNeverReopened) {
  FileCopy fc;
  Opened(fc, 5000, 4096);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kRead, OpKind::kOpenDst, OpKind::kWrite});
  CompleteAll(fc, b, {4096, 0, 4096});
  b = Next(fc);
  ExpectKinds(b, {OpKind::kRead, OpKind::kWrite, OpKind::kCloseDst, OpKind::kCloseSrc});
  EXPECT_EQ(b.ops[0].len, 904u);  // up to the size as opened, whatever was appended
  CompleteAll(fc, b, {904, 904, 0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 5000u);
}

TEST(FileCopy, OpenDestinationFailure) {
  FileCopy fc;
  Opened(fc, 50);
  CompleteAll(fc, Next(fc), {50, -EACCES, -ECANCELED, -ECANCELED, -ECANCELED});
  ExpectKinds(Next(fc), {OpKind::kCloseSrc});
  fc.complete(OpKind::kCloseSrc, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_OPEN_DST);
  EXPECT_EQ(fc.error(), EACCES);
  EXPECT_FALSE(fc.dst_created());
}

TEST(FileCopy, ShortWriteIsResumed) {
  FileCopy fc;
  Opened(fc, 100);
  CompleteAll(fc, Next(fc), {100, 0, 60, -ECANCELED, -ECANCELED});  // the short write broke the link
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kWrite, OpKind::kCloseDst, OpKind::kCloseSrc});
  EXPECT_EQ(b.ops[0].len, 40u);
  EXPECT_EQ(b.ops[0].offset, 60u);
  EXPECT_EQ(b.ops[0].buf_off, 60u);
  CompleteAll(fc, b, {40, 0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 100u);
}

TEST(FileCopy, WriteFailureClosesAndFails) {
  FileCopy fc;
  Opened(fc, 100);
  CompleteAll(fc, Next(fc), {100, 0, -ENOSPC, -ECANCELED, -ECANCELED});
  ExpectKinds(Next(fc), {OpKind::kCloseSrc, OpKind::kCloseDst});
  fc.complete(OpKind::kCloseSrc, 0);
  fc.complete(OpKind::kCloseDst, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_WRITE);
  EXPECT_EQ(fc.error(), ENOSPC);
  EXPECT_TRUE(fc.dst_created());  // the driver removes it
}

TEST(FileCopy, WriteWithoutProgressIsAnError) {
  FileCopy fc;
  Opened(fc, 100);
  CompleteAll(fc, Next(fc), {100, 0, 0, -ECANCELED, -ECANCELED});
  ExpectKinds(Next(fc), {OpKind::kCloseSrc, OpKind::kCloseDst});
  fc.complete(OpKind::kCloseSrc, 0);
  fc.complete(OpKind::kCloseDst, 0);
  Next(fc);
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.error(), ENOSPC);
}

TEST(FileCopy, CloseDestinationErrorFails) {
  FileCopy fc;
  Opened(fc, 100);
  CompleteAll(fc, Next(fc), {100, 0, 100, -EIO, -ECANCELED});
  ExpectKinds(Next(fc), {OpKind::kCloseSrc});
  fc.complete(OpKind::kCloseSrc, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_CLOSE);
}

TEST(FileCopy, ChunkedFilePipelinesReadAndWrite) {
  FileCopy fc;
  Opened(fc, 10000, 4096);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kRead, OpKind::kOpenDst, OpKind::kWrite});
  EXPECT_EQ(b.ops[2].link, Link::kNone);  // more to come: keep both open
  CompleteAll(fc, b, {4096, 0, 4096});
  b = Next(fc);
  ExpectKinds(b, {OpKind::kRead, OpKind::kWrite});
  EXPECT_EQ(b.ops[0].offset, 4096u);
  EXPECT_EQ(b.ops[1].offset, 4096u);
  CompleteAll(fc, b, {4096, 4096});
  b = Next(fc);
  ExpectKinds(b, {OpKind::kRead, OpKind::kWrite, OpKind::kCloseDst, OpKind::kCloseSrc});
  EXPECT_EQ(b.ops[0].offset, 8192u);
  EXPECT_EQ(b.ops[0].len, 1808u);
  CompleteAll(fc, b, {1808, 1808, 0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 10000u);
}

// split: the driver runs the destination's ops itself, so a read is never
// linked to them; its bytes are written (and the files closed) next batch.
TEST(FileCopy, SplitReadsAloneThenWritesAndCloses) {
  FileCopy fc;
  fc.start(4096, false, true, /*split=*/true);
  ExpectKinds(Next(fc), {OpKind::kOpenSrc});
  fc.complete(OpKind::kOpenSrc, 5);
  fc.source_checked(100);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kRead});
  EXPECT_EQ(b.ops[0].link, Link::kNone);
  EXPECT_EQ(b.ops[0].len, 100u);  // the size as opened, as when linked
  CompleteAll(fc, b, {100});
  b = Next(fc);
  ExpectKinds(b, {OpKind::kOpenDst, OpKind::kWrite, OpKind::kInstallDst, OpKind::kCloseDst, OpKind::kCloseSrc});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.ops[static_cast<size_t>(i)].link, Link::kSoft) << i;
  EXPECT_EQ(b.ops[1].len, 100u);
  EXPECT_EQ(b.ops[1].offset, 0u);
  CompleteAll(fc, b, {7, 100, 8, 0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 100u);
}

TEST(FileCopy, SplitChunkedFileAlternatesReadsAndWrites) {
  FileCopy fc;
  Opened(fc, 10000, 4096, /*split=*/true);
  const uint32_t lens[] = {4096, 4096, 1808};
  uint64_t off = 0;
  for (int chunk = 0; chunk < 3; ++chunk) {
    Batch b = Next(fc);
    ExpectKinds(b, {OpKind::kRead});
    EXPECT_EQ(b.ops[0].offset, off);
    EXPECT_EQ(b.ops[0].len, lens[chunk]);
    CompleteAll(fc, b, {static_cast<int>(lens[chunk])});
    b = Next(fc);
    if (chunk == 0)
      ExpectKinds(b, {OpKind::kOpenDst, OpKind::kWrite});
    else if (chunk == 1)
      ExpectKinds(b, {OpKind::kWrite});
    else
      ExpectKinds(b, {OpKind::kWrite, OpKind::kCloseDst, OpKind::kCloseSrc});
    std::vector<int> res(b.ops.size(), 0);
    res[chunk == 0 ? 1 : 0] = static_cast<int>(lens[chunk]);
    EXPECT_EQ(b.ops[chunk == 0 ? 1 : 0].offset, off);
    CompleteAll(fc, b, res);
    off += lens[chunk];
  }
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 10000u);
}

TEST(FileCopy, SplitShortReadEndsTheFileAtItsNewEnd) {
  FileCopy fc;
  Opened(fc, 10000, 4096, /*split=*/true);
  CompleteAll(fc, Next(fc), {1000});  // it shrank to 1000 bytes
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kOpenDst, OpKind::kWrite, OpKind::kCloseDst, OpKind::kCloseSrc});
  EXPECT_EQ(b.ops[1].len, 1000u);
  CompleteAll(fc, b, {7, 1000, 0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 1000u);
}

TEST(FileCopy, AbortClosesWhatIsOpen) {
  FileCopy fc;
  Opened(fc, 10000, 4096);
  CompleteAll(fc, Next(fc), {4096, 0, 4096});
  fc.abort(ECANCELED);
  ExpectKinds(Next(fc), {OpKind::kCloseSrc, OpKind::kCloseDst});
  fc.complete(OpKind::kCloseSrc, 0);
  fc.complete(OpKind::kCloseDst, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_CANCELED);
  EXPECT_TRUE(fc.dst_created());
}

TEST(FileCopy, CancelledReadEndsTheFile) {
  FileCopy fc;
  Opened(fc, 0);  // e.g. a read that waited: the job's cancel reaches it
  fc.abort(ECANCELED);
  fc.complete(OpKind::kRead, -ECANCELED);
  ExpectKinds(Next(fc), {OpKind::kCloseSrc});
  fc.complete(OpKind::kCloseSrc, 0);
  Next(fc);
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_CANCELED);
}

// USYNC_FSYNC: the destination is fsync'ed through the ring, linked
// before its close, so that it is durable before it gets its final name.
TEST(FileCopy, FsyncIsLinkedBeforeTheCloseOfASmallFile) {
  FileCopy fc;
  fc.start(4096, /*fsync=*/true);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 5);
  fc.source_checked(100);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kRead, OpKind::kOpenDst, OpKind::kWrite, OpKind::kFsyncDst, OpKind::kCloseDst,
                  OpKind::kCloseSrc});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.ops[static_cast<size_t>(i)].link, Link::kSoft) << i;
  EXPECT_EQ(b.ops[5].link, Link::kNone);
  CompleteAll(fc, b, {100, 0, 100, 0, 0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
}

TEST(FileCopy, FsyncEndsEveryKindOfChain) {
  {  // the last chunk of a file of known size
    FileCopy fc;
    fc.start(4096, true);
    Next(fc);
    fc.complete(OpKind::kOpenSrc, 5);
    fc.source_checked(5000);
    CompleteAll(fc, Next(fc), {4096, 0, 4096});
    Batch b = Next(fc);
    ExpectKinds(b, {OpKind::kRead, OpKind::kWrite, OpKind::kFsyncDst, OpKind::kCloseDst, OpKind::kCloseSrc});
    CompleteAll(fc, b, {904, 904, 0, 0, 0});
    EXPECT_TRUE(Next(fc).ops.empty());
    EXPECT_TRUE(fc.done());
  }
  {  // an empty file: created, synced, closed
    FileCopy fc;
    fc.start(4096, true);
    Next(fc);
    fc.complete(OpKind::kOpenSrc, 5);
    fc.source_checked(0);
    Next(fc);
    fc.complete(OpKind::kRead, 0);
    Batch b = Next(fc);
    ExpectKinds(b, {OpKind::kOpenDst, OpKind::kFsyncDst, OpKind::kCloseDst, OpKind::kCloseSrc});
    CompleteAll(fc, b, {0, 0, 0, 0});
    EXPECT_TRUE(Next(fc).ops.empty());
    EXPECT_TRUE(fc.done());
  }
  {  // a file read to EOF: the chain after the last (empty) read
    FileCopy fc;
    fc.start(4096, true);
    Next(fc);
    fc.complete(OpKind::kOpenSrc, 5);
    fc.source_checked(0);
    Next(fc);
    fc.complete(OpKind::kRead, 300);
    CompleteAll(fc, Next(fc), {0, 300});
    Next(fc);
    fc.complete(OpKind::kRead, 0);
    Batch b = Next(fc);
    ExpectKinds(b, {OpKind::kFsyncDst, OpKind::kCloseDst, OpKind::kCloseSrc});
    CompleteAll(fc, b, {0, 0, 0});
    EXPECT_TRUE(Next(fc).ops.empty());
    EXPECT_TRUE(fc.done());
  }
}

TEST(FileCopy, FsyncFailureFailsTheFileAndClosesIt) {
  FileCopy fc;
  fc.start(4096, true);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 5);
  fc.source_checked(100);
  Batch b = Next(fc);
  ASSERT_EQ(b.ops.size(), 6u);
  CompleteAll(fc, b, {100, 0, 100, -EIO, -ECANCELED, -ECANCELED});
  b = Next(fc);
  ExpectKinds(b, {OpKind::kCloseSrc, OpKind::kCloseDst});
  CompleteAll(fc, b, {0, 0});
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_FSYNC);
  EXPECT_EQ(fc.error(), EIO);
  EXPECT_TRUE(fc.dst_created());  // the driver removes it: never published
}

TEST(FileCopy, NoFsyncUnlessAsked) {
  FileCopy fc;
  Opened(fc, 100);
  for (const OpReq& op : Next(fc).ops) EXPECT_NE(op.kind, OpKind::kFsyncDst);
}

}  // namespace
}  // namespace usync
