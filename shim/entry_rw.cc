// Entry points: data transfer (read/write, positional, vectored, lseek, copy_file_range, sendfile).
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "shim/common.h"
#include "shim/fd_table.h"
#include "shim/ops.h"
#include "shim/real_libc.h"

using namespace tern::shim;

extern "C" {
[[noreturn]] void __chk_fail(void);

ssize_t TernRead(int fd, void* buf, size_t n) TERN_EXPORT_AS("read");
ssize_t TernReadChk(int fd, void* buf, size_t n, size_t buflen) TERN_EXPORT_AS("__read_chk");
ssize_t TernWrite(int fd, const void* buf, size_t n) TERN_EXPORT_AS("write");
ssize_t TernPread(int fd, void* buf, size_t n, off_t off) TERN_EXPORT_AS("pread");
ssize_t TernPread64(int fd, void* buf, size_t n, off_t off) TERN_EXPORT_AS("pread64");
ssize_t TernPreadChk(int fd, void* buf, size_t n, off_t off, size_t buflen) TERN_EXPORT_AS("__pread_chk");
ssize_t TernPread64Chk(int fd, void* buf, size_t n, off_t off, size_t buflen) TERN_EXPORT_AS("__pread64_chk");
ssize_t TernPwrite(int fd, const void* buf, size_t n, off_t off) TERN_EXPORT_AS("pwrite");
ssize_t TernPwrite64(int fd, const void* buf, size_t n, off_t off) TERN_EXPORT_AS("pwrite64");
ssize_t TernReadv(int fd, const struct iovec* iov, int iovcnt) TERN_EXPORT_AS("readv");
ssize_t TernWritev(int fd, const struct iovec* iov, int iovcnt) TERN_EXPORT_AS("writev");
ssize_t TernPreadv(int fd, const struct iovec* iov, int iovcnt, off_t off) TERN_EXPORT_AS("preadv");
ssize_t TernPreadv64(int fd, const struct iovec* iov, int iovcnt, off_t off) TERN_EXPORT_AS("preadv64");
ssize_t TernPwritev(int fd, const struct iovec* iov, int iovcnt, off_t off) TERN_EXPORT_AS("pwritev");
ssize_t TernPwritev64(int fd, const struct iovec* iov, int iovcnt, off_t off) TERN_EXPORT_AS("pwritev64");
ssize_t TernPreadv2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) TERN_EXPORT_AS("preadv2");
ssize_t TernPreadv64v2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) TERN_EXPORT_AS("preadv64v2");
ssize_t TernPwritev2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) TERN_EXPORT_AS("pwritev2");
ssize_t TernPwritev64v2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) TERN_EXPORT_AS("pwritev64v2");
off_t TernLseek(int fd, off_t off, int whence) noexcept TERN_EXPORT_AS("lseek");
off_t TernLseek64(int fd, off_t off, int whence) noexcept TERN_EXPORT_AS("lseek64");
ssize_t TernCopyFileRange(int in, off_t* off_in, int out, off_t* off_out, size_t len, unsigned flags) noexcept TERN_EXPORT_AS("copy_file_range");
ssize_t TernSendfile(int out, int in, off_t* offset, size_t count) noexcept TERN_EXPORT_AS("sendfile");
ssize_t TernSendfile64(int out, int in, off_t* offset, size_t count) noexcept TERN_EXPORT_AS("sendfile64");
ssize_t TernSplice(int in, off_t* off_in, int out, off_t* off_out, size_t len, unsigned flags) noexcept TERN_EXPORT_AS("splice");
}

namespace {

constexpr int kKnownRwf = RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND;
ssize_t Preadv(int fd, const struct iovec* iov, int iovcnt, off_t off) {
  DescRef d(fd);
  if (!d) return Real().preadv(fd, iov, iovcnt, off);
  if (off < 0) return Fail(EINVAL);
  return DescReadv(d.get(), fd, iov, iovcnt, off);
}

ssize_t Pwritev(int fd, const struct iovec* iov, int iovcnt, off_t off) {
  DescRef d(fd);
  if (!d) return Real().pwritev(fd, iov, iovcnt, off);
  if (off < 0) return Fail(EINVAL);
  return DescWritev(d.get(), fd, iov, iovcnt, off, 0);
}

ssize_t Preadv2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) {
  DescRef d(fd);
  if (!d) return Real().preadv2(fd, iov, iovcnt, off, flags);
  if (flags & ~kKnownRwf) return Fail(EOPNOTSUPP);
  if (off < -1) return Fail(EINVAL);
  return DescReadv(d.get(), fd, iov, iovcnt, off);
}

ssize_t Pwritev2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) {
  DescRef d(fd);
  if (!d) return Real().pwritev2(fd, iov, iovcnt, off, flags);
  if (flags & ~kKnownRwf) return Fail(EOPNOTSUPP);
  if (off < -1) return Fail(EINVAL);
  return DescWritev(d.get(), fd, iov, iovcnt, off, flags);
}

// The kernel's sendfile and splice refuse a destination open with O_APPEND (EINVAL).
bool OpenForAppending(int fd) {
  DescRef d(fd);
  return d && (d->flags() & O_APPEND) != 0;
}

ssize_t Sendfile(int out, int in, off_t* offset, size_t count) {
  if (!IsTernFd(in) && !IsTernFd(out)) return Real().sendfile(out, in, offset, count);
  if ((offset != nullptr && *offset < 0) || OpenForAppending(out)) return Fail(EINVAL);
  return CopyThrough(in, offset, out, nullptr, count);
}

}  // namespace

ssize_t TernRead(int fd, void* buf, size_t n) {
  if (PassThrough(fd)) return Real().read(fd, buf, n);
  ActOnCancellation();
  TERN_ENTRY_TRY
  return RoutedRead(fd, buf, n);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

ssize_t TernReadChk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) __chk_fail();
  return TernRead(fd, buf, n);
}

ssize_t TernWrite(int fd, const void* buf, size_t n) {
  if (PassThrough(fd)) return Real().write(fd, buf, n);
  ActOnCancellation();
  TERN_ENTRY_TRY
  return RoutedWrite(fd, buf, n);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

ssize_t TernPread(int fd, void* buf, size_t n, off_t off) {
  if (PassThrough(fd)) return Real().pread(fd, buf, n, off);
  ActOnCancellation();
  TERN_ENTRY_TRY
  return RoutedPread(fd, buf, n, off);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

ssize_t TernPread64(int fd, void* buf, size_t n, off_t off) { return TernPread(fd, buf, n, off); }

ssize_t TernPreadChk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  if (n > buflen) __chk_fail();
  return TernPread(fd, buf, n, off);
}

ssize_t TernPread64Chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  return TernPreadChk(fd, buf, n, off, buflen);
}

ssize_t TernPwrite(int fd, const void* buf, size_t n, off_t off) {
  if (PassThrough(fd)) return Real().pwrite(fd, buf, n, off);
  ActOnCancellation();
  TERN_ENTRY_TRY
  return RoutedPwrite(fd, buf, n, off);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

ssize_t TernPwrite64(int fd, const void* buf, size_t n, off_t off) { return TernPwrite(fd, buf, n, off); }

ssize_t TernReadv(int fd, const struct iovec* iov, int iovcnt) {
  if (PassThrough(fd)) return Real().readv(fd, iov, iovcnt);
  ActOnCancellation();
  TERN_ENTRY_TRY
  DescRef d(fd);
  if (!d) return Real().readv(fd, iov, iovcnt);
  return DescReadv(d.get(), fd, iov, iovcnt, -1);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

ssize_t TernWritev(int fd, const struct iovec* iov, int iovcnt) {
  if (PassThrough(fd)) return Real().writev(fd, iov, iovcnt);
  ActOnCancellation();
  TERN_ENTRY_TRY
  DescRef d(fd);
  if (!d) return Real().writev(fd, iov, iovcnt);
  return DescWritev(d.get(), fd, iov, iovcnt, -1, 0);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

ssize_t TernPreadv(int fd, const struct iovec* iov, int iovcnt, off_t off) {
  TERN_ENTRY_TRY
  ActOnCancellation();
  return Preadv(fd, iov, iovcnt, off);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

ssize_t TernPreadv64(int fd, const struct iovec* iov, int iovcnt, off_t off) {
  return TernPreadv(fd, iov, iovcnt, off);
}

ssize_t TernPwritev(int fd, const struct iovec* iov, int iovcnt, off_t off) {
  TERN_ENTRY_TRY
  ActOnCancellation();
  return Pwritev(fd, iov, iovcnt, off);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

ssize_t TernPwritev64(int fd, const struct iovec* iov, int iovcnt, off_t off) {
  return TernPwritev(fd, iov, iovcnt, off);
}

ssize_t TernPreadv2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) {
  TERN_ENTRY_TRY
  ActOnCancellation();
  return Preadv2(fd, iov, iovcnt, off, flags);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

ssize_t TernPreadv64v2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) {
  return TernPreadv2(fd, iov, iovcnt, off, flags);
}

ssize_t TernPwritev2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) {
  TERN_ENTRY_TRY
  ActOnCancellation();
  return Pwritev2(fd, iov, iovcnt, off, flags);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

ssize_t TernPwritev64v2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) {
  return TernPwritev2(fd, iov, iovcnt, off, flags);
}

off_t TernLseek(int fd, off_t off, int whence) noexcept {
  TERN_ENTRY_TRY
  return RoutedLseek(fd, off, whence);
  TERN_ENTRY_CATCH(-1)
}

off_t TernLseek64(int fd, off_t off, int whence) noexcept { return TernLseek(fd, off, whence); }

ssize_t TernCopyFileRange(int in, off_t* off_in, int out, off_t* off_out, size_t len, unsigned flags) noexcept {
  TERN_ENTRY_TRY
  DescRef din(in);
  DescRef dout(out);
  if (!din && !dout) return Real().copy_file_range(in, off_in, out, off_out, len, flags);
  if (flags != 0) return Fail(EINVAL);
  if ((off_in != nullptr && *off_in < 0) || (off_out != nullptr && *off_out < 0)) return Fail(EINVAL);
  // The kernel's checks, in its order: readable source, writable non-append destination.
  if (din && din->access() == O_WRONLY) return Fail(EBADF);
  if (dout && (dout->access() == O_RDONLY || (dout->flags() & O_APPEND))) return Fail(EBADF);
  if (din && dout && din.get() == dout.get() && off_in == nullptr && off_out == nullptr) return Fail(EINVAL);
  return CopyThrough(in, off_in, out, off_out, len);
  TERN_ENTRY_CATCH(-1)
}

ssize_t TernSendfile(int out, int in, off_t* offset, size_t count) noexcept {
  TERN_ENTRY_TRY
  return Sendfile(out, in, offset, count);
  TERN_ENTRY_CATCH(-1)
}

ssize_t TernSendfile64(int out, int in, off_t* offset, size_t count) noexcept {
  return TernSendfile(out, in, offset, count);
}

// splice moves data between a pipe and a file; with a tern file on one side it is a copy through a
// buffer (the kernel requires one side to be a pipe; tern does not check that).
ssize_t TernSplice(int in, off_t* off_in, int out, off_t* off_out, size_t len, unsigned flags) noexcept {
  TERN_ENTRY_TRY
  if (!IsTernFd(in) && !IsTernFd(out)) return Real().splice(in, off_in, out, off_out, len, flags);
  if ((off_in != nullptr && *off_in < 0) || (off_out != nullptr && *off_out < 0) || OpenForAppending(out)) {
    return Fail(EINVAL);
  }
  return CopyThrough(in, off_in, out, off_out, len);
  TERN_ENTRY_CATCH(-1)
}
