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
#include "events.h"
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
  std::string src_root, dst_root;
  bool json = false;     // --json: events on stdout, no human lines
  bool stdout_broken = false;
  bool refused = false;  // the overlap check refused; already explained
  int last_error = 0;    // errno of the last error callback (a start error's names its side)
  // Errors with the same reason: the first few are printed, the rest
  // counted (a full disk fails every file after it, at whatever step).
  // Attributes a destination cannot store are one kind each: one line.
  std::map<std::pair<int, int>, uint64_t> seen;  // (metadata step or 0, errno)
};

constexpr uint64_t kSameErrorLines = 5;
uint64_t lines_for(int step) { return step == USYNC_STEP_METADATA ? 1 : kSameErrorLines; }
constexpr uint32_t kJsonProgressMs = 500;  // --json: a progress event this often

// Writes text to stdout; flush for lines a reader waits for (events other
// than per-file ones).  stdout closed under us (`| head`): stop cleanly
// rather than die mid-file.
void out(Context* c, const std::string& text, bool flush) {
  if (c->stdout_broken) return;
  bool ok = std::fwrite(text.data(), 1, text.size(), stdout) == text.size();
  if (ok && flush) ok = std::fflush(stdout) == 0;
  if (!ok) {
    c->stdout_broken = true;
    if (usync_engine* e = g_engine.load()) usync_engine_cancel(e);
  }
}

extern "C" void on_error(void* user, const usync_file_error* e) {
  auto* c = static_cast<Context*>(user);
  if (e->step == USYNC_STEP_OVERLAP) c->refused = true;
  c->last_error = e->error;
  if (c->json) {
    out(c, usync::cli::events::error(*e, c->src_root, c->dst_root), true);
    return;
  }
  if (c->progress != nullptr) c->progress->finish();
  const std::string where =
      usync::cli::quote_name(usync::cli::source_side(e->step) ? e->src_path : e->dst_path);
  if (e->step == USYNC_STEP_OVERLAP) {
    if (e->error == ELOOP)
      std::fprintf(stderr, "uring-sync: cannot copy '%s' to '%s': source and destination overlap\n",
                   usync::cli::quote_name(e->src_path).c_str(), usync::cli::quote_name(e->dst_path).c_str());
    else
      std::fprintf(stderr, "uring-sync: cannot copy '%s' to '%s': cannot tell whether they overlap: %s\n",
                   usync::cli::quote_name(e->src_path).c_str(), usync::cli::quote_name(e->dst_path).c_str(),
                   std::strerror(e->error));
    return;
  }
  const int kind = e->step == USYNC_STEP_METADATA ? USYNC_STEP_METADATA : 0;
  if (++c->seen[{kind, e->error}] > lines_for(kind)) return;
  if (e->step == USYNC_STEP_CHANGED)
    std::fprintf(stderr, "uring-sync: skipped '%s': it was replaced while being copied\n", where.c_str());
  else if (e->step == USYNC_STEP_DELETE && e->error == EXDEV)
    std::fprintf(stderr, "uring-sync: not deleting in '%s': it is another mount\n", where.c_str());
  else
    std::fprintf(stderr, "uring-sync: %s '%s': %s\n", usync_step_name(e->step), where.c_str(),
                 usync::cli::describe_error(e->step, e->error).c_str());
}

extern "C" void on_file(void* user, const usync_file_done* d) {
  auto* c = static_cast<Context*>(user);
  if (c->json) {
    out(c, usync::cli::events::file(*d, c->src_root), false);
    return;
  }
  std::string line = usync::cli::quote_name(usync::cli::relative(d->src_path, c->src_root));
  if (S_ISDIR(d->mode)) line += '/';
  line += '\n';
  out(c, line, false);
}

// rsync's wording: "deleting NAME" (relative to DST), on stdout with the
// copied names.
extern "C" void on_delete(void* user, const usync_deletion* d) {
  auto* c = static_cast<Context*>(user);
  if (c->json) {
    out(c, usync::cli::events::deletion(*d, c->dst_root, c->opts->dry_run), true);
    return;
  }
  if (!c->opts->verbose && !c->opts->dry_run) return;  // listed where copied files are listed
  std::string line = "deleting " + usync::cli::quote_name(usync::cli::relative(d->dst_path, c->dst_root));
  if (S_ISDIR(d->mode)) line += '/';
  line += '\n';
  out(c, line, false);
}

extern "C" void on_progress(void* user, const usync_stats* s) {
  auto* c = static_cast<Context*>(user);
  if (c->json)
    out(c, usync::cli::events::progress(*s), true);
  else if (c->progress != nullptr)
    c->progress->update(*s);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace usync::cli;
  open_standard_fds();            // `2>&-`: no file of the copy's may become stderr
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout is an error to handle, not a kill
  std::signal(SIGXFSZ, SIG_IGN);  // past RLIMIT_FSIZE a write fails that file (EFBIG), as with rsync
  SignalWatcher signals;          // before any engine thread exists, so all inherit the mask
  Options opts;
  if (auto code = parse(argc, argv, &opts, std::cout, std::cerr)) return *code;

  std::vector<const char*> excludes;
  usync_options eo = engine_options(opts, &excludes);
  ProgressLine progress(stderr);
  Context ctx;
  ctx.opts = &opts;
  ctx.json = opts.json;
  ctx.progress = opts.progress && !opts.json ? &progress : nullptr;  // --json reports progress as events
  ctx.src_root = opts.src;
  ctx.dst_root = opts.dst;
  eo.cb_user = &ctx;
  eo.error_cb = on_error;
  eo.delete_cb = on_delete;
  if (opts.verbose || opts.dry_run) eo.file_done_cb = on_file;
  if (opts.json) {
    eo.progress_cb = on_progress;
    eo.progress_interval_ms = kJsonProgressMs;
  } else if (opts.progress) {
    eo.progress_cb = on_progress;
    eo.progress_interval_ms = 100;
  }

  // --json: a start event first and an end event last, whatever happens
  // after the command line was accepted.
  auto fail_to_start = [&](int err, const std::string& message) {
    if (opts.json) {
      usync_stats none{};
      out(&ctx, events::end(none, kExitUsage, err, message), true);
    } else {
      std::fprintf(stderr, "uring-sync: %s\n", message.c_str());
    }
    return kExitUsage;
  };
  usync_engine* engine = nullptr;
  if (int ret = usync_engine_create(&eo, &engine); ret < 0) {
    if (opts.json) out(&ctx, events::start(opts, eo, 0), true);
    std::string why = ret == -EINVAL ? "invalid option" : std::strerror(-ret);
    if (ret == -EINVAL)  // which pattern, if one: each alone, as the engine would take it
      for (const std::string& p : opts.excludes) {
        usync_options one;
        usync_options_init(&one);
        const char* pattern = p.c_str();
        one.excludes = &pattern;
        one.exclude_count = 1;
        usync_engine* probe = nullptr;
        if (usync_engine_create(&one, &probe) == -EINVAL) {
          why = "invalid --exclude pattern '" + p + "': empty (but for its slashes), an unclosed '[', or a lone '\\' at its end";
          break;
        }
        usync_engine_destroy(probe);
      }
    return fail_to_start(-ret, why);
  }
  if (opts.json) out(&ctx, events::start(opts, eo, usync_engine_kind(engine)), true);
  if (opts.engine == "uring" && usync_engine_kind(engine) != USYNC_ENGINE_URING) {
    usync_engine_destroy(engine);
    return fail_to_start(0, "--engine=uring: io_uring is not available here");
  }
  g_engine.store(engine);

  const int ret = usync_copy_tree(engine, opts.src.c_str(), opts.dst.c_str());
  usync_stats st{};
  usync_engine_stats(engine, &st, sizeof st);
  if (ctx.progress != nullptr) {
    progress.update(st, true);
    progress.finish();
  }
  g_engine.store(nullptr);
  const int kind = st.engine != 0 ? static_cast<int>(st.engine) : usync_engine_kind(engine);
  usync_engine_destroy(engine);

  int code = kExitOk;
  switch (ret) {
    case 0: break;
    case -EIO: code = kExitFailures; break;
    case -ECANCELED: code = kExitInterrupted; break;
    default: code = kExitUsage; break;
  }
  if (opts.json) {
    std::string message;
    int err = 0;
    if (code == kExitUsage) {
      message = ctx.refused ? "source and destination overlap" : "cannot copy: " + std::string(std::strerror(-ret));
      err = -ret;
    } else if (code == kExitInterrupted) {  // cut short: the cause, as an errno too
      message = ctx.stdout_broken ? "stdout closed" : "interrupted";
      err = ctx.stdout_broken ? EPIPE : ECANCELED;
    }
    out(&ctx, events::end(st, code, err, message), true);
    return code;
  }
  if (code == kExitInterrupted)
    std::fprintf(stderr, "uring-sync: %s\n",
                 ctx.stdout_broken ? "stopped: stdout was closed (every file under its name is complete)" : "interrupted");
  if (code == kExitUsage) {
    if (!ctx.refused && ctx.last_error != -ret)  // else the error callback explained it
      std::fprintf(stderr, "uring-sync: cannot copy '%s' to '%s': %s\n", usync::cli::quote_name(opts.src).c_str(),
                   usync::cli::quote_name(opts.dst).c_str(), std::strerror(-ret));
    return code;
  }
  for (const auto& [key, n] : ctx.seen) {
    const auto [kind, err] = key;
    if (n <= lines_for(kind)) continue;
    std::fprintf(stderr, "uring-sync: ... and %llu more %s: %s\n", static_cast<unsigned long long>(n - lines_for(kind)),
                 kind == USYNC_STEP_METADATA ? "entries whose attributes could not all be set" : "failures",
                 std::strerror(err));
  }
  if (opts.verbose || st.files_failed > 0) {
    // The adaptive engine's split: files found in the page cache were copied
    // by the rings' threads directly, the rest through the rings.
    const std::string inline_note =
        kind == USYNC_ENGINE_URING && st.files_inline > 0
            ? ", " + std::to_string(st.files_inline) + " files copied directly from the page cache"
            : std::string();
    std::fprintf(stderr,
                 "uring-sync: %s%llu files (%s), %llu dirs, %llu symlinks, %llu special; %llu up to date; %llu failed; "
                 "%llu excluded; %.3f s (engine: %s, workers: %u%s)\n",
                 opts.dry_run ? "would copy " : "", static_cast<unsigned long long>(st.files_done),
                 human_bytes(static_cast<double>(st.bytes_copied)).c_str(),
                 static_cast<unsigned long long>(st.dirs_created), static_cast<unsigned long long>(st.symlinks_created),
                 static_cast<unsigned long long>(st.specials_created), static_cast<unsigned long long>(st.files_skipped),
                 static_cast<unsigned long long>(st.files_failed),
                 static_cast<unsigned long long>(st.files_excluded), static_cast<double>(st.elapsed_ns) / 1e9,
                 kind == USYNC_ENGINE_URING ? "io_uring" : "sync", st.workers, inline_note.c_str());
  }
  if ((opts.verbose || opts.dry_run) && (opts.del || opts.delete_excluded))
    std::fprintf(stderr, "uring-sync: %s %llu entries\n", opts.dry_run ? "would delete" : "deleted",
                 static_cast<unsigned long long>(st.entries_deleted));
  if (opts.verbose && opts.hard_links)
    std::fprintf(stderr, "uring-sync: %llu hard links made\n", static_cast<unsigned long long>(st.links_created));
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
