// BlockTable::Load (lib/block_table.h): a checkpoint's runs loaded into an empty table (the opener's
// path, which stores without comparing) and over an existing mapping (GC's jump, which changes only
// what differs) give the same mapping, count, end and size. LoadLazy (chunks copied in at first
// use) gives the same as Load through every reader and writer (readers racing the copy-in:
// tests/concurrency/lazy_table_concurrency_test.cc).
#include "lib/block_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
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

// a and b map the same blocks below `end`, and have the same count and end.
void ExpectSameTable(const BlockTable& a, const BlockTable& b, uint32_t end) {
  EXPECT_EQ(Snapshot(a, end), Snapshot(b, end));
  EXPECT_EQ(a.mapped_count(), b.mapped_count());
  EXPECT_EQ(a.mapped_end(), b.mapped_end());
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
  ExpectSameTable(over, scratch, end);
  EXPECT_EQ(over.size(), 777u);
}

// A lazy table over `runs` (which the caller keeps alive).
void LoadLazily(BlockTable& t, const std::vector<pmem::ExtRun>& runs, uint64_t size) {
  auto ckpt = std::make_shared<CheckpointRuns>();
  ckpt->runs = runs.data();
  ckpt->nruns = static_cast<uint32_t>(runs.size());
  uint64_t mapped = 0;
  for (const pmem::ExtRun& r : runs) mapped += r.nblocks;
  t.LoadLazy(std::move(ckpt), mapped, size);
}

Commit SetSize(uint64_t size, bool unmap_beyond) {
  Commit c;
  c.size_rule = Commit::SizeRule::kSet;
  c.size = size;
  c.unmap_beyond = unmap_beyond;
  c.inline_run = {VirtualBlock(0), kNoBlock, 0};
  return c;
}

Commit MapOne(uint32_t v, uint32_t l) {
  Commit c;
  c.inline_run = {VirtualBlock(v), LogicalBlock(l), 1};
  return c;
}

TEST(BlockTableTest, ALazyLoadReadsAsALoadAndCopiesEachChunkInOnce) {
  std::vector<pmem::ExtRun> runs = SomeRuns();
  BlockTable eager, lazy;
  ASSERT_TRUE(eager.Init() && lazy.Init());
  eager.Load(runs.data(), static_cast<uint32_t>(runs.size()), 4242);
  LoadLazily(lazy, runs, 4242);
  // Runs reach into chunk 20; the first chunk and the ones a long run crosses are pending too.
  EXPECT_EQ(lazy.pending_chunks(), 21u);
  EXPECT_EQ(lazy.mapped_count(), eager.mapped_count());
  EXPECT_EQ(lazy.mapped_end(), eager.mapped_end());
  EXPECT_EQ(lazy.size(), 4242u);
  // One read copies its chunk in, and only it.
  EXPECT_EQ(lazy.Get(5 * kChunk + 17), eager.Get(5 * kChunk + 17));
  EXPECT_EQ(lazy.pending_chunks(), 20u);
  EXPECT_EQ(Snapshot(lazy, 22 * kChunk), Snapshot(eager, 22 * kChunk));
  EXPECT_EQ(lazy.pending_chunks(), 0u);
}

// Only an untouched table (an opener's) is loaded lazily: pending chunks never replace chunks a
// concurrent reader may be reading. Any other table is loaded at once, as Load.
TEST(BlockTableTest, ATouchedTableIsLoadedAtOnce) {
  std::vector<pmem::ExtRun> runs = SomeRuns();
  BlockTable eager, touched;
  ASSERT_TRUE(eager.Init() && touched.Init());
  for (BlockTable* t : {&eager, &touched}) {
    t->Apply(MapOne(6 * kChunk, 777777));
    t->Apply(SetSize(0, true));  // nothing mapped any more, but chunk 6 exists
  }
  eager.Load(runs.data(), static_cast<uint32_t>(runs.size()), 55);
  LoadLazily(touched, runs, 55);
  EXPECT_EQ(touched.pending_chunks(), 0u);
  EXPECT_EQ(Snapshot(touched, 22 * kChunk), Snapshot(eager, 22 * kChunk));
  EXPECT_EQ(touched.mapped_count(), eager.mapped_count());
  EXPECT_EQ(touched.size(), 55u);
}

TEST(BlockTableTest, ChangesToALazyTableLandOnTheCheckpointsMapping) {
  std::vector<pmem::ExtRun> runs = SomeRuns();
  BlockTable eager, lazy;
  ASSERT_TRUE(eager.Init() && lazy.Init());
  eager.Load(runs.data(), static_cast<uint32_t>(runs.size()), 20 * kChunk * uint64_t{4096});
  LoadLazily(lazy, runs, 20 * kChunk * uint64_t{4096});
  // Commits into pending chunks (none read yet), a truncation across several, a jump to another
  // checkpoint over what is left pending.
  for (BlockTable* t : {&eager, &lazy}) {
    t->Apply(MapOne(3 * kChunk + 1, 900000));
    t->Apply(MapOne(7 * kChunk + 4095, 900001));
    t->Apply(SetSize(uint64_t{15} * kChunk * 4096 + 100, true));
  }
  ExpectSameTable(lazy, eager, 22 * kChunk);

  BlockTable lazy2, eager2;
  ASSERT_TRUE(lazy2.Init() && eager2.Init());
  LoadLazily(lazy2, runs, 1);
  eager2.Load(runs.data(), static_cast<uint32_t>(runs.size()), 1);
  (void)lazy2.Get(2 * kChunk);  // one chunk copied in, the rest pending
  std::vector<pmem::ExtRun> newer = {{1, 800000, 3, 0}, {4 * kChunk - 1, 810000, kChunk + 2, 0}, {30 * kChunk, 820000, 1, 0}};
  lazy2.Load(newer.data(), static_cast<uint32_t>(newer.size()), 99);
  eager2.Load(newer.data(), static_cast<uint32_t>(newer.size()), 99);
  ExpectSameTable(lazy2, eager2, 31 * kChunk);
  EXPECT_EQ(lazy2.pending_chunks(), 0u);
}

TEST(BlockTableTest, TheWalksOfALazyTableSeeTheCheckpointsMapping) {
  std::vector<pmem::ExtRun> runs = SomeRuns();
  BlockTable eager, lazy;
  ASSERT_TRUE(eager.Init() && lazy.Init());
  eager.Load(runs.data(), static_cast<uint32_t>(runs.size()), 1);
  LoadLazily(lazy, runs, 1);
  (void)lazy.Get(9 * kChunk + 3);
  // ForEachMappedRun reads pending chunks from the checkpoint without copying them in.
  std::vector<uint32_t> from_runs, from_eager;
  lazy.ForEachMappedRun([&](uint32_t l, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) from_runs.push_back(l + i);
  });
  eager.ForEachMapped([&](uint32_t, uint32_t l) { from_eager.push_back(l); });
  std::sort(from_runs.begin(), from_runs.end());
  std::sort(from_eager.begin(), from_eager.end());
  EXPECT_EQ(from_runs, from_eager);
  EXPECT_EQ(lazy.pending_chunks(), 20u);
  // Runs (and ForEachMapped under it) copies everything in.
  std::vector<MapRun> a = lazy.Runs(), b = eager.Runs();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(a[i].vblock == b[i].vblock && a[i].lblock == b[i].lblock && a[i].count == b[i].count) << i;
  }
  EXPECT_EQ(lazy.pending_chunks(), 0u);
}

}  // namespace
}  // namespace tern
