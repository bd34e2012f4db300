// How a backing file grows (doc/format/file.md, BackingBlocksFor): a new file is 64 KiB, a small
// file doubles up to 2 MiB, a large one grows in whole 2 MiB steps; a backing of any other size (a
// format or grow cut short) is grown to the next allowed size by the next first open that may
// write the backing file, with nothing lost.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lib/file.h"
#include "lib/layout_constants.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

uint64_t BackingBytes(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size);
}

// Writes `bytes` of pattern `seed` at 0 in one call, then closes the file and waits for the
// background thread to let go of it (it may be growing ahead).
void WriteAndClose(const std::string& path, uint64_t seed, uint64_t bytes) {
  auto f = File::Open(path, O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(f);
  std::vector<uint8_t> data = Pattern(seed, 0, bytes);
  auto n = (*f)->Pwrite(data.data(), data.size(), 0);
  ASSERT_TRUE(n.ok() && *n == bytes) << test::Describe(n.status());
  test::CloseAndSettle(std::move(*f));
}

void ExpectContent(const std::string& path, uint64_t seed, uint64_t bytes) {
  auto f = File::Open(path, O_RDONLY);
  TERN_ASSERT_OK(f);
  auto got = test::ReadAll(**f);
  TERN_ASSERT_OK(got);
  EXPECT_EQ(test::FirstDifference(*got, Pattern(seed, 0, bytes)), -1) << path;
}

TEST(BackingGrowthTest, TheRuleDoublesFrom64KiBThenTakesWholeSteps) {
  EXPECT_EQ(BackingBlocksFor(0), kFirstBlocks);
  EXPECT_EQ(BackingBlocksFor(1), kFirstBlocks);
  EXPECT_EQ(BackingBlocksFor(16), 16u);
  EXPECT_EQ(BackingBlocksFor(17), 32u);
  EXPECT_EQ(BackingBlocksFor(33), 64u);
  EXPECT_EQ(BackingBlocksFor(300), 512u);
  EXPECT_EQ(BackingBlocksFor(512), 512u);
  EXPECT_EQ(BackingBlocksFor(513), 1024u);
  EXPECT_EQ(BackingBlocksFor(5000), 5120u);
}

TEST(BackingGrowthTest, SmallFilesKeepSmallBackings) {
  test::TempDir dir;
  WriteAndClose(dir.File("tiny"), 1, 100);
  EXPECT_EQ(BackingBytes(dir.File("tiny")), 64u << 10);
  // 25 data blocks: past 64 KiB, so it doubles (and the background may double it once more).
  WriteAndClose(dir.File("small"), 2, 100 << 10);
  uint64_t small = BackingBytes(dir.File("small"));
  EXPECT_GE(small, 128u << 10);
  EXPECT_LE(small, 256u << 10);
  WriteAndClose(dir.File("large"), 3, 3 << 20);
  uint64_t large = BackingBytes(dir.File("large"));
  EXPECT_EQ(large % (2u << 20), 0u) << large;
  EXPECT_LE(large, 8u << 20);
  for (const char* name : {"tiny", "small", "large"}) {
    uint64_t blocks = BackingBytes(dir.File(name)) / kBlockSize;
    EXPECT_EQ(BackingBlocksFor(blocks), blocks) << name << ": a size the rule does not produce";
  }
  ExpectContent(dir.File("tiny"), 1, 100);
  ExpectContent(dir.File("small"), 2, 100 << 10);
  ExpectContent(dir.File("large"), 3, 3 << 20);
}

// A grow cut short: the backing was extended past 64 KiB, but not to 128 KiB.
TEST(BackingGrowthTest, AnInterruptedGrowIsFinishedByTheNextOpen) {
  test::TempDir dir;
  std::string path = dir.File("f");
  WriteAndClose(path, 4, 30000);
  ASSERT_EQ(BackingBytes(path), 64u << 10);
  ASSERT_EQ(truncate(path.c_str(), 80 << 10), 0);

  ExpectContent(path, 4, 30000);
  EXPECT_EQ(BackingBytes(path), 128u << 10);
  {
    auto f = File::Open(path, O_RDWR);
    TERN_ASSERT_OK(f);
    std::vector<uint8_t> more = Pattern(4, 30000, 100000);
    TERN_ASSERT_OK((*f)->Pwrite(more.data(), more.size(), 30000));
    test::CloseAndSettle(std::move(*f));
  }
  ExpectContent(path, 4, 130000);
}

// A format cut short: the meta block is written, the file never grew.
TEST(BackingGrowthTest, AnInterruptedFormatIsFinishedByTheNextOpen) {
  test::TempDir dir;
  std::string path = dir.File("f");
  WriteAndClose(path, 5, 0);
  ASSERT_EQ(truncate(path.c_str(), kBlockSize), 0);
  {
    auto f = File::Open(path, O_RDWR);
    TERN_ASSERT_OK(f);
    EXPECT_EQ(BackingBytes(path), uint64_t{kFirstBlocks} * kBlockSize);
    std::vector<uint8_t> data = Pattern(5, 0, 5000);
    TERN_ASSERT_OK((*f)->Pwrite(data.data(), data.size(), 0));
    test::CloseAndSettle(std::move(*f));
  }
  ExpectContent(path, 5, 5000);
}

}  // namespace
}  // namespace tern
