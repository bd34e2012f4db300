// What may interrupt a thread inside the shim, and why the shim holds it off.
//
// Signal handlers: write(2) is async-signal-safe, and programs write from their handlers; a
// handler that runs while its thread is inside the shim, holding a description's offset lock, an
// engine lock or malloc's, and calls back into the shim would wait for itself forever. So the shim
// installs every handler the program sets behind a trampoline (sigaction, signal and their
// relatives are interposed, entry_signal.cc), and an asynchronous signal that arrives while its
// thread is inside an InterruptionsHeld scope is held: the program's handler runs as the thread
// leaves the outermost scope, with the mask and the siginfo the kernel gave. Faults (SIGSEGV and
// the like raised by an instruction) are never held: returning would fault again.
//
// Thread cancellation (pthread_cancel): deferred cancellation acts at any cancellation point, and
// the engine makes libc calls that are ones (open, close, pread, a lock wait) half-way through an
// operation; unwinding from there leaves the operation half done, and through a noexcept entry
// point it ends the program (std::terminate). So the outermost scope disables cancellation, and
// the entry points that are cancellation points act on a pending one as they start
// (ActOnCancellation), before anything is taken; those entry points are not noexcept.
//
// A scope covers whatever takes a shim or engine lock or allocates on a tern file's behalf: a
// DescRef that holds a description, an EngineScope, the shim's own lock guards. It must end before
// the process execs or forks (a held signal would be lost, or run twice). A wait in the kernel
// that may last (a record lock's F_SETLKW) lets both through with InterruptionsAllowed, as the
// kernel's wait would.
#pragma once

#include <pthread.h>

#include <atomic>
#include <mutex>

namespace tern::shim {

// Depth of InterruptionsHeld scopes on this thread. constinit, initial-exec: read by the trampoline.
extern constinit thread_local int t_hold_depth __attribute__((tls_model("initial-exec")));
// Non-zero when a signal is waiting for the outermost scope to end.
extern constinit thread_local int t_signals_held __attribute__((tls_model("initial-exec")));
// The program's cancellation state, kept while the outermost scope disables cancellation.
extern constinit thread_local int t_program_cancel_state __attribute__((tls_model("initial-exec")));

// Runs the handlers of the signals held on this thread, in arrival order. errno is kept.
void RunHeldSignals();
// A forked child's copy of what its parent's thread held: the parent runs them.
void ForgetHeldSignals();

// The depth goes up before the cancellation state is saved and down after it is restored: a
// handler that runs in between (with the depth 0) enters and leaves completely, and one that
// comes later is held, so the saved state is always the program's.
inline void EnterInterruptionHold() {
  if (t_hold_depth++ == 0) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &t_program_cancel_state);
  }
  std::atomic_signal_fence(std::memory_order_seq_cst);  // raised before any lock is taken
}

inline void LeaveInterruptionHold() {
  std::atomic_signal_fence(std::memory_order_seq_cst);  // lowered after every lock is released
  if (t_hold_depth == 1) {
    int ignored;
    pthread_setcancelstate(t_program_cancel_state, &ignored);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  if (--t_hold_depth == 0 && t_signals_held != 0) RunHeldSignals();
}

// At the start of an entry point that is a cancellation point, before anything is taken.
inline void ActOnCancellation() { pthread_testcancel(); }

class InterruptionsHeld {
 public:
  InterruptionsHeld() { EnterInterruptionHold(); }
  ~InterruptionsHeld() { LeaveInterruptionHold(); }
  InterruptionsHeld(const InterruptionsHeld&) = delete;
  InterruptionsHeld& operator=(const InterruptionsHeld&) = delete;
};

// Inside a InterruptionsHeld scope, around a wait in the kernel during which the thread holds no shim
// lock: handlers run as they would on the kernel (held ones first).
class InterruptionsAllowed {
 public:
  // The cancellation state changes while the depth is not 0 (see EnterInterruptionHold).
  InterruptionsAllowed() : saved_(t_hold_depth) {
    int ignored;
    if (saved_ != 0) pthread_setcancelstate(t_program_cancel_state, &ignored);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_hold_depth = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (t_signals_held != 0) RunHeldSignals();
  }
  // Also as a cancellation unwinds through it: the outer scopes then restore the program's state.
  ~InterruptionsAllowed() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_hold_depth = saved_;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    int ignored;
    if (saved_ != 0) pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &ignored);
  }
  InterruptionsAllowed(const InterruptionsAllowed&) = delete;
  InterruptionsAllowed& operator=(const InterruptionsAllowed&) = delete;

 private:
  int saved_;
};

// A lock guard that holds interruptions off while the lock is held (taken after, released before).
template <typename Mutex>
class HeldLockGuard {
 public:
  explicit HeldLockGuard(Mutex& mu) : lock_(mu) {}
  HeldLockGuard(const HeldLockGuard&) = delete;
  HeldLockGuard& operator=(const HeldLockGuard&) = delete;

 private:
  InterruptionsHeld held_;  // declared first: constructed before the lock, destroyed after it
  std::lock_guard<Mutex> lock_;
};

}  // namespace tern::shim
