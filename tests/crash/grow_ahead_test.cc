// A writer that allocates near the end of the backing file asks the Pool's thread to grow it ahead
// (FileCore::Allocate, lib/file_core_grow.cc), and each ask wakes that thread. An overwrite-only file
// has freed space to wrap round to, so the job finds nothing to do; it must then not be asked again
// until the allocator has left the end and come back (once per pass over the file), or a writer
// near the end wakes it every few writes. Counted with a hook (trace builds only; label crash).
// A writer that runs out of space while that thread grows the file takes the new space.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "lib/test_hooks.h"
#include "tests/test_util.h"

namespace tern {
namespace {

// Bytes of the backing file (the kernel's view of the container).
off_t BackingBytes(const std::string& path) {
  struct stat st{};
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

std::atomic<int> g_grow_ahead_jobs{0};
void CountGrowAhead() { g_grow_ahead_jobs.fetch_add(1); }

TEST(GrowAheadTest, OverwritesWakeThePoolAtMostOncePerPassOverTheFile) {
  test::TempDir dir;
  auto opened = File::Open(dir.File("f"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(opened);
  File& f = **opened;
  constexpr uint32_t kFileBlocks = 1024;  // 4 MiB: near the end is a good part of the file
  std::vector<uint8_t> block(kBlockSize, 0x5a);
  for (uint32_t b = 0; b < kFileBlocks; ++b) TERN_ASSERT_OK(f.Pwrite(block.data(), block.size(), uint64_t{b} * kBlockSize));
  TERN_ASSERT_OK(f.Fsync());
  off_t backing_before = BackingBytes(dir.File("f"));
  ASSERT_GT(backing_before, 0);

  // A grow-ahead the prefill asked for may still be running (on a loaded machine): let it finish
  // first (bounded). One that had already passed the hook when it was installed would grow the
  // file unseen, and the overwrites could then stay in the space it made.
  for (int i = 0; i < 5000 && f.core().grow_ahead_.scheduled.load(); ++i) usleep(1000);
  g_grow_ahead_jobs.store(0);
  test_hooks::at_grow_ahead.callback.store(CountGrowAhead);
  constexpr uint32_t kPasses = 4;
  std::mt19937 rng(7);
  for (uint32_t i = 0; i < kPasses * kFileBlocks; ++i) {
    block[0] = static_cast<uint8_t>(i);
    TERN_ASSERT_OK(f.Pwrite(block.data(), block.size(), uint64_t{rng() % kFileBlocks} * kBlockSize));
    TERN_ASSERT_OK(f.Fsync());
  }
  // A job asked for last may still be queued on the Pool's thread: let it run (bounded).
  for (int i = 0; i < 5000 && f.core().grow_ahead_.scheduled.load(); ++i) usleep(1000);
  test_hooks::at_grow_ahead.callback.store(nullptr);

  // Each pass over the backing file comes near its end once; a few more for the passes the
  // allocator's first-fit scan makes over the space freed behind it.
  EXPECT_LE(g_grow_ahead_jobs.load(), static_cast<int>(4 * kPasses)) << "the Pool's thread was woken for nothing";
  EXPECT_GE(g_grow_ahead_jobs.load(), 1) << "the hook never ran: writers near the end must still ask once";
  // Overwrites reuse the space they free: the file did not have to grow for them.
  EXPECT_LE(BackingBytes(dir.File("f")), backing_before + static_cast<off_t>(kBlocksPerGrowStep * kBlockSize));
}

std::atomic<int> g_slow_growths{0};
void SlowGrowth() {
  g_slow_growths.fetch_add(1);
  usleep(100 * 1000);
}

// The Pool's thread grows a file of 256 KiB ahead of its writer (a doubling); a writer that runs out
// while that growth holds the grow lock must take the new space, not grow the file again.
TEST(GrowAheadTest, AWriterThatRunsOutWhileThePoolGrowsTakesThatSpace) {
  test::TempDir dir;
  auto opened = File::Open(dir.File("f"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(opened);
  File& f = **opened;
  std::vector<uint8_t> block(kBlockSize, 0x33);
  uint64_t written = 0;
  auto append_until = [&](uint64_t blocks) {
    for (; written < blocks; ++written) TERN_ASSERT_OK(f.Pwrite(block.data(), block.size(), written * kBlockSize));
  };
  g_slow_growths.store(0);
  test_hooks::while_growing_ahead.callback.store(SlowGrowth);
  // 64 blocks of backing (its writer doubled it so far), most of them used: the Pool's thread is
  // asked to double it and holds the grow lock for a while.
  append_until(56);
  for (int i = 0; i < 5000 && g_slow_growths.load() == 0; ++i) usleep(1000);
  ASSERT_EQ(g_slow_growths.load(), 1) << "the Pool's thread did not grow the file ahead";
  EXPECT_EQ(BackingBytes(dir.File("f")), static_cast<off_t>(128 * kBlockSize));
  // Past the 64 blocks that are published: this writer waits for the lock, then finds the space.
  append_until(80);
  for (int i = 0; i < 5000 && f.core().grow_ahead_.scheduled.load(); ++i) usleep(1000);
  test_hooks::while_growing_ahead.callback.store(nullptr);
  EXPECT_EQ(BackingBytes(dir.File("f")), static_cast<off_t>(128 * kBlockSize)) << "grown twice";
  std::vector<uint8_t> got(written * kBlockSize);
  auto n = f.Pread(got.data(), got.size(), 0);
  ASSERT_TRUE(n.ok() && *n == got.size());
  EXPECT_EQ(got, std::vector<uint8_t>(got.size(), 0x33));
}

}  // namespace
}  // namespace tern
