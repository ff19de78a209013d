// --json: the NDJSON event stream of uring-sync (schema 1, documented in
// README.md, "JSON output").  Each function renders one event as one line of
// JSON ending in '\n'; main.cc decides when to write them.
//
// Every object has "schema" (kSchema) and "type".  Strings are UTF-8: a path
// that is not valid UTF-8 is written with its invalid sequences replaced by U+FFFD,
// and its exact bytes are added, base64-encoded, in a field of the same name
// with "_b64" appended (so every line parses and no name is lost).
#pragma once

#include <string>
#include <string_view>

#include "cli.h"
#include "uringsync/uringsync.h"

namespace usync::cli::events {

// Bumped on any change that can break a reader (a field removed, renamed or
// retyped); new fields and new event types do not bump it.
inline constexpr int kSchema = 1;

// Before the copy: what was asked for.  engine_kind is usync_engine_kind() of
// the created engine, or 0 when it could not be created.
std::string start(const Options& opts, const usync_options& eo, int engine_kind);
// Every progress interval: the counters so far.
std::string progress(const usync_stats& s);
// One per failed entry.
std::string error(const usync_file_error& e, std::string_view src_root, std::string_view dst_root);
// One per entry removed by a mirror (or that would be, in a dry run).
std::string deletion(const usync_deletion& d, std::string_view dst_root, bool dry_run);
// One per finished entry (-v, or a dry run).
std::string file(const usync_file_done& d, std::string_view src_root);
// Last line: every counter and the exit status.  When the copy could not
// start, err (a positive errno, or 0) and message (or "") say why, in an
// "error" object.
std::string end(const usync_stats& s, int exit_code, int err, std::string_view message);

// Names used in the events (exposed for tests).
const char* kind_name(uint32_t mode);     // "file", "dir", "symlink", "fifo", ...
const char* engine_name(uint32_t kind);   // "io_uring", "sync", "none"
std::string base64(std::string_view bytes);

}  // namespace usync::cli::events
