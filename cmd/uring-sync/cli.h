// Command-line parsing of uring-sync (CLI11), kept apart from main() so it
// can be tested.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "uringsync/uringsync.h"

namespace usync::cli {

struct Options {
  std::string src, dst;
  uint32_t jobs = 0;
  uint32_t queue_depth = 0;
  uint32_t iowq_workers = 0;
  uint64_t chunk_size = 0;
  uint64_t buffer_memory = 0;  // registered buffer bytes per ring; 0 = default
  bool archive = false;  // -a: -p -o -g -X -A -H -S
  bool preserve = false;
  bool dry_run = false;
  bool verbose = false;
  bool progress = false;
  bool fail_fast = false;
  bool ignore_times = false;
  bool update = false;
  bool checksum = false;
  bool owner = false;        // -o
  bool group = false;        // -g
  bool numeric_ids = false;  // accepted; ids are always numeric locally
  bool xattrs = false;       // -X
  bool acls = false;         // -A
  bool one_file_system = false;  // -x
  bool hard_links = false;       // -H
  bool sparse = false;           // -S
  bool copy_links = false;       // -L
  bool del = false;              // --delete
  bool delete_excluded = false;  // --delete-excluded
  bool json = false;  // NDJSON events on stdout instead of human output
  bool verify = false;
  bool fsync = false;
  std::string engine = "auto";  // auto | uring | sync
  std::vector<std::string> excludes;
};

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailures = 1;  // some entries failed
inline constexpr int kExitUsage = 2;     // bad usage, or the job could not start
inline constexpr int kExitInterrupted = 130;

// Parses argv.  Returns an exit code when the program should stop now (help,
// version, or a usage error, whose message went to err), or nullopt to run.
std::optional<int> parse(int argc, const char* const* argv, Options* out, std::ostream& os, std::ostream& err);

// "128K", "1M", "65536", "2MiB" -> bytes.  Throws std::invalid_argument.
uint64_t parse_size(const std::string& text);

// Length of the well-formed UTF-8 sequence (no overlongs, no surrogates) that
// starts at s[i] (i < s.size()), or 0 when there is none.
size_t utf8_sequence(std::string_view s, size_t i);
bool valid_utf8(std::string_view s);

// A name as -v prints it: one line, unambiguous.  Control characters,
// backslashes and bytes that are not valid UTF-8 become C escapes (\n, \t,
// \\, \xHH); everything else is kept.
std::string quote_name(std::string_view name);

// path below root (without the leading '/'), or path itself when it is not below root.
std::string_view relative(std::string_view path, std::string_view root);

// Whether a failure at this step (enum usync_step) is about the source entry
// (then its source path names it) rather than the destination.
bool source_side(int step);
// What went wrong with one entry, for a message: strerror, except where
// the step gives the errno a plainer meaning (a verify's EBADMSG).
std::string describe_error(int step, int error);

// Opens /dev/null on each of descriptors 0, 1 and 2 that is closed, so that
// no file the copy opens takes that number (and receives messages or the -v
// list meant for stdout or stderr).  Call first, before anything opens.
void open_standard_fds() noexcept;

// Engine options for the parsed command line (excludes point into opts).
usync_options engine_options(const Options& opts, std::vector<const char*>* exclude_ptrs);

}  // namespace usync::cli
