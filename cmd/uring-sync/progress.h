// The --progress line: files, bytes, rate, ETA.  On a terminal it redraws
// one line in place; elsewhere it prints a line every few seconds.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "uringsync/uringsync.h"

namespace usync::cli {

// Human-readable bytes: "512 B", "1.5 KiB", "12.0 MiB".
std::string human_bytes(double bytes);

// One rendered status line (no newline), at most width columns.
std::string render_progress(const usync_stats& s, unsigned width);

class ProgressLine {
 public:
  explicit ProgressLine(FILE* out);
  // last: the copy's final state, printed also off a terminal within 2 s of
  // the previous line.
  void update(const usync_stats& s, bool last = false);
  void finish();  // ends the line on a terminal

 private:
  FILE* out_;
  bool tty_;
  bool drawn_ = false;
  uint64_t last_print_ns_ = 0;
};

}  // namespace usync::cli
