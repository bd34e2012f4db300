// AtomicU32Array (lib/atomic_array.h), the DRAM block table: unset entries read 0, Set returns the
// previous value, entries in different chunks and at the ends of the index space are independent.
#include "lib/atomic_array.h"

#include <gtest/gtest.h>

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
  constexpr uint32_t kChunk = AtomicU32Array::kChunkSize;
  constexpr uint32_t kLast = AtomicU32Array::kDirSize * kChunk - 1;  // 2^28 - 1
  const uint32_t indices[] = {0, kChunk - 1, kChunk, 2 * kChunk + 7, kLast - kChunk, kLast};
  uint32_t v = 1;
  for (uint32_t i : indices) EXPECT_EQ(a.Set(i, v++), 0u) << i;
  v = 1;
  for (uint32_t i : indices) EXPECT_EQ(a.Get(i), v++) << i;
  EXPECT_EQ(a.Get(kChunk + 1), 0u);
  EXPECT_EQ(a.Get(kLast - 1), 0u);
}

}  // namespace
}  // namespace tern
