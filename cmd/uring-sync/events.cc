#include "events.h"

#include <sys/stat.h>

#include <cstring>
#include <nlohmann/json.hpp>

namespace usync::cli::events {

namespace {

// ordered: "schema" and "type" come first, fields in a fixed, documented order.
using json = nlohmann::ordered_json;

json object(const char* type) { return json{{"schema", kSchema}, {"type", type}}; }

// A path into field `key`; invalid UTF-8 also gets key_b64 with the exact bytes
// (dump() then replaces the bad bytes of the string itself with U+FFFD).
void put_path(json& j, const std::string& key, std::string_view path) {
  j[key] = std::string(path);
  if (!valid_utf8(path)) j[key + "_b64"] = base64(path);
}

std::string line(const json& j) {
  // error_handler_t::replace: invalid UTF-8 becomes U+FFFD instead of throwing.
  std::string out = j.dump(-1, ' ', false, json::error_handler_t::replace);
  out += '\n';
  return out;
}

json errno_fields(json j, int err) {
  j["errno"] = err;
  const char* name = strerrorname_np(err);
  j["errno_name"] = name != nullptr ? json(name) : json(nullptr);
  j["message"] = std::strerror(err);
  return j;
}

json stats_json(const usync_stats& s) {
  return json{
      {"files_found", s.files_found},
      {"bytes_found", s.bytes_found},
      {"files_done", s.files_done},
      {"bytes_done", s.bytes_done},
      {"files_failed", s.files_failed},
      {"files_excluded", s.files_excluded},
      {"dirs_created", s.dirs_created},
      {"symlinks_created", s.symlinks_created},
      {"specials_created", s.specials_created},
      {"elapsed_ns", s.elapsed_ns},
      {"walk_done", s.walk_done != 0},
      {"engine", engine_name(s.engine)},
      {"workers", s.workers},
      {"queue_depth", s.queue_depth},
      {"fd_budget", s.fd_budget},
      {"buffer_bytes", s.buffer_bytes},
      {"files_skipped", s.files_skipped},
      {"temps_removed", s.temps_removed},
      {"entries_deleted", s.entries_deleted},
      {"files_verified", s.files_verified},
      {"bytes_verified", s.bytes_verified},
      {"links_created", s.links_created},
      {"files_inline", s.files_inline},
      {"files_unsized", s.files_unsized},
      {"bytes_copied", s.bytes_copied},
  };
}

// The usync_flag bits the CLI can set, by the name "options" shows them under.
constexpr std::pair<uint32_t, const char*> kFlags[] = {
    {USYNC_PRESERVE, "preserve"},
    {USYNC_DRY_RUN, "dry_run"},
    {USYNC_FAIL_FAST, "fail_fast"},
    {USYNC_IGNORE_TIMES, "ignore_times"},
    {USYNC_UPDATE, "update"},
    {USYNC_CHECKSUM, "checksum"},
    {USYNC_DELETE, "delete"},
    {USYNC_DELETE_EXCLUDED, "delete_excluded"},
    {USYNC_VERIFY, "verify"},
    {USYNC_FSYNC, "fsync"},
    {USYNC_HASH_MD5, "md5"},
    {USYNC_OWNER, "owner"},
    {USYNC_GROUP, "group"},
    {USYNC_XATTRS, "xattrs"},
    {USYNC_ACLS, "acls"},
    {USYNC_HARD_LINKS, "hard_links"},
    {USYNC_SPARSE, "sparse"},
    {USYNC_ONE_FILE_SYSTEM, "one_file_system"},
    {USYNC_COPY_LINKS, "copy_links"},
};

}  // namespace

const char* kind_name(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
  }
}

const char* engine_name(uint32_t kind) {
  switch (kind) {
    case USYNC_ENGINE_URING: return "io_uring";
    case USYNC_ENGINE_SYNC: return "sync";
    default: return "none";
  }
}

std::string base64(std::string_view bytes) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k) out += k <= n ? alphabet[(v >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

std::string start(const Options& o, const usync_options& eo, int engine_kind) {
  json j = object("start");
  j["version"] = usync_version_string();
  put_path(j, "src", o.src);
  put_path(j, "dst", o.dst);
  j["engine"] = o.engine;  // asked for
  j["engine_available"] = engine_kind != 0 ? json(engine_name(static_cast<uint32_t>(engine_kind))) : json(nullptr);
  json opts = json::object();
  for (const auto& [bit, name] : kFlags) opts[name] = (eo.flags & bit) != 0;
  opts["verbose"] = o.verbose;
  opts["jobs"] = o.jobs;
  opts["queue_depth"] = o.queue_depth;
  opts["chunk_size"] = o.chunk_size;
  opts["buffer_memory"] = o.buffer_memory;
  opts["iowq_workers"] = o.iowq_workers;
  json excludes = json::array();
  for (const std::string& e : o.excludes) excludes.push_back(e);
  opts["excludes"] = std::move(excludes);
  j["options"] = std::move(opts);
  return line(j);
}

std::string progress(const usync_stats& s) {
  json j = object("progress");
  j["stats"] = stats_json(s);
  return line(j);
}

std::string error(const usync_file_error& e, std::string_view src_root, std::string_view dst_root) {
  json j = object("error");
  const bool src_side = source_side(e.step);
  const char* p = src_side ? e.src_path : e.dst_path;
  if (p != nullptr) put_path(j, "path", relative(p, src_side ? src_root : dst_root));
  j["side"] = src_side ? "src" : "dst";
  if (e.src_path != nullptr) put_path(j, "src", e.src_path);
  if (e.dst_path != nullptr) put_path(j, "dst", e.dst_path);
  j["step"] = e.step;
  j["step_name"] = usync_step_name(e.step);
  return line(errno_fields(std::move(j), e.error));
}

std::string deletion(const usync_deletion& d, std::string_view dst_root, bool dry_run) {
  json j = object("delete");
  const std::string_view p = d.dst_path != nullptr ? d.dst_path : "";
  put_path(j, "path", relative(p, dst_root));
  put_path(j, "dst", p);
  j["kind"] = kind_name(d.mode);
  j["mode"] = d.mode & 07777;
  j["dry_run"] = dry_run;
  return line(j);
}

std::string file(const usync_file_done& d, std::string_view src_root) {
  json j = object("file");
  const std::string_view src = d.src_path != nullptr ? d.src_path : "";
  put_path(j, "path", relative(src, src_root));
  put_path(j, "src", src);
  if (d.dst_path != nullptr) put_path(j, "dst", d.dst_path);
  j["kind"] = kind_name(d.mode);
  j["mode"] = d.mode & 07777;
  j["bytes"] = d.bytes;
  if (d.has_md5) {
    static const char hex[] = "0123456789abcdef";
    std::string md5;
    for (const uint8_t b : d.md5) {
      md5 += hex[b >> 4];
      md5 += hex[b & 15];
    }
    j["md5"] = md5;
  }
  return line(j);
}

std::string end(const usync_stats& s, int exit_code, int err, std::string_view message) {
  json j = object("end");
  j["exit_code"] = exit_code;
  j["result"] = exit_code == kExitOk            ? "ok"
                : exit_code == kExitFailures    ? "failures"
                : exit_code == kExitInterrupted ? "interrupted"
                                                : "error";
  if (err > 0 || !message.empty()) {
    json e = err > 0 ? errno_fields(json::object(), err) : json::object();
    if (!message.empty()) e["message"] = std::string(message);
    j["error"] = std::move(e);
  }
  j["stats"] = stats_json(s);
  return line(j);
}

}  // namespace usync::cli::events
