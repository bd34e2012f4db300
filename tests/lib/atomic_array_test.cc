// AtomicU32Array (lib/atomic_array.h), the DRAM block table: unset entries read 0, Set returns the
// previous value, entries in different chunks and at the ends of the index space are independent.
#include "lib/atomic_array.h"

#include <gtest/gtest.h>

#include "lib/layout_constants.h"

namespace tern {
namespace {

TEST(AtomicArrayTest, UninitialisedReadsZero) {
  AtomicU32Array a;
  EXPECT_EQ(a.Get(0), 0u);
  EXPECT_EQ(a.Get(123456), 0u);
}

TEST(AtomicArrayTest, SetReturnsPreviousAndGetSeesIt) {
  AtomicU32Array a;
  ASSERT_TRUE(a.Init());
  EXPECT_EQ(a.Set(5, 50), 0u);
  EXPECT_EQ(a.Set(5, 51), 50u);
  EXPECT_EQ(a.Get(5), 51u);
  EXPECT_EQ(a.Get(4), 0u);
  EXPECT_EQ(a.Get(6), 0u);
}

TEST(AtomicArrayTest, ChunkEdgesAndTheLastIndex) {
  AtomicU32Array a;
  ASSERT_TRUE(a.Init());
  constexpr uint32_t kChunk = 1u << AtomicU32Array::kChunkBits;
  constexpr uint32_t kMid = kChunk << AtomicU32Array::kMidBits;
  constexpr uint32_t kLast = kMaxBlocks - 1;  // 2^28 - 1
  const uint32_t indices[] = {0, kChunk - 1, kChunk, 2 * kChunk + 7, kMid - 1, kMid, kLast - kChunk, kLast};
  uint32_t v = 1;
  for (uint32_t i : indices) EXPECT_EQ(a.Set(i, v++), 0u) << i;
  v = 1;
  for (uint32_t i : indices) EXPECT_EQ(a.Get(i), v++) << i;
  EXPECT_EQ(a.Get(kChunk + 1), 0u);
  EXPECT_EQ(a.Get(kMid + 1), 0u);
  EXPECT_EQ(a.Get(kLast - 1), 0u);
}

TEST(AtomicArrayTest, StoringZeroWhereNothingIsSetReadsZero) {
  AtomicU32Array a;
  ASSERT_TRUE(a.Init());
  for (uint32_t i = 0; i < kMaxBlocks; i += 1u << 20) EXPECT_EQ(a.Set(i, 0), 0u);
  EXPECT_EQ(a.Get(1u << 20), 0u);
  EXPECT_EQ(a.Set(1u << 20, 9), 0u);
  EXPECT_EQ(a.Get(1u << 20), 9u);
}

}  // namespace
}  // namespace tern
