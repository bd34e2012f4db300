// A block superseded by another thread's commit is freed only once that commit is durable
// (FileCore::FreeOnceSupersedingIsDurable, lib/file_core.cc). A replay applies an entry to the
// table before it advances the replay position; a thread that saw the new table and read the
// position in between without the replay lock would free the block when the position *before*
// the superseding commit is durable — and a power failure could then bring back a log that still
// maps the block after it was reused. Landed on purpose with hooks (trace builds only; label
// crash): an unpinning thread finds its pinned block superseded while a replay of the superseding
// commit is paused in that window, and a second thread's fsync, which had refreshed just before
// the commit, flushes and frees meanwhile.
#include <fcntl.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "lib/test_hooks.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;

// What the hooks (plain function pointers) share with the test.
struct Stages {
  std::atomic<bool> unpinner_waits{false}, unpinner_go{false}, unpinner_done{false};
  std::atomic<bool> flusher_waits{false}, flusher_go{false}, flusher_done{false};
  std::atomic<bool> replay_paused{false};
  std::atomic<std::thread::id> unpinner, flusher;
  File* file = nullptr;
  uint64_t used_at_pause = 0, used_before_advance = 0;
  bool unpinner_finished_in_window = false;
};
Stages* g_stages = nullptr;

// Waits until flag is set, at most `limit`; true when it was.
bool WaitFor(const std::atomic<bool>& flag, std::chrono::milliseconds limit) {
  auto until = Clock::now() + limit;
  while (!flag.load()) {
    if (Clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

constexpr auto kLong = std::chrono::seconds(20);       // for what must happen
constexpr auto kWindow = std::chrono::milliseconds(500);  // for what must not

void UnpinnerPause() {
  Stages& s = *g_stages;
  if (std::this_thread::get_id() != s.unpinner.load()) return;
  s.unpinner_waits.store(true);
  WaitFor(s.unpinner_go, kLong);
}

void FlusherPause() {
  Stages& s = *g_stages;
  if (std::this_thread::get_id() != s.flusher.load()) return;
  s.flusher_waits.store(true);
  WaitFor(s.flusher_go, kLong);
}

// The superseding commit is in the table, the replay position not yet past it: let the unpinner
// look (it must wait for the replay lock), then let the flusher flush and free what it may.
void ReplayPause() {
  Stages& s = *g_stages;
  test_hooks::after_replay_apply.callback.store(nullptr);  // once
  s.used_at_pause = s.file->core().BlocksInUse();
  s.replay_paused.store(true);
  s.unpinner_go.store(true);
  s.unpinner_finished_in_window = WaitFor(s.unpinner_done, kWindow);
  s.flusher_go.store(true);
  WaitFor(s.flusher_done, kLong);
  s.used_before_advance = s.file->core().BlocksInUse();
}

TEST(FreeOrderTest, ASupersededBlockIsFreedOnlyOnceItsSupersederIsDurable) {
  test::TempDir dir;
  auto opened = File::Open(dir.File("f"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(opened);
  File& f = **opened;
  std::vector<uint8_t> old_bytes(kBlockSize, 'o'), new_bytes(kBlockSize, 'n');
  TERN_ASSERT_OK(f.Pwrite(old_bytes.data(), old_bytes.size(), 0));
  TERN_ASSERT_OK(f.Fsync());
  auto pinned = f.core().PinBlocks(0, 1);
  TERN_ASSERT_OK(pinned);
  ASSERT_EQ(pinned->blocks.size(), 1u);

  Stages stages;
  stages.file = &f;
  g_stages = &stages;
  test_hooks::after_unpin_refresh.callback.store(UnpinnerPause);
  test_hooks::after_flush_refresh.callback.store(FlusherPause);
  std::thread unpinner([&] {
    stages.unpinner = std::this_thread::get_id();
    f.core().UnpinBlocks(pinned->blocks);  // pauses after its Refresh
    stages.unpinner_done.store(true);
  });
  std::thread flusher([&] {
    while (!stages.unpinner_waits.load()) std::this_thread::yield();
    stages.flusher = std::this_thread::get_id();
    Status synced = f.Fsync();  // pauses after its Refresh
    EXPECT_TRUE(synced.ok()) << test::Describe(synced);
    stages.flusher_done.store(true);
  });
  ASSERT_TRUE(WaitFor(stages.unpinner_waits, kLong));
  ASSERT_TRUE(WaitFor(stages.flusher_waits, kLong));
  // Both looked at the log before this commit, which supersedes the pinned block; whichever
  // thread replays it first pauses there.
  test_hooks::after_replay_apply.callback.store(ReplayPause);
  TERN_ASSERT_OK(f.Pwrite(new_bytes.data(), new_bytes.size(), 0));
  TERN_ASSERT_OK(f.Size());
  unpinner.join();
  flusher.join();
  test_hooks::after_unpin_refresh.callback.store(nullptr);
  test_hooks::after_flush_refresh.callback.store(nullptr);
  test_hooks::after_replay_apply.callback.store(nullptr);
  g_stages = nullptr;

  ASSERT_TRUE(stages.replay_paused.load()) << "the superseding commit was never replayed";
  EXPECT_FALSE(stages.unpinner_finished_in_window)
      << "the unpinner handed its block to be freed without waiting for the replay in progress";
  EXPECT_EQ(stages.used_before_advance, stages.used_at_pause)
      << "a block was freed while the commit superseding it was not yet durable";
  // Afterwards it is freed: nothing leaks.
  TERN_ASSERT_OK(f.Fsync());
  auto reachable = f.core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_EQ(f.core().BlocksInUse(), *reachable);
  auto got = test::ReadAll(f);
  TERN_ASSERT_OK(got);
  EXPECT_EQ(*got, new_bytes);
}

}  // namespace
}  // namespace tern
