// uring-sync: the command-line face of liburingsync.
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <utility>
#include <string>
#include <string_view>
#include <thread>

#include "cli.h"
#include "progress.h"
#include "uringsync/uringsync.h"

namespace {

std::atomic<usync_engine*> g_engine{nullptr};

// SIGINT/SIGTERM are blocked in every thread and taken by this one with
// sigtimedwait, so the cancel (which takes locks) never runs in a handler.
class SignalWatcher {
 public:
  SignalWatcher() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);  // only to wake the watcher at exit
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] {
      const timespec tick{0, 100 * 1000 * 1000};
      while (!done_.load()) {
        const int sig = sigtimedwait(&set_, nullptr, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
          if (usync_engine* e = g_engine.load()) usync_engine_cancel(e);
        }
      }
    });
  }
  ~SignalWatcher() {
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGUSR1);  // don't sit out the tick
    thread_.join();
  }

 private:
  sigset_t set_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

struct Context {
  const usync::cli::Options* opts;
  usync::cli::ProgressLine* progress;
  std::string src_root;
  bool stdout_broken = false;
  bool refused = false;  // the overlap check refused; already explained
  // Errors with the same reason: the first few are printed, the rest
  // counted (a full disk fails every file after it, at whatever step).
  std::map<int, uint64_t> seen;
};

constexpr uint64_t kSameErrorLines = 5;

// Source-side steps name the source path, the rest the destination.
bool source_side(int step) {
  return step == USYNC_STEP_OPEN_SRC || step == USYNC_STEP_STAT || step == USYNC_STEP_READ ||
         step == USYNC_STEP_READDIR;
}

std::string_view relative(std::string_view path, std::string_view root) {
  if (path.size() > root.size() && path.compare(0, root.size(), root) == 0) {
    path.remove_prefix(root.size());
    while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  }
  return path;
}

extern "C" void on_error(void* user, const usync_file_error* e) {
  auto* c = static_cast<Context*>(user);
  if (c->progress != nullptr) c->progress->finish();
  const std::string where = usync::cli::quote_name(source_side(e->step) ? e->src_path : e->dst_path);
  if (e->step == USYNC_STEP_OVERLAP) {
    c->refused = true;
    if (e->error == ELOOP)
      std::fprintf(stderr, "uring-sync: cannot copy '%s' to '%s': source and destination overlap\n",
                   usync::cli::quote_name(e->src_path).c_str(), usync::cli::quote_name(e->dst_path).c_str());
    else
      std::fprintf(stderr, "uring-sync: cannot copy '%s' to '%s': cannot tell whether they overlap: %s\n",
                   usync::cli::quote_name(e->src_path).c_str(), usync::cli::quote_name(e->dst_path).c_str(),
                   std::strerror(e->error));
    return;
  }
  if (++c->seen[e->error] > kSameErrorLines) return;
  if (e->step == USYNC_STEP_CHANGED)
    std::fprintf(stderr, "uring-sync: skipped '%s': it was replaced while being copied\n", where.c_str());
  else
    std::fprintf(stderr, "uring-sync: %s '%s': %s\n", usync_step_name(e->step), where.c_str(),
                 usync::cli::describe_error(e->step, e->error).c_str());
}

extern "C" void on_file(void* user, const usync_file_done* d) {
  auto* c = static_cast<Context*>(user);
  std::string line = usync::cli::quote_name(relative(d->src_path, c->src_root));
  if (S_ISDIR(d->mode)) line += '/';
  line += '\n';
  // stdout closed under us (`| head`): stop cleanly rather than die mid-file.
  if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() && !c->stdout_broken) {
    c->stdout_broken = true;
    if (usync_engine* e = g_engine.load()) usync_engine_cancel(e);
  }
}

extern "C" void on_progress(void* user, const usync_stats* s) {
  auto* c = static_cast<Context*>(user);
  if (c->progress != nullptr) c->progress->update(*s);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace usync::cli;
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout is an error to handle, not a kill
  SignalWatcher signals;          // before any engine thread exists, so all inherit the mask
  Options opts;
  if (auto code = parse(argc, argv, &opts, std::cout, std::cerr)) return *code;

  std::vector<const char*> excludes;
  usync_options eo = engine_options(opts, &excludes);
  ProgressLine progress(stderr);
  Context ctx;
  ctx.opts = &opts;
  ctx.progress = opts.progress ? &progress : nullptr;
  ctx.src_root = opts.src;
  eo.cb_user = &ctx;
  eo.error_cb = on_error;
  if (opts.verbose || opts.dry_run) eo.file_done_cb = on_file;
  if (opts.progress) {
    eo.progress_cb = on_progress;
    eo.progress_interval_ms = 100;
  }

  usync_engine* engine = nullptr;
  if (int ret = usync_engine_create(&eo, &engine); ret < 0) {
    std::fprintf(stderr, "uring-sync: %s\n",
                 ret == -EINVAL ? "invalid option or exclude pattern" : std::strerror(-ret));
    return kExitUsage;
  }
  if (opts.engine == "uring" && usync_engine_kind(engine) != USYNC_ENGINE_URING) {
    std::fprintf(stderr, "uring-sync: --engine=uring: io_uring is not available here\n");
    usync_engine_destroy(engine);
    return kExitUsage;
  }
  g_engine.store(engine);

  const int ret = usync_copy_tree(engine, opts.src.c_str(), opts.dst.c_str());
  usync_stats st{};
  usync_engine_stats(engine, &st, sizeof st);
  if (opts.progress) {
    progress.update(st);
    progress.finish();
  }
  g_engine.store(nullptr);
  const int kind = st.engine != 0 ? static_cast<int>(st.engine) : usync_engine_kind(engine);
  usync_engine_destroy(engine);

  int code = kExitOk;
  switch (ret) {
    case 0: break;
    case -EIO: code = kExitFailures; break;
    case -ECANCELED:
      std::fprintf(stderr, "uring-sync: interrupted\n");
      code = kExitInterrupted;
      break;
    default:
      if (!ctx.refused)  // else the error callback explained it
        std::fprintf(stderr, "uring-sync: cannot copy '%s' to '%s': %s\n",
                     usync::cli::quote_name(opts.src).c_str(), usync::cli::quote_name(opts.dst).c_str(),
                     std::strerror(-ret));
      return kExitUsage;
  }
  for (const auto& [err, n] : ctx.seen)
    if (n > kSameErrorLines)
      std::fprintf(stderr, "uring-sync: ... and %llu more failures: %s\n",
                   static_cast<unsigned long long>(n - kSameErrorLines), std::strerror(err));
  if (opts.verbose || st.files_failed > 0) {
    std::fprintf(stderr,
                 "uring-sync: %s%llu files (%s), %llu dirs, %llu symlinks, %llu special; %llu up to date; %llu failed; "
                 "%llu excluded; %.3f s (engine: %s, workers: %u)\n",
                 opts.dry_run ? "would copy " : "", static_cast<unsigned long long>(st.files_done),
                 human_bytes(static_cast<double>(st.bytes_done)).c_str(),
                 static_cast<unsigned long long>(st.dirs_created), static_cast<unsigned long long>(st.symlinks_created),
                 static_cast<unsigned long long>(st.specials_created), static_cast<unsigned long long>(st.files_skipped),
                 static_cast<unsigned long long>(st.files_failed),
                 static_cast<unsigned long long>(st.files_excluded), static_cast<double>(st.elapsed_ns) / 1e9,
                 kind == USYNC_ENGINE_URING ? "io_uring" : "sync", st.workers);
  }
  if (opts.verbose && opts.verify)
    std::fprintf(stderr, "uring-sync: %llu files (%s) read back and verified\n",
                 static_cast<unsigned long long>(st.files_verified),
                 human_bytes(static_cast<double>(st.bytes_verified)).c_str());
  if (opts.verbose && st.temps_removed > 0)
    std::fprintf(stderr, "uring-sync: removed %llu temporaries left by interrupted runs\n",
                 static_cast<unsigned long long>(st.temps_removed));
  if (opts.verbose && st.engine == USYNC_ENGINE_URING)
    std::fprintf(stderr, "uring-sync: %u files in flight per ring (-q %u asked), %s of buffers, %u descriptors\n",
                 st.queue_depth, opts.queue_depth != 0 ? opts.queue_depth : 128u,
                 human_bytes(static_cast<double>(st.buffer_bytes)).c_str(), st.fd_budget);
  else if (opts.verbose)
    std::fprintf(stderr, "uring-sync: %u threads, %s of buffers, %u descriptors\n", st.workers,
                 human_bytes(static_cast<double>(st.buffer_bytes)).c_str(), st.fd_budget);
  return code;
}
