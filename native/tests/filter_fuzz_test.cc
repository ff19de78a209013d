// Randomized tests of the exclude globs against the plain reference in
// glob_reference.h, with a fixed seed so a failure reproduces, plus time
// bounds on patterns that make backtracking matchers explode.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "filter.h"
#include "glob_reference.h"

namespace usync {
namespace {

constexpr uint64_t kSeed = 0x6e6f2d73706c6963;  // fixed: a failure must reproduce

// Bytes as a C string literal, so a failing input can be pasted into a test.
std::string shown(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x\"\"", c);
      out += buf;
    }
  }
  return out + "\"";
}

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  size_t below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool coin(unsigned percent) { return below(100) < percent; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }

  // Raw bytes from an alphabet rich in glob syntax.
  std::string raw(size_t max_len, std::string_view alphabet) {
    std::string s(below(max_len + 1), '\0');
    for (char& c : s) c = alphabet[below(alphabet.size())];
    return s;
  }

  // A pattern assembled from syntax pieces, mostly well formed.
  std::string pattern(size_t max_pieces) {
    static const std::vector<std::string> pieces = {
        "a",     "b",     "c",   ".",     "/",    "/",     "*",    "*",    "**",  "**/", "/**/", "***",
        "?",     "[ab]",  "[!a]", "[^b]", "[a-c]", "[]a]", "[!]]", "[a-]", "\\*", "\\?", "\\[",  "\\\\",
        "[\\]]", "[a-\\]]", "-",  "]",    "!",     "[",    "\\",   "x*y",  "*.c", "a/b",
    };
    std::string p;
    const size_t n = below(max_pieces + 1);
    for (size_t i = 0; i < n; ++i) p += pick(pieces);
    return p;
  }

  // A text likely to match p: each piece of syntax replaced by something it
  // matches (sometimes not), then an occasional mutation.
  std::string text_for(std::string_view p) {
    std::string t;
    for (size_t i = 0; i < p.size(); ++i) {
      const char c = p[i];
      if (c == '*') {
        size_t n = 1;
        while (i + n < p.size() && p[i + n] == '*') ++n;
        const bool any = n >= 2;
        i += n - 1;
        const std::string_view fill = any ? "ab/c./" : "ab.c";
        for (size_t k = below(4); k > 0; --k) t += fill[below(fill.size())];
      } else if (c == '?') {
        t += "ab.c/"[below(5)];
      } else if (c == '[') {
        const auto cls = reference::parse_class(p, i);
        if (!cls) {
          t += c;
          continue;
        }
        std::string members;
        for (unsigned b = 0; b < 256; ++b)
          if (cls->bytes.test(b)) members += static_cast<char>(b);
        t += members.empty() || coin(10) ? 'z' : members[below(members.size())];
        i += cls->len - 1;
      } else if (c == '\\' && i + 1 < p.size()) {
        t += p[++i];
      } else {
        t += c;
      }
    }
    if (coin(30) && !t.empty()) {
      const size_t at = below(t.size());
      switch (below(3)) {
        case 0: t.erase(at, 1); break;
        case 1: t.insert(at, 1, "a/b."[below(4)]); break;
        default: t[at] = "a/b."[below(4)]; break;
      }
    }
    return t;
  }

 private:
  std::mt19937_64 rng_;
};

// Collects disagreements and prints the first few in full.
class Mismatches {
 public:
  explicit Mismatches(const char* what) : what_(what) {}
  ~Mismatches() {
    EXPECT_EQ(count_, 0u) << count_ << " disagreements between " << what_ << " and the reference; first ones:\n"
                          << first_;
  }
  void add(const std::string& line) {
    if (count_++ < 12) first_ += "  " + line + "\n";
  }

 private:
  const char* what_;
  size_t count_ = 0;
  std::string first_;
};

TEST(GlobFuzz, MatchesTheReference) {
  Gen g(kSeed);
  Mismatches bad("glob_match");
  size_t matched = 0;
  for (int i = 0; i < 60000; ++i) {
    const std::string p = i % 4 == 0 ? g.raw(10, "ab/*?[]!^-\\.") : g.pattern(7);
    if (!reference::well_formed(p)) continue;
    const std::string t = g.coin(70) ? g.text_for(p) : g.raw(12, "ab/.-]*\\");
    const bool want = reference::glob(p, t);
    const bool got = glob_match(p, t);
    matched += want;
    if (want != got)
      bad.add("glob_match(" + shown(p) + ", " + shown(t) + "): want " + (want ? "true" : "false") + ", got " +
              (got ? "true" : "false"));
  }
  // A generator that never produces matches would test one side only.
  EXPECT_GT(matched, 5000u);
}

TEST(GlobFuzz, AcceptsExactlyTheWellFormedPatterns) {
  Gen g(kSeed + 1);
  Mismatches bad("ExcludeFilter::add");
  for (int i = 0; i < 30000; ++i) {
    const std::string p = i % 2 ? g.raw(8, "a/[]!^-\\*") : g.pattern(4);
    ExcludeFilter f;
    reference::Filter ref;
    const bool want = ref.add(p), got = f.add(p);
    if (want != got)
      bad.add("add(" + shown(p) + "): want " + (want ? "accepted" : "rejected") + ", got " +
              (got ? "accepted" : "rejected"));
    EXPECT_EQ(f.empty(), !got);
  }
}

// Whole filters on whole paths, as the walker uses them: an entry is left out
// when it or a parent directory is excluded.
TEST(GlobFuzz, FiltersMatchTheReference) {
  Gen g(kSeed + 2);
  Mismatches bad("ExcludeFilter::excluded");
  const std::vector<std::string> names = {"a", "b", "ab", "a.c", ".", "-", "]", "*", "x.y"};
  for (int i = 0; i < 20000; ++i) {
    ExcludeFilter f;
    reference::Filter ref;
    std::string rules;
    for (size_t n = 1 + g.below(3); n > 0; --n) {
      std::string p = g.pattern(4);
      if (g.coin(20)) p = "/" + p;
      if (g.coin(20)) p += "/";
      if (ref.add(p)) {
        ASSERT_TRUE(f.add(p)) << shown(p);
        rules += " " + shown(p);
      }
    }
    if (rules.empty()) continue;
    for (int k = 0; k < 8; ++k) {
      std::string rel;
      for (size_t depth = 1 + g.below(4); depth > 0; --depth) rel += (rel.empty() ? "" : "/") + g.pick(names);
      const bool is_dir = g.coin(50);
      bool got = false;
      for (size_t c = 0; c <= rel.size() && !got; ++c) {
        if (c < rel.size() && rel[c] != '/') continue;
        const std::string_view sub = std::string_view(rel).substr(0, c);
        const size_t slash = sub.rfind('/');
        const std::string_view name = slash == std::string_view::npos ? sub : sub.substr(slash + 1);
        got = f.excluded(sub, name, c < rel.size() || is_dir);
      }
      const bool want = ref.left_out(rel, is_dir);
      if (want != got)
        bad.add("rules" + rules + " on " + shown(rel) + (is_dir ? " (dir)" : " (file)") + ": want " +
                (want ? "excluded" : "kept") + ", got " + (got ? "excluded" : "kept"));
    }
  }
}

// Any bytes at all (NUL, 0xff, lone '[' or '\') must neither crash nor hang.
TEST(GlobFuzz, ArbitraryBytesAreSafe) {
  Gen g(kSeed + 3);
  std::string all(256, '\0');
  for (int b = 0; b < 256; ++b) all[b] = static_cast<char>(b);
  size_t agree = 0, compared = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string p = g.raw(16, all), t = g.raw(16, all);
    const bool got = glob_match(p, t);
    ExcludeFilter f;
    if (f.add(p)) (void)f.excluded(t, t, true);
    if (reference::well_formed(p)) {
      ++compared;
      agree += got == reference::glob(p, t);
    }
  }
  EXPECT_EQ(agree, compared);
}

// Runs fn on a thread and returns what it returned, or fails when it takes
// longer than the limit.  A matcher that explodes may run for hours: its thread
// is then abandoned (the test binary exits with it still running) rather than
// hanging the suite; it touches nothing but its own copies.
void ExpectFinishesWithin(std::chrono::seconds limit, const std::string& what, std::function<std::string()> fn) {
  auto done = std::make_shared<std::promise<std::string>>();
  std::future<std::string> f = done->get_future();
  std::thread([fn = std::move(fn), done] { done->set_value(fn()); }).detach();
  if (f.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << what << " did not finish within " << limit.count() << " s (exponential backtracking?)";
    return;
  }
  const std::string err = f.get();
  EXPECT_TRUE(err.empty()) << what << ": " << err;
}

TEST(GlobFuzz, PathologicalPatternsFinishQuickly) {
  const std::string as(300, 'a');
  std::string comps;  // a/a/a/... 150 components
  for (int i = 0; i < 150; ++i) comps += i ? "/a" : "a";
  struct Case {
    std::string pattern, text;
  };
  const std::vector<Case> cases = {
      {"*a*a*a*a*a*a*a*a*a*a*a*a*b", as},
      {"**a**a**a**a**a**a**a**a**b", as},
      {"**/**/**/**/**/**/**/**/b", comps},
      {"a/**/a/**/a/**/a/**/a/**/a/**/b", comps},
      {"**a*a**a*a**a*a**a*a**b", as},
      {"*?*?*?*?*?*?*?*?*?*?*?*?b", as},
      {"**[a]**[a]**[a]**[a]**[a]**[a]**[!a]", as},
      {std::string(200, '*') + "b", as},
  };
  for (const Case& c : cases) {
    ExpectFinishesWithin(std::chrono::seconds(5), "glob_match(" + shown(c.pattern) + ", " + shown(c.text.substr(0, 8)) + "...)",
                         [c]() -> std::string {
                           if (glob_match(c.pattern, c.text)) return "glob_match: true, want false";
                           ExcludeFilter f;
                           if (!f.add(c.pattern)) return "add rejected it";
                           if (f.excluded(c.text, "a", true)) return "excluded: true, want false";
                           return "";
                         });
  }
}

}  // namespace
}  // namespace usync
