#include "file_copy.h"

#include <cerrno>

namespace usync {

void FileCopy::start(uint64_t size, uint32_t chunk) noexcept {
  *this = FileCopy();
  size_ = size;
  chunk_ = chunk;
  state_ = State::kRunning;
}

void FileCopy::fail(int step, int err) noexcept {
  if (state_ == State::kFailing || state_ == State::kFailed) return;
  state_ = State::kFailing;
  step_ = step;
  err_ = err > 0 ? err : EIO;
}

void FileCopy::complete(OpKind kind, int res) noexcept {
  // -ECANCELED only ever means "an earlier op of this linked batch failed or
  // came up short": that earlier op's result says what happened.
  const bool canceled = res == -ECANCELED;
  switch (kind) {
    case OpKind::kOpenSrc:
      if (res >= 0)
        src_open_ = true;
      else if (!canceled)
        fail(USYNC_STEP_OPEN_SRC, -res);
      break;
    case OpKind::kRead:
      if (res >= 0) {
        const uint32_t n = static_cast<uint32_t>(res);
        buf_len_ = n;
        buf_done_ = 0;
        read_off_ += n;
        if (n == 0 || (n < read_len_ && read_off_ >= size_)) eof_ = true;
      } else if (!canceled) {
        fail(USYNC_STEP_READ, -res);
      }
      break;
    case OpKind::kCloseSrc:
      // A failed close of a read-only descriptor loses nothing; either way the
      // slot is free again.  Only a canceled close leaves it open.
      if (!canceled) src_open_ = false;
      break;
    case OpKind::kOpenDst:
      if (res >= 0) {
        dst_open_ = true;
        dst_created_ = true;
      } else if (!canceled) {
        fail(USYNC_STEP_OPEN_DST, -res);
      }
      break;
    case OpKind::kWrite:
      if (res > 0) {
        buf_done_ += static_cast<uint32_t>(res);
        written_ += static_cast<uint64_t>(res);
      } else if (res == 0 && write_len_ > 0) {
        fail(USYNC_STEP_WRITE, ENOSPC);  // no progress: treat as a full device
      } else if (res < 0 && !canceled) {
        fail(USYNC_STEP_WRITE, -res);
      }
      break;
    case OpKind::kCloseDst:
      if (canceled) break;
      dst_open_ = false;
      if (res < 0) fail(USYNC_STEP_CLOSE, -res);  // deferred write-back errors
      break;
  }
}

int FileCopy::next(OpReq* ops) noexcept {
  int n = 0;
  auto push = [&](OpKind k, Link l, uint32_t len = 0, uint64_t off = 0, uint32_t boff = 0) {
    ops[n++] = OpReq{k, l, len, off, boff};
  };
  switch (state_) {
    case State::kIdle:
    case State::kDone:
    case State::kFailed: return 0;
    case State::kFailing:
      if (src_open_) push(OpKind::kCloseSrc, Link::kNone);
      if (dst_open_) push(OpKind::kCloseDst, Link::kNone);
      if (n == 0) state_ = State::kFailed;
      return n;
    case State::kRunning: break;
  }

  // 1. Data in the buffer goes out first.
  if (buf_done_ < buf_len_) {
    const uint32_t len = buf_len_ - buf_done_;
    const bool last = eof_;
    if (!dst_created_) push(OpKind::kOpenDst, Link::kSoft);
    write_len_ = len;
    push(OpKind::kWrite, last ? Link::kSoft : Link::kNone, len, written_, buf_done_);
    if (last) push(OpKind::kCloseDst, Link::kNone);
    if (last && src_open_) push(OpKind::kCloseSrc, Link::kNone);
    return n;
  }
  // 2. Everything read and written: create (empty file) / close what is open.
  if (eof_) {
    if (!dst_created_) {
      push(OpKind::kOpenDst, Link::kSoft);
      push(OpKind::kCloseDst, Link::kNone);
    } else if (dst_open_) {
      push(OpKind::kCloseDst, Link::kNone);
    }
    if (src_open_) push(OpKind::kCloseSrc, Link::kNone);
    if (n == 0) state_ = State::kDone;
    return n;
  }
  // 3. Read more.  When the rest of the file (as stat'ed) fits in the buffer
  // the source is closed in the same batch: a hard link keeps the close
  // running after the (expected) short read.
  buf_len_ = buf_done_ = 0;
  read_len_ = chunk_;
  const bool rest_fits = size_ < read_off_ + chunk_;
  if (!src_open_) push(OpKind::kOpenSrc, Link::kSoft);
  push(OpKind::kRead, rest_fits ? Link::kHard : Link::kNone, chunk_, read_off_);
  if (rest_fits) push(OpKind::kCloseSrc, Link::kNone);
  return n;
}

}  // namespace usync
