// shim_probe cancel: threads cancelled with pthread_cancel while they work on files — looping
// over opens, writes, reads, fsyncs and closes of files; blocked in open(2) of a FIFO; blocked
// waiting for a record lock another process holds; blocked reading a pipe. Each must end
// cancelled, its cleanup handler run, and the files stay usable. Under the shim the first of
// these aborted the program (the unwinding crossed a shim frame it could not unwind).
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "tests/shim/shim_probe.h"

namespace shim_probe {
namespace {

std::atomic<int> g_cleanups{0};
std::atomic<int> g_started{0};
int g_pipe[2];

void CountCleanup(void*) { g_cleanups.fetch_add(1); }

void Pause(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, nullptr);
}

void* LoopOverFiles(void*) {
  pthread_cleanup_push(CountCleanup, nullptr);
  char buf[4096];
  memset(buf, 'c', sizeof(buf));
  g_started.fetch_add(1);
  for (long i = 0;; ++i) {
    std::string name = "cancel-" + std::to_string(i % 4);
    int fd = open(name.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0) continue;
    if (pwrite(fd, buf, sizeof(buf), (i % 8) * 4096) < 0 || pread(fd, buf, 100, 0) < 0) break;
    fsync(fd);
    close(fd);
  }
  pthread_cleanup_pop(0);
  return nullptr;
}

void* OpenFifo(void*) {
  pthread_cleanup_push(CountCleanup, nullptr);
  g_started.fetch_add(1);
  int fd = open("cancel-fifo", O_RDONLY);  // no writer: blocks
  if (fd >= 0) close(fd);
  pthread_cleanup_pop(0);
  return nullptr;
}

void* WaitForLock(void* arg) {
  pthread_cleanup_push(CountCleanup, nullptr);
  int fd = *static_cast<int*>(arg);
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_len = 10;
  g_started.fetch_add(1);
  fcntl(fd, F_SETLKW, &fl);  // another process holds it: blocks
  pthread_cleanup_pop(0);
  return nullptr;
}

void* ReadPipe(void*) {
  pthread_cleanup_push(CountCleanup, nullptr);
  char c;
  g_started.fetch_add(1);
  ssize_t n = read(g_pipe[0], &c, 1);  // no writer writes: blocks
  (void)n;
  pthread_cleanup_pop(0);
  return nullptr;
}

// Starts fn, lets it run or block for `ms`, cancels it; 1 when it ended cancelled.
int CancelAfter(void* (*fn)(void*), void* arg, long ms) {
  int before = g_started.load();
  pthread_t t;
  if (pthread_create(&t, nullptr, fn, arg) != 0) return 0;
  while (g_started.load() == before) Pause(1);
  Pause(ms);
  pthread_cancel(t);
  void* result = nullptr;
  pthread_join(t, &result);
  return result == PTHREAD_CANCELED;
}

}  // namespace

int Cancel() {
  int cancelled = 0;
  for (int round = 0; round < 20; ++round) cancelled += CancelAfter(LoopOverFiles, nullptr, 1 + round % 3);
  printf("looping over files: cancelled %d of 20, cleanups %d\n", cancelled, g_cleanups.load());
  int usable = 0;
  for (int i = 0; i < 4; ++i) {
    std::string name = "cancel-" + std::to_string(i);
    int fd = open(name.c_str(), O_RDWR);
    char c = 0;
    if (fd >= 0 && pwrite(fd, "x", 1, 0) == 1 && pread(fd, &c, 1, 0) == 1 && c == 'x') ++usable;
    if (fd >= 0) close(fd);
  }
  printf("files usable afterwards: %d of 4\n", usable);

  g_cleanups = 0;
  Say("mkfifo", mkfifo("cancel-fifo", 0644));
  cancelled = CancelAfter(OpenFifo, nullptr, 20);
  printf("blocked in open of a FIFO: cancelled %d, cleanups %d\n", cancelled, g_cleanups.load());

  g_cleanups = 0;
  int fd = open("cancel-locked", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("write", write(fd, "0123456789", 10));
  int ready[2];
  if (pipe(ready) != 0) return 1;
  pid_t holder = fork();
  if (holder == 0) {
    int own = open("cancel-locked", O_RDWR);
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_len = 10;
    fcntl(own, F_SETLK, &fl);
    if (write(ready[1], "r", 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char r;
  if (read(ready[0], &r, 1) != 1) return 1;
  cancelled = CancelAfter(WaitForLock, &fd, 20);
  printf("blocked waiting for a record lock: cancelled %d, cleanups %d\n", cancelled, g_cleanups.load());
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_len = 10;
  Say("the lock once its holder is gone", fcntl(fd, F_SETLK, &fl));
  close(fd);

  g_cleanups = 0;
  if (pipe(g_pipe) != 0) return 1;
  cancelled = CancelAfter(ReadPipe, nullptr, 20);
  printf("blocked reading a pipe: cancelled %d, cleanups %d\n", cancelled, g_cleanups.load());
  printf("content: %s\n", ReadWhole("cancel-locked").c_str());
  return 0;
}

}  // namespace shim_probe
