// shim_probe aio: POSIX asynchronous I/O on a file — aio_read/aio_write completed through
// aio_suspend, aio_error and aio_return, aio_fsync, aio_cancel of finished requests, lio_listio in
// both modes, the three kinds of notification (none, a queued signal, a thread), and the errors a
// request reports. glibc runs these on helper threads on the kernel; under the shim a tern file's
// requests complete at once. The output must be the same either way.
#include <aio.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "tests/shim/shim_probe.h"

namespace shim_probe {
namespace {

constexpr size_t kBlock = 4096;

std::string ErrOf(int e) { return e == 0 ? "0" : ErrName(e); }

struct aiocb Request(int fd, void* buf, size_t n, off_t off) {
  struct aiocb cb;
  memset(&cb, 0, sizeof(cb));
  cb.aio_fildes = fd;
  cb.aio_buf = buf;
  cb.aio_nbytes = n;
  cb.aio_offset = off;
  cb.aio_sigevent.sigev_notify = SIGEV_NONE;
  return cb;
}

// Waits with aio_suspend until none of them is in progress.
void WaitAll(const std::vector<struct aiocb*>& cbs) {
  for (;;) {
    std::vector<const struct aiocb*> pending;
    for (struct aiocb* cb : cbs) {
      if (aio_error(cb) == EINPROGRESS) pending.push_back(cb);
    }
    if (pending.empty()) return;
    struct timespec limit = {5, 0};
    if (aio_suspend(pending.data(), static_cast<int>(pending.size()), &limit) != 0 && errno != EINTR) {
      printf("aio_suspend: %s\n", Res(-1).c_str());
      return;
    }
  }
}

void SayDone(const std::string& what, struct aiocb* cb) {
  printf("%s: error %s, return %zd\n", what.c_str(), ErrOf(aio_error(cb)).c_str(), aio_return(cb));
}

// A queued signal's value and whether it came from AIO, or why none came.
void SayQueuedSignal(const std::string& what, int signo) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  struct timespec limit = {5, 0};
  siginfo_t info;
  int got = sigtimedwait(&set, &info, &limit);
  if (got != signo) {
    printf("%s: no signal (%s)\n", what.c_str(), Res(-1).c_str());
    return;
  }
  printf("%s: signal, SI_ASYNCIO %d, value %d\n", what.c_str(), info.si_code == SI_ASYNCIO, info.si_value.sival_int);
}

sem_t g_notified;
int g_notified_value = -1;

void OnThreadNotice(union sigval value) {
  g_notified_value = value.sival_int;
  sem_post(&g_notified);
}

}  // namespace

int Aio() {
  sigset_t usr;
  sigemptyset(&usr);
  sigaddset(&usr, SIGUSR1);
  sigaddset(&usr, SIGUSR2);
  sigprocmask(SIG_BLOCK, &usr, nullptr);  // taken with sigtimedwait
  sem_init(&g_notified, 0, 0);

  int fd = open("aio", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("open", fd);
  std::vector<std::vector<char>> bufs;
  std::vector<struct aiocb> writes;
  for (int i = 0; i < 4; ++i) {
    bufs.emplace_back(kBlock, static_cast<char>('a' + i));
    // The last one unaligned and past the others: a hole before it.
    off_t at = i < 3 ? static_cast<off_t>(static_cast<size_t>(i) * kBlock) : static_cast<off_t>(5 * kBlock + 100);
    writes.push_back(Request(fd, bufs.back().data(), kBlock, at));
  }
  for (struct aiocb& cb : writes) Say("aio_write", aio_write(&cb));
  std::vector<struct aiocb*> all;
  for (struct aiocb& cb : writes) all.push_back(&cb);
  WaitAll(all);
  for (struct aiocb& cb : writes) SayDone("write done", &cb);
  Say("size", lseek(fd, 0, SEEK_END));

  std::vector<char> got(3 * kBlock, 'z');
  struct aiocb read = Request(fd, got.data(), got.size(), static_cast<off_t>(kBlock - 2));
  Say("aio_read", aio_read(&read));
  WaitAll({&read});
  SayDone("read done", &read);
  printf("read digest %016llx\n", static_cast<unsigned long long>(Fnv(got.data(), got.size())));
  struct aiocb past = Request(fd, got.data(), kBlock, 100 * kBlock);
  Say("aio_read past the end", aio_read(&past));
  WaitAll({&past});
  SayDone("past the end done", &past);

  struct aiocb sync = Request(fd, nullptr, 0, 0);
  Say("aio_fsync O_DSYNC", aio_fsync(O_DSYNC, &sync));
  WaitAll({&sync});
  SayDone("fsync done", &sync);
  Say("aio_fsync O_SYNC", aio_fsync(O_SYNC, &sync));
  WaitAll({&sync});
  SayDone("fsync done", &sync);
  Say("aio_fsync bad op", aio_fsync(O_RDWR, &sync));
  Say("aio_cancel finished", aio_cancel(fd, &writes[0]) == AIO_ALLDONE);
  Say("aio_cancel all", aio_cancel(fd, nullptr) == AIO_ALLDONE);

  // Notifications: a queued signal with the request's value, and a thread.
  struct aiocb signalled = Request(fd, got.data(), 10, 0);
  signalled.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
  signalled.aio_sigevent.sigev_signo = SIGUSR1;
  signalled.aio_sigevent.sigev_value.sival_int = 41;
  Say("aio_read with a signal", aio_read(&signalled));
  SayQueuedSignal("read's notification", SIGUSR1);
  SayDone("signalled read done", &signalled);

  // lio_listio: waiting, with a no-op and a null entry among the requests.
  std::vector<char> listed_read(kBlock, 'z');
  struct aiocb l0 = Request(fd, bufs[3].data(), 50, 7 * kBlock);
  l0.aio_lio_opcode = LIO_WRITE;
  struct aiocb l1 = Request(fd, listed_read.data(), kBlock, 0);
  l1.aio_lio_opcode = LIO_READ;
  struct aiocb l2 = Request(fd, nullptr, 0, 0);
  l2.aio_lio_opcode = LIO_NOP;
  struct aiocb* list[] = {&l0, nullptr, &l1, &l2};
  Say("lio_listio LIO_WAIT", lio_listio(LIO_WAIT, list, 4, nullptr));
  SayDone("listed write", &l0);
  SayDone("listed read", &l1);
  printf("listed read digest %016llx\n", static_cast<unsigned long long>(Fnv(listed_read.data(), listed_read.size())));
  // Not waiting: the list's signal comes when all are done.
  struct aiocb n0 = Request(fd, bufs[0].data(), 20, 8 * kBlock);
  n0.aio_lio_opcode = LIO_WRITE;
  struct aiocb* nowait[] = {&n0};
  struct sigevent when_done;
  memset(&when_done, 0, sizeof(when_done));
  when_done.sigev_notify = SIGEV_SIGNAL;
  when_done.sigev_signo = SIGUSR2;
  when_done.sigev_value.sival_int = 43;
  Say("lio_listio LIO_NOWAIT", lio_listio(LIO_NOWAIT, nowait, 1, &when_done));
  SayQueuedSignal("list's notification", SIGUSR2);
  WaitAll({&n0});
  SayDone("nowait write", &n0);
  Say("lio_listio bad mode", lio_listio(7, nowait, 1, nullptr));
  Say("size after lists", lseek(fd, 0, SEEK_END));

  // Errors are the request's: the submission succeeds.
  struct aiocb negative = Request(fd, got.data(), 10, -1);
  Say("aio_read at -1", aio_read(&negative));
  WaitAll({&negative});
  SayDone("read at -1 done", &negative);
  struct aiocb badprio = Request(fd, got.data(), 10, 0);
  badprio.aio_reqprio = -1;
  Say("aio_read with a bad priority", aio_read(&badprio));
  printf("bad priority: error %s\n", ErrOf(aio_error(&badprio)).c_str());
  int ro = open("aio", O_RDONLY);
  struct aiocb refused = Request(ro, bufs[0].data(), 10, 0);
  Say("aio_write on a read-only fd", aio_write(&refused));
  WaitAll({&refused});
  SayDone("refused write done", &refused);
  refused.aio_lio_opcode = LIO_WRITE;
  struct aiocb ok_read = Request(fd, got.data(), 10, 0);
  ok_read.aio_lio_opcode = LIO_READ;
  struct aiocb* mixed[] = {&ok_read, &refused};
  Say("lio_listio LIO_WAIT with a failing request", lio_listio(LIO_WAIT, mixed, 2, nullptr));
  SayDone("its good read", &ok_read);
  SayDone("its refused write", &refused);
  close(ro);

  // O_APPEND: on Linux a positioned write to such a file appends.
  int app = open("aio", O_WRONLY | O_APPEND);
  struct aiocb appended = Request(app, bufs[2].data(), 30, 0);
  Say("aio_write O_APPEND", aio_write(&appended));
  WaitAll({&appended});
  SayDone("append done", &appended);
  close(app);
  // Last: glibc's notification thread (and the shim's) runs with no signal blocked, so a signal
  // sent while it lives could end the probe.
  struct aiocb threaded = Request(fd, bufs[1].data(), 10, 2);
  threaded.aio_sigevent.sigev_notify = SIGEV_THREAD;
  threaded.aio_sigevent.sigev_notify_function = OnThreadNotice;
  threaded.aio_sigevent.sigev_value.sival_int = 42;
  Say("aio_write with a thread", aio_write(&threaded));
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 5;
  Say("thread notified", sem_timedwait(&g_notified, &deadline));
  printf("thread's value %d\n", g_notified_value);
  WaitAll({&threaded});
  SayDone("threaded write done", &threaded);
  close(fd);

  std::string whole = ReadWhole("aio");
  printf("file: %zu bytes, digest %016llx\n", whole.size(),
         static_cast<unsigned long long>(Fnv(whole.data(), whole.size())));
  return 0;
}

}  // namespace shim_probe
