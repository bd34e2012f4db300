// Entry points: signal dispositions (sigaction, signal and its relatives), and the trampoline
// that holds a signal while its thread is inside the shim (interruption_hold.h says why).
//
// The kernel sees the trampoline wherever the program installed a handler; the program sees its
// own handler, flags and mask in every answer (the previous action of sigaction, signal's return
// value). SIG_DFL and SIG_IGN are the kernel's as they are, so an exec keeps ignored signals
// ignored and resets the rest, as it would without the shim. glibc's signal, sysv_signal and
// sigset install through its internal sigaction, which no preload sees: they run as they are and
// the handler they installed is then moved behind the trampoline, flags and mask unchanged.
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#include <atomic>
#include <cerrno>

#include "shim/common.h"
#include "shim/real_libc.h"
#include "shim/interruption_hold.h"

using namespace tern::shim;

extern "C" {
int TernSigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept TERN_EXPORT_AS("sigaction");
int TernUnderscoreSigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept
    TERN_EXPORT_AS("__sigaction");
sighandler_t TernSignal(int sig, sighandler_t handler) noexcept TERN_EXPORT_AS("signal");
sighandler_t TernBsdSignal(int sig, sighandler_t handler) noexcept TERN_EXPORT_AS("bsd_signal");
sighandler_t TernSsignal(int sig, sighandler_t handler) noexcept TERN_EXPORT_AS("ssignal");
sighandler_t TernSysvSignal(int sig, sighandler_t handler) noexcept TERN_EXPORT_AS("sysv_signal");
sighandler_t TernUnderscoreSysvSignal(int sig, sighandler_t handler) noexcept TERN_EXPORT_AS("__sysv_signal");
sighandler_t TernSigset(int sig, sighandler_t disposition) noexcept TERN_EXPORT_AS("sigset");
}

namespace tern::shim {

constinit thread_local int t_hold_depth = 0;
constinit thread_local int t_signals_held = 0;
constinit thread_local int t_program_cancel_state = PTHREAD_CANCEL_ENABLE;

namespace {

// The program's handler behind the trampoline, per signal. Written by sigaction before the kernel
// points at the trampoline; read by the trampoline.
struct ProgramAction {
  std::atomic<void*> handler{nullptr};
  std::atomic<int> flags{0};  // the program's sa_flags (SA_SIGINFO says how to call it)
};
ProgramAction g_actions[NSIG];

struct HeldSignal {
  int sig;
  int flags;
  void* handler;
  siginfo_t info;
};
// Standard signals coalesce in the kernel too; a thread inside the shim for long enough to be
// sent more than this many drops the rest.
constexpr int kMaxHeld = 8;
constinit thread_local HeldSignal t_held[kMaxHeld] = {};
constinit thread_local std::atomic<int> t_held_count{0};
constinit thread_local int t_held_next = 0;

bool Managed(int sig) { return sig > 0 && sig < NSIG && sig != SIGKILL && sig != SIGSTOP; }

void* HandlerOf(const struct sigaction& a) {
  return (a.sa_flags & SA_SIGINFO) ? reinterpret_cast<void*>(a.sa_sigaction) : reinterpret_cast<void*>(a.sa_handler);
}

bool IsProgramHandler(const struct sigaction& a) {
  void* h = HandlerOf(a);
  return h != reinterpret_cast<void*>(SIG_DFL) && h != reinterpret_cast<void*>(SIG_IGN);
}

// A signal an instruction raised (a fault): its handler runs now, or the instruction faults again.
bool RaisedByAFault(int sig, const siginfo_t* info) {
  bool fault_signal =
      sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP || sig == SIGSYS;
  return fault_signal && info != nullptr && info->si_code > 0;
}

void Call(void* handler, int flags, int sig, siginfo_t* info, void* context) {
  if (flags & SA_SIGINFO) {
    reinterpret_cast<void (*)(int, siginfo_t*, void*)>(handler)(sig, info, context);
  } else {
    reinterpret_cast<void (*)(int)>(handler)(sig);
  }
}

void Trampoline(int sig, siginfo_t* info, void* context) {
  if (sig <= 0 || sig >= NSIG) return;
  void* handler = g_actions[sig].handler.load(std::memory_order_acquire);
  int flags = g_actions[sig].flags.load(std::memory_order_relaxed);
  if (handler == nullptr) return;
  if (t_hold_depth == 0 || RaisedByAFault(sig, info)) {
    Call(handler, flags, sig, info, context);
    return;
  }
  // One instruction claims the entry, so a signal that interrupts this one takes the next.
  int n = t_held_count.fetch_add(1);
  if (n >= kMaxHeld) {
    t_held_count.fetch_sub(1);
    return;
  }
  t_held[n].sig = sig;
  t_held[n].flags = flags;
  t_held[n].handler = handler;
  if (info != nullptr) {
    t_held[n].info = *info;
  } else {
    memset(&t_held[n].info, 0, sizeof(siginfo_t));
    t_held[n].info.si_signo = sig;
  }
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_signals_held = 1;
}

// What the kernel does around a handler: the action's mask and the signal itself (unless
// SA_NODEFER) blocked while it runs. The context is this thread's, taken here.
void Deliver(HeldSignal& held) {
  sigset_t block;
  sigemptyset(&block);
  struct sigaction now;
  if (Real().sigaction(held.sig, nullptr, &now) == 0) block = now.sa_mask;
  if ((held.flags & SA_NODEFER) == 0) sigaddset(&block, held.sig);
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &block, &old);
  ucontext_t context;
  getcontext(&context);
  Call(held.handler, held.flags, held.sig, &held.info, &context);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// The program's view of a kernel action that may point at the trampoline, with the program's
// handler and flags from before the change.
void ShowProgramAction(struct sigaction* k, void* handler, int flags) {
  if (k->sa_sigaction != Trampoline || handler == nullptr) return;
  if (flags & SA_SIGINFO) {
    k->sa_sigaction = reinterpret_cast<void (*)(int, siginfo_t*, void*)>(handler);
  } else {
    k->sa_handler = reinterpret_cast<sighandler_t>(handler);
    k->sa_flags &= ~SA_SIGINFO;
  }
}

int Sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  auto real = Real().sigaction;
  if (real == nullptr) return Fail(ENOSYS);
  if (!Managed(sig)) return real(sig, act, old);
  ProgramAction& mine = g_actions[sig];
  void* prev_handler = mine.handler.load();
  int prev_flags = mine.flags.load();
  if (act == nullptr) {
    int rc = real(sig, nullptr, old);
    if (rc == 0 && old != nullptr) ShowProgramAction(old, prev_handler, prev_flags);
    return rc;
  }
  struct sigaction k = *act;
  bool behind = IsProgramHandler(*act);
  if (behind) {
    mine.flags.store(act->sa_flags);
    mine.handler.store(HandlerOf(*act), std::memory_order_release);
    k.sa_sigaction = Trampoline;
    k.sa_flags |= SA_SIGINFO;
  }
  struct sigaction kernel_old;
  if (real(sig, &k, &kernel_old) != 0) {
    int err = errno;
    if (behind) {
      mine.flags.store(prev_flags);
      mine.handler.store(prev_handler);
    }
    return Fail(err);
  }
  if (old != nullptr) {
    *old = kernel_old;
    ShowProgramAction(old, prev_handler, prev_flags);
  }
  return 0;
}

// After glibc installed an action itself: a program handler it put in the kernel goes behind
// the trampoline, and a returned trampoline becomes the program's handler from before.
sighandler_t Adopt(int sig, sighandler_t returned, void* prev_handler) {
  struct sigaction k;
  if (Managed(sig) && Real().sigaction != nullptr && Real().sigaction(sig, nullptr, &k) == 0 && IsProgramHandler(k) &&
      k.sa_sigaction != Trampoline) {
    int saved = errno;
    Sigaction(sig, &k, nullptr);
    errno = saved;
  }
  if (reinterpret_cast<void*>(returned) == reinterpret_cast<void*>(Trampoline)) {
    return reinterpret_cast<sighandler_t>(prev_handler);
  }
  return returned;
}

// One of glibc's installers (signal, sysv_signal, sigset), then Adopt.
sighandler_t ThroughGlibc(sighandler_t (*real)(int, sighandler_t), int sig, sighandler_t handler) {
  if (real == nullptr) return (errno = ENOSYS, SIG_ERR);
  void* prev = Managed(sig) ? g_actions[sig].handler.load() : nullptr;
  sighandler_t returned = real(sig, handler);
  return returned == SIG_ERR ? SIG_ERR : Adopt(sig, returned, prev);
}

}  // namespace

void ForgetHeldSignals() {
  t_held_count.store(0);
  t_held_next = 0;
  t_signals_held = 0;
}

void RunHeldSignals() {
  int saved = errno;
  while (t_held_next < t_held_count.load()) {
    HeldSignal held = t_held[t_held_next];
    ++t_held_next;
    Deliver(held);
  }
  ForgetHeldSignals();
  errno = saved;
}

}  // namespace tern::shim

int TernSigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept {
  return Sigaction(sig, act, old);
}

int TernUnderscoreSigaction(int sig, const struct sigaction* act, struct sigaction* old) noexcept {
  return Sigaction(sig, act, old);
}

sighandler_t TernSignal(int sig, sighandler_t handler) noexcept { return ThroughGlibc(Real().signal, sig, handler); }

sighandler_t TernBsdSignal(int sig, sighandler_t handler) noexcept { return TernSignal(sig, handler); }

sighandler_t TernSsignal(int sig, sighandler_t handler) noexcept { return TernSignal(sig, handler); }

sighandler_t TernSysvSignal(int sig, sighandler_t handler) noexcept {
  return ThroughGlibc(Real().sysv_signal, sig, handler);
}

sighandler_t TernUnderscoreSysvSignal(int sig, sighandler_t handler) noexcept { return TernSysvSignal(sig, handler); }

sighandler_t TernSigset(int sig, sighandler_t disposition) noexcept {
  return ThroughGlibc(Real().sigset, sig, disposition);
}
