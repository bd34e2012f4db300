// The operations behind the entry points, on one open file description (Desc) of a tern file, and
// the routing helpers that pick the engine or the real libc by fd. Entry points (entry_*.cc) and the
// stdio cookies (stdio.cc) both call these, so a stream and a plain fd behave the same.
//
// Every function here returns what the libc call returns (a count, an offset, 0) or -1 with errno
// set; none throws (engine results are converted in one place, Fail/FailWith in common.h).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "shim/fd_table.h"

namespace tern::shim {

// The kernel's per-call cap on read/write counts (MAX_RW_COUNT).
inline constexpr size_t kMaxRw = 0x7ffff000;
// F_GETFL reports O_LARGEFILE on 64-bit kernels; tern reports the same.
inline constexpr uint32_t kKernelLargefile = 0100000;

ssize_t DescRead(Desc* d, int fd, void* buf, size_t n);
ssize_t DescPread(Desc* d, int fd, void* buf, size_t n, off_t off);
ssize_t DescWrite(Desc* d, int fd, const void* buf, size_t n);
ssize_t DescPwrite(Desc* d, int fd, const void* buf, size_t n, off_t off);
// Vectored I/O: one engine call per operation (so a writev is as atomic as a write). off < 0: at
// (and advancing) the file offset. `rwf` are preadv2/pwritev2 flags (already validated).
ssize_t DescReadv(Desc* d, int fd, const struct iovec* iov, int iovcnt, off_t off);
ssize_t DescWritev(Desc* d, int fd, const struct iovec* iov, int iovcnt, off_t off, int rwf);
off_t DescLseek(Desc* d, int fd, off_t off, int whence);
int DescFstat(Desc* d, int fd, struct stat* st);
int DescTruncate(Desc* d, int fd, off_t len);
int DescFsync(Desc* d, int fd);
// sync(2), syncfs(2): every tern file this process has open for writing, made durable as fsync
// does (tern's log is flushed by the processes that write it; another process's sync cannot do
// it for them). 0, or -1 with errno from the first that failed.
int FsyncWrittenTernFiles();
int DescFallocate(Desc* d, int fd, int mode, off_t off, off_t len);
// Logical size, or -1 with errno.
off_t DescSize(Desc* d, int fd);
// Sets the backing file's mtime/ctime to now when the description wrote since the last update
// (mmap'ed stores do not move the kernel's timestamps).
void TouchIfDirty(Desc* d, int fd);

// Routing by fd: the engine for tern fds, the real libc otherwise.
ssize_t RoutedRead(int fd, void* buf, size_t n);
ssize_t RoutedWrite(int fd, const void* buf, size_t n);
ssize_t RoutedPread(int fd, void* buf, size_t n, off_t off);
ssize_t RoutedPwrite(int fd, const void* buf, size_t n, off_t off);
off_t RoutedLseek(int fd, off_t off, int whence);
int RoutedClose(int fd);
// Writes all of buf to fd (at *off when off is not null, advancing it); returns bytes written, or -1
// when nothing was written.
ssize_t WriteAll(int fd, const char* buf, size_t n, off_t* off);
// Copies up to len bytes (at most 64 MiB a call) from `in` to `out` through a buffer, as
// copy_file_range and sendfile do when at least one side is a tern file. off_in/off_out null: the
// file offsets (advanced). Returns bytes copied (0 at the end of `in`), or -1 when none were.
ssize_t CopyThrough(int in, off_t* off_in, int out, off_t* off_out, size_t len);

// stat of a path the kernel already stat'ed into *st: when it is a tern file, the logical size and
// blocks replace the backing file's. `follow` as stat vs lstat.
void PatchPathStat(int dirfd, const char* path, bool follow, struct stat* st);

}  // namespace tern::shim
