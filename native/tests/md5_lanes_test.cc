// Md5Lanes against OpenSSL's MD5, at every lane width this CPU has; and the
// staging of Md5 that feeds it.
#include "md5_lanes.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "md5.h"
#include "test_tree.h"

namespace usync {
namespace {

std::string hex(const uint8_t* d) { return testing::Hex(d, 16); }

std::string openssl_md5(const uint8_t* p, size_t n) {
  uint8_t d[16];
  unsigned int len = 0;
  EVP_Digest(p, n, d, &len, EVP_md5(), nullptr);
  return hex(d);
}

// Restores the CPU's own lane width after a test limited it.
struct LaneLimit {
  explicit LaneLimit(int lanes) { Md5Lanes::limit_lanes_for_test(lanes); }
  ~LaneLimit() { Md5Lanes::limit_lanes_for_test(0); }
};

class Md5LanesTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (GetParam() > Md5Lanes::lanes())
      GTEST_SKIP() << "this CPU hashes " << Md5Lanes::lanes() << " messages at once, not " << GetParam();
    limit_ = std::make_unique<LaneLimit>(GetParam());
    ASSERT_EQ(Md5Lanes::lanes(), GetParam());
  }
  std::unique_ptr<LaneLimit> limit_;
};

// Hashes messages of the given lengths (random bytes) in one call and
// compares each digest with OpenSSL's.
void check(Md5Lanes& lanes, const std::vector<uint32_t>& lens, std::mt19937& rng) {
  ASSERT_LE(lens.size(), lanes.slots());
  std::vector<std::vector<uint8_t>> msgs;
  for (size_t k = 0; k < lens.size(); ++k) {
    std::vector<uint8_t> m(lens[k]);
    for (auto& b : m) b = static_cast<uint8_t>(rng());
    if (!m.empty()) std::memcpy(lanes.slot(k), m.data(), m.size());
    msgs.push_back(std::move(m));
  }
  std::vector<uint8_t> out(16 * lens.size() + 16, 0xee);
  lanes.hash(lens.size(), lens.data(), reinterpret_cast<uint8_t(*)[16]>(out.data()));
  for (size_t k = 0; k < lens.size(); ++k)
    EXPECT_EQ(hex(&out[16 * k]), openssl_md5(msgs[k].data(), msgs[k].size())) << "message " << k << " of " << lens[k] << " bytes";
  for (int i = 0; i < 16; ++i) EXPECT_EQ(out[16 * lens.size() + i], 0xee) << "written past the last digest";
}

TEST_P(Md5LanesTest, EveryLengthAroundTheBlockBoundariesMatchesOpenSSL) {
  Md5Lanes lanes(32, 1024);
  ASSERT_TRUE(lanes.ok());
  std::mt19937 rng(1);
  // 0..200 bytes: the padding's one- and two-block cases, 55/56/63/64...
  for (uint32_t first = 0; first <= 200; first += 32) {
    std::vector<uint32_t> lens;
    for (uint32_t len = first; len < first + 32; ++len) lens.push_back(len);
    check(lanes, lens, rng);
  }
  check(lanes, {1024, 1023, 960, 959, 0, 1}, rng);
}

TEST_P(Md5LanesTest, MessagesOfVeryDifferentLengthsShareTheLanes) {
  Md5Lanes lanes(32, 16 << 10);
  ASSERT_TRUE(lanes.ok());
  std::mt19937 rng(2);
  for (int round = 0; round < 20; ++round) {
    std::vector<uint32_t> lens(1 + rng() % 32);
    for (auto& len : lens) len = rng() % 3 == 0 ? rng() % 100 : rng() % (16 << 10);
    check(lanes, lens, rng);
  }
  check(lanes, {16 << 10}, rng);  // one message alone
  check(lanes, {4096, 4096, 4096}, rng);
}

TEST_P(Md5LanesTest, KnownDigests) {
  // RFC 1321's test suite.
  const std::pair<std::string, std::string> cases[] = {
      {"", "d41d8cd98f00b204e9800998ecf8427e"},
      {"a", "0cc175b9c0f1b6a831c399e269772661"},
      {"abc", "900150983cd24fb0d6963f7d28e17f72"},
      {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
      {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
      {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
      {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
       "57edf4a22be3c955ac49da2e2107b67a"}};
  Md5Lanes lanes(8, 128);
  ASSERT_TRUE(lanes.ok());
  std::vector<uint32_t> lens;
  for (const auto& [msg, want] : cases) {
    std::memcpy(lanes.slot(lens.size()), msg.data(), msg.size());
    lens.push_back(static_cast<uint32_t>(msg.size()));
  }
  uint8_t out[8][16];
  lanes.hash(lens.size(), lens.data(), out);
  for (size_t k = 0; k < lens.size(); ++k) EXPECT_EQ(hex(out[k]), cases[k].second) << '"' << cases[k].first << '"';
}

// The widest lanes this CPU has are the ones used (CI's machines have
// AVX-512: the 16-lane code is what runs there).
TEST(Md5LanesDispatch, TheCpusWidestUnitIsUsed) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const int want = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") ? 8 : 1;
#else
  const int want = 1;
#endif
  EXPECT_EQ(Md5Lanes::lanes(), want);
}

INSTANTIATE_TEST_SUITE_P(Widths, Md5LanesTest, ::testing::Values(16, 8, 1),
                         [](const auto& info) { return std::to_string(info.param) + "lanes"; });

TEST(Md5Staging, AMessageThatFitsIsLeftInTheStage) {
  Md5Lanes lanes(2, 64);
  ASSERT_TRUE(lanes.ok());
  Md5 md5;
  md5.reset(lanes.slot(0), lanes.slot_bytes());
  md5.update("hello ", 6);
  md5.update("world\n", 6);
  uint8_t out[16] = {};
  md5.final(out);
  EXPECT_TRUE(md5.staged());
  ASSERT_EQ(md5.staged_len(), 12u);
  EXPECT_EQ(std::memcmp(lanes.slot(0), "hello world\n", 12), 0);
  uint32_t len = 12;
  uint8_t digest[1][16];
  lanes.hash(1, &len, digest);
  EXPECT_EQ(hex(digest[0]), openssl_md5(reinterpret_cast<const uint8_t*>("hello world\n"), 12));
}

TEST(Md5Staging, AMessageTooLongForTheStageIsHashedAsItComes) {
  Md5Lanes lanes(1, 64);
  ASSERT_TRUE(lanes.ok());
  std::string msg(200, 'x');
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>('a' + i % 26);
  Md5 md5;
  md5.reset(lanes.slot(0), lanes.slot_bytes());
  md5.update(msg.data(), 40);         // staged
  md5.update(msg.data() + 40, 30);    // 70 > 64: the 40 staged bytes, then these, hashed here
  md5.update(msg.data() + 70, 130);
  uint8_t out[16];
  md5.final(out);
  EXPECT_FALSE(md5.staged());
  EXPECT_EQ(hex(out), openssl_md5(reinterpret_cast<const uint8_t*>(msg.data()), msg.size()));
  // And the next message, without a stage, as Md5 always hashed.
  md5.reset();
  md5.update("abc", 3);
  md5.final(out);
  EXPECT_FALSE(md5.staged());
  EXPECT_EQ(hex(out), "900150983cd24fb0d6963f7d28e17f72");
}

}  // namespace
}  // namespace usync
