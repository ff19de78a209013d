// The fixed cost of one copy call: usync_copy_files with a single small file,
// repeated on one engine (what the Go package and the rclone backend do per
// file).  A benchmark program, not a test: run it on a quiet machine.
//
//   build/bin/usync_call_overhead [--uring|--sync|--auto] [--calls N] [--size BYTES] [--dir DIR]
//
// Prints the first call (a cold engine) and the distribution of the others,
// next to the floor: the same file copied the way the engine does it (open,
// fstat, read, create a temporary, write, set times, close, rename) with
// plain system calls on the calling thread.  The difference of the medians
// is what a call costs beyond the copy itself.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "uringsync/uringsync.h"

namespace {

double us_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

// One copy as the engine makes it, without the engine.
bool floor_copy(const std::string& src, const std::string& dir, const std::string& dst, std::vector<char>& buf) {
  const int in = open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return false;
  struct stat st {};
  fstat(in, &st);
  const ssize_t n = read(in, buf.data(), buf.size());
  const std::string tmp = dir + "/.floor.tmp";
  const int out = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0777);
  bool ok = n >= 0 && out >= 0 && write(out, buf.data(), static_cast<size_t>(n)) == n;
  const timespec times[2] = {st.st_atim, st.st_mtim};
  ok = ok && futimens(out, times) == 0;
  if (out >= 0) close(out);
  close(in);
  return ok && rename(tmp.c_str(), dst.c_str()) == 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int usage() {
  std::fprintf(stderr, "usage: usync_call_overhead [--uring|--sync|--auto] [--calls N] [--size BYTES] [--dir DIR]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t flags = USYNC_FORCE_URING;
  long calls = 2000;
  long size = 4096;
  std::string dir = "/dev/shm";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--uring") {
      flags = USYNC_FORCE_URING;
    } else if (a == "--sync") {
      flags = USYNC_FORCE_SYNC;
    } else if (a == "--auto") {
      flags = 0;  // the engine the source's filesystem gets (adaptive io_uring on a disk filesystem)
    } else if (a == "--calls" && i + 1 < argc) {
      calls = std::atol(argv[++i]);
    } else if (a == "--size" && i + 1 < argc) {
      size = std::atol(argv[++i]);
    } else if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      return usage();
    }
  }
  if (calls < 2 || size < 0) return usage();

  std::string tmpl = dir + "/usync-overhead-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string src = tmpl + "/src", dst = tmpl + "/dst";
  {
    const int fd = open(src.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    std::vector<char> data(static_cast<size_t>(size), 'x');
    if (fd < 0 || write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
      std::perror("write source");
      return 1;
    }
    close(fd);
  }

  usync_options o;
  usync_options_init(&o);
  o.flags = flags;
  usync_engine* e = nullptr;
  if (const int ret = usync_engine_create(&o, &e); ret < 0) {
    std::fprintf(stderr, "usync_engine_create: %s\n", std::strerror(-ret));
    return 1;
  }
  const usync_pair pair{src.c_str(), dst.c_str(), 0};
  usync_result res{};
  std::vector<double> us;
  us.reserve(static_cast<size_t>(calls));
  int failures = 0;
  for (long i = 0; i < calls; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const int ret = usync_copy_files(e, &pair, 1, &res);
    us.push_back(us_since(t0));
    if (ret != 0) ++failures;
  }
  usync_stats st{};
  usync_engine_stats(e, &st, sizeof st);
  std::vector<double> floor_us;
  {
    std::vector<char> buf(static_cast<size_t>(size) + 1);
    for (long i = 0; i < calls; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      if (!floor_copy(src, tmpl, dst, buf)) ++failures;
      floor_us.push_back(us_since(t0));
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  usync_engine_destroy(e);
  const double destroy_us = us_since(t0);
  unlink(src.c_str());
  unlink(dst.c_str());
  rmdir(tmpl.c_str());

  const double first = us.front();
  std::vector<double> warm(us.begin() + 1, us.end());
  std::sort(warm.begin(), warm.end());
  double sum = 0;
  for (double v : warm) sum += v;
  auto pct = [&](double p) { return warm[std::min(warm.size() - 1, static_cast<size_t>(p * warm.size()))]; };
  std::printf("engine=%s size=%ld calls=%ld first=%.0fus warm: mean=%.1fus median=%.1fus p90=%.1fus p99=%.1fus "
              "destroy=%.0fus floor: median=%.1fus overhead(median-floor)=%.1fus failures=%d\n",
              st.engine == USYNC_ENGINE_URING ? "uring" : "sync", size, calls, first, sum / warm.size(), pct(0.5),
              pct(0.9), pct(0.99), destroy_us, median(floor_us), pct(0.5) - median(floor_us), failures);
  return failures == 0 ? 0 : 1;
}
