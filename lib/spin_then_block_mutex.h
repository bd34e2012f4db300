// A mutex for short critical sections that threads often want at the same moment (log replay,
// chain growth): a writer that finds another replaying the same new entries waits well under a
// microsecond, while a futex sleep and wake-up costs a system call each (several microseconds on
// the VMs tern runs on). So it spins briefly before it blocks. Meets Lockable.
//
// A waiter spins on a plain load and tries to take the lock only once it looks free: each failed
// attempt is a locked instruction that takes the lock's cache line away from the holder, which
// then waits for it back to unlock (~200 ns a transfer between this VM's vCPUs).
#pragma once

#include <atomic>
#include <cstdint>

namespace tern {

class SpinThenBlockMutex {
 public:
  void lock() {
    if (try_lock()) return;
    for (int i = 0; i < kSpins; ++i) {
      for (int k = 0; k < kPausesPerTry; ++k) CpuRelax();
      if (state_.load(std::memory_order_relaxed) == kFree && try_lock()) return;
    }
    // Blocks: marks the lock contended, so that its holder's unlock wakes a sleeper.
    while (state_.exchange(kContended, std::memory_order_acquire) != kFree) {
      state_.wait(kContended, std::memory_order_relaxed);
    }
  }
  bool try_lock() {
    uint32_t expected = kFree;
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire, std::memory_order_relaxed);
  }
  void unlock() {
    if (state_.exchange(kFree, std::memory_order_release) == kContended) state_.notify_one();
  }

 private:
  // ~200 tries x 8 pauses: a few microseconds, about one replay of a handful of entries.
  static constexpr int kSpins = 200;
  static constexpr int kPausesPerTry = 8;
  static constexpr uint32_t kFree = 0, kLocked = 1, kContended = 2;

  static void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  std::atomic<uint32_t> state_{kFree};
};

}  // namespace tern
