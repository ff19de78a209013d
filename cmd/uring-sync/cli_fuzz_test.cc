// Randomized tests of the command line's number parsing against a plain
// reference (strtoull in base 10 with overflow checks), with a fixed seed so
// a failure reproduces.
#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.h"
#include "cli_reference.h"

namespace usync::cli {
namespace {

constexpr uint64_t kSeed = 0x73697a6573;  // fixed: a failure must reproduce

// What a parse produced: a value, or an error.  (Plain fields rather than
// std::optional, whose comparison trips GCC 12's -Wmaybe-uninitialized.)
struct Outcome {
  bool ok = false;
  uint64_t value = 0;
  bool operator==(const Outcome&) const = default;
  std::string str(const char* error) const { return ok ? std::to_string(value) : error; }
};

Outcome of(std::optional<uint64_t> v) { return v ? Outcome{true, *v} : Outcome{}; }

std::string shown(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '"') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  size_t below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  // A string that looks like a number, often a valid one.
  std::string number() {
    static const std::vector<std::string> specials = {
        "0",
        "1",
        "4096",
        "1024",
        "1025",
        "4095",
        "65536",
        "67108864",
        "67108865",
        "4294967295",
        "4294967296",
        "4294967297",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999",
        "1000000000000000000",
        "17592186044415",  // (2^64-1) >> 20
        "17592186044416",
        "18014398509481983",  // (2^64-1) >> 10
        "18014398509481984",
        "17179869183",  // (2^64-1) >> 30 is 17179869183
        "17179869184",
    };
    std::string s;
    switch (below(4)) {
      case 0: s = specials[below(specials.size())]; break;
      case 1: s = std::to_string(below(5000)); break;
      case 2:
        for (size_t n = 1 + below(22); n > 0; --n) s += static_cast<char>('0' + below(10));
        break;
      default:
        for (size_t n = below(8); n > 0; --n) s += "0123456789+- xXoObB._eE'\t"[below(25)];
    }
    if (below(4) == 0) s.insert(0, std::string(1 + below(20), '0'));  // leading zeros
    if (below(8) == 0) s.insert(below(s.size() + 1), 1, "+- x.\n_"[below(7)]);
    return s;
  }

  std::string size() {
    static const std::vector<std::string> units = {"",   "",    "B",  "b",   "K",  "k",   "KB", "kb",
                                                   "KiB", "kib", "M",  "MB",  "MiB", "mib", "G",  "GB",
                                                   "GiB", "T",   "KK", "K ", " K", "MiBB", "Ki", "iB"};
    return number() + units[below(units.size())];
  }

 private:
  std::mt19937_64 rng_;
};

TEST(CliFuzz, ParseSizeMatchesTheReference) {
  Gen g(kSeed);
  size_t valid = 0, bad = 0;
  std::string first;
  for (int i = 0; i < 50000; ++i) {
    const std::string s = g.size();
    const Outcome want = of(reference::size(s));
    Outcome got;
    try {
      got = Outcome{true, parse_size(s)};
    } catch (const std::invalid_argument&) {
      // rejected
    } catch (const std::exception& e) {
      ADD_FAILURE() << "parse_size(" << shown(s) << ") threw " << typeid(e).name() << ": " << e.what()
                    << " (only std::invalid_argument is documented)";
    }
    valid += want.ok;
    if (want != got && ++bad <= 12)
      first += "  parse_size(" + shown(s) + "): want " + want.str("an error") + ", got " + got.str("an error") + "\n";
  }
  EXPECT_EQ(bad, 0u) << "disagreements with the reference; first ones:\n" << first;
  EXPECT_GT(valid, 10000u);
}

std::optional<int> Parse(std::vector<std::string> args, Options* o) {
  args.insert(args.begin(), "uring-sync");
  args.push_back("src");
  args.push_back("dst");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  return parse(static_cast<int>(argv.size()), argv.data(), o, out, err);
}

// Every numeric option: accepted exactly when the text is a plain decimal in
// range, and then with that value (no octal "010" = 8, no hex "0x10" = 16).
TEST(CliFuzz, NumericOptionsMatchTheReference) {
  struct Opt {
    const char* name;
    uint64_t lo, hi;
    bool size;
    uint64_t Options::*u64;
    uint32_t Options::*u32;
  };
  const std::vector<Opt> opts = {
      {"--jobs", 1, 1024, false, nullptr, &Options::jobs},
      {"--queue-depth", 1, 4096, false, nullptr, &Options::queue_depth},
      {"--iowq-workers", 1, 1024, false, nullptr, &Options::iowq_workers},
      {"--chunk-size", 4096, 64u << 20, true, &Options::chunk_size, nullptr},
  };
  Gen g(kSeed + 1);
  size_t bad = 0, accepted = 0;
  std::string first;
  for (int i = 0; i < 3000; ++i) {  // each parse builds a CLI11 app: slow under ASan
    const Opt& opt = opts[i % opts.size()];
    const std::string text = opt.size ? g.size() : g.number();
    Outcome want = of(opt.size ? reference::size(text) : reference::decimal(text));
    if (want.ok && (want.value < opt.lo || want.value > opt.hi)) want = Outcome{};
    Options o;
    const auto code = Parse({std::string(opt.name) + "=" + text}, &o);
    Outcome got;
    if (!code) got = Outcome{true, opt.u64 != nullptr ? o.*opt.u64 : o.*opt.u32};
    if (code && *code != kExitUsage) ADD_FAILURE() << opt.name << "=" << shown(text) << ": exit " << *code;
    accepted += got.ok;
    if (want != got && ++bad <= 12)
      first += std::string("  ") + opt.name + "=" + shown(text) + ": want " + want.str("a usage error") + ", got " +
               got.str("a usage error") + "\n";
  }
  EXPECT_EQ(bad, 0u) << "disagreements with the reference; first ones:\n" << first;
  EXPECT_GT(accepted, 250u);
}

}  // namespace
}  // namespace usync::cli
