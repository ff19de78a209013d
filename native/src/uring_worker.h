// A worker of the io_uring engine: one ring on one thread driving up to
// queue_depth FileCopy state machines at once, each in a fixed slot that owns
// two direct descriptors (2i: source, 2i+1: destination) and one registered
// buffer.  user_data = slot << 8 | OpKind.
#pragma once

#include "job.h"

namespace usync {

// Copies small files from job.small_q until it is closed and drained.  If the
// ring cannot be set up on this thread, falls back to the synchronous loop
// (same results) and says so through *used_fallback; the adaptive engine
// sets the ring up only when a file first needs it, and copies the files
// that would have gone into it synchronously if that fails.
// The ring, its registered buffers and slots stay with the calling thread
// (a pool thread) for its next job, which reuses them when it wants the same
// depth, chunk and io-wq cap; they are freed when the thread exits, and a
// ring that broke or is not left clean is dropped.
// Returns the -errno that made the fallback, 0 otherwise.
int run_uring_worker(Job& job, bool* used_fallback) noexcept;

}  // namespace usync
