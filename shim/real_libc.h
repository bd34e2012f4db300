// The real libc functions behind every symbol the shim interposes, one line per symbol (the MadFS
// `posix.h` habit), resolved once with dlsym(RTLD_NEXT, ...). On x86-64 glibc the plain and `64`
// names are aliases of one function (notes/env.md §3.2), so one pointer serves both.
#pragma once

#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <atomic>

struct aiocb;
struct sigaction;
struct sigevent;
struct statx;
struct timeval;

namespace tern::shim {

// The data-transfer calls are noexcept (libc never throws), so the shim's entry points can hand a
// pass-through call on to them as a tail call.
struct RealLibc {
  int (*open)(const char*, int, ...);
  int (*openat)(int, const char*, int, ...);
  int (*close)(int);
  int (*close_range)(unsigned, unsigned, int);
  ssize_t (*read)(int, void*, size_t) noexcept;
  ssize_t (*write)(int, const void*, size_t) noexcept;
  ssize_t (*pread)(int, void*, size_t, off_t) noexcept;
  ssize_t (*pwrite)(int, const void*, size_t, off_t) noexcept;
  ssize_t (*readv)(int, const struct iovec*, int) noexcept;
  ssize_t (*writev)(int, const struct iovec*, int) noexcept;
  ssize_t (*preadv)(int, const struct iovec*, int, off_t);
  ssize_t (*pwritev)(int, const struct iovec*, int, off_t);
  ssize_t (*preadv2)(int, const struct iovec*, int, off_t, int);
  ssize_t (*pwritev2)(int, const struct iovec*, int, off_t, int);
  off_t (*lseek)(int, off_t, int);
  int (*fstat)(int, struct stat*);
  int (*stat)(const char*, struct stat*);
  int (*lstat)(const char*, struct stat*);
  int (*fstatat)(int, const char*, struct stat*, int);
  int (*statx)(int, const char*, int, unsigned, struct statx*);
  int (*fxstat)(int, int, struct stat*);                     // __fxstat64 (pre-2.33 binaries)
  int (*xstat)(int, const char*, struct stat*);              // __xstat64
  int (*lxstat)(int, const char*, struct stat*);             // __lxstat64
  int (*fxstatat)(int, int, const char*, struct stat*, int); // __fxstatat64
  int (*fsync)(int);
  int (*fdatasync)(int);
  int (*sync_file_range)(int, off_t, off_t, unsigned);
  int (*syncfs)(int);
  void (*sync)();
  int (*ftruncate)(int, off_t);
  int (*truncate)(const char*, off_t);
  int (*fallocate)(int, int, off_t, off_t);
  int (*posix_fallocate)(int, off_t, off_t);
  int (*posix_fallocate64)(int, off_t, off_t);
  int (*posix_fadvise)(int, off_t, off_t, int);
  ssize_t (*readahead)(int, off_t, size_t);
  int (*dup)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
  int (*fcntl)(int, int, ...);
  int (*ioctl)(int, unsigned long, ...);
  int (*flock)(int, int);
  int (*lockf)(int, int, off_t);
  void* (*mmap)(void*, size_t, int, int, int, off_t);
  int (*munmap)(void*, size_t);
  void* (*mremap)(void*, size_t, size_t, int, ...);
  ssize_t (*copy_file_range)(int, off_t*, int, off_t*, size_t, unsigned);
  ssize_t (*sendfile)(int, int, off_t*, size_t);
  ssize_t (*splice)(int, off_t*, int, off_t*, size_t, unsigned);
  int (*fchmod)(int, mode_t);
  int (*fchown)(int, uid_t, gid_t);
  int (*futimens)(int, const struct timespec*);
  int (*utimensat)(int, const char*, const struct timespec*, int);
  int (*futimes)(int, const struct timeval*);
  ssize_t (*fgetxattr)(int, const char*, void*, size_t);
  int (*fsetxattr)(int, const char*, const void*, size_t, int);
  ssize_t (*flistxattr)(int, char*, size_t);
  int (*fremovexattr)(int, const char*);
  FILE* (*fopen)(const char*, const char*);
  FILE* (*fdopen)(int, const char*);
  FILE* (*freopen)(const char*, const char*, FILE*);
  int (*execve)(const char*, char* const[], char* const[]);
  int (*execvpe)(const char*, char* const[], char* const[]);
  int (*fexecve)(int, char* const[], char* const[]);
  int (*posix_spawn)(pid_t*, const char*, const posix_spawn_file_actions_t*,
                     const posix_spawnattr_t*, char* const[], char* const[]);
  int (*posix_spawnp)(pid_t*, const char*, const posix_spawn_file_actions_t*,
                      const posix_spawnattr_t*, char* const[], char* const[]);
  int (*system)(const char*);
  FILE* (*popen)(const char*, const char*);
  int (*spawn_addopen)(posix_spawn_file_actions_t*, int, const char*, int, mode_t);
  int (*spawn_destroy)(posix_spawn_file_actions_t*);
  pid_t (*fork)();
  int (*unlinkat)(int, const char*, int);
  int (*rename)(const char*, const char*);
  int (*renameat)(int, const char*, int, const char*);
  int (*renameat2)(int, const char*, int, const char*, unsigned);
  int (*link)(const char*, const char*);
  int (*linkat)(int, const char*, int, const char*, int);
  mode_t (*umask)(mode_t);
  int (*getrlimit)(int, struct rlimit*);
  int (*prlimit)(pid_t, int, const struct rlimit*, struct rlimit*);
  int (*aio_read)(struct aiocb*);
  int (*aio_write)(struct aiocb*);
  int (*aio_fsync)(int, struct aiocb*);
  int (*lio_listio)(int, struct aiocb* const[], int, struct sigevent*);
  int (*sigaction)(int, const struct sigaction*, struct sigaction*);
  void (*(*signal)(int, void (*)(int)))(int);
  void (*(*sysv_signal)(int, void (*)(int)))(int);
  void (*(*sigset)(int, void (*)(int)))(int);
  int (*pthread_cancel)(pthread_t);
  int (*setuid)(uid_t);
  int (*setgid)(gid_t);
  int (*seteuid)(uid_t);
  int (*setegid)(gid_t);
  int (*setreuid)(uid_t, uid_t);
  int (*setregid)(gid_t, gid_t);
  int (*setresuid)(uid_t, uid_t, uid_t);
  int (*setresgid)(gid_t, gid_t, gid_t);
  int (*setfsuid)(uid_t);
  int (*setfsgid)(gid_t);
  int (*setgroups)(size_t, const gid_t*);
  int (*initgroups)(const char*, gid_t);
  int (*capset)(void*, const void*);
};

namespace detail {
extern RealLibc g_real;
extern std::atomic<bool> g_real_ready;
const RealLibc& LoadReal();
}  // namespace detail

// The table, resolved on first use (idempotent, thread-safe). A symbol dlsym cannot find stays
// null and its entry point fails with ENOSYS. Inline: every pass-through call goes through it.
inline const RealLibc& Real() {
  // acquire; pairs with the release in LoadReal.
  if (detail::g_real_ready.load(std::memory_order_acquire)) [[likely]] return detail::g_real;
  return detail::LoadReal();
}

}  // namespace tern::shim
