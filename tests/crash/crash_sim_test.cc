// The crash simulator over every workload of workloads.h (trace builds only, label `crash`): every
// distinct crash image recovers to an allowed log prefix, with a consistent free state. Each test
// checks its share of the ≥10,000-image CI budget; TERN_CRASH_SCALE=N multiplies the sample for
// soak runs, TERN_CRASH_SEED changes the random choices, TERN_CRASH_SAVE_DIR keeps failing images.
#include <gtest/gtest.h>

#include <iostream>

#include "build_options.h"
#include "pmem/log.h"
#include "tests/crash/crash_checker.h"
#include "tests/crash/scratch_dir.h"
#include "tests/crash/workloads.h"

namespace tern::crash {
namespace {

static_assert(kBuildOptions.pmem_trace, "the crash simulator needs a TERN_PMEM_TRACE=ON build");

struct Budget {
  uint64_t target;    // images asked for (spread over the crash points)
  uint64_t minimum;   // distinct images that must have been checked
};

void RunWorkload(const Workload& w, Budget budget) {
  SetLogLevel(LogLevel::kOff);  // recovery warns on every scrub; violations carry their own cause
  ScratchDir dir;
  ASSERT_TRUE(dir.ok());
  CheckOptions o;
  o.target_images = budget.target * ScaleFromEnv();
  o.seed = SeedFromEnv(7);
  CheckReport r = CheckWorkload(w, dir.path(), o);
  std::cout << r.Summary(w.name) << "\n";
  ::testing::Test::RecordProperty("distinct_images", static_cast<int>(r.distinct));
  ::testing::Test::RecordProperty("crash_points", static_cast<int>(r.crash_points));
  ASSERT_EQ(r.error, "");
  for (const std::string& e : r.examples) ADD_FAILURE() << e;
  EXPECT_EQ(r.violations, 0u);
  EXPECT_GE(r.distinct, budget.minimum) << "fewer crash images than the CI budget requires";
}

TEST(CrashSim, AlignedOverwrite) { RunWorkload(AlignedOverwrite(11, 160), {3200, 1000}); }
TEST(CrashSim, UnalignedOverwrite) { RunWorkload(UnalignedOverwrite(12, 160), {3200, 1000}); }
TEST(CrashSim, Append) { RunWorkload(Append(13, 200), {3200, 1000}); }
TEST(CrashSim, TruncateDownUp) { RunWorkload(TruncateDownUp(14, 160), {3200, 1000}); }
TEST(CrashSim, LogOverflow) { RunWorkload(LogOverflow(15, 1100), {4000, 2800}); }
TEST(CrashSim, Extended) { RunWorkload(Extended(16, 64), {2000, 800}); }
TEST(CrashSim, Compaction) { RunWorkload(Compaction(18), {3000, 1000}); }
TEST(CrashSim, TwoThreads) { RunWorkload(TwoThreads(17, 150), {3000, 1000}); }
// The minimums add up to 9,600 distinct images; what the sampling yields is higher (about 22,900
// with the engine of 38c31bd, whose lazier frees leave more entries in flight). Together at least
// 10,000 is the CI budget; each test prints its count.

}  // namespace
}  // namespace tern::crash
