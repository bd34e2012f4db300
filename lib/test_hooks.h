// Switches that plant known bugs, for tests that must prove a checker catches them (the crash
// simulator must find a missing fence), and hooks that open a race window on demand. They exist
// only in trace builds (TERN_PMEM_TRACE); in every other build the switches are constant false,
// the hooks do nothing, and the code they guard compiles away.
#pragma once

#include <atomic>

#include "build_options.h"

namespace tern::test_hooks {

// Planted bug: the write path skips the fence between persisting data and the commit CAS.
inline std::atomic<bool>& SkipDataFenceFlag() {
  static std::atomic<bool> flag{false};
  return flag;
}
inline bool SkipDataFence() {
  if constexpr (kBuildOptions.pmem_trace) return SkipDataFenceFlag().load(std::memory_order_relaxed);
  return false;
}

// A callback slot that opens a race window at one point of the engine: a test stores a function,
// the engine runs it there (trace builds only; elsewhere Run compiles away).
struct WindowHook {
  std::atomic<void (*)()> callback{nullptr};
  void Run() const {
    if constexpr (kBuildOptions.pmem_trace) {
      if (auto f = callback.load(std::memory_order_acquire)) f();
    }
  }
};
// The hooks, each a place in the engine (constant-initialized: usable before any constructor runs).
// In an in-place append (file_core_tail.cc), after its bytes are written and before it commits,
// so a test can land a competing commit in exactly that window.
inline constinit WindowHook after_in_place_copy;
// In ReplayLocked (file_core.cc), after an entry is applied to the table and before the replay
// position passes it; the replay lock is held.
inline constinit WindowHook after_replay_apply;
// In FlushLog (file_core.cc), after its Refresh, before it flushes the commit slots.
inline constinit WindowHook after_flush_refresh;
// In UnpinBlocks (file_core_pin.cc), after its Refresh, before it looks where the blocks are.
inline constinit WindowHook after_unpin_refresh;
// At the start of GrowAhead (file_core_grow.cc), the Pool thread's job a writer near the end of the
// backing file schedules: a test counts how often writers wake that thread.
inline constinit WindowHook at_grow_ahead;
// In GrowStepAhead (file_core_grow.cc), with the grow lock held, after the backing file grew and
// before the new blocks are published: a writer that runs out of space now waits for that lock.
inline constinit WindowHook while_growing_ahead;
// In SharedState::Attach (shared_state.cc), after it opened the object and before it locks it.
inline constinit WindowHook after_state_attach_open;
// In SharedState::SweepOrphans (shared_state_sweep.cc), after it locked an object that no process
// maps and before it takes the published name away.
inline constinit WindowHook after_state_sweep_lock;
// In FileCore::OpenWith (file_core_open.cc), an opener that attached to the shared state: between
// its look at the shared block count and its look at the backing file's size.
inline constinit WindowHook between_attach_size_looks;

}  // namespace tern::test_hooks
