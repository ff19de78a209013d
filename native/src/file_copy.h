// The per-file copy state machine, independent of any ring.
//
// A FileCopy plans the next batch of operations for one file (next()), the
// driver submits them (as linked SQEs on a ring, or in a test as scripted
// results) and feeds every result back (complete()) in batch order.  When all
// operations of a batch have completed the driver calls next() again; next()
// returning 0 means the file is finished: done() or failed().
//
// The source is opened first, alone; the driver then checks the descriptor
// (it must still be the regular file the walker saw: a FIFO, device,
// directory or other file swapped in is refused) and reports its size now
// with source_checked(), or source_changed().  The file is copied as it is
// at that moment: `size` bytes (a file that shrinks is copied to its new
// end; bytes appended later are not copied).  A file whose size is 0 is read
// until EOF (files in /proc report 0).  The source stays open until the end:
// it is never reopened by name.
//
// Each later batch reads one chunk and writes it in the same linked chain
// (-L-> = IOSQE_IO_LINK):
//   [read -L-> open dst -L-> write -L-> close dst -L-> close src]   (small file)
//   [read -L-> open dst -L-> write] [read -L-> write] ... [read -L-> write -L-> close dst -L-> close src]
// With fsync (USYNC_FSYNC) every chain that closes the destination syncs it
// first: [... write -L-> fsync dst -L-> close dst -L-> close src], so a file
// is durable before the driver gives it its final name.
// With install (an anonymous destination, O_TMPFILE as a direct descriptor)
// the chain hands the file to a plain descriptor before closing the direct
// one: [... write -L-> install dst -L-> close dst -L-> close src]; the driver
// names the file through that descriptor (linkat) afterwards.
// With split (a driver that runs the destination's ops itself, with plain
// system calls) a read is never linked to them: [read], then
// [open dst -L-> write -L-> ... close dst -L-> close src] with the bytes read.
// A short read (the file shrank) or a short write breaks the chain; the next
// batch resumes for the remainder.  A failure anywhere closes what is open
// and ends in failed(); the driver removes a created destination.
#pragma once

#include <cstdint>

#include "uringsync/uringsync.h"

namespace usync {

enum class OpKind : uint8_t { kOpenSrc, kRead, kCloseSrc, kOpenDst, kWrite, kFsyncDst, kCloseDst, kInstallDst };
enum class Link : uint8_t { kNone, kSoft };

struct OpReq {
  OpKind kind;
  Link link;         // how this op is linked to the next one in the batch
  uint32_t len;      // kRead / kWrite: byte count
  uint64_t offset;   // kRead / kWrite: file offset
  uint32_t buf_off;  // kWrite: offset into the buffer
};

class FileCopy {
 public:
  static constexpr int kMaxOps = 7;

  // fsync: sync the destination (kFsyncDst) before closing it.  install: get
  // a plain descriptor of it (kInstallDst) before closing it.
  // split: every read is a batch of its own, and the writes of its bytes
  // (with the destination's open and closes) the next batch, for a driver
  // that runs the destination's ops itself rather than on the ring.
  void start(uint32_t chunk, bool fsync = false, bool install = false, bool split = false) noexcept;

  // Plans the next batch into ops[0..kMaxOps); returns how many (0 = finished).
  int next(OpReq* ops) noexcept;

  // Result of one op of the current batch (a cqe->res), in batch order.
  void complete(OpKind kind, int res) noexcept;

  // After a successful kOpenSrc: the descriptor is the walked regular file and
  // holds `size` bytes now (0: read to EOF).
  void source_checked(uint64_t size) noexcept;
  // After a successful kOpenSrc: the name now leads to something else.
  void source_changed(int err) noexcept { fail(USYNC_STEP_CHANGED, err); }

  // Abandon the file (cancellation): the next batch only closes what is open.
  void abort(int err) noexcept { fail(USYNC_STEP_CANCELED, err); }

  bool finished() const noexcept { return state_ == State::kDone || state_ == State::kFailed; }
  bool done() const noexcept { return state_ == State::kDone; }
  bool failed() const noexcept { return state_ == State::kFailed; }
  int error() const noexcept { return err_; }  // positive errno
  int step() const noexcept { return step_; }  // enum usync_step
  bool dst_created() const noexcept { return dst_created_; }
  bool src_open() const noexcept { return src_open_; }
  bool dst_open() const noexcept { return dst_open_; }
  uint64_t bytes_written() const noexcept { return written_; }

 private:
  enum class State : uint8_t { kIdle, kRunning, kFailing, kDone, kFailed };
  void fail(int step, int err) noexcept;

  State state_ = State::kIdle;
  uint64_t size_ = 0;
  uint32_t chunk_ = 0;
  uint64_t read_off_ = 0;   // bytes read from the source so far
  uint64_t written_ = 0;    // bytes written to the destination so far
  uint32_t buf_len_ = 0;    // valid bytes in the buffer
  uint32_t buf_done_ = 0;   // of which already written
  uint32_t read_len_ = 0;   // length asked by the outstanding read
  uint32_t write_len_ = 0;  // length asked by the outstanding write
  bool fsync_ = false;      // kFsyncDst before kCloseDst
  bool install_ = false;    // kInstallDst before kCloseDst
  bool split_ = false;      // reads never linked to the writes (start())
  bool opened_ = false;     // the source was opened once (never again)
  bool checked_ = false;    // source_checked() was called
  bool until_eof_ = false;  // size unknown (0): read until a read returns 0
  bool src_open_ = false;
  bool dst_open_ = false;
  bool dst_created_ = false;
  bool eof_ = false;
  int err_ = 0;
  int step_ = USYNC_STEP_NONE;
};

}  // namespace usync
