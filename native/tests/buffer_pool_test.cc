#include "buffer_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <set>

namespace usync {
namespace {

TEST(BufferPool, HandsOutEveryBufferOnceThenNone) {
  BufferPool pool(4, 1000);
  EXPECT_EQ(pool.buffer_size() % static_cast<size_t>(sysconf(_SC_PAGESIZE)), 0u);  // rounded to pages
  EXPECT_GE(pool.buffer_size(), 1000u);
  std::set<uint32_t> got;
  for (int i = 0; i < 4; ++i) got.insert(pool.acquire());
  EXPECT_EQ(got.size(), 4u);
  EXPECT_EQ(pool.acquire(), BufferPool::kNone);
  EXPECT_EQ(pool.available(), 0u);
  pool.release(*got.begin());
  EXPECT_EQ(pool.acquire(), *got.begin());
}

TEST(BufferPool, BuffersAreDisjointAndAligned) {
  BufferPool pool(3, 8192);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(pool.data(i)) % 4096, 0u);
    pool.data(i)[0] = static_cast<char>(i + 1);
    pool.data(i)[pool.buffer_size() - 1] = static_cast<char>(i + 1);
  }
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(pool.data(i)[0], static_cast<char>(i + 1));
  const auto iov = pool.iovecs();
  ASSERT_EQ(iov.size(), 3u);
  EXPECT_EQ(iov[1].iov_base, pool.data(1));
  EXPECT_EQ(iov[1].iov_len, pool.buffer_size());
}

TEST(BufferPool, ReleaseOfForeignIndexIsIgnored) {
  BufferPool pool(1, 4096);
  pool.release(7);
  EXPECT_EQ(pool.available(), 1u);
}

}  // namespace
}  // namespace usync
