// libFuzzer harness for the command line's numbers (`make fuzz`).  The input
// is one option value.  Checks that parse_size and every numeric option agree
// with the plain reference of cli_reference.h, and that nothing but
// std::invalid_argument escapes parse_size.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.h"
#include "cli_reference.h"

namespace {

[[noreturn]] void disagree(const std::string& what, const std::string& text, bool want_ok, uint64_t want, bool got_ok,
                           uint64_t got) {
  std::fprintf(stderr, "%s='%s': reference %s %llu, parser %s %llu\n", what.c_str(), text.c_str(),
               want_ok ? "accepts" : "rejects", static_cast<unsigned long long>(want), got_ok ? "accepts" : "rejects",
               static_cast<unsigned long long>(got));
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (text.find('\0') != std::string::npos) return 0;  // argv strings hold no NUL

  const auto want = usync::cli::reference::size(text);
  bool ok = false;
  uint64_t got = 0;
  try {
    got = usync::cli::parse_size(text);
    ok = true;
  } catch (const std::invalid_argument&) {
  }
  if (ok != want.has_value() || (ok && got != *want))
    disagree("parse_size", text, want.has_value(), want.value_or(0), ok, got);

  using usync::cli::Options;
  struct Opt {
    const char* name;
    uint64_t lo, hi;
    bool is_size;
  };
  for (const Opt& opt : {Opt{"--jobs", 1, 1024, false}, Opt{"--queue-depth", 1, 4096, false},
                         Opt{"--iowq-workers", 1, 1024, false}, Opt{"--chunk-size", 4096, 64u << 20, true}}) {
    auto ref = opt.is_size ? usync::cli::reference::size(text) : usync::cli::reference::decimal(text);
    if (ref && (*ref < opt.lo || *ref > opt.hi)) ref.reset();
    const std::string arg = std::string(opt.name) + "=" + text;
    const char* argv[] = {"uring-sync", arg.c_str(), "src", "dst"};
    Options o;
    std::ostringstream out, err;
    const auto code = usync::cli::parse(4, argv, &o, out, err);
    const bool accepted = !code.has_value();  // parse returns an exit code only to stop
    uint64_t value = 0;
    if (accepted) {
      const std::string n = opt.name;
      value = n == "--jobs"            ? o.jobs
              : n == "--queue-depth"   ? o.queue_depth
              : n == "--iowq-workers"  ? o.iowq_workers
                                       : o.chunk_size;
    }
    if (accepted != ref.has_value() || (accepted && value != *ref))
      disagree(opt.name, text, ref.has_value(), ref.value_or(0), accepted, value);
  }
  return 0;
}
