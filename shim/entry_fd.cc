// Entry points: descriptor management (close, close_range, dup*, fcntl, ioctl) and locks
// (fcntl record locks, OFD locks, flock, lockf).
//
// Locks are taken on a second, real descriptor of the file (Desc::lock_fd, opened on the first lock
// call with the description's access mode), since an O_PATH descriptor cannot hold locks. The
// engine keeps OFD locks on bytes at the very top of the offset range; application ranges that run
// "to EOF" (l_len 0) are cut just below them so the two never conflict.
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <vector>

#include "lib/open_lock.h"
#include "pmem/log.h"
#include "shim/common.h"
#include "shim/fd_table.h"
#include "shim/ops.h"
#include "shim/real_libc.h"
#include "shim/shim.h"

using namespace tern::shim;

extern "C" {
int TernClose(int fd) TERN_EXPORT_AS("close");
int TernCloseRange(unsigned first, unsigned last, int flags) noexcept TERN_EXPORT_AS("close_range");
void TernClosefrom(int lowfd) noexcept TERN_EXPORT_AS("closefrom");
int TernDup(int fd) noexcept TERN_EXPORT_AS("dup");
int TernDup2(int oldfd, int newfd) noexcept TERN_EXPORT_AS("dup2");
int TernDup3(int oldfd, int newfd, int flags) noexcept TERN_EXPORT_AS("dup3");
int TernFcntl(int fd, int cmd, ...) TERN_EXPORT_AS("fcntl");
int TernFcntl64(int fd, int cmd, ...) TERN_EXPORT_AS("fcntl64");
int TernIoctl(int fd, unsigned long request, ...) noexcept TERN_EXPORT_AS("ioctl");
int TernFlock(int fd, int op) TERN_EXPORT_AS("flock");
int TernLockf(int fd, int cmd, off_t len) TERN_EXPORT_AS("lockf");
int TernLockf64(int fd, int cmd, off_t len) TERN_EXPORT_AS("lockf64");
int TernGetrlimit(int resource, struct rlimit* rl) noexcept TERN_EXPORT_AS("getrlimit");
int TernGetrlimit64(int resource, struct rlimit* rl) noexcept TERN_EXPORT_AS("getrlimit64");
int TernPrlimit(pid_t pid, int resource, const struct rlimit* want, struct rlimit* old) noexcept TERN_EXPORT_AS("prlimit");
int TernPrlimit64(pid_t pid, int resource, const struct rlimit* want, struct rlimit* old) noexcept
    TERN_EXPORT_AS("prlimit64");
}

namespace tern::shim {
namespace {

// Application lock ranges end below this (the engine's lock bytes sit above LLONG_MAX - 2^21).
constexpr off_t kAppLockEnd = kEngineLockRangeStart;

// The lock descriptor of d, opened on first use.
int LockFd(Desc* d, int fd) {
  int lfd = d->lock_fd.load();
  if (lfd >= 0) return lfd;
  HeldLockGuard lock(d->mu);
  lfd = d->lock_fd.load();
  if (lfd >= 0) return lfd;
  lfd = Real().open(ProcFdPath(fd).c_str(), d->access() | O_CLOEXEC | O_NOCTTY);
  if (lfd < 0) return -1;
  lfd = MoveToInternalRange(lfd, true);
  MarkInternalFd(lfd);
  d->lock_fd.store(lfd);
  return lfd;
}

// Closing any fd of a file drops the process's record locks on it (POSIX), whichever description
// took them; lock descriptors stay open for the other fds of their description, so tern unlocks
// through them. One unlock through any of them drops the process's locks on the file.
void DropPosixLocks(int closing_fd) {
  if (!AnyPosixLocks()) return;
  const RealLibc& real = Real();
  int saved = errno;
  struct stat closing;
  if (real.fstat(closing_fd, &closing) == 0) {
    ForEachDesc([&](Desc* d) {
      int lfd = d->lock_fd.load();
      struct stat st;
      if (lfd < 0 || !d->had_posix_locks.load() || real.fstat(lfd, &st) != 0) return;
      if (st.st_dev != closing.st_dev || st.st_ino != closing.st_ino || !ClearPosixLocksMark(d)) return;
      struct flock fl = {};
      fl.l_type = F_UNLCK;
      fl.l_whence = SEEK_SET;
      fl.l_start = 0;
      fl.l_len = kAppLockEnd;
      real.fcntl(lfd, F_SETLK, &fl);
    });
  }
  errno = saved;
}

int RecordLock(Desc* d, int fd, int cmd, struct flock* user) {
  if (user == nullptr) return Fail(EFAULT);
  struct flock fl = *user;
  switch (fl.l_whence) {
    case SEEK_SET: break;
    case SEEK_CUR: fl.l_start += static_cast<off_t>(d->Slot()->offset.load()); break;
    case SEEK_END: {
      off_t size = DescSize(d, fd);
      if (size < 0) return -1;
      fl.l_start += size;
      break;
    }
    default: return Fail(EINVAL);
  }
  fl.l_whence = SEEK_SET;
  if (fl.l_len == 0 && fl.l_start >= 0 && fl.l_start < kAppLockEnd) fl.l_len = kAppLockEnd - fl.l_start;
  int lfd = LockFd(d, fd);
  if (lfd < 0) return -1;
  int r;
  if (cmd == F_SETLKW || cmd == F_OFD_SETLKW) {
    InterruptionsAllowed wait;  // as the kernel's wait: a handler (an alarm's timeout) or a cancellation
    r = Real().fcntl(lfd, cmd, &fl);
  } else {
    r = Real().fcntl(lfd, cmd, &fl);
  }
  if (r != 0) return r;
  if (cmd == F_GETLK || cmd == F_OFD_GETLK) {
    if (fl.l_type == F_UNLCK) {
      user->l_type = F_UNLCK;
    } else {
      if (fl.l_len > 0 && fl.l_start + fl.l_len == kAppLockEnd) fl.l_len = 0;
      *user = fl;
    }
  } else if (cmd == F_SETLK || cmd == F_SETLKW) {
    MarkPosixLocks(d);
  }
  return 0;
}

// A number the application wants is one of the shim's own: move ours out of the way. The engine's
// descriptors cannot move (it holds their numbers), so the application gets EBUSY there.
bool FreeInternalNumber(int fd) {
  if (!IsInternalFd(fd)) return true;
  int moved = Real().fcntl(fd, F_DUPFD_CLOEXEC, fd + 1);
  if (moved < 0) return false;
  if (fd == OfdRegionFd()) {
    Real().fcntl(moved, F_SETFD, 0);  // inherited across exec on purpose
    SetOfdRegionFd(moved);
  } else {
    bool found = false;
    ForEachDesc([&](Desc* d) {
      int expected = fd;
      if (!found && d->lock_fd.compare_exchange_strong(expected, moved)) found = true;
    });
    if (!found) {
      Real().close(moved);
      TERN_LOG_WARN("shim: fd %d is in use by the tern engine; dup2 onto it refused (EBUSY)", fd);
      return false;
    }
  }
  MarkInternalFd(moved);
  UnmarkInternalFd(fd);
  Real().close(fd);
  return true;
}

int Dup3(int oldfd, int newfd, int flags, bool is_dup3) {
  const RealLibc& real = Real();
  if (InEngine()) return is_dup3 ? real.dup3(oldfd, newfd, flags) : real.dup2(oldfd, newfd);
  if (oldfd == newfd) return is_dup3 ? Fail(EINVAL) : real.dup2(oldfd, newfd);
  if (!FreeInternalNumber(newfd)) return Fail(EBUSY);
  DescRef d(oldfd);
  if (DescRef previous(newfd); previous) {  // the kernel's dup2 closes newfd first
    TouchIfDirty(previous.get(), newfd);
    DropPosixLocks(newfd);
  }
  int r = is_dup3 ? real.dup3(oldfd, newfd, flags) : real.dup2(oldfd, newfd);
  if (r < 0) return r;
  if (d) {
    InstallFd(newfd, d.get());
  } else {
    if (Desc* old = TakeFd(newfd)) UnrefDesc(old);
    CopyTernPathMark(oldfd, newfd);
  }
  if (newfd <= 2) SyncStdStream(newfd);
  return r;
}

int Close(int fd) {
  const RealLibc& real = Real();
  if (InEngine()) {
    UnmarkInternalFd(fd);
    return real.close(fd);
  }
  if (IsInternalFd(fd)) {
    TERN_LOG_DEBUG("shim: close(%d) of a descriptor tern uses internally: ignored", fd);
    return 0;
  }
  Desc* d = TakeFd(fd);
  if (d == nullptr) {
    UnmarkTernPathFd(fd);
    return real.close(fd);
  }
  TouchIfDirty(d, fd);
  DropPosixLocks(fd);
  int r = real.close(fd);
  UnrefDesc(d);
  return r;
}

int CloseRange(unsigned first, unsigned last, int flags) {
  const RealLibc& real = Real();
  if (real.close_range == nullptr) return Fail(ENOSYS);
  if (InEngine() || first > last) return real.close_range(first, last, flags);
  if ((static_cast<unsigned>(flags) & CLOSE_RANGE_CLOEXEC) != 0) {
    int r = real.close_range(first, last, flags);
    int region = OfdRegionFd();
    if (r == 0 && region >= 0 && static_cast<unsigned>(region) >= first && static_cast<unsigned>(region) <= last) {
      real.fcntl(region, F_SETFD, 0);
    }
    return r;
  }
  std::vector<std::pair<int, Desc*>> closed;
  for (long fd = first; fd <= static_cast<long>(last) && fd <= MaxTernPathFd(); ++fd) UnmarkTernPathFd(static_cast<int>(fd));
  int max_tern = MaxTernFd();
  for (long fd = first; fd <= static_cast<long>(last) && fd <= max_tern; ++fd) {
    if (Desc* d = TakeFd(static_cast<int>(fd))) {
      TouchIfDirty(d, static_cast<int>(fd));
      DropPosixLocks(static_cast<int>(fd));
      closed.emplace_back(static_cast<int>(fd), d);
    }
  }
  // Close around the shim's and the engine's own descriptors.
  int r = 0;
  unsigned lo = first;
  int max_internal = MaxInternalFd();
  for (long fd = first; fd <= static_cast<long>(last) && fd <= max_internal; ++fd) {
    if (!IsInternalFd(static_cast<int>(fd))) continue;
    if (static_cast<unsigned>(fd) > lo && real.close_range(lo, static_cast<unsigned>(fd) - 1, flags) != 0) r = -1;
    lo = static_cast<unsigned>(fd) + 1;
  }
  if (lo <= last && real.close_range(lo, last, flags) != 0) r = -1;
  for (auto& [fd, d] : closed) UnrefDesc(d);
  return r;
}

int NewFdFrom(int fd, int cmd, long arg, Desc* d) {
  int r = Real().fcntl(fd, cmd, arg);
  if (r < 0) return r;
  if (d != nullptr) {
    if (r >= kMaxFds) {
      Real().close(r);
      return Fail(EMFILE);
    }
    InstallFd(r, d);
    if (r <= 2) SyncStdStream(r);
  } else {
    NoteKernelFd(r);
    CopyTernPathMark(fd, r);
  }
  return r;
}

int Fcntl(int fd, int cmd, void* arg) {
  const RealLibc& real = Real();
  if (InEngine()) {
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
      int r = real.fcntl(fd, cmd, arg);
      return TrackEngineFd(r, cmd == F_DUPFD_CLOEXEC ? O_CLOEXEC : 0);
    }
    return real.fcntl(fd, cmd, arg);
  }
  DescRef d(fd);
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
    return NewFdFrom(fd, cmd, reinterpret_cast<long>(arg), d.get());
  }
  if (!d) return real.fcntl(fd, cmd, arg);
  switch (cmd) {
    case F_GETFL:
      return static_cast<int>(d->flags());
    case F_SETFL: {
      constexpr uint32_t kSettable = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME;
      auto want = static_cast<uint32_t>(reinterpret_cast<long>(arg));
      DescSlotGuard guard(d.get());  // the slot does not move to the shared region meanwhile
      uint32_t cur = guard.slot()->flags.load();
      while (!guard.slot()->flags.compare_exchange_weak(cur, (cur & ~kSettable) | (want & kSettable))) {
      }
      return 0;
    }
    case F_GETLK:
    case F_SETLK:
    case F_SETLKW:
    case F_OFD_GETLK:
    case F_OFD_SETLK:
    case F_OFD_SETLKW:
      return RecordLock(d.get(), fd, cmd, static_cast<struct flock*>(arg));
    case F_GET_SEALS:
    case F_ADD_SEALS:
      return Fail(EINVAL);  // as for any file that is not a memfd
    case F_GETOWN:
    case F_SETOWN:
    case F_GETOWN_EX:
    case F_SETOWN_EX:
    case F_GETSIG:
    case F_SETSIG:
    case F_GETLEASE:
    case F_SETLEASE:
    case F_GET_RW_HINT:
    case F_SET_RW_HINT: {
      // The kernel refuses these on an O_PATH fd (EBADF); the description's lock fd is a real fd of
      // the file, opened with its access mode. A lease meets tern's own descriptor of the file
      // (open for writing), so the kernel answers EAGAIN as for any file open elsewhere.
      int lfd = LockFd(d.get(), fd);
      return lfd < 0 ? -1 : real.fcntl(lfd, cmd, arg);
    }
    default:
      return real.fcntl(fd, cmd, arg);  // F_GETFD/F_SETFD work on O_PATH; the rest fail as the kernel says
  }
}

int Ioctl(int fd, unsigned long request, void* arg) {
  DescRef d(fd);
  if (!d) return Real().ioctl(fd, request, arg);
  switch (request) {
    case FIONREAD: {
      off_t size = DescSize(d.get(), fd);
      if (size < 0) return -1;
      auto off = static_cast<off_t>(d->Slot()->offset.load());
      *static_cast<int*>(arg) = size > off ? static_cast<int>(std::min<off_t>(size - off, INT_MAX)) : 0;
      return 0;
    }
    case FIOCLEX: return Real().fcntl(fd, F_SETFD, FD_CLOEXEC);
    case FIONCLEX: return Real().fcntl(fd, F_SETFD, 0);
    case FIONBIO: {
      DescSlotGuard guard(d.get());
      if (*static_cast<int*>(arg)) guard.slot()->flags.fetch_or(O_NONBLOCK);
      else guard.slot()->flags.fetch_and(~static_cast<uint32_t>(O_NONBLOCK));
      return 0;
    }
    case FICLONE:
    case FICLONERANGE:
    case FIDEDUPERANGE:
      return Fail(EOPNOTSUPP);  // as tmpfs says; programs fall back to copying
    default:
      return Fail(ENOTTY);
  }
}

int Lockf(int fd, int cmd, off_t len) {
  DescRef d(fd);
  if (!d) return Real().lockf(fd, cmd, len);
  struct flock fl = {};
  fl.l_whence = SEEK_CUR;
  fl.l_start = 0;
  fl.l_len = len;
  switch (cmd) {
    case F_TEST:
      fl.l_type = F_RDLCK;
      if (RecordLock(d.get(), fd, F_GETLK, &fl) != 0) return -1;
      if (fl.l_type == F_UNLCK || fl.l_pid == getpid()) return 0;
      return Fail(EACCES);
    case F_ULOCK: fl.l_type = F_UNLCK; return RecordLock(d.get(), fd, F_SETLK, &fl);
    case F_LOCK: fl.l_type = F_WRLCK; return RecordLock(d.get(), fd, F_SETLKW, &fl);
    case F_TLOCK: fl.l_type = F_WRLCK; return RecordLock(d.get(), fd, F_SETLK, &fl);
    default: return Fail(EINVAL);
  }
}

}  // namespace

int ShimDup2(int oldfd, int newfd) { return Dup3(oldfd, newfd, 0, false); }

int RoutedClose(int fd) { return Close(fd); }

}  // namespace tern::shim

int TernClose(int fd) {
  TERN_ENTRY_TRY
  ActOnCancellation();
  return Close(fd);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernCloseRange(unsigned first, unsigned last, int flags) noexcept {
  TERN_ENTRY_TRY
  return CloseRange(first, last, flags);
  TERN_ENTRY_CATCH(-1)
}

void TernClosefrom(int lowfd) noexcept {
  try {
    if (lowfd < 0) lowfd = 0;
    if (CloseRange(static_cast<unsigned>(lowfd), ~0U, 0) == 0) return;
    // Kernels without close_range: close one by one up to the highest number in use.
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = lowfd; fd < max; ++fd) Close(static_cast<int>(fd));
  } catch (...) {
  }
}

int TernDup(int fd) noexcept {
  TERN_ENTRY_TRY
  if (InEngine()) return Real().dup(fd);
  DescRef d(fd);
  return NewFdFrom(fd, F_DUPFD, 0, d.get());
  TERN_ENTRY_CATCH(-1)
}

int TernDup2(int oldfd, int newfd) noexcept {
  TERN_ENTRY_TRY
  return Dup3(oldfd, newfd, 0, false);
  TERN_ENTRY_CATCH(-1)
}

int TernDup3(int oldfd, int newfd, int flags) noexcept {
  TERN_ENTRY_TRY
  return Dup3(oldfd, newfd, flags, true);
  TERN_ENTRY_CATCH(-1)
}

// fcntl's third argument is an int or a pointer; on x86-64 both travel in the same register, so
// reading it as a pointer-sized value and passing it on unchanged is what glibc itself does.
int TernFcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  TERN_ENTRY_TRY
  return Fcntl(fd, cmd, arg);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernFcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  TERN_ENTRY_TRY
  return Fcntl(fd, cmd, arg);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernIoctl(int fd, unsigned long request, ...) noexcept {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  TERN_ENTRY_TRY
  return Ioctl(fd, request, arg);
  TERN_ENTRY_CATCH(-1)
}

int TernFlock(int fd, int op) {
  TERN_ENTRY_TRY
  DescRef d(fd);
  if (!d) return Real().flock(fd, op);
  int lfd = LockFd(d.get(), fd);
  if (lfd < 0) return -1;
  if (op & LOCK_NB) return Real().flock(lfd, op);
  InterruptionsAllowed wait;  // a wait for the lock, interruptible as on the kernel
  return Real().flock(lfd, op);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernLockf(int fd, int cmd, off_t len) {
  TERN_ENTRY_TRY
  return Lockf(fd, cmd, len);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernLockf64(int fd, int cmd, off_t len) { return TernLockf(fd, cmd, len); }

// The open-files limit as the program set it: tern raises the soft limit for its own descriptors
// (fd_table.h), which the program does not see, as `ulimit -n` on the kernel would not show it.
int TernGetrlimit(int resource, struct rlimit* rl) noexcept {
  int r = Real().getrlimit(resource, rl);
  if (r == 0 && resource == RLIMIT_NOFILE) ShowProgramFdLimit(rl);
  return r;
}

int TernGetrlimit64(int resource, struct rlimit* rl) noexcept { return TernGetrlimit(resource, rl); }

int TernPrlimit(pid_t pid, int resource, const struct rlimit* want, struct rlimit* old) noexcept {
  int r = Real().prlimit(pid, resource, want, old);
  if (r == 0 && old != nullptr && resource == RLIMIT_NOFILE && (pid == 0 || pid == getpid())) ShowProgramFdLimit(old);
  return r;
}

int TernPrlimit64(pid_t pid, int resource, const struct rlimit* want, struct rlimit* old) noexcept {
  return TernPrlimit(pid, resource, want, old);
}
