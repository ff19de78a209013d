// The fixed cost of one copy call: usync_copy_files with a single small file,
// repeated on one engine (what the Go package and the rclone backend do per
// file).  A benchmark program, not a test: run it on a quiet machine.
//
//   build/bin/usync_call_overhead [--uring|--sync] [--calls N] [--size BYTES] [--dir DIR]
//
// Prints the first call (a cold engine) and the distribution of the others.
#include <fcntl.h>
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

int usage() {
  std::fprintf(stderr, "usage: usync_call_overhead [--uring|--sync] [--calls N] [--size BYTES] [--dir DIR]\n");
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
  const usync_pair pair{src.c_str(), dst.c_str()};
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
              "destroy=%.0fus failures=%d\n",
              st.engine == USYNC_ENGINE_URING ? "uring" : "sync", size, calls, first, sum / warm.size(), pct(0.5),
              pct(0.9), pct(0.99), destroy_us, failures);
  return failures == 0 ? 0 : 1;
}
