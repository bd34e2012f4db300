// The crash simulator's judge: records a workload under the pmem trace, walks its crash points
// (timeline.h), builds crash images at each (crash_images.h), opens every distinct image through
// the engine — the first opener, so recovery runs — and checks that
//   - the file opens;
//   - its content is exactly the content after some prefix of the log that keeps every commit an
//     fsync acknowledged and no commit that had not happened (so each write and truncate is all or
//     nothing, and nothing fsynced is lost);
//   - the free-block state rebuilt from the log matches what the log reaches (no leak, no block
//     both free and mapped);
//   - on a share of the images, and on every image with stale entries past a gap in the log, a new
//     write after recovery survives a reopen intact (a stale entry must never come back).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/crash/crash_images.h"
#include "tests/crash/workload.h"

namespace tern::crash {

struct CheckOptions {
  uint64_t target_images = 1000;  // spread evenly over the crash points
  uint64_t min_per_point = 3;     // at least this many images per crash point
  uint32_t post_write_every = 4;  // new write + reopen after recovery on every Nth image
  uint64_t seed = 1;
  size_t max_examples = 5;        // violations described in full
};

struct CheckReport {
  uint64_t crash_points = 0;
  uint64_t commits = 0;
  uint64_t images = 0;         // generated
  uint64_t distinct = 0;       // checked (distinct by content)
  uint64_t gap_images = 0;     // distinct images with entries past a gap in the log
  uint64_t post_writes = 0;    // images that got the write-after-recovery check
  uint64_t violations = 0;
  std::vector<std::string> examples;
  std::string error;           // the run could not be judged at all
  std::string Summary(const std::string& name) const;
};

// Records `w` in `dir` (files `<name>.tern` and `<name>.image`) and judges every crash image.
CheckReport CheckWorkload(const Workload& w, const std::string& dir, const CheckOptions& options);

// Scale for the sample sizes: TERN_CRASH_SCALE (default 1) multiplies target_images, for soak runs.
uint64_t ScaleFromEnv();
// Seed: TERN_CRASH_SEED, else `fallback`.
uint64_t SeedFromEnv(uint64_t fallback);

}  // namespace tern::crash
