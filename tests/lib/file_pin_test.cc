// Pinned blocks (lib/file_core_pin.cc): what the shim's direct mmap shows. A pinned block keeps its
// bytes while the file is overwritten, truncated and written again (nothing reuses it), and comes
// back to the allocator once unpinned: freed if it was superseded, the log's again if not.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "tests/lib/file_model_fixture.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

class FilePinTest : public test::FileModelTest {
 protected:
  // The bytes of the pinned blocks, read where they lie in the backing file.
  static std::vector<uint8_t> PinnedBytes(File& f, const FileCore::PinnedBlocks& pinned) {
    std::vector<uint8_t> out;
    for (auto [v, l] : pinned.blocks) {
      const uint8_t* p = f.core().Resolve(LogicalBlock(l), 1);
      EXPECT_NE(p, nullptr);
      if (p != nullptr) out.insert(out.end(), p, p + kBlockSize);
    }
    return out;
  }
  // Overwrites, truncates and rewrites the whole file several times, fsyncing each round: without
  // the pin, the blocks it supersedes are freed at each fsync and the next round's writes reuse them.
  void Churn(File& f, uint64_t bytes) {
    for (uint64_t round = 0; round < 6; ++round) {
      Write(f, 0, Pattern(100 + round, 0, bytes));
      TERN_ASSERT_OK(f.Fsync());
      Truncate(f, 0);
      Write(f, 0, Pattern(200 + round, 0, bytes * 2));
      TERN_ASSERT_OK(f.Fsync());
    }
  }
  static void ExpectNoLeak(File& f, const char* when) {
    TERN_ASSERT_OK(f.Fsync());
    auto reachable = f.core().BlocksReachable();
    TERN_ASSERT_OK(reachable);
    EXPECT_EQ(f.core().BlocksInUse(), *reachable) << when << ": blocks in use that the log does not reach";
  }
};

// Whole blocks only: the last partial block (an in-place append may write past the end there) and
// holes are left out; what is pinned keeps its bytes through any amount of rewriting.
TEST_F(FilePinTest, PinnedBlocksKeepTheirBytesWhileTheFileIsRewritten) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  constexpr uint64_t kBytes = 64 * kBlockSize;
  Write(*f, 0, Pattern(1, 0, 20 * kBlockSize));
  Write(*f, 30 * kBlockSize, Pattern(1, 30 * kBlockSize, kBytes - 30 * kBlockSize + 100));  // a hole, a partial tail
  TERN_ASSERT_OK(f->Fsync());
  auto pinned = f->core().PinBlocks(0, 100);
  TERN_ASSERT_OK(pinned);
  EXPECT_EQ(pinned->size, kBytes + 100);
  ASSERT_EQ(pinned->blocks.size(), 20u + 34u) << "blocks 0-19 and 30-63: not the hole, not the partial last block";
  EXPECT_EQ(pinned->blocks.front().first, 0u);
  EXPECT_EQ(pinned->blocks[20].first, 30u);
  EXPECT_EQ(pinned->blocks.back().first, 63u);
  std::vector<uint8_t> before = PinnedBytes(*f, *pinned);
  std::vector<uint8_t> expected = model_;
  for (size_t i = 0; i < pinned->blocks.size(); ++i) {
    uint32_t v = pinned->blocks[i].first;
    ASSERT_EQ(memcmp(before.data() + i * kBlockSize, expected.data() + uint64_t{v} * kBlockSize, kBlockSize), 0)
        << "pinned block for virtual block " << v << " does not hold the file's bytes";
  }

  Churn(*f, kBytes);
  EXPECT_EQ(PinnedBytes(*f, *pinned), before) << "a pinned block was reused while pinned";
  ExpectModel(*f, "after the churn");

  f->core().UnpinBlocks(pinned->blocks);
  ExpectNoLeak(*f, "after unpinning superseded blocks");
  ReopenAndExpect(f, "reopen");
}

// Unpinned without any change, the blocks are the log's again: a later overwrite frees them.
TEST_F(FilePinTest, UnpinnedBlocksAreFreedByTheirSupersederAgain) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(1, 0, 16 * kBlockSize));
  TERN_ASSERT_OK(f->Fsync());
  uint64_t used = f->core().BlocksInUse();
  auto pinned = f->core().PinBlocks(0, 16);
  TERN_ASSERT_OK(pinned);
  ASSERT_EQ(pinned->blocks.size(), 16u);
  f->core().UnpinBlocks(pinned->blocks);
  for (uint64_t round = 0; round < 8; ++round) Write(*f, 0, Pattern(10 + round, 0, 16 * kBlockSize));
  ExpectNoLeak(*f, "after overwriting unpinned blocks");
  EXPECT_LE(f->core().BlocksInUse(), used + 4) << "the overwrites' superseded blocks were not freed";
  ExpectModel(*f, "after the overwrites");
}

// A block already claimed (here by a first pin) cannot be pinned again: EBUSY, and the failed
// attempt gives back only what it took, so the first pin still holds.
TEST_F(FilePinTest, ABlockClaimedAlreadyIsBusyAndTheFirstPinStillHolds) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(1, 0, 8 * kBlockSize));
  TERN_ASSERT_OK(f->Fsync());
  auto first = f->core().PinBlocks(4, 8);
  TERN_ASSERT_OK(first);
  auto second = f->core().PinBlocks(0, 8);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().err(), EBUSY);
  std::vector<uint8_t> before = PinnedBytes(*f, *first);
  Churn(*f, 8 * kBlockSize);
  EXPECT_EQ(PinnedBytes(*f, *first), before);
  auto again = f->core().PinBlocks(0, 16);  // the blocks churned in are free to pin
  TERN_ASSERT_OK(again);
  f->core().UnpinBlocks(first->blocks);
  f->core().UnpinBlocks(again->blocks);
  ExpectNoLeak(*f, "after both unpins");
}

// A process that dies holding pins leaves blocks claimed by its slot. Another process with the
// file open takes the dead slot back and GC's full sweep frees what no commit references.
TEST_F(FilePinTest, PinsOfADeadProcessAreSwept) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(1, 0, 32 * kBlockSize));
  TERN_ASSERT_OK(f->Fsync());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto child = File::Open(path_, O_RDWR);
    if (!child.ok()) _exit(2);
    auto pinned = (*child)->core().PinBlocks(0, 32);
    if (!pinned.ok() || pinned->blocks.size() != 32) _exit(3);
    auto data = Pattern(2, 0, 32 * kBlockSize);
    if (!(*child)->Pwrite(data.data(), data.size(), 0).ok() || !(*child)->Fsync().ok()) _exit(4);
    _exit(0);  // dies holding the pin on the 32 superseded blocks
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  model_ = Pattern(2, 0, 32 * kBlockSize);
  ExpectModel(*f, "after the pinning process died");
  auto reachable = f->core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_GE(f->core().BlocksInUse(), *reachable + 32) << "the dead process's pinned blocks are still held";
  auto dead = f->core().ReclaimDeadSlots();
  TERN_ASSERT_OK(dead);
  EXPECT_GE(*dead, 1u);
  TERN_ASSERT_OK(f->core().Compact(FileCore::GcMode::kFull));
  ExpectNoLeak(*f, "after the sweep");
}

}  // namespace
}  // namespace tern
