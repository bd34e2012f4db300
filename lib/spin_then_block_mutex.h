// A mutex for short critical sections that threads often want at the same moment (log replay,
// chain growth): a writer that finds another replaying the same new entries waits well under a
// microsecond, while a futex sleep and wake-up costs a system call each (several microseconds on
// the VMs tern runs on). So it spins briefly on try_lock before it blocks. Meets Lockable.
#pragma once

#include <mutex>

namespace tern {

class SpinThenBlockMutex {
 public:
  void lock() {
    for (int i = 0; i < kSpins; ++i) {
      if (mu_.try_lock()) return;
      for (int k = 0; k < kPausesPerTry; ++k) CpuRelax();
    }
    mu_.lock();
  }
  bool try_lock() { return mu_.try_lock(); }
  void unlock() { mu_.unlock(); }

 private:
  // ~200 tries x 8 pauses: a few microseconds, about one replay of a handful of entries.
  static constexpr int kSpins = 200;
  static constexpr int kPausesPerTry = 8;

  static void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  std::mutex mu_;
};

}  // namespace tern
