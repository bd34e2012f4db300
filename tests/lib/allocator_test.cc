// BlockAllocator (lib/allocator.h) over an in-memory SharedState: runs, frees, marks, counting,
// exhaustion, growth, and the tail of a bitmap whose size is not a multiple of 64.
#include "lib/allocator.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "lib/shared_state.h"
#include "tests/test_util.h"

namespace tern {
namespace {

constexpr uint32_t kMe = 0;  // the calling process's slot

class AllocatorTest : public ::testing::Test {
 protected:
  void Make(uint64_t num_blocks) {
    struct stat like {};
    like.st_mode = S_IFREG | 0600;
    like.st_uid = getuid();
    like.st_gid = getgid();
    auto st = SharedState::CreateUnpublished(like, num_blocks);
    ASSERT_TRUE(st.ok()) << test::Describe(st.status());
    state_ = std::move(st).value();
    alloc_ = std::make_unique<BlockAllocator>(state_.get());
  }

  // Allocates until exhaustion with requests of `want`; checks that every run is inside the file
  // and that no block is handed out twice. Returns the blocks handed out, in order.
  std::vector<uint32_t> Drain(uint32_t want) {
    std::vector<uint32_t> got;
    std::vector<bool> seen(alloc_->num_blocks(), false);
    for (uint64_t i = 0; i <= alloc_->num_blocks(); ++i) {
      BlockRun r = alloc_->TryAllocate(want, kMe);
      if (r.count == 0) return got;
      EXPECT_LE(r.count, want);
      EXPECT_LE(uint64_t{r.start.value()} + r.count, alloc_->num_blocks());
      for (uint32_t b = r.start.value(); b < r.end().value() && b < seen.size(); ++b) {
        EXPECT_FALSE(seen[b]) << "block " << b << " handed out twice";
        seen[b] = true;
        got.push_back(b);
      }
    }
    ADD_FAILURE() << "allocator never ran out";
    return got;
  }

  test::TempDir dir_;
  std::unique_ptr<SharedState> state_;
  std::unique_ptr<BlockAllocator> alloc_;
};

TEST_F(AllocatorTest, FreshPoolIsEmpty) {
  Make(512);
  EXPECT_EQ(alloc_->num_blocks(), 512u);
  EXPECT_EQ(alloc_->CountUsed(), 0u);
}

TEST_F(AllocatorTest, AllocatesContiguousRunsAndCountsThem) {
  Make(512);
  BlockRun a = alloc_->TryAllocate(10, kMe);
  ASSERT_EQ(a.count, 10u);
  EXPECT_EQ(alloc_->CountUsed(), 10u);
  BlockRun b = alloc_->TryAllocate(1, kMe);
  ASSERT_EQ(b.count, 1u);
  EXPECT_TRUE(b.start >= a.end() || b.end() <= a.start) << "runs overlap";
  EXPECT_EQ(alloc_->CountUsed(), 11u);
}

TEST_F(AllocatorTest, ZeroRequestTakesNothing) {
  Make(128);
  EXPECT_EQ(alloc_->TryAllocate(0, kMe).count, 0u);
  EXPECT_EQ(alloc_->CountUsed(), 0u);
}

TEST_F(AllocatorTest, ExhaustionReturnsCountZeroAfterHandingOutEveryBlock) {
  for (uint32_t want : {1u, 7u, 64u, 200u}) {
    Make(512);
    std::vector<uint32_t> got = Drain(want);
    EXPECT_EQ(got.size(), 512u) << "want " << want;
    EXPECT_EQ(alloc_->CountUsed(), 512u);
    EXPECT_EQ(alloc_->TryAllocate(1, kMe).count, 0u);
  }
}

TEST_F(AllocatorTest, ContiguousRunsSpanWordsAndSkipShorterGaps) {
  Make(1000);
  // Fragment the first 640 blocks: every 10th block stays in use, so no free gap is longer than 9.
  BlockRun all = alloc_->TryAllocateContiguous(640, kMe);
  ASSERT_EQ(all.count, 640u);
  EXPECT_EQ(all.start.value(), 0u);
  for (uint32_t b = 0; b < 640; ++b) {
    if (b % 10 != 0) alloc_->Release({LogicalBlock(b), 1}, kMe);
  }
  uint64_t used = alloc_->CountUsed();
  BlockRun r = alloc_->TryAllocateContiguous(200, kMe);  // more than one 64-bit word
  ASSERT_EQ(r.count, 200u);
  EXPECT_GE(r.start.value(), 640u) << "took a run across in-use blocks";
  EXPECT_LE(r.end().value(), 1000u);
  EXPECT_EQ(alloc_->CountUsed(), used + 200) << "shorter gaps were claimed on the way";
  EXPECT_EQ(alloc_->TryAllocateContiguous(200, kMe).count, 0u) << "only 160 free blocks at the end";
  ASSERT_EQ(alloc_->TryAllocateContiguous(160, kMe).count, 160u);
  BlockRun gap = alloc_->TryAllocateContiguous(9, kMe);
  ASSERT_EQ(gap.count, 9u);
  EXPECT_EQ(gap.start.value() % 10, 1u) << "a 9-block gap sits between two kept blocks";
}

TEST_F(AllocatorTest, ContiguousRunSkipsBlocksClaimedByAnotherSlot) {
  Make(128);
  // Block 30 is being claimed by slot 5 (owner set, bit not yet set): a run must not include it.
  BlockRun other = alloc_->TryAllocate(1, 5);
  ASSERT_EQ(other.count, 1u);
  alloc_->Release(other, 5);
  ASSERT_EQ(alloc_->TryAllocateContiguous(30, kMe).start.value(), 0u);
  ASSERT_TRUE(alloc_->Claim(LogicalBlock(30), kFreeBlock, 5));
  BlockRun r = alloc_->TryAllocateContiguous(40, kMe);
  ASSERT_EQ(r.count, 40u);
  EXPECT_GE(r.start.value(), 31u);
  for (uint32_t b = 31; b < r.start.value(); ++b) {
    EXPECT_EQ(alloc_->OwnerOf(LogicalBlock(b)), kFreeBlock) << "a failed claim left block " << b << " marked";
  }
}

TEST_F(AllocatorTest, NeverHandsOutBlocksPastAnOddEnd) {
  Make(100);  // last bitmap word is partial
  std::vector<uint32_t> got = Drain(5);
  EXPECT_EQ(got.size(), 100u);
  for (uint32_t b : got) EXPECT_LT(b, 100u);
  EXPECT_EQ(alloc_->CountUsed(), 100u);
}

TEST_F(AllocatorTest, FreedBlocksAreReusedAndUncounted) {
  Make(256);
  std::vector<uint32_t> got = Drain(16);
  ASSERT_EQ(got.size(), 256u);
  // Free a run that crosses a bitmap word boundary.
  alloc_->Release(BlockRun{LogicalBlock(60), 10}, kMe);
  EXPECT_EQ(alloc_->CountUsed(), 246u);
  std::vector<uint32_t> again = Drain(64);
  ASSERT_EQ(again.size(), 10u);
  for (uint32_t b : again) {
    EXPECT_GE(b, 60u);
    EXPECT_LT(b, 70u);
  }
  EXPECT_EQ(alloc_->CountUsed(), 256u);
}

TEST_F(AllocatorTest, MarkUsedBlocksAreNeverHandedOut) {
  Make(200);
  alloc_->MarkUsed(BlockRun{LogicalBlock(0), 1});
  alloc_->MarkUsed(BlockRun{LogicalBlock(62), 5});     // crosses a word boundary
  alloc_->MarkUsed(BlockRun{LogicalBlock(128), 64});  // a whole word
  EXPECT_EQ(alloc_->CountUsed(), 70u);
  std::vector<uint32_t> got = Drain(9);
  EXPECT_EQ(got.size(), 130u);
  for (uint32_t b : got) {
    EXPECT_NE(b, 0u);
    EXPECT_FALSE(b >= 62 && b < 67) << b;
    EXPECT_FALSE(b >= 128 && b < 192) << b;
  }
}

TEST_F(AllocatorTest, GrowingTheFileMakesNewBlocksAvailable) {
  Make(64);
  ASSERT_EQ(Drain(8).size(), 64u);
  EXPECT_EQ(alloc_->TryAllocate(1, kMe).count, 0u);
  state_->header()->num_blocks.store(160);
  std::vector<uint32_t> got = Drain(8);
  EXPECT_EQ(got.size(), 96u);
  for (uint32_t b : got) EXPECT_GE(b, 64u);
  EXPECT_EQ(alloc_->CountUsed(), 160u);
}

TEST_F(AllocatorTest, OwnershipFollowsAllocateAdoptAndRelease) {
  Make(256);
  BlockRun r = alloc_->TryAllocate(5, 6);
  ASSERT_EQ(r.count, 5u);
  for (uint32_t i = 0; i < r.count; ++i) {
    LogicalBlock b = r.start + BlockCount{i};
    EXPECT_TRUE(alloc_->IsUsed(b));
    EXPECT_EQ(alloc_->OwnerOf(b), OwnerOf(6));
  }
  alloc_->Adopt(r);
  for (uint32_t i = 0; i < r.count; ++i) EXPECT_EQ(alloc_->OwnerOf(r.start + BlockCount{i}), kLogOwner);
  EXPECT_EQ(alloc_->CountUsed(), 5u);

  BlockRun u = alloc_->TryAllocate(3, 8);
  ASSERT_EQ(u.count, 3u);
  alloc_->Release(u, 8);  // never committed: back to the pool at once
  for (uint32_t i = 0; i < u.count; ++i) {
    EXPECT_FALSE(alloc_->IsUsed(u.start + BlockCount{i}));
    EXPECT_EQ(alloc_->OwnerOf(u.start + BlockCount{i}), kFreeBlock);
  }
  EXPECT_EQ(alloc_->CountUsed(), 5u);
}

TEST_F(AllocatorTest, ClaimedBlocksAreFreedOnceAndOnlyByTheClaimer) {
  Make(256);
  BlockRun committed = alloc_->TryAllocate(4, kMe);
  ASSERT_EQ(committed.count, 4u);
  alloc_->Adopt(committed);
  BlockRun pending = alloc_->TryAllocate(4, kMe);  // allocated, not committed
  ASSERT_EQ(pending.count, 4u);
  for (uint32_t i = 0; i < 4; ++i) {
    LogicalBlock c = committed.start + BlockCount{i};
    LogicalBlock p = pending.start + BlockCount{i};
    EXPECT_TRUE(alloc_->Claim(c, kLogOwner, kMe));
    EXPECT_FALSE(alloc_->Claim(c, kLogOwner, kMe + 1)) << "a claimed block was claimed twice";
    EXPECT_FALSE(alloc_->Claim(p, kLogOwner, kMe)) << "an uncommitted block is its allocator's";
    EXPECT_TRUE(alloc_->IsUsed(c)) << "a claim alone frees nothing";
    alloc_->FreeClaimed(c);
    EXPECT_FALSE(alloc_->IsUsed(c));
    EXPECT_EQ(alloc_->OwnerOf(c), kFreeBlock);
    EXPECT_EQ(alloc_->OwnerOf(p), OwnerOf(kMe));
  }
  EXPECT_EQ(alloc_->CountUsed(), 4u);
}

TEST_F(AllocatorTest, UnclaimGivesABlockBackToTheLog) {
  // The ABA case a sweep guards against: a block it saw unreferenced was freed and reused, and is
  // log-owned again by the time the sweep claims it. The sweep looks again and gives it back.
  Make(128);
  alloc_->MarkUsed(BlockRun{LogicalBlock(10), 2});
  EXPECT_EQ(alloc_->OwnerOf(LogicalBlock(10)), kLogOwner);
  EXPECT_FALSE(alloc_->Claim(LogicalBlock(10), OwnerOf(5), kMe)) << "wrong expected owner";
  ASSERT_TRUE(alloc_->Claim(LogicalBlock(10), kLogOwner, kMe));
  EXPECT_EQ(alloc_->OwnerOf(LogicalBlock(10)), FreeingBy(kMe));
  alloc_->Unclaim(LogicalBlock(10));
  EXPECT_EQ(alloc_->OwnerOf(LogicalBlock(10)), kLogOwner);
  EXPECT_TRUE(alloc_->IsUsed(LogicalBlock(10)));
  EXPECT_EQ(alloc_->CountUsed(), 2u);
}

TEST_F(AllocatorTest, DeadMarksOnFreeBlocksAreVoided) {
  Make(128);
  BlockRun r = alloc_->TryAllocate(2, kMe);
  ASSERT_EQ(r.count, 2u);
  alloc_->Release(r, kMe);
  // A process that died after claiming an owner but before setting the bit leaves this state.
  EXPECT_FALSE(alloc_->VoidDeadClaim(r.start, OwnerOf(kMe))) << "nothing to void on a clean block";
  EXPECT_EQ(alloc_->TryAllocate(1, kMe + 1).count, 1u);
}

TEST_F(AllocatorTest, RandomAllocFreeMatchesAModel) {
  Make(1000);
  std::mt19937 rng(7);
  std::vector<bool> used(1000, false);
  std::vector<BlockRun> live;
  uint64_t used_count = 0;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || rng() % 3 != 0) {
      auto want = static_cast<uint32_t>(1 + rng() % 70);
      BlockRun r = alloc_->TryAllocate(want, kMe);
      if (r.count == 0) {
        ASSERT_EQ(used_count, 1000u) << "allocation failed with free blocks left";
        continue;
      }
      ASSERT_LE(r.count, want);
      for (uint32_t b = r.start.value(); b < r.end().value(); ++b) {
        ASSERT_LT(b, 1000u);
        ASSERT_FALSE(used[b]) << "block " << b << " handed out twice at step " << step;
        used[b] = true;
      }
      used_count += r.count;
      live.push_back(r);
    } else {
      size_t i = rng() % live.size();
      BlockRun r = live[i];
      live[i] = live.back();
      live.pop_back();
      alloc_->Release(r, kMe);
      for (uint32_t b = r.start.value(); b < r.end().value(); ++b) used[b] = false;
      used_count -= r.count;
    }
    ASSERT_EQ(alloc_->CountUsed(), used_count) << "step " << step;
  }
}

}  // namespace
}  // namespace tern
