// GC under load, and killed in the middle (DESIGN §3, §5): a compactor process
// compacts a sparse file over and over (FileCore::Compact) while a writer fleet
// (writer_fleet.h) writes and the test reads; the compactor is SIGKILLed at
// random moments, mostly inside a compaction, and respawned. After each kill
// the file checks out (every completed write whole, nothing torn, the holes
// still holes for reads and SEEK_HOLE/SEEK_DATA), and the writers never stop
// making progress. At the end: the next compaction takes over from the dead one
// and shrinks the log, and blocks in use == blocks reachable.
//
// Two ways to crash: with the test and the writers holding the file open (the
// survivors and the next compactor deal with what the dead one left), and with
// everything killed and the file reopened by a first opener (recovery deals
// with it).
//
// 30 + 20 kills in CI; TERN_SOAK=1 runs 200 + 100 (TERN_SOAK_SEED replays).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>

#include "lib/file.h"
#include "lib/file_core.h"
#include "pmem/log.h"
#include "tests/crash/kill_harness.h"
#include "tests/crash/writer_fleet.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace tern::test {
namespace {

class GcKillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    compactor_ = CreateShared<CompactorShared>(compactor_path_);
    ASSERT_NE(compactor_, nullptr);
  }
  void TearDown() override {
    if (pid_ > 0) KillAndReap(pid_);
  }

  void SpawnCompactor() {
    compactor_->in_compaction.store(0);
    pid_ = SpawnSelf({"--compactor-child", fleet_.path(), compactor_path_});
    ASSERT_GT(pid_, 0);
  }

  // Waits until the compactor has begun one to three more compactions and,
  // mostly, is inside one; then spins a random while and kills it. Returns
  // whether the kill landed inside Compact().
  bool KillCompactorAtRandom(std::mt19937_64& rng) {
    uint64_t until = compactor_->attempts.load() + 1 + rng() % 3;
    bool want_inside = rng() % 4 != 0;
    auto last_attempts = compactor_->attempts.load();
    auto last_change = std::chrono::steady_clock::now();
    while (compactor_->attempts.load() < until ||
           (want_inside && compactor_->in_compaction.load() == 0)) {
      std::string problem = fleet_.Watch();
      EXPECT_EQ(problem, "");
      if (!problem.empty()) return false;
      auto now = std::chrono::steady_clock::now();
      if (compactor_->attempts.load() != last_attempts) {
        last_attempts = compactor_->attempts.load();
        last_change = now;
      } else if (now - last_change > kProgressDeadline) {
        ADD_FAILURE() << "the compactor started no compaction for "
                      << kProgressDeadline.count() << " s";
        return false;
      }
      usleep(50);  // polling; the deadlines are above
    }
    SpinFor(rng() % 100000);
    bool inside = compactor_->in_compaction.load() != 0;
    int status = KillAndReap(pid_);
    pid_ = -1;
    EXPECT_TRUE(WIFSIGNALED(status))
        << "the compactor exited by itself with code " << WEXITSTATUS(status)
        << ", error " << compactor_->error.load();
    return inside;
  }

  // Lets the writers write until the log holds enough for a checkpoint, then
  // kills them. They compact by themselves too, and one may do so between the
  // look and its kill: then the log is short again, and they write on.
  void StopWritersWithACompactableLog() {
    auto f = File::Open(fleet_.path(), O_RDWR);
    TERN_ASSERT_OK(f);
    for (int attempt = 0;; ++attempt) {
      for (int round = 0; (*f)->core().LogLength() < 4 * pmem::kLogSlots; ++round) {
        ASSERT_LT(round, 100) << "the log never grew long enough to compact";
        for (int p = 0; p < 2; ++p)
          ASSERT_EQ(fleet_.WaitForOps(p, fleet_.OpsSinceSpawn(p) + 1000), "");
      }
      for (int p = 0; p < 2; ++p) ASSERT_EQ(fleet_.Kill(p), "");
      if ((*f)->core().LogLength() >= 4 * pmem::kLogSlots) return;
      ASSERT_LT(attempt, 5) << "the writers' own compactions kept the log short";
      // Resolves the killed writers, so that the new ones carry on after their last op.
      ASSERT_EQ(fleet_.Check(**f), "") << "before starting the writers again";
      for (int p = 0; p < 2; ++p) ASSERT_TRUE(fleet_.Spawn(p));
    }
  }

  TempDir dir_;
  Fleet fleet_{dir_, 2, 2};
  std::string compactor_path_ = dir_.File("compactor.shared");
  CompactorShared* compactor_ = nullptr;
  pid_t pid_ = -1;
};

// The final compaction (by the test, every other process dead) must take over
// from the dead compactor, compact the log that the writers left, and drain.
void ExpectFinalCompactionShrinksTheLog(File& f) {
  auto before = f.core().GetStats();
  auto stats = f.core().Compact();
  ASSERT_TRUE(stats.ok()) << "after the kills, compaction fails: "
                          << Describe(stats.status());
  ASSERT_GT(stats->checkpoint_runs, 0u)
      << "nothing compacted; log entries " << stats->entries_before;
  EXPECT_LT(stats->entries_after, stats->entries_before);
  EXPECT_TRUE(stats->drained)
      << "nobody else runs, yet old operations did not drain";
  auto after = f.core().GetStats();
  EXPECT_LT(after.log_entries, before.log_entries)
      << "the log an opener replays did not shrink";
  EXPECT_GT(after.gc_runs, before.gc_runs);
}

TEST_F(GcKillTest, CompactorKilledWhileOthersReadAndWrite) {
  SoakConfig soak = SoakFromEnv(30, 200);
  SCOPED_TRACE("seed " + std::to_string(soak.seed) +
               " (replay with TERN_SOAK_SEED)");
  std::mt19937_64 rng(soak.seed);
  ASSERT_TRUE(fleet_.Start());
  auto held = File::Open(fleet_.path(), O_RDWR);
  TERN_ASSERT_OK(held);
  int inside = 0;
  for (int kill = 0; kill < soak.kills; ++kill) {
    SCOPED_TRACE("kill " + std::to_string(kill));
    SpawnCompactor();
    inside += KillCompactorAtRandom(rng) ? 1 : 0;
    ASSERT_FALSE(HasFailure());
    ASSERT_EQ(fleet_.Check(**held), "") << "after killing the compactor";
  }
  RecordProperty("kills", soak.kills);
  RecordProperty("kills_inside_compaction", inside);
  RecordProperty("compactions",
                 static_cast<int>(compactor_->compactions.load()));
  EXPECT_GT(compactor_->compactions.load(), 0u)
      << "no compaction ever completed";
  EXPECT_GT(inside, 0) << "no kill landed inside a compaction";

  // Enough log for the final compaction, with no compactor running; then stop
  // the writers.
  StopWritersWithACompactableLog();
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(fleet_.Check(**held), "") << "after stopping the writers";
  // The sweep of the dead processes' slots collects what they claimed; the
  // final compaction's full sweep what the log owns and no longer references
  // (retired blocks of killed compactions, records only compacted entries
  // referenced).
  auto dead = (*held)->core().ReclaimDeadSlots();
  TERN_ASSERT_OK(dead);
  EXPECT_GT(*dead, 0u) << "the killed processes left no slots to reclaim";
  ExpectFinalCompactionShrinksTheLog(**held);
  ASSERT_EQ(fleet_.Check(**held), "") << "after the final compaction";
  TERN_ASSERT_OK((*held)->Fsync());
  ExpectNoLeak(**held, "after the final compaction and the sweep");
  held->reset();
  auto reopened = File::Open(fleet_.path(), O_RDWR);
  TERN_ASSERT_OK(reopened);
  ASSERT_EQ(fleet_.Check(**reopened), "") << "after a fresh reopen";
}

TEST_F(GcKillTest, CompactorKilledThenRecoveredByTheFirstOpener) {
  SoakConfig soak = SoakFromEnv(20, 100);
  SCOPED_TRACE("seed " + std::to_string(soak.seed) +
               " (replay with TERN_SOAK_SEED)");
  std::mt19937_64 rng(soak.seed + 1);
  ASSERT_TRUE(fleet_.Start());
  for (int round = 0; round < soak.kills; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    SpawnCompactor();
    for (int p = 0; p < 2; ++p)
      ASSERT_EQ(fleet_.WaitForOps(p, 600), "");  // a log worth compacting
    KillCompactorAtRandom(rng);
    ASSERT_FALSE(HasFailure());
    for (int p = 0; p < 2; ++p) ASSERT_EQ(fleet_.Kill(p), "");
    {
      // Nobody has the file open: this open recovers it and rebuilds the shared
      // state.
      auto f = File::Open(fleet_.path(), O_RDWR);
      TERN_ASSERT_OK(f);
      ASSERT_EQ(fleet_.Check(**f), "") << "after recovery";
    }
    for (int p = 0; p < 2; ++p) ASSERT_TRUE(fleet_.Spawn(p));
  }
  StopWritersWithACompactableLog();
  ASSERT_FALSE(HasFailure());
  auto f = File::Open(fleet_.path(), O_RDWR);
  TERN_ASSERT_OK(f);
  ASSERT_EQ(fleet_.Check(**f), "");
  ExpectFinalCompactionShrinksTheLog(**f);
}

}  // namespace
}  // namespace tern::test
