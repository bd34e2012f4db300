// BlockTable::Load (lib/block_table.h): a checkpoint's runs loaded into an empty table (the opener's
// path, which stores without comparing) and over an existing mapping (GC's jump, which changes only
// what differs) give the same mapping, count, end and size.
#include "lib/block_table.h"

#include <gtest/gtest.h>

#include <vector>

#include "lib/atomic_array.h"

namespace tern {
namespace {

constexpr uint32_t kChunk = 1u << AtomicU32Array::kChunkBits;

// Runs in vblock order with gaps, single blocks and runs across chunk edges, spread over more
// chunks than the heap ones (so slab chunks are filled too).
std::vector<pmem::ExtRun> SomeRuns() {
  std::vector<pmem::ExtRun> runs;
  uint32_t v = 3, l = 100;
  for (uint32_t i = 0; v < 20 * kChunk; ++i) {
    uint32_t n = i % 7 == 0 ? kChunk + 5 : 1 + i % 5;
    runs.push_back({v, l, n, 0});
    v += n + i % 3;  // every third run is followed by no gap
    l += n + 11;
  }
  return runs;
}

std::vector<uint32_t> Snapshot(const BlockTable& t, uint32_t end) {
  std::vector<uint32_t> out(end);
  for (uint32_t i = 0; i < end; ++i) out[i] = t.Get(i);
  return out;
}

TEST(BlockTableTest, LoadIntoAnEmptyTableMapsExactlyTheRuns) {
  std::vector<pmem::ExtRun> runs = SomeRuns();
  BlockTable t;
  ASSERT_TRUE(t.Init());
  t.Load(runs.data(), static_cast<uint32_t>(runs.size()), 12345);
  uint64_t mapped = 0;
  uint32_t v = 0;
  for (const pmem::ExtRun& r : runs) {
    for (; v < r.vblock; ++v) ASSERT_EQ(t.Get(v), 0u) << v;
    for (uint32_t i = 0; i < r.nblocks; ++i, ++v) ASSERT_EQ(t.Get(v), r.lblock + i) << v;
    mapped += r.nblocks;
  }
  EXPECT_EQ(t.Get(v), 0u);
  EXPECT_EQ(t.mapped_count(), mapped);
  EXPECT_EQ(t.mapped_end(), v);
  EXPECT_EQ(t.size(), 12345u);
}

TEST(BlockTableTest, LoadOverAMappingEqualsLoadFromScratch) {
  std::vector<pmem::ExtRun> runs = SomeRuns();
  BlockTable scratch, over;
  ASSERT_TRUE(scratch.Init() && over.Init());
  scratch.Load(runs.data(), static_cast<uint32_t>(runs.size()), 777);
  // An older mapping: other blocks, some past the new end, some where the new one has holes.
  std::vector<pmem::ExtRun> old = {{0, 5000, 9, 0}, {kChunk - 2, 6000, 40, 0}, {25 * kChunk, 7000, 3, 0}};
  over.Load(old.data(), static_cast<uint32_t>(old.size()), 1);
  over.Load(runs.data(), static_cast<uint32_t>(runs.size()), 777);
  uint32_t end = 26 * kChunk;
  EXPECT_EQ(Snapshot(over, end), Snapshot(scratch, end));
  EXPECT_EQ(over.mapped_count(), scratch.mapped_count());
  EXPECT_EQ(over.mapped_end(), scratch.mapped_end());
  EXPECT_EQ(over.size(), 777u);
}

}  // namespace
}  // namespace tern
