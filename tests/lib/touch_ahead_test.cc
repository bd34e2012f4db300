// The Pool's thread grows a file of 256 KiB or more ahead of its writers (FileCore::GrowAhead) and
// touches the new pages only a little ahead of them (TouchAhead): a first touch costs microseconds
// a page on this kind of machine, and a file that stops soon after a step was added (a LevelDB
// table just past 2 MiB) must not have paid for a whole step of pages nobody writes.
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
#include "lib/grow_ahead_asks.h"
#include "lib/layout_constants.h"
#include "tests/test_util.h"

namespace tern {
namespace {

uint64_t BackingBlocks(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size) / kBlockSize;
}

TEST(TouchAheadTest, ThePoolGrowsAndTouchesJustAheadOfAnAppender) {
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
    for (int i = 0; i < 5000 && core.grow_ahead_.scheduled.load(); ++i) usleep(1000);
    ASSERT_FALSE(core.grow_ahead_.scheduled.load()) << "the Pool's thread did not get to the job";
  };

  // A small file is grown by its writer, who touches what it writes: nothing for the Pool.
  append_until(24);
  settle();
  EXPECT_EQ(core.grow_ahead_.touched_to.load(), GrowAheadAsks::kNothingToTouch);
  EXPECT_LE(BackingBlocks(path), 64u);

  // From 256 KiB on the Pool's thread grows the file ahead of its writer (a quarter of it ahead
  // while doubling, then half of a 2 MiB step), and touches only a little ahead of it. (A few blocks at a time, each time until
  // the Pool's thread is done: a writer that asks while a job runs is heard at its next ask, and
  // one that outruns the job grows the file itself, which is no failure of either.)
  const uint64_t stop = kBlocksPerGrowStep * 7 / 4;
  uint64_t backing = 0;
  uint64_t touched = 0;
  while (appended < stop) {
    append_until(std::min(stop, appended + GrowAheadAsks::kTouchAheadBlocks / 8));
    settle();
    if (appended < 64) continue;
    backing = BackingBlocks(path);
    touched = core.grow_ahead_.touched_to.load();
    uint64_t used = core.BlocksInUse();  // the meta block, the data, the log blocks
    ASSERT_NE(touched, GrowAheadAsks::kNothingToTouch) << "the Pool's thread never grew the file ahead, at " << appended;
    ASSERT_GE(touched + GrowAheadAsks::kTouchAheadBlocks, used) << "the touches fell behind the writer, at " << appended;
    ASSERT_LE(touched, used + 2 * GrowAheadAsks::kTouchAheadBlocks) << "touched far past what was written, at " << appended;
    ASSERT_LE(touched, backing);
  }
  EXPECT_EQ(backing, 3 * kBlocksPerGrowStep);
  EXPECT_LT(touched + GrowAheadAsks::kTouchAheadBlocks, backing) << "a whole step was touched";

  // What was written is there.
  std::vector<uint8_t> got(stop * kBlockSize);
  auto n = f.Pread(got.data(), got.size(), 0);
  ASSERT_TRUE(n.ok() && *n == got.size()) << test::Describe(n.status());
  EXPECT_TRUE(got == test::Pattern(1, 0, got.size()));
}

}  // namespace
}  // namespace tern
