#include "cli.h"

#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <unistd.h>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string_view>

namespace usync::cli {

namespace {

// Plain decimal digits to a number; false when empty, not all digits, or
// beyond 64 bits.  Leading zeros are fine ("0010" is 10).
bool parse_decimal(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  uint64_t n = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    n = n * 10 + digit;
  }
  *out = n;
  return true;
}

// CLI11 reads integers with strtoull in base 0, so "-j 010" meant 8 jobs and
// "0x10" 16.  Counts are decimal: this turns the text into its canonical
// digits (or refuses it) before CLI11 converts and range-checks it.
const CLI::Validator kDecimal(
    [](std::string& text) -> std::string {
      uint64_t n = 0;
      if (!parse_decimal(text, &n)) return "not a decimal number: '" + text + "'";
      text = std::to_string(n);
      return {};
    },
    "", "DECIMAL");

}  // namespace

uint64_t parse_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) throw std::invalid_argument("not a size: '" + text + "'");
  uint64_t n = 0;
  if (!parse_decimal(std::string_view(text).substr(0, i), &n))
    throw std::invalid_argument("size too large: " + text);
  std::string unit = text.substr(i);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  unsigned shift = 0;
  if (unit.empty() || unit == "B")
    shift = 0;
  else if (unit == "K" || unit == "KB" || unit == "KIB")
    shift = 10;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    shift = 20;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    shift = 30;
  else
    throw std::invalid_argument("unknown size unit in '" + text + "' (use K, M or G)");
  if (n > (std::numeric_limits<uint64_t>::max() >> shift)) throw std::invalid_argument("size too large: " + text);
  return n << shift;
}

std::optional<int> parse(int argc, const char* const* argv, Options* o, std::ostream& os, std::ostream& err) {
  CLI::App app{
      "Copy a tree of many small files fast and faithfully (io_uring).\n"
      "DST becomes a copy of SRC, like `cp -rT SRC DST` or `rsync -r SRC/ DST/`:\n"
      "DST is created if missing and merged into if it exists.",
      "uring-sync"};
  app.set_version_flag("--version", std::string("uring-sync ") + usync_version_string());
  std::string chunk;
  app.add_option("SRC", o->src, "source directory (or file)")->required();
  app.add_option("DST", o->dst, "destination directory (or file)")->required();
  app.add_option("-j,--jobs", o->jobs, "rings (or threads of the synchronous engine); default: from the CPU count")
      ->transform(kDecimal)
      ->check(CLI::Range(1, 1024));
  app.add_option("-c,--chunk-size", chunk, "I/O buffer size, e.g. 128K, 1M (default 128K)");
  app.add_option("-q,--queue-depth", o->queue_depth, "files in flight per ring (default 128)")
      ->transform(kDecimal)
      ->check(CLI::Range(1, 4096));
  app.add_option("--iowq-workers", o->iowq_workers, "io-wq kernel threads per ring (default 4)")
      ->transform(kDecimal)
      ->check(CLI::Range(1, 1024));
  app.add_flag("-a,--archive", o->archive,
               "archive: keep everything (-p -o -g -X -A -H -S; like cp -a and rsync -aHAXS)");
  app.add_flag("-p,--preserve", o->preserve, "keep permission bits and timestamps");
  app.add_flag("-n,--dry-run", o->dry_run, "list what would be copied (not what is up to date) or deleted; change nothing");
  app.add_flag("-v,--verbose", o->verbose, "list copied files and print a summary");
  app.add_flag("--progress", o->progress, "show a live progress line");
  app.add_option("--exclude", o->excludes,
                 "skip entries matching PATTERN (repeatable; * ? [..] **, leading / anchors, trailing / = dirs)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  std::string buffer_memory;
  app.add_option("--buffer-memory", buffer_memory,
                 "most I/O buffer memory of the copy (rings and threads), default 128M; fewer files in flight if needed");
  app.add_option("--engine", o->engine,
                 "auto (io_uring, or the synchronous engine for tmpfs sources or without io_uring), uring, or sync")
      ->check(CLI::IsMember({"auto", "uring", "sync"}));
  app.add_flag("--fail-fast", o->fail_fast, "stop at the first error");
  app.add_flag("-I,--ignore-times", o->ignore_times,
               "copy every file, even those the destination already has (same size and mtime)");
  app.add_flag("-u,--update", o->update, "skip files that are newer in the destination");
  app.add_flag("--checksum", o->checksum, "decide what is already copied by content, not by mtime (reads both)");
  app.add_flag("-o,--owner", o->owner, "keep owners (as root; like rsync -o)");
  app.add_flag("-g,--group", o->group, "keep groups");
  app.add_flag("--numeric-ids", o->numeric_ids,
               "accepted for rsync compatibility: a local copy always keeps numeric uids and gids");
  app.add_flag("-X,--xattrs", o->xattrs, "keep extended attributes (user, trusted, security namespaces)");
  app.add_flag("-A,--acls", o->acls, "keep POSIX ACLs (implies -p)");
  app.add_flag("-H,--hard-links", o->hard_links, "keep hard links: paths sharing an inode share one in the copy");
  app.add_flag("-S,--sparse", o->sparse, "keep holes in sparse files (the copy allocates what the source does)");
  app.add_flag("-x,--one-file-system", o->one_file_system,
               "do not cross filesystem boundaries in SRC (a mount point is copied as an empty directory)");
  app.add_flag("-L,--copy-links", o->copy_links, "follow symlinks in SRC: copy what they point to");
  app.add_flag("--delete", o->del,
               "delete entries in DST that SRC lacks (excluded ones are kept); -n shows what would go");
  app.add_flag("--delete-excluded", o->delete_excluded, "with --delete, also delete excluded entries in DST (implies --delete)");
  app.add_flag("--json", o->json,
               "write NDJSON events (start, progress, error, delete, end; file with -v) on stdout instead of text");
  app.add_flag("--verify", o->verify,
               "read each written file back from the disk and compare it with the source before it gets its name");
  app.add_flag("--fsync", o->fsync, "sync every file and directory to the disk, so the copy survives a power loss");
  try {
    app.parse(argc, argv);
    if (!chunk.empty()) {
      o->chunk_size = parse_size(chunk);
      if (o->chunk_size < 4096 || o->chunk_size > (64u << 20))
        throw CLI::ValidationError("--chunk-size", "must be between 4K and 64M");
    }
    if (!buffer_memory.empty()) {
      o->buffer_memory = parse_size(buffer_memory);
      if (o->buffer_memory < 4096) throw CLI::ValidationError("--buffer-memory", "must be at least 4K");
    }
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, os, err);
    return code == 0 ? kExitOk : kExitUsage;
  } catch (const std::exception& e) {
    err << "uring-sync: " << e.what() << "\n";
    return kExitUsage;
  }
  return std::nullopt;
}

size_t utf8_sequence(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  // A well-formed UTF-8 sequence: no overlongs, no surrogates, nothing above U+10FFFF.
  size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
  if (c >= 0xf5) len = 0;
  bool ok = len > 0 && i + len <= s.size();
  for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
  if (ok && len == 3) {
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
  }
  if (ok && len == 4) {
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
  }
  return ok ? len : 0;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string quote_name(std::string_view name) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(name.size());
  auto escape = [&](unsigned char c) {
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 15];
  };
  for (size_t i = 0; i < name.size();) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c == '\\') {
      out += "\\\\";
      ++i;
    } else if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      escape(c);
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else if (const size_t len = utf8_sequence(name, i); len > 0) {
      out.append(name.substr(i, len));
      i += len;
    } else {
      escape(c);
      ++i;
    }
  }
  return out;
}

std::string_view relative(std::string_view path, std::string_view root) {
  if (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
      (path[root.size()] == '/' || (!root.empty() && root.back() == '/'))) {
    path.remove_prefix(root.size());
    while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  }
  return path;
}

void open_standard_fds() noexcept {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    // The lowest free number is fd itself (those below it are open by now).
    const int null = open("/dev/null", O_RDWR);
    if (null >= 0 && null != fd) close(null);
  }
}

bool source_side(int step) {
  return step == USYNC_STEP_OPEN_SRC || step == USYNC_STEP_STAT || step == USYNC_STEP_READ ||
         step == USYNC_STEP_READDIR;
}

std::string describe_error(int step, int error) {
  if (step == USYNC_STEP_VERIFY && error == EBADMSG) return "contents differ from the source; not copied";
  return std::strerror(error);
}

usync_options engine_options(const Options& o, std::vector<const char*>* ptrs) {
  usync_options opts;
  usync_options_init(&opts);
  opts.workers = o.jobs;
  opts.queue_depth = o.queue_depth;
  opts.iowq_max_workers = o.iowq_workers;
  opts.chunk_size = static_cast<uint32_t>(o.chunk_size);
  opts.buffer_budget = o.buffer_memory;
  // The CLI is a whole program: it may raise its own descriptor limit and
  // say on stderr when io_uring is unavailable (a library does neither).
  opts.flags |= USYNC_ANNOUNCE_FALLBACK | USYNC_RAISE_NOFILE;
  if (o.verbose) opts.flags |= USYNC_REPORT_ALL;
  if (o.archive) opts.flags |= USYNC_ARCHIVE;
  if (o.preserve || o.acls) opts.flags |= USYNC_PRESERVE;
  if (o.owner) opts.flags |= USYNC_OWNER;
  if (o.group) opts.flags |= USYNC_GROUP;
  if (o.xattrs) opts.flags |= USYNC_XATTRS;
  if (o.acls) opts.flags |= USYNC_ACLS;
  if (o.one_file_system) opts.flags |= USYNC_ONE_FILE_SYSTEM;
  if (o.hard_links) opts.flags |= USYNC_HARD_LINKS;
  if (o.sparse) opts.flags |= USYNC_SPARSE;
  if (o.copy_links) opts.flags |= USYNC_COPY_LINKS;
  if (o.dry_run) opts.flags |= USYNC_DRY_RUN;
  if (o.fail_fast) opts.flags |= USYNC_FAIL_FAST;
  if (o.ignore_times) opts.flags |= USYNC_IGNORE_TIMES;
  if (o.update) opts.flags |= USYNC_UPDATE;
  if (o.checksum) opts.flags |= USYNC_CHECKSUM;
  if (o.del) opts.flags |= USYNC_DELETE;
  if (o.delete_excluded) opts.flags |= USYNC_DELETE | USYNC_DELETE_EXCLUDED;
  if (o.verify) opts.flags |= USYNC_VERIFY;
  if (o.fsync) opts.flags |= USYNC_FSYNC;
  if (o.engine == "sync") opts.flags |= USYNC_FORCE_SYNC;
  if (o.engine == "uring") opts.flags |= USYNC_FORCE_URING;
  ptrs->clear();
  for (const std::string& e : o.excludes) ptrs->push_back(e.c_str());
  opts.excludes = ptrs->data();
  opts.exclude_count = ptrs->size();
  return opts;
}

}  // namespace usync::cli
