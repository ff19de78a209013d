#include "md5_lanes.h"

#include <atomic>
#include <cstring>
#include <new>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// MD5 (RFC 1321) itself, for n lanes: the code below is compiled three
// times from md5_lanes_core.inc, for AVX-512, for AVX2 and for one lane of
// plain integers.  Each lane follows its own message through the staging
// arena by a 32-bit byte offset (the gathers' indices); a lane whose message
// ends takes the next one, so messages of different lengths waste little.
// The digests are checked against OpenSSL's in native/tests/md5_lanes_test.cc,
// for every length around the block boundaries and every lane width.

namespace usync {
namespace {

// The round constants, floor(abs(sin(i + 1)) * 2^32).
constexpr uint32_t kK[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};

constexpr uint32_t kInit[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};

// Writes MD5's padding after the len bytes at p (0x80, zeros, the length in
// bits) and returns the message's length in 64-byte blocks.
uint32_t pad(uint8_t* p, uint32_t len) noexcept {
  const uint32_t blocks = (len + 8) / 64 + 1;
  const uint32_t end = blocks * 64;
  p[len] = 0x80;
  std::memset(p + len + 1, 0, end - 8 - (len + 1));
  const uint64_t bits = static_cast<uint64_t>(len) * 8;
  for (int i = 0; i < 8; ++i) p[end - 8 + i] = static_cast<uint8_t>(bits >> (8 * i));
  return blocks;
}

void put_le(uint8_t* out, uint32_t w) noexcept {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(w >> (8 * i));
}

// What one lane-set needs to know of the messages to hash.
struct Work {
  const uint8_t* base;     // the arena
  size_t n;                // messages
  const uint32_t* off;     // message k starts at base + off[k] (padded)
  const uint32_t* blocks;  // and is blocks[k] blocks long
  uint32_t idle_off;       // a block a lane without a message reads
  uint8_t (*out)[16];
};

}  // namespace

#if defined(__x86_64__)

// Each function below is compiled for its instruction set through a target
// attribute (GCC and clang both take it), called only when the CPU has it.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 takes the _mm512_undefined_epi32() inside its own rotate and gather
// intrinsics for uninitialized variables.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace avx512 {
namespace {
#define USYNC_TARGET __attribute__((target("avx512f")))
constexpr int kLanes = 16;
using V = __m512i;
USYNC_TARGET inline V set1(uint32_t x) { return _mm512_set1_epi32(static_cast<int>(x)); }
USYNC_TARGET inline V add(V a, V b) { return _mm512_add_epi32(a, b); }
USYNC_TARGET inline V load(const uint32_t* p) { return _mm512_loadu_si512(p); }
USYNC_TARGET inline void store(uint32_t* p, V v) { _mm512_storeu_si512(p, v); }
USYNC_TARGET inline V gather(const uint8_t* base, V idx) { return _mm512_i32gather_epi32(idx, base, 1); }
// The round functions as truth tables of (b, c, d).
USYNC_TARGET inline V fF(V b, V c, V d) { return _mm512_ternarylogic_epi32(b, c, d, 0xca); }  // b ? c : d
USYNC_TARGET inline V fG(V b, V c, V d) { return _mm512_ternarylogic_epi32(b, c, d, 0xe4); }  // d ? b : c
USYNC_TARGET inline V fH(V b, V c, V d) { return _mm512_ternarylogic_epi32(b, c, d, 0x96); }  // b ^ c ^ d
USYNC_TARGET inline V fI(V b, V c, V d) { return _mm512_ternarylogic_epi32(b, c, d, 0x39); }  // c ^ (b | ~d)
#define USYNC_ROL(x, s) _mm512_rol_epi32((x), (s))
#include "md5_lanes_core.inc"
#undef USYNC_ROL
#undef USYNC_TARGET
}  // namespace
}  // namespace avx512

namespace avx2 {
namespace {
#define USYNC_TARGET __attribute__((target("avx2")))
constexpr int kLanes = 8;
using V = __m256i;
USYNC_TARGET inline V set1(uint32_t x) { return _mm256_set1_epi32(static_cast<int>(x)); }
USYNC_TARGET inline V add(V a, V b) { return _mm256_add_epi32(a, b); }
USYNC_TARGET inline V load(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
USYNC_TARGET inline void store(uint32_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
USYNC_TARGET inline V gather(const uint8_t* base, V idx) {
  return _mm256_i32gather_epi32(reinterpret_cast<const int*>(base), idx, 1);
}
USYNC_TARGET inline V fF(V b, V c, V d) { return _mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d))); }
USYNC_TARGET inline V fG(V b, V c, V d) { return _mm256_xor_si256(c, _mm256_and_si256(d, _mm256_xor_si256(b, c))); }
USYNC_TARGET inline V fH(V b, V c, V d) { return _mm256_xor_si256(_mm256_xor_si256(b, c), d); }
USYNC_TARGET inline V fI(V b, V c, V d) {
  return _mm256_xor_si256(c, _mm256_or_si256(b, _mm256_xor_si256(d, _mm256_set1_epi32(-1))));
}
#define USYNC_ROL(x, s) _mm256_or_si256(_mm256_slli_epi32((x), (s)), _mm256_srli_epi32((x), 32 - (s)))
#include "md5_lanes_core.inc"
#undef USYNC_ROL
#undef USYNC_TARGET
}  // namespace
}  // namespace avx2

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // __x86_64__

// One lane: the same code on plain integers, for groups too small to fill a
// vector (and CPUs without one).  No allocation, unlike OpenSSL's EVP calls.
namespace one {
namespace {
#define USYNC_TARGET
constexpr int kLanes = 1;
using V = uint32_t;
inline V set1(uint32_t x) { return x; }
inline V add(V a, V b) { return a + b; }
inline V load(const uint32_t* p) { return *p; }
inline void store(uint32_t* p, V v) { *p = v; }
inline V gather(const uint8_t* base, V idx) {
  const uint8_t* p = base + idx;
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline V fF(V b, V c, V d) { return d ^ (b & (c ^ d)); }
inline V fG(V b, V c, V d) { return c ^ (d & (b ^ c)); }
inline V fH(V b, V c, V d) { return b ^ c ^ d; }
inline V fI(V b, V c, V d) { return c ^ (b | ~d); }
#define USYNC_ROL(x, s) (((x) << (s)) | ((x) >> (32 - (s))))
#include "md5_lanes_core.inc"
#undef USYNC_ROL
#undef USYNC_TARGET
}  // namespace
}  // namespace one



namespace {

int cpu_lanes() noexcept {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return 16;
  if (__builtin_cpu_supports("avx2")) return 8;
#endif
  return 1;
}

std::atomic<int> lane_limit{0};

}  // namespace

int Md5Lanes::lanes() noexcept {
  static const int cpu = cpu_lanes();
  const int limit = lane_limit.load(std::memory_order_relaxed);
  return limit > 0 && limit < cpu ? limit : cpu;
}

void Md5Lanes::limit_lanes_for_test(int lanes) noexcept { lane_limit.store(lanes, std::memory_order_relaxed); }

Md5Lanes::Md5Lanes(size_t slots, size_t slot_bytes) noexcept {
  slot_bytes = (slot_bytes + 63) / 64 * 64;
  const size_t stride = slot_bytes + 128;  // MD5's padding: at most 72 bytes
  const size_t size = slots * stride + 64;  // and the block idle lanes read
  if (slots == 0 || slot_bytes == 0 || slot_bytes > (1u << 24) || size >= (1u << 31)) return;
  arena_.reset(new (std::nothrow) uint8_t[size]);
  work_.reset(new (std::nothrow) uint32_t[2 * slots]);
  if (!arena_ || !work_) {
    arena_.reset();
    return;
  }
  std::memset(arena_.get() + slots * stride, 0, 64);
  slots_ = slots;
  slot_bytes_ = slot_bytes;
  stride_ = stride;
}

void Md5Lanes::hash(size_t n, const uint32_t* lens, uint8_t (*out)[16]) noexcept {
  if (n == 0 || !ok()) return;
  if (n > slots_) n = slots_;
  uint32_t* off = work_.get();  // no allocation here: hash is called where none may fail
  uint32_t* blocks = off + slots_;
  for (size_t k = 0; k < n; ++k) {
    off[k] = static_cast<uint32_t>(k * stride_);
    blocks[k] = pad(slot(k), lens[k] <= slot_bytes_ ? lens[k] : static_cast<uint32_t>(slot_bytes_));
  }
  const Work w{arena_.get(), n, off, blocks, static_cast<uint32_t>(slots_ * stride_), out};
  const int width = lanes();
#if defined(__x86_64__)
  // A pass over the vector lanes costs about as much as three messages
  // on one lane: fewer go one after another.
  if (n >= 3 && width >= 16) return avx512::hash_lanes(w);
  if (n >= 3 && width >= 8) return avx2::hash_lanes(w);
#endif
  (void)width;
  one::hash_lanes(w);
}

}  // namespace usync
