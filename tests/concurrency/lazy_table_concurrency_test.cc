// BlockTable::LoadLazy (lib/block_table.h) under threads: readers copy chunks of a lazily loaded
// checkpoint in while the owner applies commits to other chunks and to the same ones. Run under
// ThreadSanitizer too.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "lib/atomic_array.h"
#include "lib/block_table.h"

namespace tern {
namespace {

constexpr uint32_t kChunk = AtomicU32Array::kChunkSize;

// Every read gives the checkpoint's block or the commit's, never a pending marker or a hole.
TEST(LazyTableConcurrencyTest, ReadersRacingTheCopyInSeeOnlyMappedBlocks) {
  constexpr uint32_t kChunks = 24;
  std::vector<pmem::ExtRun> runs;
  for (uint32_t v = 0; v < kChunks * kChunk; v += 2) runs.push_back({v, 1000 + v, 1, 0});  // every other block
  for (int round = 0; round < 5; ++round) {
    BlockTable t;
    ASSERT_TRUE(t.Init());
    auto ckpt = std::make_shared<CheckpointRuns>();
    ckpt->runs = runs.data();
    ckpt->nruns = static_cast<uint32_t>(runs.size());
    t.LoadLazy(std::move(ckpt), runs.size(), 1);
    std::atomic<bool> bad{false};
    std::vector<std::thread> readers;
    for (uint32_t r = 0; r < 2; ++r) {
      readers.emplace_back([&, r] {
        for (uint32_t i = 0; i < kChunks * kChunk / 2; ++i) {
          uint32_t v = (i * 7919 + r * 4099) % (kChunks * kChunk) & ~1u;
          uint32_t l = t.Get(v);
          if (l != 1000 + v && l != 2000000 + v) bad.store(true);
        }
      });
    }
    for (uint32_t v = 0; v < kChunks * kChunk; v += 2 * 97) {
      Commit c;
      c.inline_run = {VirtualBlock(v), LogicalBlock(2000000 + v), 1};
      t.Apply(c);
    }
    for (auto& th : readers) th.join();
    EXPECT_FALSE(bad.load()) << "round " << round;
    for (uint32_t v = 0; v < kChunks * kChunk; v += 2) {
      ASSERT_EQ(t.Get(v), v % (2 * 97) == 0 ? 2000000 + v : 1000 + v) << v;
    }
    EXPECT_EQ(t.pending_chunks(), 0u);
  }
}

}  // namespace
}  // namespace tern
