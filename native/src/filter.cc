#include "filter.h"

#include <memory>
#include <new>

namespace usync {
namespace {

// Parses a bracket class starting at p[0] == '['.  On success sets *len to
// the class length and *set to its bytes ('/' never belongs); returns false
// if malformed (no closing ']').
bool parse_class(std::string_view p, size_t* len, std::bitset<256>* set) noexcept {
  size_t i = 1;
  bool negate = false;
  if (i < p.size() && (p[i] == '!' || p[i] == '^')) {
    negate = true;
    ++i;
  }
  set->reset();
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
    for (unsigned b = lo; b <= hi; ++b) set->set(b);
    ++i;
  }
  if (i >= p.size()) return false;  // no closing ']'
  if (negate) set->flip();
  set->reset('/');
  *len = i + 1;
  return true;
}

// A set of pattern positions, one bit each, in caller-provided words.
class StateSet {
 public:
  StateSet(uint64_t* words, size_t n) : w_(words), n_(n) {}
  void clear() noexcept {
    for (size_t i = 0; i < n_; ++i) w_[i] = 0;
  }
  void set(size_t k) noexcept { w_[k / 64] |= uint64_t{1} << (k % 64); }
  bool test(size_t k) const noexcept { return (w_[k / 64] >> (k % 64)) & 1; }
  bool empty() const noexcept {
    for (size_t i = 0; i < n_; ++i)
      if (w_[i] != 0) return false;
    return true;
  }
  void swap(StateSet& o) noexcept { std::swap(w_, o.w_); }

 private:
  uint64_t* w_;
  size_t n_;
};

}  // namespace

bool Glob::compile(std::string_view p) {
  tokens_.clear();
  classes_.clear();
  bool ok = true;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '*') {
      size_t n = 1;
      while (i + n < p.size() && p[i + n] == '*') ++n;
      i += n - 1;
      if (n == 1) {
        tokens_.push_back({Kind::kStar, 0, 0});
      } else if (i + 1 < p.size() && p[i + 1] == '/') {
        tokens_.push_back({Kind::kSkipDirs, 0, 0});
        tokens_.push_back({Kind::kStarStar, 0, 0});
        tokens_.push_back({Kind::kByte, '/', 0});
        ++i;
      } else {
        tokens_.push_back({Kind::kStarStar, 0, 0});
      }
    } else if (c == '?') {
      tokens_.push_back({Kind::kAnyByte, 0, 0});
    } else if (c == '[') {
      size_t len = 0;
      std::bitset<256> set;
      if (parse_class(p.substr(i), &len, &set)) {
        tokens_.push_back({Kind::kClass, 0, static_cast<uint32_t>(classes_.size())});
        classes_.push_back(set);
        i += len - 1;
      } else {
        tokens_.push_back({Kind::kNever, 0, 0});
        ok = false;
        break;  // nothing after an unterminated class can match either
      }
    } else if (c == '\\') {
      if (i + 1 >= p.size()) {
        tokens_.push_back({Kind::kNever, 0, 0});
        ok = false;
        break;
      }
      tokens_.push_back({Kind::kByte, static_cast<unsigned char>(p[++i]), 0});
    } else {
      tokens_.push_back({Kind::kByte, static_cast<unsigned char>(c), 0});
    }
  }
  return ok;
}

bool Glob::match(std::string_view text, bool at_any_component) const noexcept {
  // Position k means "tokens_[0..k) matched so far"; tokens_.size() accepts.
  const size_t n = tokens_.size();
  const size_t words = n / 64 + 1;
  uint64_t small[8];
  std::unique_ptr<uint64_t[]> big;
  uint64_t* mem = small;
  if (2 * words > std::size(small)) {
    big.reset(new (std::nothrow) uint64_t[2 * words]);
    if (big == nullptr) return false;
    mem = big.get();
  }
  StateSet cur(mem, words), next(mem + words, words);
  // Adds what a state reaches without consuming a byte: past a star (empty
  // run), into and past "**/".  Edges go forward only, so one pass.
  auto close = [&](StateSet& s) {
    for (size_t k = 0; k < n; ++k) {
      if (!s.test(k)) continue;
      switch (tokens_[k].kind) {
        case Kind::kStar:
        case Kind::kStarStar: s.set(k + 1); break;
        case Kind::kSkipDirs:
          s.set(k + 1);
          s.set(k + 3);
          break;
        default: break;
      }
    }
  };
  cur.clear();
  cur.set(0);
  close(cur);
  for (const char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    next.clear();
    for (size_t k = 0; k < n; ++k) {
      if (!cur.test(k)) continue;
      const Token& t = tokens_[k];
      switch (t.kind) {
        case Kind::kByte:
          if (c == t.byte) next.set(k + 1);
          break;
        case Kind::kAnyByte:
          if (c != '/') next.set(k + 1);
          break;
        case Kind::kClass:
          if (classes_[t.cls].test(c)) next.set(k + 1);
          break;
        case Kind::kStar:
          if (c != '/') next.set(k);
          break;
        case Kind::kStarStar: next.set(k); break;
        case Kind::kSkipDirs:
        case Kind::kNever: break;
      }
    }
    if (at_any_component && c == '/') next.set(0);
    close(next);
    if (next.empty() && !at_any_component) return false;
    cur.swap(next);
  }
  return cur.test(n);
}

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  try {
    Glob g;
    g.compile(pattern);
    return g.match(text);
  } catch (...) {  // allocation failure: no match
    return false;
  }
}

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
  if (pattern.empty() || !r.glob.compile(pattern)) return false;
  r.whole_path =
      r.anchored || pattern.find('/') != std::string_view::npos || pattern.find("**") != std::string_view::npos;
  rules_.push_back(std::move(r));
  return true;
}

bool ExcludeFilter::excluded(std::string_view rel_path, std::string_view name, bool is_dir) const noexcept {
  for (const Rule& r : rules_) {
    if (r.dir_only && !is_dir) continue;
    if (!r.whole_path) {
      if (r.glob.match(name)) return true;
    } else if (r.glob.match(rel_path, /*at_any_component=*/!r.anchored)) {
      // Unanchored: any suffix of the path that starts a component.
      return true;
    }
  }
  return false;
}

}  // namespace usync
