// Entry points: POSIX asynchronous I/O (aio_read, aio_write, aio_fsync, lio_listio) on tern files.
//
// glibc runs each AIO request on a helper thread of its own, which calls libc's internal pread and
// pwrite: no preload sees them, so on a tern fd (an O_PATH descriptor to the kernel) every request
// failed with EBADF (fio's posixaio engine, for one). A tern file's I/O is a copy to or from
// memory that never waits for a device, so the shim carries a request out at once, on the
// caller's thread, and completes it as glibc's helper does: the result goes into the aiocb, where
// aio_error and aio_return read it, and the notification the aiocb asks for is sent (none, a
// queued signal with SI_ASYNCIO, or a new thread). aio_error, aio_return, aio_suspend and
// aio_cancel need no interposition: they find the request finished (aio_cancel: AIO_ALLDONE).
// Requests on other fds go to glibc's AIO untouched; a lio_listio list may mix both.
#include <aio.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "shim/common.h"
#include "shim/fd_table.h"
#include "shim/ops.h"
#include "shim/real_libc.h"

using namespace tern::shim;

extern "C" {
int TernAioRead(struct aiocb* cb) noexcept TERN_EXPORT_AS("aio_read");
int TernAioRead64(struct aiocb* cb) noexcept TERN_EXPORT_AS("aio_read64");
int TernAioWrite(struct aiocb* cb) noexcept TERN_EXPORT_AS("aio_write");
int TernAioWrite64(struct aiocb* cb) noexcept TERN_EXPORT_AS("aio_write64");
int TernAioFsync(int op, struct aiocb* cb) noexcept TERN_EXPORT_AS("aio_fsync");
int TernAioFsync64(int op, struct aiocb* cb) noexcept TERN_EXPORT_AS("aio_fsync64");
int TernLioListio(int mode, struct aiocb* const list[], int nent, struct sigevent* sig) noexcept
    TERN_EXPORT_AS("lio_listio");
int TernLioListio64(int mode, struct aiocb* const list[], int nent, struct sigevent* sig) noexcept
    TERN_EXPORT_AS("lio_listio64");
}

namespace {

// glibc's opcodes for the two syncs (aio_misc.h); they never appear in a program's aiocb.
enum class Op { kRead, kWrite, kSync, kDataSync };

bool ForTernFile(const struct aiocb* cb) { return cb != nullptr && !PassThrough(cb->aio_fildes); }

struct ThreadNotice {
  void (*function)(union sigval);
  union sigval value;
};

void* RunThreadNotice(void* arg) {
  // As glibc's notification thread: no signal blocked, the notice freed before the call.
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  ThreadNotice notice = *static_cast<ThreadNotice*>(arg);
  free(arg);
  notice.function(notice.value);
  return nullptr;
}

// What glibc's __aio_notify_only does for a finished request or list.
void Notify(const struct sigevent& ev) {
  if (ev.sigev_notify == SIGEV_SIGNAL) {
    siginfo_t info{};
    info.si_signo = ev.sigev_signo;
    info.si_code = SI_ASYNCIO;
    info.si_pid = getpid();
    info.si_uid = getuid();
    info.si_value = ev.sigev_value;
    syscall(SYS_rt_sigqueueinfo, info.si_pid, ev.sigev_signo, &info);
  } else if (ev.sigev_notify == SIGEV_THREAD && ev.sigev_notify_function != nullptr) {
    auto* notice = static_cast<ThreadNotice*>(malloc(sizeof(ThreadNotice)));
    if (notice == nullptr) return;
    notice->function = ev.sigev_notify_function;
    notice->value = ev.sigev_value;
    pthread_attr_t detached;
    pthread_attr_t* attr = static_cast<pthread_attr_t*>(ev.sigev_notify_attributes);
    if (attr == nullptr) {
      pthread_attr_init(&detached);
      pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
      attr = &detached;
    }
    pthread_t thread;
    if (pthread_create(&thread, attr, RunThreadNotice, notice) != 0) free(notice);
    if (attr == &detached) pthread_attr_destroy(&detached);
  }
}

// Carries out one request on a tern file and completes it. The caller's errno is kept: the
// submission succeeded, whatever the request's own result.
void RunNow(struct aiocb* cb, Op op) {
  int saved = errno;
  int fd = cb->aio_fildes;
  void* buf = const_cast<void*>(cb->aio_buf);
  ssize_t rc;
  switch (op) {
    case Op::kRead:
      rc = RoutedPread(fd, buf, cb->aio_nbytes, cb->aio_offset);
      break;
    case Op::kWrite:
      rc = RoutedPwrite(fd, buf, cb->aio_nbytes, cb->aio_offset);
      break;
    default: {
      DescRef d(fd);
      rc = d ? DescFsync(d.get(), fd) : Fail(EBADF);
      break;
    }
  }
  cb->__return_value = rc;
  // release: aio_error's reader then sees the count stored before it.
  __atomic_store_n(&cb->__error_code, rc < 0 ? errno : 0, __ATOMIC_RELEASE);
  errno = saved;
  Notify(cb->aio_sigevent);
}

// glibc refuses a priority outside 0..AIO_PRIO_DELTA_MAX at submission, in the aiocb too.
bool BadPriority(struct aiocb* cb) {
  if (cb->aio_reqprio >= 0 && cb->aio_reqprio <= AIO_PRIO_DELTA_MAX) return false;
  cb->__return_value = -1;
  cb->__error_code = EINVAL;
  errno = EINVAL;
  return true;
}

int Submit(struct aiocb* cb, Op op) {
  if (BadPriority(cb)) return -1;
  RunNow(cb, op);
  return 0;
}

}  // namespace

int TernAioRead(struct aiocb* cb) noexcept {
  if (!ForTernFile(cb)) return Real().aio_read != nullptr ? Real().aio_read(cb) : Fail(ENOSYS);
  TERN_ENTRY_TRY
  return Submit(cb, Op::kRead);
  TERN_ENTRY_CATCH(-1)
}

int TernAioRead64(struct aiocb* cb) noexcept { return TernAioRead(cb); }

int TernAioWrite(struct aiocb* cb) noexcept {
  if (!ForTernFile(cb)) return Real().aio_write != nullptr ? Real().aio_write(cb) : Fail(ENOSYS);
  TERN_ENTRY_TRY
  return Submit(cb, Op::kWrite);
  TERN_ENTRY_CATCH(-1)
}

int TernAioWrite64(struct aiocb* cb) noexcept { return TernAioWrite(cb); }

int TernAioFsync(int op, struct aiocb* cb) noexcept {
  if (!ForTernFile(cb)) return Real().aio_fsync != nullptr ? Real().aio_fsync(op, cb) : Fail(ENOSYS);
  if (op != O_SYNC && op != O_DSYNC) return Fail(EINVAL);
  TERN_ENTRY_TRY
  // Every earlier request on a tern file has completed already, as aio_fsync requires of them.
  return Submit(cb, op == O_SYNC ? Op::kSync : Op::kDataSync);
  TERN_ENTRY_CATCH(-1)
}

int TernAioFsync64(int op, struct aiocb* cb) noexcept { return TernAioFsync(op, cb); }

int TernLioListio(int mode, struct aiocb* const list[], int nent, struct sigevent* sig) noexcept {
  // (glibc before 2.34 keeps AIO in librt: a program that calls it has it loaded.)
  if (Real().lio_listio == nullptr) return Fail(ENOSYS);
  bool any_tern = false;
  for (int i = 0; list != nullptr && i < nent && !any_tern; ++i) any_tern = ForTernFile(list[i]);
  if (!any_tern) return Real().lio_listio(mode, list, nent, sig);
  if (mode != LIO_WAIT && mode != LIO_NOWAIT) return Fail(EINVAL);
  TERN_ENTRY_TRY
  // The tern requests run now; glibc gets the rest (the tern ones as null entries, which it
  // skips) and sends the list's notification, at once when nothing of its own is left.
  std::vector<struct aiocb*> rest(list, list + static_cast<size_t>(nent));
  bool failed = false;
  for (size_t i = 0; i < rest.size(); ++i) {
    struct aiocb* cb = list[i];
    if (!ForTernFile(cb) || cb->aio_lio_opcode == LIO_NOP) continue;
    rest[i] = nullptr;
    if (BadPriority(cb)) {
      failed = true;
      continue;
    }
    if (cb->aio_lio_opcode != LIO_READ && cb->aio_lio_opcode != LIO_WRITE) {
      cb->__return_value = -1;  // as glibc's helper does with an opcode it does not know
      cb->__error_code = EINVAL;
      failed = true;
      continue;
    }
    RunNow(cb, cb->aio_lio_opcode == LIO_READ ? Op::kRead : Op::kWrite);
    failed = failed || cb->__error_code != 0;
  }
  int rc = Real().lio_listio(mode, rest.data(), nent, sig);
  if (rc == 0 && failed && mode == LIO_WAIT) return Fail(EIO);
  return rc;
  TERN_ENTRY_CATCH(-1)
}

int TernLioListio64(int mode, struct aiocb* const list[], int nent, struct sigevent* sig) noexcept {
  return TernLioListio(mode, list, nent, sig);
}
