// Reads and overwrites past commits this process has not applied to its block table yet. A write
// leaves its own commit unapplied (the next refresh applies it), and a read or an overwrite looks
// at such commits without replaying them when they concern neither its blocks nor the size
// (FileCore::TailUntouched). Each case here puts a commit that does concern them right behind
// the table, so the look must send the operation through the replay.
#include <fcntl.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "tests/lib/file_model_fixture.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

class FileUnappliedTest : public test::FileModelTest {
 protected:
  // Reads [offset, offset+len) and compares it with the model.
  void ExpectRead(File& f, uint64_t offset, size_t len, const char* what) {
    std::vector<uint8_t> got(len, 0xee);
    auto n = f.Pread(got.data(), len, offset);
    ASSERT_TRUE(n.ok()) << what << ": " << test::Describe(n.status());
    size_t want = offset >= model_.size() ? 0 : std::min<size_t>(len, model_.size() - offset);
    ASSERT_EQ(*n, want) << what;
    got.resize(*n);
    std::vector<uint8_t> expected(model_.begin() + static_cast<ptrdiff_t>(std::min<uint64_t>(offset, model_.size())),
                                  model_.begin() + static_cast<ptrdiff_t>(std::min<uint64_t>(offset + want, model_.size())));
    ASSERT_EQ(test::FirstDifference(got, expected), -1) << what;
  }
  void ExpectNoLeak(File& f) {
    TERN_ASSERT_OK(f.Fsync());
    auto reachable = f.core().BlocksReachable();
    TERN_ASSERT_OK(reachable);
    EXPECT_EQ(*reachable, f.core().BlocksInUse()) << "every block in use is reachable from the log";
  }
};

// A read right after a write of the same block sees the write; a read of another block between
// them is served by the table as it stands.
TEST_F(FileUnappliedTest, AReadSeesTheWriteItsProcessHasNotApplied) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(1, 0, 8 * kBlockSize));
  for (uint64_t i = 0; i < 64; ++i) {
    uint64_t block = (i * 5) % 8;
    Write(*f, block * kBlockSize, Pattern(100 + i, 0, kBlockSize));
    ExpectRead(*f, ((block + 3) % 8) * kBlockSize, kBlockSize, "another block");
    ExpectRead(*f, block * kBlockSize, kBlockSize, "the block just written");
    ExpectRead(*f, block * kBlockSize + 100, 200, "inside the block just written");
  }
  ExpectModel(*f, "after the overwrites");
}

// A write that grows the file, then a read of what it added: the size in the table is behind.
TEST_F(FileUnappliedTest, AReadSeesAGrowthItsProcessHasNotApplied) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(1, 0, kBlockSize));
  for (uint64_t i = 1; i < 16; ++i) {
    // Block-aligned writes past the end: a hole, then new blocks (CoW, not an append in place).
    Write(*f, 2 * i * kBlockSize, Pattern(10 + i, 0, kBlockSize));
    ExpectRead(*f, 2 * i * kBlockSize, kBlockSize, "the new last block");
    ExpectRead(*f, 0, (2 * i + 1) * kBlockSize, "the whole file");
  }
  ExpectModel(*f, "after the growth");
}

// A truncate, then reads across the old end: they stop at the new one.
TEST_F(FileUnappliedTest, AReadSeesATruncateItsProcessHasNotApplied) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(1, 0, 8 * kBlockSize));
  Truncate(*f, 5000);
  ExpectRead(*f, 6 * kBlockSize, kBlockSize, "past the new end");
  ExpectRead(*f, 0, 8 * kBlockSize, "across the old end");
  // On a block boundary: the truncate maps no block, only the size tells.
  Write(*f, 0, Pattern(2, 0, 8 * kBlockSize));
  Truncate(*f, 2 * kBlockSize);
  ExpectRead(*f, 5 * kBlockSize, kBlockSize, "past the new aligned end");
  ExpectRead(*f, 0, 8 * kBlockSize, "across the old aligned end");
  Truncate(*f, 3 * kBlockSize);
  ExpectRead(*f, 0, 8 * kBlockSize, "after growing by a truncate");
  ExpectModel(*f, "after the truncates");
}

// Overwrites of one block in a row (each behind the last one's commit) and of different blocks:
// the overwritten blocks are freed, none twice, and the bytes are the last write's.
TEST_F(FileUnappliedTest, OverwritesBehindUnappliedCommitsFreeWhatTheySupersede) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(1, 0, 8 * kBlockSize));
  for (uint64_t i = 0; i < 200; ++i) {
    uint64_t block = i % 3 == 0 ? 2 : (i * 7) % 8;
    Write(*f, block * kBlockSize, Pattern(1000 + i, 0, kBlockSize));
    if (i % 50 == 49) ExpectNoLeak(*f);
  }
  ExpectModel(*f, "after the overwrites");
  ExpectNoLeak(*f);
  ReopenAndExpect(f, "reopen");
}

}  // namespace
}  // namespace tern
