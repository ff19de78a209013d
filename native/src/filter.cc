#include "filter.h"

namespace usync {
namespace {

// Matches a bracket class starting at p[0] == '['.  On success sets *len to the
// class length and *hit to whether c is in it; returns false if malformed.
bool match_class(std::string_view p, unsigned char c, size_t* len, bool* hit) noexcept {
  size_t i = 1;
  bool negate = false;
  if (i < p.size() && (p[i] == '!' || p[i] == '^')) {
    negate = true;
    ++i;
  }
  bool found = false;
  bool first = true;
  while (i < p.size() && (first || p[i] != ']')) {
    first = false;
    unsigned char lo = static_cast<unsigned char>(p[i]);
    if (lo == '\\' && i + 1 < p.size()) lo = static_cast<unsigned char>(p[++i]);
    unsigned char hi = lo;
    if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
      hi = static_cast<unsigned char>(p[i + 2]);
      if (hi == '\\' && i + 3 < p.size()) {
        hi = static_cast<unsigned char>(p[i + 3]);
        ++i;
      }
      i += 2;
    }
    if (c >= lo && c <= hi) found = true;
    ++i;
  }
  if (i >= p.size()) return false;  // no closing ']'
  *len = i + 1;
  *hit = (found != negate) && c != '/';
  return true;
}

bool match_at(std::string_view p, std::string_view t) noexcept {
  size_t pi = 0, ti = 0;
  // Backtracking point for the last single '*'.  '**' recurses instead.
  size_t star_p = std::string_view::npos, star_t = 0;
  while (ti < t.size() || pi < p.size()) {
    if (pi < p.size()) {
      const char pc = p[pi];
      if (pc == '*') {
        if (pi + 1 < p.size() && p[pi + 1] == '*') {
          size_t rest = pi + 2;
          while (rest < p.size() && p[rest] == '*') ++rest;
          // "**/" may also match zero directories.
          if (rest < p.size() && p[rest] == '/' && match_at(p.substr(rest + 1), t.substr(ti))) return true;
          for (size_t k = ti; k <= t.size(); ++k)
            if (match_at(p.substr(rest), t.substr(k))) return true;
          return false;
        }
        star_p = pi++;
        star_t = ti;
        continue;
      }
      if (ti < t.size()) {
        const unsigned char tc = static_cast<unsigned char>(t[ti]);
        if (pc == '?' && tc != '/') {
          ++pi;
          ++ti;
          continue;
        }
        if (pc == '[') {
          size_t len = 0;
          bool hit = false;
          if (match_class(p.substr(pi), tc, &len, &hit) && hit) {
            pi += len;
            ++ti;
            continue;
          }
        } else if (pc == '\\' && pi + 1 < p.size()) {
          if (static_cast<unsigned char>(p[pi + 1]) == tc) {
            pi += 2;
            ++ti;
            continue;
          }
        } else if (pc != '?' && static_cast<unsigned char>(pc) == tc) {
          ++pi;
          ++ti;
          continue;
        }
      }
    }
    // Mismatch: let the last '*' swallow one more byte (never a '/').
    if (star_p != std::string_view::npos && star_t < t.size() && t[star_t] != '/') {
      pi = star_p + 1;
      ti = ++star_t;
      continue;
    }
    return false;
  }
  return true;
}

bool well_formed(std::string_view p) noexcept {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      if (i + 1 >= p.size()) return false;
      ++i;
    } else if (p[i] == '[') {
      size_t len = 0;
      bool hit = false;
      if (!match_class(p.substr(i), 'a', &len, &hit)) return false;
      i += len - 1;
    }
  }
  return true;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) noexcept { return match_at(pattern, text); }

bool ExcludeFilter::add(std::string_view pattern) {
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
  r.whole_path =
      r.anchored || pattern.find('/') != std::string_view::npos || pattern.find("**") != std::string_view::npos;
  r.glob.assign(pattern);
  rules_.push_back(std::move(r));
  return true;
}

bool ExcludeFilter::excluded(std::string_view rel_path, std::string_view name, bool is_dir) const noexcept {
  for (const Rule& r : rules_) {
    if (r.dir_only && !is_dir) continue;
    if (!r.whole_path) {
      if (glob_match(r.glob, name)) return true;
      continue;
    }
    if (r.anchored) {
      if (glob_match(r.glob, rel_path)) return true;
      continue;
    }
    // Unanchored: any suffix of the path that starts a component.
    for (size_t pos = 0;;) {
      if (glob_match(r.glob, rel_path.substr(pos))) return true;
      const size_t slash = rel_path.find('/', pos);
      if (slash == std::string_view::npos) break;
      pos = slash + 1;
    }
  }
  return false;
}

}  // namespace usync
