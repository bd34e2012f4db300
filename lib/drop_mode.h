// How the per-process caches (BackingCache, SharedStateSpares) end what they forget when the
// process ends or execs.
#pragma once

#include <sched.h>

#include <mutex>

namespace tern {

enum class DropMode {
  kRelease,  // unmap and close everything (exec, tests)
  // At exit: only names that would outlive the process are removed; mappings and descriptors go
  // with the process, which the kernel takes down in one go. Unmapping each kept file costs ~30–60
  // µs here (a TLB shootdown under paravirtualisation): more than the work of a short command.
  kProcessExit,
  // At _exit: as kProcessExit, but no lock is waited for. _exit may come from a signal handler
  // that interrupted the lock's holder on this very thread; what such a lock guards stays behind
  // for the sweeps (the spares' own locks die with the process).
  kImmediateExit,
};

// The lock a drop takes: at kImmediateExit only if it comes free within a moment.
inline std::unique_lock<std::mutex> LockToDrop(std::mutex& mu, DropMode mode) {
  if (mode != DropMode::kImmediateExit) return std::unique_lock(mu);
  std::unique_lock lock(mu, std::try_to_lock);
  for (int i = 0; i < 1000 && !lock.owns_lock(); ++i) {
    sched_yield();
    (void)lock.try_lock();
  }
  return lock;
}

}  // namespace tern
