// A plain reference for the command line's numbers, for the randomized test
// (cli_fuzz_test.cc) and the libFuzzer harness (cli_fuzzer.cc): strtoull in
// base 10 with overflow checks, written from the documented syntax (README,
// cli.h) rather than from cli.cc.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>

namespace usync::cli::reference {

// Decimal digits only (no sign, space, base prefix or separator), no overflow.
inline std::optional<uint64_t> decimal(const std::string& s) {
  if (s.empty()) return std::nullopt;
  for (char c : s)
    if (c < '0' || c > '9') return std::nullopt;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return std::nullopt;
  return v;
}

// "<digits>[unit]" with unit B, K/KB/KiB, M/MB/MiB, G/GB/GiB in any case
// (binary multiples), the product fitting in 64 bits.
inline std::optional<uint64_t> size(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  const auto n = decimal(s.substr(0, i));
  if (!n) return std::nullopt;
  std::string unit;
  for (char c : s.substr(i)) unit += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
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
    return std::nullopt;
  if (*n > (std::numeric_limits<uint64_t>::max() >> shift)) return std::nullopt;
  return *n << shift;
}

}  // namespace usync::cli::reference
