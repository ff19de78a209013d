// A deliberately plain reference for the exclude syntax of filter.h, written
// from its documentation, for differential tests and the libFuzzer harness.
// Speed is not a goal: the matcher recurses on the grammar and memoises
// (pattern offset, text offset) so random inputs stay cheap.
#pragma once

#include <bitset>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace usync::reference {

// One parsed bracket class: its byte set and its length in the pattern.
struct Class {
  std::bitset<256> bytes;
  size_t len = 0;
};

// Parses the class that starts at p[i] == '['.  nullopt: malformed.
//   [abc] [!abc] [^abc]   a ']' right after '[' (or '[!') is a member
//   a-z ranges (a '-' before ']' is a member), \x is the byte x
inline std::optional<Class> parse_class(std::string_view p, size_t i) {
  Class c;
  size_t k = i + 1;
  bool negate = false;
  if (k < p.size() && (p[k] == '!' || p[k] == '^')) {
    negate = true;
    ++k;
  }
  bool first = true;
  for (;;) {
    if (k >= p.size()) return std::nullopt;
    if (p[k] == ']' && !first) break;
    first = false;
    auto take = [&](unsigned char* out) {
      if (p[k] == '\\') {
        if (++k >= p.size()) return false;
      }
      *out = static_cast<unsigned char>(p[k++]);
      return true;
    };
    unsigned char lo = 0, hi = 0;
    if (!take(&lo)) return std::nullopt;
    hi = lo;
    if (k + 1 < p.size() && p[k] == '-' && p[k + 1] != ']') {
      ++k;
      if (!take(&hi)) return std::nullopt;
    }
    for (unsigned b = lo; b <= hi; ++b) c.bytes.set(b);
  }
  if (negate) c.bytes.flip();
  c.bytes.reset('/');  // like '?', a class never matches '/'
  c.len = k + 1 - i;
  return c;
}

// True when the pattern is well formed: every '[' opens a closed class and no
// '\' is the last byte.
inline bool well_formed(std::string_view p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      if (++i >= p.size()) return false;
    } else if (p[i] == '[') {
      auto c = parse_class(p, i);
      if (!c) return false;
      i += c->len - 1;
    }
  }
  return true;
}

class Matcher {
 public:
  Matcher(std::string_view p, std::string_view t)
      : p_(p), t_(t), memo_((p.size() + 1) * (t.size() + 1), kUnknown) {}
  bool run() { return at(0, 0); }

 private:
  static constexpr signed char kUnknown = -1;

  bool at(size_t pi, size_t ti) {
    signed char& m = memo_[pi * (t_.size() + 1) + ti];
    if (m == kUnknown) m = compute(pi, ti) ? 1 : 0;
    return m == 1;
  }

  bool compute(size_t pi, size_t ti) {
    if (pi == p_.size()) return ti == t_.size();
    const char pc = p_[pi];
    if (pc == '*') {
      size_t stars = 0;
      while (pi + stars < p_.size() && p_[pi + stars] == '*') ++stars;
      const size_t rest = pi + stars;
      if (stars >= 2) {
        // "**" is any run of bytes, '/' included; "**/" may also be empty.
        if (rest < p_.size() && p_[rest] == '/' && at(rest + 1, ti)) return true;
        for (size_t k = ti; k <= t_.size(); ++k)
          if (at(rest, k)) return true;
        return false;
      }
      // "*" is any run of bytes without '/'.
      for (size_t k = ti;; ++k) {
        if (at(rest, k)) return true;
        if (k == t_.size() || t_[k] == '/') return false;
      }
    }
    if (ti == t_.size()) return false;
    const unsigned char tc = static_cast<unsigned char>(t_[ti]);
    if (pc == '?') return tc != '/' && at(pi + 1, ti + 1);
    if (pc == '[') {
      auto c = parse_class(p_, pi);
      if (!c) return false;  // malformed: never matches (filters reject it)
      return c->bytes.test(tc) && at(pi + c->len, ti + 1);
    }
    if (pc == '\\') {
      if (pi + 1 == p_.size()) return false;
      return static_cast<unsigned char>(p_[pi + 1]) == tc && at(pi + 2, ti + 1);
    }
    return static_cast<unsigned char>(pc) == tc && at(pi + 1, ti + 1);
  }

  std::string_view p_, t_;
  std::vector<signed char> memo_;
};

inline bool glob(std::string_view pattern, std::string_view text) { return Matcher(pattern, text).run(); }

// The exclude rules as filter.h (and rsync) state them: a leading '/' anchors
// at the copy root, trailing '/'s match directories only, a pattern with
// neither '/' nor "**" matches the entry's name, any other pattern the end of
// the root-relative path at a '/' boundary.
class Filter {
 public:
  bool add(std::string_view pattern) {
    Rule r;
    if (!pattern.empty() && pattern.front() == '/') {
      r.anchored = true;
      pattern.remove_prefix(1);
    }
    while (!pattern.empty() && pattern.back() == '/') {
      r.dir_only = true;
      pattern.remove_suffix(1);
    }
    if (pattern.empty() || !well_formed(pattern)) return false;
    r.path = pattern.find('/') != std::string_view::npos || pattern.find("**") != std::string_view::npos;
    r.glob = pattern;
    rules_.push_back(r);
    return true;
  }

  // Whether the entry itself matches a rule.
  bool matches(std::string_view rel, bool is_dir) const {
    const size_t slash = rel.rfind('/');
    const std::string_view name = slash == std::string_view::npos ? rel : rel.substr(slash + 1);
    for (const Rule& r : rules_) {
      if (r.dir_only && !is_dir) continue;
      if (r.anchored) {
        if (glob(r.glob, rel)) return true;
      } else if (!r.path) {
        if (glob(r.glob, name)) return true;
      } else {
        for (size_t k = 0; k <= rel.size(); ++k)
          if ((k == 0 || rel[k - 1] == '/') && glob(r.glob, rel.substr(k))) return true;
      }
    }
    return false;
  }

  // What a copy does: an entry is left out when it or one of its parent
  // directories matches (an excluded directory is not read).
  bool left_out(std::string_view rel, bool is_dir) const {
    for (size_t k = 0; k < rel.size(); ++k)
      if (rel[k] == '/' && matches(rel.substr(0, k), true)) return true;
    return matches(rel, is_dir);
  }

 private:
  struct Rule {
    std::string glob;
    bool anchored = false, dir_only = false, path = false;
  };
  std::vector<Rule> rules_;
};

}  // namespace usync::reference
