// Switches that plant known bugs, for tests that must prove a checker catches them (the crash
// simulator must find a missing fence). They exist only in trace builds (TERN_PMEM_TRACE); in
// every other build they are constant false and the code they guard compiles away.
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

}  // namespace tern::test_hooks
