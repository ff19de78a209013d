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

TEST(FileCopy, SmallFileTakesTwoLinkedBatches) {
  FileCopy fc;
  fc.start(100, 4096);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kOpenSrc, OpKind::kRead, OpKind::kCloseSrc});
  EXPECT_EQ(b.ops[0].link, Link::kSoft);
  EXPECT_EQ(b.ops[1].link, Link::kHard);  // the short read must not cancel the close
  EXPECT_EQ(b.ops[1].len, 4096u);
  fc.complete(OpKind::kOpenSrc, 0);
  fc.complete(OpKind::kRead, 100);
  fc.complete(OpKind::kCloseSrc, 0);
  b = Next(fc);
  ExpectKinds(b, {OpKind::kOpenDst, OpKind::kWrite, OpKind::kCloseDst});
  EXPECT_EQ(b.ops[0].link, Link::kSoft);
  EXPECT_EQ(b.ops[1].link, Link::kSoft);
  EXPECT_EQ(b.ops[1].len, 100u);
  EXPECT_EQ(b.ops[1].offset, 0u);
  fc.complete(OpKind::kOpenDst, 0);
  fc.complete(OpKind::kWrite, 100);
  fc.complete(OpKind::kCloseDst, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 100u);
}

TEST(FileCopy, EmptyFileIsCreated) {
  FileCopy fc;
  fc.start(0, 4096);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 0);
  fc.complete(OpKind::kRead, 0);
  fc.complete(OpKind::kCloseSrc, 0);
  ExpectKinds(Next(fc), {OpKind::kOpenDst, OpKind::kCloseDst});
  fc.complete(OpKind::kOpenDst, 0);
  fc.complete(OpKind::kCloseDst, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_TRUE(fc.dst_created());
}

TEST(FileCopy, OpenSourceFailure) {
  FileCopy fc;
  fc.start(10, 4096);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, -ENOENT);
  fc.complete(OpKind::kRead, -ECANCELED);
  fc.complete(OpKind::kCloseSrc, -ECANCELED);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.error(), ENOENT);
  EXPECT_EQ(fc.step(), USYNC_STEP_OPEN_SRC);
  EXPECT_FALSE(fc.dst_created());
}

TEST(FileCopy, ReadFailureClosesSource) {
  FileCopy fc;
  fc.start(10, 4096);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 0);
  fc.complete(OpKind::kRead, -EIO);
  fc.complete(OpKind::kCloseSrc, -ECANCELED);  // even if the close did not run
  ExpectKinds(Next(fc), {OpKind::kCloseSrc});
  fc.complete(OpKind::kCloseSrc, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_READ);
  EXPECT_EQ(fc.error(), EIO);
}

void ReadSmall(FileCopy& fc, uint64_t size) {
  fc.start(size, 4096);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 0);
  fc.complete(OpKind::kRead, static_cast<int>(size));
  fc.complete(OpKind::kCloseSrc, 0);
}

TEST(FileCopy, OpenDestinationFailure) {
  FileCopy fc;
  ReadSmall(fc, 50);
  Next(fc);
  fc.complete(OpKind::kOpenDst, -EACCES);
  fc.complete(OpKind::kWrite, -ECANCELED);
  fc.complete(OpKind::kCloseDst, -ECANCELED);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_OPEN_DST);
  EXPECT_EQ(fc.error(), EACCES);
  EXPECT_FALSE(fc.dst_created());
}

TEST(FileCopy, ShortWriteIsResumed) {
  FileCopy fc;
  ReadSmall(fc, 100);
  Next(fc);
  fc.complete(OpKind::kOpenDst, 0);
  fc.complete(OpKind::kWrite, 60);
  fc.complete(OpKind::kCloseDst, -ECANCELED);  // the short write broke the link
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kWrite, OpKind::kCloseDst});
  EXPECT_EQ(b.ops[0].len, 40u);
  EXPECT_EQ(b.ops[0].offset, 60u);
  EXPECT_EQ(b.ops[0].buf_off, 60u);
  fc.complete(OpKind::kWrite, 40);
  fc.complete(OpKind::kCloseDst, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 100u);
}

TEST(FileCopy, WriteFailureClosesAndFails) {
  FileCopy fc;
  ReadSmall(fc, 100);
  Next(fc);
  fc.complete(OpKind::kOpenDst, 0);
  fc.complete(OpKind::kWrite, -ENOSPC);
  fc.complete(OpKind::kCloseDst, -ECANCELED);
  ExpectKinds(Next(fc), {OpKind::kCloseDst});
  fc.complete(OpKind::kCloseDst, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_WRITE);
  EXPECT_EQ(fc.error(), ENOSPC);
  EXPECT_TRUE(fc.dst_created());  // the driver removes it
}

TEST(FileCopy, WriteWithoutProgressIsAnError) {
  FileCopy fc;
  ReadSmall(fc, 100);
  Next(fc);
  fc.complete(OpKind::kOpenDst, 0);
  fc.complete(OpKind::kWrite, 0);
  fc.complete(OpKind::kCloseDst, -ECANCELED);
  ExpectKinds(Next(fc), {OpKind::kCloseDst});
  fc.complete(OpKind::kCloseDst, 0);
  Next(fc);
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.error(), ENOSPC);
}

TEST(FileCopy, CloseDestinationErrorFails) {
  FileCopy fc;
  ReadSmall(fc, 100);
  Next(fc);
  fc.complete(OpKind::kOpenDst, 0);
  fc.complete(OpKind::kWrite, 100);
  fc.complete(OpKind::kCloseDst, -EIO);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_CLOSE);
}

TEST(FileCopy, ChunkedFileLoopsAndClosesWithLastRead) {
  FileCopy fc;
  fc.start(10000, 4096);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kOpenSrc, OpKind::kRead});  // more than one chunk: keep it open
  EXPECT_EQ(b.ops[1].link, Link::kNone);
  fc.complete(OpKind::kOpenSrc, 0);
  fc.complete(OpKind::kRead, 4096);
  ExpectKinds(Next(fc), {OpKind::kOpenDst, OpKind::kWrite});
  fc.complete(OpKind::kOpenDst, 0);
  fc.complete(OpKind::kWrite, 4096);
  b = Next(fc);
  ExpectKinds(b, {OpKind::kRead});
  EXPECT_EQ(b.ops[0].offset, 4096u);
  fc.complete(OpKind::kRead, 4096);
  b = Next(fc);
  ExpectKinds(b, {OpKind::kWrite});
  EXPECT_EQ(b.ops[0].offset, 4096u);
  fc.complete(OpKind::kWrite, 4096);
  b = Next(fc);  // the rest fits: read hard-linked to the close
  ExpectKinds(b, {OpKind::kRead, OpKind::kCloseSrc});
  EXPECT_EQ(b.ops[0].link, Link::kHard);
  fc.complete(OpKind::kRead, 1808);
  fc.complete(OpKind::kCloseSrc, 0);
  b = Next(fc);
  ExpectKinds(b, {OpKind::kWrite, OpKind::kCloseDst});
  EXPECT_EQ(b.ops[0].offset, 8192u);
  fc.complete(OpKind::kWrite, 1808);
  fc.complete(OpKind::kCloseDst, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 10000u);
}

TEST(FileCopy, FileThatGrewIsReopenedAndReadToEof) {
  FileCopy fc;
  fc.start(100, 4096);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 0);
  fc.complete(OpKind::kRead, 4096);  // grew past one chunk since the stat
  fc.complete(OpKind::kCloseSrc, 0);
  ExpectKinds(Next(fc), {OpKind::kOpenDst, OpKind::kWrite});  // not the end yet
  fc.complete(OpKind::kOpenDst, 0);
  fc.complete(OpKind::kWrite, 4096);
  Batch b = Next(fc);  // reopened at the offset reached
  ExpectKinds(b, {OpKind::kOpenSrc, OpKind::kRead, OpKind::kCloseSrc});
  EXPECT_EQ(b.ops[1].offset, 4096u);
  fc.complete(OpKind::kOpenSrc, 0);
  fc.complete(OpKind::kRead, 0);
  fc.complete(OpKind::kCloseSrc, 0);
  ExpectKinds(Next(fc), {OpKind::kCloseDst});
  fc.complete(OpKind::kCloseDst, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.done());
  EXPECT_EQ(fc.bytes_written(), 4096u);
}

TEST(FileCopy, ShortReadMidFileReadsAgain) {
  FileCopy fc;
  fc.start(10000, 4096);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 0);
  fc.complete(OpKind::kRead, 1000);
  Next(fc);
  fc.complete(OpKind::kOpenDst, 0);
  fc.complete(OpKind::kWrite, 1000);
  Batch b = Next(fc);
  ExpectKinds(b, {OpKind::kRead});
  EXPECT_EQ(b.ops[0].offset, 1000u);
}

TEST(FileCopy, AbortClosesWhatIsOpen) {
  FileCopy fc;
  fc.start(10000, 4096);
  Next(fc);
  fc.complete(OpKind::kOpenSrc, 0);
  fc.complete(OpKind::kRead, 4096);
  Next(fc);
  fc.complete(OpKind::kOpenDst, 0);
  fc.complete(OpKind::kWrite, 4096);
  fc.abort(ECANCELED);
  ExpectKinds(Next(fc), {OpKind::kCloseSrc, OpKind::kCloseDst});
  fc.complete(OpKind::kCloseSrc, 0);
  fc.complete(OpKind::kCloseDst, 0);
  EXPECT_TRUE(Next(fc).ops.empty());
  EXPECT_TRUE(fc.failed());
  EXPECT_EQ(fc.step(), USYNC_STEP_CANCELED);
  EXPECT_TRUE(fc.dst_created());
}

}  // namespace
}  // namespace usync
