#include "progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>

namespace usync::cli {

std::string human_bytes(double b) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%.0f B", b);
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", b, units[u]);
  return buf;
}

std::string render_progress(const usync_stats& s, unsigned width) {
  const double secs = static_cast<double>(s.elapsed_ns) / 1e9;
  const double rate = secs > 0 ? static_cast<double>(s.bytes_done) / secs : 0;
  const double frate = secs > 0 ? static_cast<double>(s.files_done) / secs : 0;
  char eta[32] = "ETA --:--";
  // Bytes left at the byte rate.  A file queued without a stat is sized only
  // when a worker opens it: until then it counts as the average of the
  // files sized so far.
  double found = static_cast<double>(s.bytes_found);
  if (s.files_unsized > 0 && s.files_found > s.files_unsized)
    found += static_cast<double>(s.files_unsized) * found / static_cast<double>(s.files_found - s.files_unsized);
  if (s.walk_done && rate > 0 && found >= static_cast<double>(s.bytes_done)) {
    const double left = (found - static_cast<double>(s.bytes_done)) / rate;
    const auto t = static_cast<unsigned long>(left);
    std::snprintf(eta, sizeof eta, "ETA %lu:%02lu", t / 60, t % 60);
  }
  char tail[192];
  std::snprintf(tail, sizeof tail, " %" PRIu64 "/%" PRIu64 "%s files  %s  %s/s  %.0f files/s  %s%s", s.files_done,
                s.files_found, s.walk_done ? "" : "+", human_bytes(double(s.bytes_done)).c_str(),
                human_bytes(rate).c_str(), frate, eta,
                s.files_failed ? ("  " + std::to_string(s.files_failed) + " failed").c_str() : "");
  std::string line = tail;
  // A bar in whatever width is left.
  const int bar = static_cast<int>(width) - static_cast<int>(line.size()) - 3;
  if (bar >= 10) {
    const double frac = s.files_found ? static_cast<double>(s.files_done) / static_cast<double>(s.files_found) : 0;
    const int fill = s.walk_done ? static_cast<int>(frac * bar) : 0;
    std::string b = "[" + std::string(static_cast<size_t>(std::clamp(fill, 0, bar)), '=') +
                    std::string(static_cast<size_t>(bar - std::clamp(fill, 0, bar)), ' ') + "]";
    line = b + line;
  }
  if (line.size() > width) line.resize(width);
  return line;
}

ProgressLine::ProgressLine(FILE* out) : out_(out), tty_(isatty(fileno(out)) != 0) {}

void ProgressLine::update(const usync_stats& s, bool last) {
  if (tty_) {
    winsize ws{};
    const unsigned width = (ioctl(fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) ? ws.ws_col - 1 : 79;
    std::fprintf(out_, "\r%s\033[K", render_progress(s, width).c_str());
    drawn_ = true;
  } else {
    if (!last && s.elapsed_ns < last_print_ns_ + 2000000000ull && last_print_ns_ != 0) return;
    last_print_ns_ = s.elapsed_ns;
    std::fprintf(out_, "%s\n", render_progress(s, 200).c_str());
  }
  std::fflush(out_);
}

void ProgressLine::finish() {
  if (tty_ && drawn_) std::fputc('\n', out_);
  std::fflush(out_);
}

}  // namespace usync::cli
