#include "file_copy.h"

#include <algorithm>
#include <cerrno>

namespace usync {

void FileCopy::start(uint32_t chunk, bool fsync, bool install, bool split) noexcept {
  *this = FileCopy();
  chunk_ = chunk;
  fsync_ = fsync;
  install_ = install;
  split_ = split;
  state_ = State::kRunning;
}

void FileCopy::fail(int step, int err) noexcept {
  if (state_ == State::kFailing || state_ == State::kFailed) return;
  state_ = State::kFailing;
  step_ = step;
  err_ = err > 0 ? err : EIO;
}

void FileCopy::source_checked(uint64_t size) noexcept {
  checked_ = true;
  size_ = size;
  until_eof_ = size == 0;
}

void FileCopy::complete(OpKind kind, int res) noexcept {
  // -ECANCELED only ever means "an earlier op of this linked batch failed or
  // came up short", or a cancellation of the whole job (then abort() has
  // been or will be called): that earlier result says what happened.
  const bool canceled = res == -ECANCELED;
  switch (kind) {
    case OpKind::kOpenSrc:
      if (res >= 0)
        src_open_ = true;
      else if (!canceled)
        fail(USYNC_STEP_OPEN_SRC, -res);
      else
        fail(USYNC_STEP_CANCELED, ECANCELED);
      break;
    case OpKind::kRead:
      if (res >= 0) {
        const auto n = static_cast<uint32_t>(res);
        buf_len_ = n;
        buf_done_ = 0;
        read_off_ += n;
        if (until_eof_)
          eof_ = n == 0;
        else if (n < read_len_ || read_off_ >= size_)
          eof_ = true;  // the end as opened, or the file shrank since
      } else if (!canceled) {
        fail(USYNC_STEP_READ, -res);
      }
      break;
    case OpKind::kCloseSrc:
      // A failed close of a read-only descriptor loses nothing; either way the
      // descriptor is gone.  Only a canceled close leaves it open.
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
    case OpKind::kFsyncDst:
      if (res < 0 && !canceled) fail(USYNC_STEP_FSYNC, -res);  // the close linked behind it is cancelled
      break;
    case OpKind::kInstallDst:
      if (res < 0 && !canceled) fail(USYNC_STEP_OPEN_DST, -res);  // the close linked behind it is cancelled
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

  // 0. Open the source, alone: the driver checks what it got before reading.
  if (!opened_) {
    opened_ = true;
    push(OpKind::kOpenSrc, Link::kNone);
    return n;
  }
  if (!src_open_ && !eof_) {  // a driver bug: never reopen by name
    fail(USYNC_STEP_OPEN_SRC, EIO);
    return next(ops);
  }
  if (!checked_) {
    fail(USYNC_STEP_CHANGED, EIO);
    return next(ops);
  }
  // The end of a chain: close the destination (open, or opened earlier in
  // this chain), then the source.
  auto close_all = [&](bool dst_will_be_open) {
    if (dst_will_be_open && fsync_) push(OpKind::kFsyncDst, Link::kSoft);
    if (dst_will_be_open && install_) push(OpKind::kInstallDst, Link::kSoft);
    if (dst_will_be_open) push(OpKind::kCloseDst, src_open_ ? Link::kSoft : Link::kNone);
    if (src_open_) push(OpKind::kCloseSrc, Link::kNone);
  };

  // 1. Data in the buffer goes out first (after a short write, a short read,
  // or an unlinked read of a file read to EOF).
  if (buf_done_ < buf_len_) {
    const uint32_t len = buf_len_ - buf_done_;
    if (!dst_created_) push(OpKind::kOpenDst, Link::kSoft);
    write_len_ = len;
    push(OpKind::kWrite, eof_ ? Link::kSoft : Link::kNone, len, written_, buf_done_);
    if (eof_) close_all(true);
    return n;
  }
  // 2. Everything read and written: create (an empty file) and close.
  if (eof_) {
    if (!dst_created_) push(OpKind::kOpenDst, Link::kSoft);
    close_all(!dst_created_ || dst_open_);
    if (n == 0) state_ = State::kDone;
    return n;
  }
  // 3. Read the next chunk.  Of a file of known size, the write of the same
  // bytes is linked behind the read (it runs only if the read is complete),
  // and with the last chunk the closes too.
  buf_len_ = buf_done_ = 0;
  if (until_eof_ || split_) {
    read_len_ = until_eof_ ? chunk_ : static_cast<uint32_t>(std::min<uint64_t>(chunk_, size_ - read_off_));
    push(OpKind::kRead, Link::kNone, read_len_, read_off_);
    return n;
  }
  const auto len = static_cast<uint32_t>(std::min<uint64_t>(chunk_, size_ - read_off_));
  const bool last = read_off_ + len >= size_;
  read_len_ = write_len_ = len;
  push(OpKind::kRead, Link::kSoft, len, read_off_);
  if (!dst_created_) push(OpKind::kOpenDst, Link::kSoft);
  push(OpKind::kWrite, last ? Link::kSoft : Link::kNone, len, written_, 0);
  if (last) {
    if (fsync_) push(OpKind::kFsyncDst, Link::kSoft);
    if (install_) push(OpKind::kInstallDst, Link::kSoft);
    push(OpKind::kCloseDst, Link::kSoft);
    push(OpKind::kCloseSrc, Link::kNone);
  }
  return n;
}

}  // namespace usync
