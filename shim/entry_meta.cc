// Entry points: metadata and sizes (stat family, statx, truncate, fallocate, fsync, fadvise) and the
// fd-based calls the kernel refuses on an O_PATH descriptor (fchmod, fchown, futimens, xattrs),
// which tern redirects to the file through /proc/self/fd.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <utime.h>
#include <unistd.h>

#include <climits>
#include <string>

#include "lib/file.h"
#include "shim/common.h"
#include "shim/fd_table.h"
#include "shim/ops.h"
#include "shim/paths.h"
#include "shim/real_libc.h"
#include "shim/shim.h"

using namespace tern::shim;

extern "C" {
int TernFstat(int fd, struct stat* st) noexcept TERN_EXPORT_AS("fstat");
int TernFstat64(int fd, struct stat* st) noexcept TERN_EXPORT_AS("fstat64");
int TernStat(const char* path, struct stat* st) noexcept TERN_EXPORT_AS("stat");
int TernStat64(const char* path, struct stat* st) noexcept TERN_EXPORT_AS("stat64");
int TernLstat(const char* path, struct stat* st) noexcept TERN_EXPORT_AS("lstat");
int TernLstat64(const char* path, struct stat* st) noexcept TERN_EXPORT_AS("lstat64");
int TernFstatat(int dirfd, const char* path, struct stat* st, int flags) noexcept TERN_EXPORT_AS("fstatat");
int TernFstatat64(int dirfd, const char* path, struct stat* st, int flags) noexcept TERN_EXPORT_AS("fstatat64");
int TernStatx(int dirfd, const char* path, int flags, unsigned mask, struct statx* stx) noexcept TERN_EXPORT_AS("statx");
int TernFxstat(int ver, int fd, struct stat* st) noexcept TERN_EXPORT_AS("__fxstat");
int TernFxstat64(int ver, int fd, struct stat* st) noexcept TERN_EXPORT_AS("__fxstat64");
int TernXstat(int ver, const char* path, struct stat* st) noexcept TERN_EXPORT_AS("__xstat");
int TernXstat64(int ver, const char* path, struct stat* st) noexcept TERN_EXPORT_AS("__xstat64");
int TernLxstat(int ver, const char* path, struct stat* st) noexcept TERN_EXPORT_AS("__lxstat");
int TernLxstat64(int ver, const char* path, struct stat* st) noexcept TERN_EXPORT_AS("__lxstat64");
int TernFxstatat(int ver, int dirfd, const char* path, struct stat* st, int flags) noexcept TERN_EXPORT_AS("__fxstatat");
int TernFxstatat64(int ver, int dirfd, const char* path, struct stat* st, int flags) noexcept TERN_EXPORT_AS("__fxstatat64");
int TernFsync(int fd) TERN_EXPORT_AS("fsync");
int TernFdatasync(int fd) TERN_EXPORT_AS("fdatasync");
int TernSyncFileRange(int fd, off_t off, off_t n, unsigned flags) noexcept TERN_EXPORT_AS("sync_file_range");
int TernSyncfs(int fd) noexcept TERN_EXPORT_AS("syncfs");
void TernSync() noexcept TERN_EXPORT_AS("sync");
int TernFtruncate(int fd, off_t len) noexcept TERN_EXPORT_AS("ftruncate");
int TernFtruncate64(int fd, off_t len) noexcept TERN_EXPORT_AS("ftruncate64");
int TernTruncate(const char* path, off_t len) noexcept TERN_EXPORT_AS("truncate");
int TernTruncate64(const char* path, off_t len) noexcept TERN_EXPORT_AS("truncate64");
int TernFallocate(int fd, int mode, off_t off, off_t len) noexcept TERN_EXPORT_AS("fallocate");
int TernFallocate64(int fd, int mode, off_t off, off_t len) noexcept TERN_EXPORT_AS("fallocate64");
int TernPosixFallocate(int fd, off_t off, off_t len) noexcept TERN_EXPORT_AS("posix_fallocate");
int TernPosixFallocate64(int fd, off_t off, off_t len) noexcept TERN_EXPORT_AS("posix_fallocate64");
int TernPosixFadvise(int fd, off_t off, off_t len, int advice) noexcept TERN_EXPORT_AS("posix_fadvise");
int TernPosixFadvise64(int fd, off_t off, off_t len, int advice) noexcept TERN_EXPORT_AS("posix_fadvise64");
ssize_t TernReadahead(int fd, off_t off, size_t count) noexcept TERN_EXPORT_AS("readahead");
int TernFchmod(int fd, mode_t mode) noexcept TERN_EXPORT_AS("fchmod");
int TernFchown(int fd, uid_t uid, gid_t gid) noexcept TERN_EXPORT_AS("fchown");
int TernFutimens(int fd, const struct timespec* ts) noexcept TERN_EXPORT_AS("futimens");
int TernUtimensat(int dirfd, const char* path, const struct timespec* ts, int flags) noexcept TERN_EXPORT_AS("utimensat");
int TernFutimes(int fd, const struct timeval* tv) noexcept TERN_EXPORT_AS("futimes");
int TernUtime(const char* path, const struct utimbuf* times) noexcept TERN_EXPORT_AS("utime");
int TernUtimes(const char* path, const struct timeval* tv) noexcept TERN_EXPORT_AS("utimes");
ssize_t TernFgetxattr(int fd, const char* name, void* value, size_t size) noexcept TERN_EXPORT_AS("fgetxattr");
int TernFsetxattr(int fd, const char* name, const void* value, size_t size, int flags) noexcept TERN_EXPORT_AS("fsetxattr");
ssize_t TernFlistxattr(int fd, char* list, size_t size) noexcept TERN_EXPORT_AS("flistxattr");
int TernFremovexattr(int fd, const char* name) noexcept TERN_EXPORT_AS("fremovexattr");
}

namespace {

// fstat through a program's own O_PATH fd of a tern file (fd_table.h): the kernel describes the
// backing file; the tern file is what the fd names.
void PatchTernPathFdStat(int fd, struct stat* st) {
  if (!IsTernPathFd(fd) || InEngine()) return;
  char target[PATH_MAX];
  ssize_t n = readlink(ProcFdPath(fd).c_str(), target, sizeof(target) - 1);
  if (n <= 0) return;
  target[n] = '\0';
  PatchPathStat(AT_FDCWD, target, false, st);
}

int Fstat(int fd, struct stat* st) {
  DescRef d(fd);
  if (d) return DescFstat(d.get(), fd, st);
  int r = Real().fstat(fd, st);
  if (r == 0) PatchTernPathFdStat(fd, st);
  return r;
}

int Fstatat(int dirfd, const char* path, struct stat* st, int flags) {
  bool empty_path = path != nullptr && path[0] == '\0' && (flags & AT_EMPTY_PATH);
  if (empty_path) {
    DescRef d(dirfd);
    if (d) return DescFstat(d.get(), dirfd, st);
  }
  int r = Real().fstatat(dirfd, path, st, flags);
  if (r == 0 && empty_path) {
    PatchTernPathFdStat(dirfd, st);
  } else if (r == 0 && ShimReady() && !InEngine()) {
    PatchPathStat(dirfd, path, (flags & AT_SYMLINK_NOFOLLOW) == 0, st);
  }
  return r;
}

int Statx(int dirfd, const char* path, int flags, unsigned mask, struct statx* stx) {
  if (Real().statx == nullptr) return Fail(ENOSYS);
  int r = Real().statx(dirfd, path, flags, mask, stx);
  if (r != 0 || InEngine() || !ShimReady() || !S_ISREG(stx->stx_mode)) return r;
  struct stat st = {};
  st.st_mode = stx->stx_mode;
  st.st_size = static_cast<off_t>(stx->stx_size);
  st.st_ino = stx->stx_ino;
  st.st_blocks = static_cast<blkcnt_t>(stx->stx_blocks);
  st.st_blksize = static_cast<blksize_t>(stx->stx_blksize);
  if (path != nullptr && path[0] == '\0' && (flags & AT_EMPTY_PATH)) {
    DescRef d(dirfd);
    if (d) {
      if (DescFstat(d.get(), dirfd, &st) != 0) return -1;
    } else if (IsTernPathFd(dirfd)) {
      PatchTernPathFdStat(dirfd, &st);
    } else {
      return r;
    }
  } else {
    PatchPathStat(dirfd, path, (flags & AT_SYMLINK_NOFOLLOW) == 0, &st);
  }
  stx->stx_size = static_cast<uint64_t>(st.st_size);
  stx->stx_blocks = static_cast<uint64_t>(st.st_blocks);
  stx->stx_blksize = static_cast<uint32_t>(st.st_blksize);
  return 0;
}

int Truncate(const char* path, off_t len) {
  std::string abs;
  if (!ShimReady() || InEngine() || !TernCandidate(AT_FDCWD, path, &abs)) return Real().truncate(path, len);
  struct stat st;
  if (Real().stat(abs.c_str(), &st) != 0 || !ShapedLikeTernFile(st)) return Real().truncate(path, len);
  if (len < 0) return Fail(EINVAL);
  EngineScope engine;
  auto f = tern::File::Open(abs, O_WRONLY);
  if (!f.ok()) {
    if (f.status().err() == tern::kNotTernFile) return Real().truncate(path, len);
    return FailWith(f.status());
  }
  tern::Status s = (*f)->Truncate(static_cast<uint64_t>(len));
  return s.ok() ? 0 : FailWith(s);
}

// posix_fallocate reports errors as its return value.
int PosixFallocate(int fd, off_t off, off_t len, bool is64) {
  DescRef d(fd);
  if (!d) return is64 ? Real().posix_fallocate64(fd, off, len) : Real().posix_fallocate(fd, off, len);
  int saved = errno;
  int r = DescFallocate(d.get(), fd, 0, off, len);
  int err = r == 0 ? 0 : errno;
  errno = saved;
  return err;
}

// The program sets a file's times: what it wrote before, through any of its descriptors of the
// file, must not move them again at the next fstat or close (TouchIfDirty).
void ForgetPendingTouches(const struct stat& file) {
  ForEachTernFd([&](int fd, Desc* d) {
    struct stat st;
    if (d->dirty.load() && Real().fstat(fd, &st) == 0 && st.st_dev == file.st_dev && st.st_ino == file.st_ino) {
      d->dirty.store(false);
    }
  });
}

int SetTimes(int fd, const struct timespec* ts) {
  DescRef d(fd);
  if (!d) return Real().futimens(fd, ts);
  struct stat st;
  if (Real().fstat(fd, &st) == 0) ForgetPendingTouches(st);
  return Real().utimensat(AT_FDCWD, ProcFdPath(fd).c_str(), ts, 0);
}

int SetTimesByPath(int dirfd, const char* path, const struct timespec* ts, int flags) {
  struct stat st;
  if (path != nullptr && MaxTernFd() >= 0 && !InEngine() && Real().fstatat(dirfd, path, &st, flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) == 0) {
    ForgetPendingTouches(st);
  }
  return Real().utimensat(dirfd, path, ts, flags);
}

// timeval pairs (utimes, futimes) as utimensat's timespec pairs; null stays null ("now").
const struct timespec* AsTimespecs(const struct timeval* tv, struct timespec* ts) {
  if (tv == nullptr) return nullptr;
  ts[0] = {tv[0].tv_sec, tv[0].tv_usec * 1000};
  ts[1] = {tv[1].tv_sec, tv[1].tv_usec * 1000};
  return ts;
}

}  // namespace

#define TERN_ENTRY(expr) \
  TERN_ENTRY_TRY         \
  return expr;           \
  TERN_ENTRY_CATCH(-1)

int TernFstat(int fd, struct stat* st) noexcept { TERN_ENTRY(Fstat(fd, st)) }
int TernFstat64(int fd, struct stat* st) noexcept { TERN_ENTRY(Fstat(fd, st)) }
int TernStat(const char* path, struct stat* st) noexcept { TERN_ENTRY(Fstatat(AT_FDCWD, path, st, 0)) }
int TernStat64(const char* path, struct stat* st) noexcept { TERN_ENTRY(Fstatat(AT_FDCWD, path, st, 0)) }
int TernLstat(const char* path, struct stat* st) noexcept {
  TERN_ENTRY(Fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW))
}
int TernLstat64(const char* path, struct stat* st) noexcept {
  TERN_ENTRY(Fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW))
}
int TernFstatat(int dirfd, const char* path, struct stat* st, int flags) noexcept {
  TERN_ENTRY(Fstatat(dirfd, path, st, flags))
}
int TernFstatat64(int dirfd, const char* path, struct stat* st, int flags) noexcept {
  TERN_ENTRY(Fstatat(dirfd, path, st, flags))
}
int TernStatx(int dirfd, const char* path, int flags, unsigned mask, struct statx* stx) noexcept {
  TERN_ENTRY(Statx(dirfd, path, flags, mask, stx))
}
// The pre-2.33 stat ABI (`ver` is _STAT_VER; x86-64 has one struct layout).
int TernFxstat(int, int fd, struct stat* st) noexcept { TERN_ENTRY(Fstat(fd, st)) }
int TernFxstat64(int, int fd, struct stat* st) noexcept { TERN_ENTRY(Fstat(fd, st)) }
int TernXstat(int, const char* path, struct stat* st) noexcept { TERN_ENTRY(Fstatat(AT_FDCWD, path, st, 0)) }
int TernXstat64(int, const char* path, struct stat* st) noexcept { TERN_ENTRY(Fstatat(AT_FDCWD, path, st, 0)) }
int TernLxstat(int, const char* path, struct stat* st) noexcept {
  TERN_ENTRY(Fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW))
}
int TernLxstat64(int, const char* path, struct stat* st) noexcept {
  TERN_ENTRY(Fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW))
}
int TernFxstatat(int, int dirfd, const char* path, struct stat* st, int flags) noexcept {
  TERN_ENTRY(Fstatat(dirfd, path, st, flags))
}
int TernFxstatat64(int, int dirfd, const char* path, struct stat* st, int flags) noexcept {
  TERN_ENTRY(Fstatat(dirfd, path, st, flags))
}

int TernFsync(int fd) {
  TERN_ENTRY_TRY
  ActOnCancellation();
  DescRef d(fd);
  return d ? DescFsync(d.get(), fd) : Real().fsync(fd);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernFdatasync(int fd) {
  TERN_ENTRY_TRY
  ActOnCancellation();
  DescRef d(fd);
  return d ? DescFsync(d.get(), fd) : Real().fdatasync(fd);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernSyncFileRange(int fd, off_t off, off_t n, unsigned flags) noexcept {
  TERN_ENTRY_TRY
  DescRef d(fd);
  if (!d) return Real().sync_file_range(fd, off, n, flags);
  if (off < 0 || n < 0) return Fail(EINVAL);
  return DescFsync(d.get(), fd);  // stronger than asked: the whole file is made durable
  TERN_ENTRY_CATCH(-1)
}

int TernSyncfs(int fd) noexcept {
  TERN_ENTRY_TRY
  if (DescRef d(fd); !d) return Real().syncfs(fd);
  // The kernel refuses an O_PATH fd; and what it would flush of a tern file is tern's to flush.
  if (FsyncWrittenTernFiles() != 0) return -1;
  Real().sync();  // the filesystem's kernel files too (sync(2) covers every filesystem)
  return 0;
  TERN_ENTRY_CATCH(-1)
}

void TernSync() noexcept {
  try {
    FsyncWrittenTernFiles();
  } catch (...) {
    LogUnexpectedException(__func__);
  }
  Real().sync();
}

int TernFtruncate(int fd, off_t len) noexcept {
  TERN_ENTRY_TRY
  DescRef d(fd);
  return d ? DescTruncate(d.get(), fd, len) : Real().ftruncate(fd, len);
  TERN_ENTRY_CATCH(-1)
}
int TernFtruncate64(int fd, off_t len) noexcept { return TernFtruncate(fd, len); }
int TernTruncate(const char* path, off_t len) noexcept { TERN_ENTRY(Truncate(path, len)) }
int TernTruncate64(const char* path, off_t len) noexcept { TERN_ENTRY(Truncate(path, len)) }

int TernFallocate(int fd, int mode, off_t off, off_t len) noexcept {
  TERN_ENTRY_TRY
  DescRef d(fd);
  return d ? DescFallocate(d.get(), fd, mode, off, len) : Real().fallocate(fd, mode, off, len);
  TERN_ENTRY_CATCH(-1)
}
int TernFallocate64(int fd, int mode, off_t off, off_t len) noexcept { return TernFallocate(fd, mode, off, len); }

int TernPosixFallocate(int fd, off_t off, off_t len) noexcept {
  TERN_ENTRY_TRY
  return PosixFallocate(fd, off, len, false);
  TERN_ENTRY_CATCH(ENOMEM)
}
int TernPosixFallocate64(int fd, off_t off, off_t len) noexcept {
  TERN_ENTRY_TRY
  return PosixFallocate(fd, off, len, true);
  TERN_ENTRY_CATCH(ENOMEM)
}

int TernPosixFadvise(int fd, off_t off, off_t len, int advice) noexcept {
  TERN_ENTRY_TRY
  if (!IsTernFd(fd)) return Real().posix_fadvise(fd, off, len, advice);
  if (advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE || len < 0) return EINVAL;
  return 0;  // advice only: tern's data is already mapped
  TERN_ENTRY_CATCH(ENOMEM)
}
int TernPosixFadvise64(int fd, off_t off, off_t len, int advice) noexcept {
  return TernPosixFadvise(fd, off, len, advice);
}

ssize_t TernReadahead(int fd, off_t off, size_t count) noexcept {
  TERN_ENTRY_TRY
  DescRef d(fd);
  if (!d) return Real().readahead(fd, off, count);
  return d->access() == O_WRONLY ? Fail(EBADF) : 0;
  TERN_ENTRY_CATCH(-1)
}

int TernFchmod(int fd, mode_t mode) noexcept {
  TERN_ENTRY_TRY
  if (!IsTernFd(fd)) return Real().fchmod(fd, mode);
  return fchmodat(AT_FDCWD, ProcFdPath(fd).c_str(), mode, 0);
  TERN_ENTRY_CATCH(-1)
}

int TernFchown(int fd, uid_t uid, gid_t gid) noexcept {
  TERN_ENTRY_TRY
  if (!IsTernFd(fd)) return Real().fchown(fd, uid, gid);
  return fchownat(fd, "", uid, gid, AT_EMPTY_PATH);  // allowed on O_PATH descriptors
  TERN_ENTRY_CATCH(-1)
}

int TernFutimens(int fd, const struct timespec* ts) noexcept { TERN_ENTRY(SetTimes(fd, ts)) }

int TernUtimensat(int dirfd, const char* path, const struct timespec* ts, int flags) noexcept {
  TERN_ENTRY_TRY
  if (path == nullptr && IsTernFd(dirfd)) return SetTimes(dirfd, ts);
  return SetTimesByPath(dirfd, path, ts, flags);
  TERN_ENTRY_CATCH(-1)
}

int TernFutimes(int fd, const struct timeval* tv) noexcept {
  TERN_ENTRY_TRY
  if (!IsTernFd(fd)) return Real().futimes(fd, tv);
  struct timespec ts[2];
  return SetTimes(fd, AsTimespecs(tv, ts));
  TERN_ENTRY_CATCH(-1)
}

int TernUtimes(const char* path, const struct timeval* tv) noexcept {
  TERN_ENTRY_TRY
  struct timespec ts[2];
  return SetTimesByPath(AT_FDCWD, path, AsTimespecs(tv, ts), 0);
  TERN_ENTRY_CATCH(-1)
}

int TernUtime(const char* path, const struct utimbuf* times) noexcept {
  TERN_ENTRY_TRY
  struct timespec ts[2];
  if (times != nullptr) {
    ts[0] = {times->actime, 0};
    ts[1] = {times->modtime, 0};
  }
  return SetTimesByPath(AT_FDCWD, path, times != nullptr ? ts : nullptr, 0);
  TERN_ENTRY_CATCH(-1)
}

ssize_t TernFgetxattr(int fd, const char* name, void* value, size_t size) noexcept {
  TERN_ENTRY_TRY
  if (!IsTernFd(fd)) return Real().fgetxattr(fd, name, value, size);
  return getxattr(ProcFdPath(fd).c_str(), name, value, size);
  TERN_ENTRY_CATCH(-1)
}

int TernFsetxattr(int fd, const char* name, const void* value, size_t size, int flags) noexcept {
  TERN_ENTRY_TRY
  if (!IsTernFd(fd)) return Real().fsetxattr(fd, name, value, size, flags);
  return setxattr(ProcFdPath(fd).c_str(), name, value, size, flags);
  TERN_ENTRY_CATCH(-1)
}

ssize_t TernFlistxattr(int fd, char* list, size_t size) noexcept {
  TERN_ENTRY_TRY
  if (!IsTernFd(fd)) return Real().flistxattr(fd, list, size);
  return listxattr(ProcFdPath(fd).c_str(), list, size);
  TERN_ENTRY_CATCH(-1)
}

int TernFremovexattr(int fd, const char* name) noexcept {
  TERN_ENTRY_TRY
  if (!IsTernFd(fd)) return Real().fremovexattr(fd, name);
  return removexattr(ProcFdPath(fd).c_str(), name);
  TERN_ENTRY_CATCH(-1)
}
