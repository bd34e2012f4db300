// Many writer processes on one file, killed with SIGKILL at random moments, one
// at a time, and respawned (DESIGN §5, §9): 3 processes × 2 writer threads
// (tests/crash/writer_fleet.h). After each kill, while the survivors keep
// writing, the file is checked (every completed write whole, the dead writer's
// op in flight whole or absent, holes intact) and the test process — which has
// the file open throughout — reclaims what the dead process left. Survivors
// must never block: a live writer that completes no op for 10 s fails the test.
// After the last kill, with every writer dead: blocks in use == blocks
// reachable from the log; and a fresh reopen sees the same file.
//
// 200 kills in CI; TERN_SOAK=1 runs 1,000 with a random seed (TERN_SOAK_SEED
// replays one).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "tests/crash/kill_harness.h"
#include "tests/crash/writer_fleet.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace tern::test {
namespace {

void RunSoak(int processes, int threads, uint32_t reopen_every, SoakConfig soak) {
  SCOPED_TRACE("seed " + std::to_string(soak.seed) +
               " (replay with TERN_SOAK_SEED)");
  std::mt19937_64 rng(soak.seed);
  TempDir dir;
  Fleet fleet(dir, processes, threads, reopen_every);
  ASSERT_TRUE(fleet.Start());
  auto held = File::Open(fleet.path(), O_RDWR);
  TERN_ASSERT_OK(held);
  File& f = **held;

  int kills_before_first_op = 0;
  for (int kill = 0; kill < soak.kills; ++kill) {
    SCOPED_TRACE("kill " + std::to_string(kill));
    int victim = static_cast<int>(rng() % static_cast<uint64_t>(processes));
    // Let the victim complete a random number of ops (0: kill it while it
    // opens), then spin a random while more, then kill it wherever it is.
    uint64_t ops = rng() % 4 == 0 ? 0 : rng() % 50;
    ASSERT_EQ(fleet.WaitForOps(victim, ops), "");
    SpinFor(rng() % 200000);
    if (fleet.OpsSinceSpawn(victim) == 0) ++kills_before_first_op;
    ASSERT_EQ(fleet.Kill(victim), "");
    std::string problems = fleet.Check(f);
    ASSERT_EQ(problems, "") << "after killing process " << victim;
    auto dead = f.core().ReclaimDeadSlots();  // while the survivors write
    TERN_ASSERT_OK(dead);
    ASSERT_TRUE(fleet.Spawn(victim));
  }
  ::testing::Test::RecordProperty("kills", soak.kills);
  ::testing::Test::RecordProperty("kills_before_first_op", kills_before_first_op);
  ::testing::Test::RecordProperty("ops_completed", static_cast<int>(fleet.TotalOps()));
  EXPECT_GT(fleet.TotalOps(), static_cast<uint64_t>(soak.kills))
      << "the writers hardly wrote";

  for (int p = 0; p < processes; ++p) ASSERT_EQ(fleet.Kill(p), "");
  ASSERT_EQ(fleet.Check(f), "") << "after the last kill";
  TERN_ASSERT_OK(f.core().ReclaimDeadSlots());
  // What the dead left that the log owns but no longer references goes in GC's full sweep (only
  // after GC's grace period is that safe while others might still read old log blocks).
  TERN_ASSERT_OK(f.core().Compact());
  TERN_ASSERT_OK(f.Fsync());
  ExpectNoLeak(f, "with every writer dead");
  held->reset();
  auto reopened =
      File::Open(fleet.path(), O_RDWR);  // the first opener: recovery rebuilds
  TERN_ASSERT_OK(reopened);
  ASSERT_EQ(fleet.Check(**reopened), "") << "after a fresh reopen";
}

TEST(KillSoakTest, WritersKilledAtRandomNeverBreakTheFileNorBlockTheOthers) {
  RunSoak(3, 2, 0, SoakFromEnv(200, 1000));
}

// Writers that close the file and open it again every few ops: each close hands its record
// arena's room over (lib/file_core_arena.cc) and the next open's first record takes it, so kills
// land in the middle of both. The same checks hold: nothing torn, nothing lost, no leak.
TEST(KillSoakTest, WritersThatReopenAndAreKilledHandTheirArenasOverSafely) {
  RunSoak(3, 1, 3, SoakFromEnv(60, 300));
}

}  // namespace
}  // namespace tern::test
