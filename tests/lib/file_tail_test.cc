// Appends that write the last block's tail in place (lib/file_core_tail.cc), and the tail rule
// that makes them safe: whatever lies past the end of the file never shows, however the file
// grows next (truncate up, fallocate, a write past the end). Each case is checked byte for byte
// against a model, before and after reopening.
#include <fcntl.h>
#include <linux/falloc.h>

#include <gtest/gtest.h>

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

class FileTailTest : public test::FileModelTest {
 protected:
  void Append(File& f, const std::vector<uint8_t>& data) {
    uint64_t at_expected = model_.size();
    auto at = f.Append(data.data(), data.size());
    ASSERT_TRUE(at.ok()) << test::Describe(at.status());
    ASSERT_EQ(*at, at_expected);
    ModelWrite(at_expected, data);
  }
  uint64_t Used(File& f) { return f.core().BlocksInUse(); }
};

// 300 appends of 100 bytes fill 8 blocks. Copied on write, each would take a block of its own (and
// free the one before only later); in place they take the 8 and a few for log and records.
TEST_F(FileTailTest, SmallAppendsTakeNoBlockPerAppend) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Append(*f, Pattern(1, 0, 100));
  uint64_t before = Used(*f);
  for (uint64_t i = 1; i < 300; ++i) Append(*f, Pattern(i + 1, 0, 100));
  uint64_t grew = Used(*f) - before;
  EXPECT_LE(grew, 16u) << "blocks taken by 299 appends of 100 bytes (8 hold the data)";
  ExpectModel(*f, "after the appends");
  TERN_ASSERT_OK(f->Fsync());
  auto reachable = f->core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_EQ(*reachable, Used(*f)) << "every block in use is reachable from the log";
  ReopenAndExpect(f, "reopen");
}

// A pwrite at exactly the end (what write(2) on a non-O_APPEND fd does) takes the same path; one
// that crosses into new blocks writes the tail in place and the rest into new blocks.
TEST_F(FileTailTest, WritesAtTheEndAndAcrossBlocks) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(1, 0, 1000));
  uint64_t before = Used(*f);
  for (uint64_t i = 0; i < 100; ++i) Write(*f, model_.size(), Pattern(i + 2, 0, 777));
  EXPECT_LE(Used(*f) - before, 30u) << "77,700 bytes need 19 blocks";
  ExpectModel(*f, "pwrites at the end");
  Write(*f, model_.size(), Pattern(200, 0, 3 * kBlockSize + 5));  // tail, 3 blocks, 5 bytes
  Append(*f, Pattern(201, 0, 2 * kBlockSize));
  ExpectModel(*f, "large writes at the end");
  ReopenAndExpect(f, "reopen");
}

// After in-place appends, every way of growing the file shows zeros past the old end, and every
// way of shrinking it keeps only what lies before the cut.
TEST_F(FileTailTest, GrowingAfterAppendsShowsZeros) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Append(*f, Pattern(1, 0, 1500));
  Append(*f, Pattern(2, 0, 600));
  Truncate(*f, 2500);  // up, inside the same block
  ExpectModel(*f, "truncate up in the block");
  Append(*f, Pattern(3, 0, 300));
  Truncate(*f, 3 * kBlockSize + 100);  // up, into a later block
  ExpectModel(*f, "truncate up past the block");
  Append(*f, Pattern(4, 0, 50));
  Write(*f, model_.size() + 2 * kBlockSize + 10, Pattern(5, 0, 200));  // past the end, beyond the block
  ExpectModel(*f, "write past the end");
  Append(*f, Pattern(6, 0, 70));
  Write(*f, model_.size() + 30, Pattern(7, 0, 40));  // past the end, inside the block
  ExpectModel(*f, "write past the end in the block");
  Append(*f, Pattern(8, 0, 90));
  TERN_ASSERT_OK(f->Fallocate(0, model_.size(), 5000));
  ModelTruncate(model_.size() + 5000);
  ExpectModel(*f, "fallocate growth");
  Append(*f, Pattern(9, 0, 33));
  TERN_ASSERT_OK(f->Fallocate(FALLOC_FL_ZERO_RANGE, model_.size() - 10, 3000));
  ModelWrite(model_.size() - 10, std::vector<uint8_t>(3000, 0));
  ExpectModel(*f, "zero range growth");
  Append(*f, Pattern(10, 0, 500));
  Truncate(*f, model_.size() - 300);  // down inside the block, then up again
  Truncate(*f, model_.size() + 1000);
  ExpectModel(*f, "down and up");
  ReopenAndExpect(f, "reopen");
}

// Two handles of one file in one process share the engine; appends through either land in order.
TEST_F(FileTailTest, AppendsThroughTwoHandles) {
  auto a = Create();
  ASSERT_NE(a, nullptr);
  auto b = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(b);
  for (uint64_t i = 0; i < 50; ++i) {
    Append(*a, Pattern(2 * i, 0, 123));
    Append(**b, Pattern(2 * i + 1, 0, 45));
  }
  ExpectModel(**b, "appends through two handles");
  b->reset();
  ReopenAndExpect(a, "reopen");
}

}  // namespace
}  // namespace tern
