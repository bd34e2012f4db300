// GrowAheadAsks: what the writers of one file ask of this process's Pool thread, and how far it
// got. Near the end of the backing file a writer asks for a step to be grown (GrowStepAhead); near
// the end of what the Pool's thread touched of a step it grew, for the next pages to be touched
// (TouchAhead), so that writers take no first-touch fault and nobody touches pages the file never
// uses. Each ask wakes that thread (a futex wake-up, microseconds here), so asks are made only when
// something is wanted and the job is not already queued.
#pragma once

#include <atomic>
#include <cstdint>

#include "lib/atomic_max.h"

namespace tern {

struct GrowAheadAsks {
  static constexpr uint64_t kNothingToTouch = UINT64_MAX;
  // A writer this close to the end of what the Pool's thread touched asks it to touch twice as
  // far (256 KiB: a wake-up every 64 blocks written, at most 512 KiB touched and never used).
  static constexpr uint64_t kTouchAheadBlocks = 64;

  std::atomic<bool> scheduled{false};  // the Pool's job is queued or running
  // The block count at which the Pool's thread last found enough free space to need no growth
  // (0: not found). Until the allocator leaves the end of the file again, writers near the end
  // do not ask again: an overwrite-only file near its end would otherwise do so every few writes.
  std::atomic<uint64_t> enough_at{0};
  std::atomic<bool> grow_wanted{false};  // a writer near the end asked for a step
  // Blocks below touched_to need no touch from the Pool's thread (kNothingToTouch until it grows
  // the file; only that thread writes it); writers raise touch_wanted_to to a little past where
  // they allocate, and it touches up to there.
  std::atomic<uint64_t> touched_to{kNothingToTouch};
  std::atomic<uint64_t> touch_wanted_to{0};

  // After an allocation that ended at block `end`, the backing holding `blocks` blocks and growth
  // wanted `distance` blocks before its end (0: never): records what the writer asks for. True
  // when the caller must queue the Pool's job (`scheduled` is then set for it).
  bool AskAfterAllocation(uint64_t end, uint64_t blocks, uint64_t distance) {
    // Loaded before any store: a write to a shared line, even of the same value, takes it from
    // every other thread that reads it.
    bool near_end = end + distance > blocks;
    uint64_t touched = touched_to.load(std::memory_order_relaxed);
    bool near_untouched = touched < blocks && end + kTouchAheadBlocks > touched;
    uint64_t enough = enough_at.load(std::memory_order_relaxed);
    if (!near_end && enough != 0) enough_at.store(0, std::memory_order_relaxed);  // left the end: look again
    bool want_growth = near_end && enough != blocks;
    if (want_growth && !grow_wanted.load(std::memory_order_relaxed)) grow_wanted.store(true, std::memory_order_relaxed);
    if (near_untouched) RaiseAtomic(touch_wanted_to, end + 2 * kTouchAheadBlocks);
    return (want_growth || near_untouched) && !scheduled.load() && !scheduled.exchange(true);
  }
};

}  // namespace tern
