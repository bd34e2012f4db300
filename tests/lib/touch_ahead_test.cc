// The Pool's thread grows a large file ahead of its writers (FileCore::GrowAhead) and touches the
// new pages only a little ahead of them (TouchAhead): a first touch costs microseconds a page on
// this kind of machine, and a file that stops soon after a step was added (a LevelDB table just
// past 2 MiB) must not have paid for a whole step of pages nobody writes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "tests/test_util.h"

namespace tern {
namespace {

uint64_t BackingBlocks(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size) / kBlockSize;
}

TEST(TouchAheadTest, ThePoolTouchesJustAheadOfAnAppenderNotAWholeStep) {
  test::TempDir dir;
  const std::string path = dir.File("f");
  auto opened = File::Open(path, O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(opened);
  File& f = **opened;
  FileCore& core = f.core();
  uint64_t appended = 0;
  auto append_until = [&](uint64_t blocks) {
    for (; appended < blocks; ++appended) {
      std::vector<uint8_t> data = test::Pattern(1, appended * kBlockSize, kBlockSize);
      auto n = f.Pwrite(data.data(), data.size(), appended * kBlockSize);
      ASSERT_TRUE(n.ok() && *n == kBlockSize) << test::Describe(n.status());
    }
  };
  // The Pool's job asked for last may still run (bounded wait).
  auto settle = [&] {
    for (int i = 0; i < 5000 && core.grow_ahead_scheduled_.load(); ++i) usleep(1000);
    ASSERT_FALSE(core.grow_ahead_scheduled_.load()) << "the Pool's thread did not get to the job";
  };

  // A small file is grown by its writer, who touches what it writes: nothing for the Pool.
  append_until(kBlocksPerGrowStep / 4);
  settle();
  EXPECT_EQ(core.touched_to_.load(), FileCore::kNothingToTouch);

  // Past half of the first 2 MiB the Pool's thread adds a step, untouched: the writer is far from it.
  append_until(kBlocksPerGrowStep * 3 / 5);
  settle();
  ASSERT_EQ(BackingBlocks(path), 2 * kBlocksPerGrowStep) << "the Pool's thread did not grow the file ahead";
  EXPECT_EQ(core.touched_to_.load(), kBlocksPerGrowStep);

  // Appending on through that step and past half of the next, the touches keep just ahead. (A
  // few blocks at a time: a writer that asks while the job runs is heard at its next ask, and one
  // on an idle machine can outrun the Pool's thread's wake-up, which is no failure of either.)
  const uint64_t stop = kBlocksPerGrowStep * 7 / 4;
  while (appended < stop) {
    append_until(std::min(stop, appended + FileCore::kTouchAheadBlocks / 2));
    settle();
  }
  uint64_t backing = BackingBlocks(path);
  uint64_t touched = core.touched_to_.load();
  uint64_t used = core.BlocksInUse();  // the meta block, the data, the log blocks
  ASSERT_GE(used, stop);
  EXPECT_EQ(backing, 3 * kBlocksPerGrowStep);
  EXPECT_GE(touched + FileCore::kTouchAheadBlocks, used) << "the touches fell behind the writer";
  EXPECT_LE(touched, used + 2 * FileCore::kTouchAheadBlocks) << "touched far past what was written";
  EXPECT_LT(touched, backing) << "a whole step was touched";

  // What was written is there.
  std::vector<uint8_t> got(stop * kBlockSize);
  auto n = f.Pread(got.data(), got.size(), 0);
  ASSERT_TRUE(n.ok() && *n == got.size()) << test::Describe(n.status());
  EXPECT_TRUE(got == test::Pattern(1, 0, got.size()));
}

}  // namespace
}  // namespace tern
