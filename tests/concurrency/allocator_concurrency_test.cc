// BlockAllocator under contention: 4 threads allocating (and freeing) from one bitmap never hold
// the same block at the same time, and together they hand out every block exactly once.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "lib/allocator.h"
#include "lib/shared_state.h"
#include "tests/test_util.h"

namespace tern {
namespace {

constexpr int kThreads = 4;

std::unique_ptr<SharedState> MakeState(uint64_t num_blocks) {
  struct stat like {};
  like.st_mode = S_IFREG | 0600;
  like.st_uid = getuid();
  like.st_gid = getgid();
  auto st = SharedState::CreateUnpublished(like, num_blocks);
  EXPECT_TRUE(st.ok()) << test::Describe(st.status());
  return st.ok() ? std::move(st).value() : nullptr;
}

TEST(AllocatorConcurrencyTest, RaceToExhaustionHandsOutEveryBlockOnce) {
  test::TempDir dir;
  constexpr uint64_t kBlocks = 4096 + 37;
  for (int round = 0; round < 4; ++round) {
    auto state = MakeState(kBlocks);
    ASSERT_NE(state, nullptr);
    BlockAllocator alloc(state.get());
    std::vector<std::vector<BlockRun>> got(kThreads);
    std::latch start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(static_cast<uint32_t>(round * 100 + t));
        start.arrive_and_wait();
        for (uint64_t i = 0; i <= kBlocks; ++i) {  // bounded: each success takes >= 1 block
          BlockRun r = alloc.TryAllocate(static_cast<uint32_t>(1 + rng() % 13), static_cast<uint32_t>(t));
          if (r.count == 0) break;
          got[static_cast<size_t>(t)].push_back(r);
        }
      });
    }
    for (auto& th : threads) th.join();

    std::vector<int> owner(kBlocks, -1);
    uint64_t total = 0;
    for (int t = 0; t < kThreads; ++t) {
      for (const BlockRun& r : got[static_cast<size_t>(t)]) {
        ASSERT_LE(uint64_t{r.start.value()} + r.count, kBlocks);
        for (uint32_t b = r.start.value(); b < r.end().value(); ++b) {
          ASSERT_EQ(owner[b], -1) << "block " << b << " given to threads " << owner[b] << " and " << t;
          owner[b] = t;
        }
        total += r.count;
      }
    }
    EXPECT_EQ(total, kBlocks);
    EXPECT_EQ(alloc.CountUsed(), kBlocks);
    EXPECT_EQ(alloc.TryAllocate(1, 0).count, 0u);
  }
}

// Threads allocate and free concurrently; each block carries an owner flag that a thread claims
// when the allocator hands the block over and releases before freeing it. A second claim of a
// held block is a double hand-out.
TEST(AllocatorConcurrencyTest, ConcurrentAllocAndFreeNeverDoubleAllocates) {
  test::TempDir dir;
  constexpr uint64_t kBlocks = 1024;
  auto state = MakeState(kBlocks);
  ASSERT_NE(state, nullptr);
  BlockAllocator alloc(state.get());
  std::vector<std::atomic<int>> holder(kBlocks);
  for (auto& h : holder) h.store(-1);
  std::atomic<uint64_t> double_handouts{0};
  std::atomic<uint64_t> out_of_range{0};
  std::vector<std::vector<BlockRun>> kept(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(1000 + t));
      std::vector<BlockRun> live;
      start.arrive_and_wait();
      for (int step = 0; step < 20000; ++step) {
        if (live.size() < 8 && rng() % 2 == 0) {
          BlockRun r = alloc.TryAllocate(static_cast<uint32_t>(1 + rng() % 20), static_cast<uint32_t>(t));
          if (r.count == 0) continue;
          if (uint64_t{r.start.value()} + r.count > kBlocks) {
            out_of_range.fetch_add(1);
            continue;
          }
          for (uint32_t b = r.start.value(); b < r.end().value(); ++b) {
            int prev = -1;
            if (!holder[b].compare_exchange_strong(prev, t)) double_handouts.fetch_add(1);
          }
          live.push_back(r);
        } else if (!live.empty()) {
          size_t i = rng() % live.size();
          BlockRun r = live[i];
          live[i] = live.back();
          live.pop_back();
          for (uint32_t b = r.start.value(); b < r.end().value(); ++b) holder[b].store(-1);
          alloc.Release(r, static_cast<uint32_t>(t));
        }
      }
      kept[static_cast<size_t>(t)] = live;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(double_handouts.load(), 0u);
  EXPECT_EQ(out_of_range.load(), 0u);
  uint64_t held = 0;
  for (const auto& live : kept) {
    for (const BlockRun& r : live) held += r.count;
  }
  EXPECT_EQ(alloc.CountUsed(), held);
}

// A writer freeing what its commit superseded and a sweep freeing a dead process's blocks may race
// for one block: exactly one of them frees it.
TEST(AllocatorConcurrencyTest, RacingFreesFreeEachBlockOnce) {
  test::TempDir dir;
  constexpr uint32_t kBlocks = 2048;
  auto state = MakeState(kBlocks);
  ASSERT_NE(state, nullptr);
  BlockAllocator alloc(state.get());
  alloc.MarkUsed(BlockRun{LogicalBlock(0), kBlocks});
  std::vector<std::atomic<int>> frees(kBlocks);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (uint32_t i = 0; i < kBlocks; ++i) {
        uint32_t b = (t % 2 == 0) ? i : kBlocks - 1 - i;
        if (alloc.Claim(LogicalBlock(b), kLogOwner, static_cast<uint32_t>(t))) {
          alloc.FreeClaimed(LogicalBlock(b));
          frees[b].fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (uint32_t b = 0; b < kBlocks; ++b) ASSERT_EQ(frees[b].load(), 1) << "block " << b;
  EXPECT_EQ(alloc.CountUsed(), 0u);
}

}  // namespace
}  // namespace tern
