// The exported C functions: thin, exception-free forwarding to Engine.
#include <cerrno>
#include <cstring>

#include "engine.h"
#include "uringsync/uringsync.h"

struct usync_engine {
  usync::Engine* impl;
};

extern "C" {

USYNC_API unsigned usync_version_number(void) { return USYNC_VERSION_NUMBER; }

USYNC_API const char* usync_version_string(void) {
#define USYNC_STR2(x) #x
#define USYNC_STR(x) USYNC_STR2(x)
  return USYNC_STR(USYNC_VERSION_MAJOR) "." USYNC_STR(USYNC_VERSION_MINOR) "." USYNC_STR(USYNC_VERSION_PATCH);
}

USYNC_API const char* usync_step_name(int step) {
  switch (step) {
    case USYNC_STEP_NONE: return "none";
    case USYNC_STEP_OPEN_SRC: return "open source";
    case USYNC_STEP_STAT: return "stat";
    case USYNC_STEP_OPEN_DST: return "create destination";
    case USYNC_STEP_READ: return "read";
    case USYNC_STEP_WRITE: return "write";
    case USYNC_STEP_CLOSE: return "close";
    case USYNC_STEP_METADATA: return "set attributes";
    case USYNC_STEP_RENAME: return "rename into place";
    case USYNC_STEP_MKDIR: return "create directory";
    case USYNC_STEP_READDIR: return "read directory";
    case USYNC_STEP_SYMLINK: return "copy symlink";
    case USYNC_STEP_MKNOD: return "create special file";
    case USYNC_STEP_CANCELED: return "cancelled";
    case USYNC_STEP_CHANGED: return "source changed while being copied";
    case USYNC_STEP_OVERLAP: return "source and destination overlap";
    case USYNC_STEP_DELETE: return "delete";
    case USYNC_STEP_VERIFY: return "verify";
    case USYNC_STEP_FSYNC: return "fsync";
    case USYNC_STEP_LINK: return "hard link";
    default: return "unknown";
  }
}

USYNC_API void usync_options_init(usync_options* opts) {
  if (opts == nullptr) return;
  std::memset(opts, 0, sizeof *opts);
  opts->struct_size = sizeof *opts;
}

USYNC_API int usync_engine_create(const usync_options* opts, usync_engine** out) {
  if (out == nullptr) return -EINVAL;
  *out = nullptr;
  usync_engine* h = new (std::nothrow) usync_engine{nullptr};
  if (h == nullptr) return -ENOMEM;
  const int ret = usync::Engine::create(opts, &h->impl);
  if (ret < 0) {
    delete h;
    return ret;
  }
  *out = h;
  return 0;
}

USYNC_API void usync_engine_destroy(usync_engine* engine) {
  if (engine == nullptr) return;
  delete engine->impl;
  delete engine;
}

USYNC_API void usync_engine_cancel(usync_engine* engine) {
  if (engine != nullptr) engine->impl->cancel();
}

USYNC_API int usync_engine_stats(const usync_engine* engine, usync_stats* out, size_t size) {
  if (engine == nullptr || out == nullptr) return -EINVAL;
  usync_stats s{};
  engine->impl->stats(&s);
  std::memcpy(out, &s, size < sizeof s ? size : sizeof s);
  return 0;
}

USYNC_API int usync_engine_kind(const usync_engine* engine) {
  return engine == nullptr ? USYNC_ENGINE_NONE : engine->impl->kind();
}

USYNC_API int usync_copy_tree(usync_engine* engine, const char* src, const char* dst) {
  if (engine == nullptr) return -EINVAL;
  return engine->impl->copy_tree(src, dst);
}

USYNC_API int usync_copy_files(usync_engine* engine, const usync_pair* pairs, size_t count, usync_result* results) {
  if (engine == nullptr) return -EINVAL;
  return engine->impl->copy_files(pairs, count, results);
}

}  // extern "C"
