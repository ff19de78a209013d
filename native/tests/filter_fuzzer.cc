// libFuzzer harness for the exclude globs (`make fuzz`).  Input: PATTERN NUL
// TEXT.  Checks that nothing crashes or stalls (libFuzzer's -timeout), that
// glob_match and ExcludeFilter agree with the plain reference of
// glob_reference.h, and that add() accepts exactly the well-formed patterns.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "filter.h"
#include "glob_reference.h"

namespace {

std::string shown(std::string_view s) {
  std::string out;
  for (const unsigned char c : s) {
    char buf[8];
    std::snprintf(buf, sizeof buf, c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
    out += buf;
  }
  return out;
}

[[noreturn]] void disagree(const char* what, std::string_view pattern, std::string_view text, bool want, bool got) {
  std::fprintf(stderr, "%s disagrees with the reference on pattern \"%s\" text \"%s\": want %d, got %d\n", what,
               shown(pattern).c_str(), shown(text).c_str(), want, got);
  std::abort();
}

// A path as the walker hands it over: components neither empty nor "." / "..".
bool walker_path(std::string_view p) {
  if (p.empty() || p.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  for (;;) {
    const size_t slash = p.find('/', start);
    const std::string_view c = p.substr(start, slash == std::string_view::npos ? p.npos : slash - start);
    if (c.empty() || c == "." || c == "..") return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string_view pattern = in.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);

  const bool got = usync::glob_match(pattern, text);
  // The reference is quadratic in the text per pattern byte: keep it small.
  if (usync::reference::well_formed(pattern) && pattern.size() <= 64 && text.size() <= 128) {
    const bool want = usync::reference::glob(pattern, text);
    if (want != got) disagree("glob_match", pattern, text, want, got);
  }

  usync::ExcludeFilter filter;
  usync::reference::Filter ref;
  const bool accepted = filter.add(pattern);
  if (accepted != ref.add(pattern)) disagree("ExcludeFilter::add", pattern, "", !accepted, accepted);
  if (!accepted || !walker_path(text) || text.size() > 128) return 0;
  for (const bool is_dir : {false, true}) {
    // As the walker: the entry is left out if it or a parent directory is.
    bool left_out = false;
    for (size_t end = 0; end <= text.size() && !left_out; ++end) {
      if (end < text.size() && text[end] != '/') continue;
      const std::string_view sub = text.substr(0, end);
      const size_t slash = sub.rfind('/');
      const std::string_view name = slash == std::string_view::npos ? sub : sub.substr(slash + 1);
      left_out = filter.excluded(sub, name, end < text.size() || is_dir);
    }
    const bool want = ref.left_out(text, is_dir);
    if (want != left_out)
      disagree(is_dir ? "ExcludeFilter::excluded (dir)" : "ExcludeFilter::excluded", pattern, text, want, left_out);
  }
  return 0;
}
