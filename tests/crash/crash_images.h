// Crash images: what media may hold if power fails at a given moment of a trace. Each unsettled
// cache line (media_model.h) independently ends up with its durable content, its latest content,
// the content a pending flush captured, or — PM guarantees only 8-byte atomicity — a mix of those
// at 8-byte granularity. When the combinations are few they are all produced; otherwise a seeded
// random sample, always including "nothing in flight reached media" and "everything did".
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "tests/crash/media_model.h"

namespace tern::crash {

struct LineOverride {
  uint64_t line;
  LineBytes bytes;
};

// One crash image: the durable image with some lines replaced.
struct CrashImage {
  std::vector<LineOverride> overrides;
  uint64_t hash = 0;  // MediaModel-compatible hash of the whole image
};

struct SamplingPolicy {
  // Enumerate every combination when there are at most this many.
  uint64_t exhaustive_limit = 64;
  // Otherwise: this many random images (besides "none" and "all").
  uint32_t samples = 8;
  // Chance that a line chosen in a random image is torn (each 8-byte word old or new at random).
  double tear_probability = 0.25;
};

// The images a power failure at this moment of `m` could leave (duplicates possible; callers
// deduplicate by hash).
std::vector<CrashImage> CrashImages(const MediaModel& m, const SamplingPolicy& policy,
                                    std::mt19937_64& rng);

// The full image bytes: m.durable() with the overrides applied.
void Materialize(const MediaModel& m, const CrashImage& image, std::vector<uint8_t>* out);

}  // namespace tern::crash
