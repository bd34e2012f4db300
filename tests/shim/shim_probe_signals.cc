// shim_probe signals: signal handlers that write to files, as POSIX allows (write(2) is
// async-signal-safe), while the code they interrupt writes to the same description or allocates;
// a signal sent while the only thread that may take it blocks it; and the handlers the program
// set, as sigaction, signal, sysv_signal and sigset report them. Under the shim, a handler that
// ran inside the shim waited for itself, one that interrupted malloc corrupted the heap, and the
// engine's own thread took signals the program's thread blocked.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "tests/shim/shim_probe.h"

namespace shim_probe {
namespace {

volatile sig_atomic_t g_handled = 0;
int g_fd = -1;
int g_code = 0;
int g_value = 0;

void OnUsr1(int) { g_handled = g_handled + 1; }
void OnUsr1Again(int) { g_handled = g_handled + 10; }
void OnInfo(int, siginfo_t* info, void*) {
  g_code = info->si_code;
  g_value = info->si_value.sival_int;
}
void AppendLine(int) {
  int saved = errno;
  if (write(g_fd, "H\n", 2) != 2) abort();
  g_handled = g_handled + 1;
  errno = saved;
}
// A write at the offset and a positioned write inside the part of the file written before.
void AppendAndOverwrite(int) {
  int saved = errno;
  if (write(g_fd, "handler-line\n", 13) != 13 || pwrite(g_fd, "P", 1, 100) != 1) abort();
  g_handled = g_handled + 1;
  errno = saved;
}

void* HandlerOf(int sig) {
  struct sigaction now;
  sigaction(sig, nullptr, &now);
  return (now.sa_flags & SA_SIGINFO) ? reinterpret_cast<void*>(now.sa_sigaction) : reinterpret_cast<void*>(now.sa_handler);
}

void Install(int sig, void (*handler)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = handler;
  sa.sa_flags = flags;
  sigaction(sig, &sa, nullptr);
}

void Ticking(bool on) {
  struct itimerval it;
  memset(&it, 0, sizeof(it));
  if (on) it.it_interval.tv_usec = it.it_value.tv_usec = 200;
  setitimer(ITIMER_REAL, &it, nullptr);
}

off_t SizeOf(const char* path) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : -1;
}

void Dispositions() {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnUsr1;
  sa.sa_flags = SA_RESTART;
  sigaddset(&sa.sa_mask, SIGUSR2);
  Say("sigaction", sigaction(SIGUSR1, &sa, nullptr));
  Say("sigaction query", sigaction(SIGUSR1, nullptr, &old));
  printf("handler is ours %d, SA_RESTART %d, SA_SIGINFO %d, SIGUSR2 in mask %d\n", old.sa_handler == OnUsr1,
         (old.sa_flags & SA_RESTART) != 0, (old.sa_flags & SA_SIGINFO) != 0, sigismember(&old.sa_mask, SIGUSR2));
  Say("raise", raise(SIGUSR1));
  printf("handled %d\n", static_cast<int>(g_handled));
  printf("signal returns the last handler %d\n", signal(SIGUSR1, OnUsr1Again) == OnUsr1);
  Say("kill", kill(getpid(), SIGUSR1));
  printf("handled %d, handler now %d\n", static_cast<int>(g_handled), HandlerOf(SIGUSR1) == reinterpret_cast<void*>(OnUsr1Again));
  printf("sysv_signal returns %d\n", sysv_signal(SIGUSR1, OnUsr1) == OnUsr1Again);
  Say("raise (one-shot)", raise(SIGUSR1));
  printf("handled %d, reset to SIG_DFL %d\n", static_cast<int>(g_handled), HandlerOf(SIGUSR1) == reinterpret_cast<void*>(SIG_DFL));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // System V's, still in programs
  printf("sigset returns SIG_DFL %d\n", sigset(SIGUSR1, OnUsr1) == SIG_DFL);
  printf("sigset SIG_HOLD returns the handler %d\n", sigset(SIGUSR1, SIG_HOLD) == OnUsr1);
  printf("sigset returns SIG_HOLD %d\n", sigset(SIGUSR1, OnUsr1Again) == SIG_HOLD);
#pragma GCC diagnostic pop
  printf("SIG_IGN: previous %d\n", signal(SIGUSR1, SIG_IGN) == OnUsr1Again);
  printf("now SIG_IGN %d\n", HandlerOf(SIGUSR1) == reinterpret_cast<void*>(SIG_IGN));
  Install(SIGUSR1, OnUsr1, static_cast<int>(SA_RESETHAND));
  Say("raise (SA_RESETHAND)", raise(SIGUSR1));
  printf("handled %d, reset %d\n", static_cast<int>(g_handled), HandlerOf(SIGUSR1) == reinterpret_cast<void*>(SIG_DFL));
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = OnInfo;
  sa.sa_flags = SA_SIGINFO;
  Say("sigaction SA_SIGINFO", sigaction(SIGUSR2, &sa, nullptr));
  printf("handler is ours %d\n", HandlerOf(SIGUSR2) == reinterpret_cast<void*>(OnInfo));
  union sigval value;
  value.sival_int = 7;
  Say("sigqueue", sigqueue(getpid(), SIGUSR2, value));
  printf("si_code SI_QUEUE %d, value %d\n", g_code == SI_QUEUE, g_value);
  Say("sigaction SIGKILL", sigaction(SIGKILL, &sa, nullptr));
  Say("sigaction 0", sigaction(0, &sa, nullptr));
}

// A handler appending to the description the interrupted code is writing through.
void SameDescription(const char* name, int flags) {
  g_fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | flags, 0644);
  g_handled = 0;
  Install(SIGALRM, AppendLine, SA_RESTART);
  Ticking(true);
  long n = 0;
  for (; g_handled < 300 && n < 5000000; ++n) {
    if (write(g_fd, "main-line\n", 10) != 10) abort();
  }
  Ticking(false);
  signal(SIGALRM, SIG_DFL);
  long handled = g_handled;
  close(g_fd);
  printf("%s: handled enough %d, size consistent %d\n", name, handled >= 300, SizeOf(name) == 10 * n + 2 * handled);
}

// A handler writing while the interrupted code allocates: the write must not.
void WhileAllocating() {
  g_fd = open("sig-malloc", O_RDWR | O_CREAT | O_TRUNC, 0644);  // handler lines go on at the offset
  char block[4096];
  memset(block, 'x', sizeof(block));
  if (write(g_fd, block, sizeof(block)) != 4096) abort();
  g_handled = 0;
  Install(SIGALRM, AppendAndOverwrite, SA_RESTART);
  Ticking(true);
  void* kept[64] = {};
  for (long n = 0; g_handled < 300 && n < 200000000; ++n) {
    free(kept[n % 64]);
    kept[n % 64] = malloc(16 + static_cast<size_t>(n * 7919 % 5000));
  }
  Ticking(false);
  signal(SIGALRM, SIG_DFL);
  for (void* p : kept) free(p);
  long handled = g_handled;
  close(g_fd);
  std::string all = ReadWhole("sig-malloc");
  printf("while allocating: handled enough %d, size consistent %d, overwritten %d\n", handled >= 300,
         static_cast<long>(all.size()) == 4096 + 13 * handled, all.size() > 100 && all[100] == 'P');
}

// The only thread that may take SIGUSR1 blocks it: the signal waits until it is unblocked.
void BlockedWhileWriting() {
  g_fd = open("sig-blocked", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (write(g_fd, "before\n", 7) != 7) abort();
  g_handled = 0;
  Install(SIGUSR1, AppendLine, 0);
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &old);
  Say("kill while blocked", kill(getpid(), SIGUSR1));
  struct timespec pause = {0, 50 * 1000 * 1000};
  nanosleep(&pause, nullptr);
  sigset_t pending;
  sigpending(&pending);
  printf("blocked: handled %d, pending %d\n", static_cast<int>(g_handled), sigismember(&pending, SIGUSR1));
  sigprocmask(SIG_SETMASK, &old, nullptr);
  printf("unblocked: handled %d\n", static_cast<int>(g_handled));
  close(g_fd);
  printf("content: %s", ReadWhole("sig-blocked").c_str());
}

}  // namespace

int Signals() {
  Dispositions();
  SameDescription("sig-append", O_APPEND);
  SameDescription("sig-offset", 0);
  WhileAllocating();
  BlockedWhileWriting();
  return 0;
}

}  // namespace shim_probe
