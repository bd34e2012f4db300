// AtomicU32Array (lib/atomic_array.h), the DRAM block table: unset entries read 0, Set returns the
// previous value, entries in different chunks and at the ends of the index space are independent,
// and a large table (its chunks past the first few carved from huge-page slabs) holds every value.
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

TEST(AtomicArrayTest, ManyChunksFromSlabsHoldTheirValues) {
  // Enough chunks for the heap ones, one full slab and part of a second; every third chunk is
  // left out, so slab chunks are not in index order with gaps between them.
  constexpr uint32_t kChunk = 1u << AtomicU32Array::kChunkBits;
  constexpr uint32_t kChunks = 3 * (AtomicU32Array::kHeapChunks + 200) / 2;
  AtomicU32Array a;
  ASSERT_TRUE(a.Init());
  for (uint32_t c = 0; c < kChunks; ++c) {
    if (c % 3 == 2) continue;
    EXPECT_EQ(a.StoreRun(c * kChunk, kChunk, c * kChunk + 1), static_cast<int64_t>(kChunk)) << c;
  }
  uint64_t mismatches = 0;
  for (uint32_t i = 0; i < kChunks * kChunk; ++i) {
    uint32_t want = (i / kChunk) % 3 == 2 ? 0 : i + 1;
    mismatches += a.Get(i) != want;
  }
  EXPECT_EQ(mismatches, 0u);
  uint64_t seen = 0;
  a.ForEachNonZero(kChunks * kChunk, [&](uint32_t i, uint32_t v) { seen += v == i + 1; }, [](uint32_t) {});
  EXPECT_EQ(seen, uint64_t{kChunk} * (kChunks - kChunks / 3));
}

}  // namespace
}  // namespace tern
