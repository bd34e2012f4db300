// The crash simulator must catch a known bug: with test_hooks::SkipDataFenceFlag() set, the write
// path CASes its commit entry without fencing the data first, so a power failure can persist the
// entry but not all of the data. The same workload with the flag clear must show no violation.
#include <gtest/gtest.h>

#include <iostream>

#include "build_options.h"
#include "lib/test_hooks.h"
#include "pmem/log.h"
#include "tests/crash/crash_checker.h"
#include "tests/crash/scratch_dir.h"
#include "tests/crash/workloads.h"

namespace tern::crash {
namespace {

static_assert(kBuildOptions.pmem_trace, "the planted bug exists only in TERN_PMEM_TRACE=ON builds");

class PlantedBug {
 public:
  explicit PlantedBug(bool on) { test_hooks::SkipDataFenceFlag() = on; }
  ~PlantedBug() { test_hooks::SkipDataFenceFlag() = false; }
};

CheckReport Check(bool planted) {
  SetLogLevel(LogLevel::kOff);
  ScratchDir dir;
  EXPECT_TRUE(dir.ok());
  PlantedBug bug(planted);
  CheckOptions o;
  o.target_images = 400;
  o.seed = SeedFromEnv(3);
  CheckReport r = CheckWorkload(AlignedAppend(21), dir.path(), o);
  std::cout << (planted ? "[planted] " : "[clean] ") << r.Summary("aligned_append") << "\n";
  return r;
}

TEST(PlantedBug, MissingDataFenceIsCaught) {
  CheckReport r = Check(true);
  ASSERT_EQ(r.error, "");
  EXPECT_GT(r.violations, 0u) << "the simulator missed a commit published before its data was fenced";
  if (!r.examples.empty()) std::cout << "first violation found: " << r.examples[0] << "\n";
}

TEST(PlantedBug, SameWorkloadWithTheFenceIsClean) {
  CheckReport r = Check(false);
  ASSERT_EQ(r.error, "");
  for (const std::string& e : r.examples) ADD_FAILURE() << e;
  EXPECT_EQ(r.violations, 0u);
  EXPECT_GT(r.distinct, 100u);
}

}  // namespace
}  // namespace tern::crash
