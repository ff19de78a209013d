// The MD5 of many short messages at once, one message per lane of a vector
// register: 16 with AVX-512, 8 with AVX2.
//
// One MD5 cannot use more than one lane (every block depends on the one
// before it), so a 4 KiB file costs ~5.9 us of a CPU through OpenSSL: as
// much as the system calls that copy it.  The files of a batch are
// independent, though: staged side by side and hashed together, 32 files
// of 4 KiB cost 1.0 us each with 16 lanes and 1.5 us with 8, on the 2-CPU
// machine of the README's benchmarks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace usync {

class Md5Lanes {
 public:
  // Room for slots messages of up to slot_bytes each (rounded up to 64).
  Md5Lanes(size_t slots, size_t slot_bytes) noexcept;

  bool ok() const noexcept { return arena_ != nullptr; }
  size_t slots() const noexcept { return slots_; }
  size_t slot_bytes() const noexcept { return slot_bytes_; }
  // Where message k is staged: slot_bytes() bytes, followed by room for
  // MD5's padding, which hash() writes there.
  uint8_t* slot(size_t k) noexcept { return arena_.get() + k * stride_; }

  // The digests of the messages staged in slots 0..n-1, message k being
  // lens[k] <= slot_bytes() bytes long, into out[k].  Allocates nothing.
  void hash(size_t n, const uint32_t* lens, uint8_t (*out)[16]) noexcept;

  // Messages hashed at once by this CPU: 16, 8, or 1 (no vector unit:
  // one message after another).
  static int lanes() noexcept;
  // Tests: hash with at most this many lanes (16, 8 or 1) from now on,
  // as a CPU without the wider units would; 0 undoes it.
  static void limit_lanes_for_test(int lanes) noexcept;

 private:
  size_t slots_ = 0;
  size_t slot_bytes_ = 0;
  size_t stride_ = 0;
  std::unique_ptr<uint8_t[]> arena_;
  std::unique_ptr<uint32_t[]> work_;  // hash's offsets, block counts and lengths
};

}  // namespace usync
