// Signal handlers and the shim. write(2) is async-signal-safe, and programs write from their
// handlers; a handler that runs while its thread is inside the shim, holding a description's
// offset lock, an engine lock or malloc's, and calls back into the shim would wait for itself
// forever. So the shim installs every handler the program sets behind a trampoline (sigaction,
// signal and their relatives are interposed, entry_signal.cc), and an asynchronous signal that
// arrives while its thread is inside a SignalsHeld scope is held: the program's handler runs as
// the thread leaves the outermost scope, with the mask and the siginfo the kernel gave. Faults
// (SIGSEGV and the like raised by an instruction) are never held: returning would fault again.
//
// A scope covers whatever takes a shim or engine lock or allocates on a tern file's behalf: a
// DescRef that holds a description, an EngineScope, the shim's own lock guards. It must end before
// the process execs or forks (a held signal would be lost, or run twice). A wait in the kernel
// that may last (a record lock's F_SETLKW) lets signals through with SignalsAllowed, as the kernel
// would interrupt it.
#pragma once

#include <atomic>
#include <mutex>

namespace tern::shim {

// Depth of SignalsHeld scopes on this thread. constinit, initial-exec: read by the trampoline.
extern constinit thread_local int t_signal_hold_depth __attribute__((tls_model("initial-exec")));
// Non-zero when a signal is waiting for the outermost scope to end.
extern constinit thread_local int t_signals_held __attribute__((tls_model("initial-exec")));

// Runs the handlers of the signals held on this thread, in arrival order. errno is kept.
void RunHeldSignals();
// A forked child's copy of what its parent's thread held: the parent runs them.
void ForgetHeldSignals();

inline void EnterSignalHold() {
  ++t_signal_hold_depth;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // raised before any lock is taken
}

inline void LeaveSignalHold() {
  std::atomic_signal_fence(std::memory_order_seq_cst);  // lowered after every lock is released
  if (--t_signal_hold_depth == 0 && t_signals_held != 0) RunHeldSignals();
}

class SignalsHeld {
 public:
  SignalsHeld() { EnterSignalHold(); }
  ~SignalsHeld() { LeaveSignalHold(); }
  SignalsHeld(const SignalsHeld&) = delete;
  SignalsHeld& operator=(const SignalsHeld&) = delete;
};

// Inside a SignalsHeld scope, around a wait in the kernel during which the thread holds no shim
// lock: handlers run as they would on the kernel (held ones first).
class SignalsAllowed {
 public:
  SignalsAllowed() : saved_(t_signal_hold_depth) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_signal_hold_depth = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (t_signals_held != 0) RunHeldSignals();
  }
  ~SignalsAllowed() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_signal_hold_depth = saved_;
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  SignalsAllowed(const SignalsAllowed&) = delete;
  SignalsAllowed& operator=(const SignalsAllowed&) = delete;

 private:
  int saved_;
};

// A lock guard that holds signals while the lock is held (taken after, released before).
template <typename Mutex>
class HeldLockGuard {
 public:
  explicit HeldLockGuard(Mutex& mu) : lock_(mu) {}
  HeldLockGuard(const HeldLockGuard&) = delete;
  HeldLockGuard& operator=(const HeldLockGuard&) = delete;

 private:
  SignalsHeld held_;  // declared first: constructed before the lock, destroyed after it
  std::lock_guard<Mutex> lock_;
};

}  // namespace tern::shim
