#include "shim/real_libc.h"

#include <dlfcn.h>

#include <atomic>
#include <mutex>

namespace tern::shim {

namespace detail {
RealLibc g_real;
std::atomic<bool> g_real_ready{false};
}  // namespace detail

namespace {

using detail::g_real;

template <typename F>
void Resolve(F*& slot, const char* name) {
  slot = reinterpret_cast<F*>(dlsym(RTLD_NEXT, name));
}

void Load() {
  RealLibc& r = g_real;
  Resolve(r.open, "open64");
  Resolve(r.openat, "openat64");
  Resolve(r.close, "close");
  Resolve(r.close_range, "close_range");
  Resolve(r.read, "read");
  Resolve(r.write, "write");
  Resolve(r.pread, "pread64");
  Resolve(r.pwrite, "pwrite64");
  Resolve(r.readv, "readv");
  Resolve(r.writev, "writev");
  Resolve(r.preadv, "preadv64");
  Resolve(r.pwritev, "pwritev64");
  Resolve(r.preadv2, "preadv64v2");
  Resolve(r.pwritev2, "pwritev64v2");
  Resolve(r.lseek, "lseek64");
  Resolve(r.fstat, "fstat64");
  Resolve(r.stat, "stat64");
  Resolve(r.lstat, "lstat64");
  Resolve(r.fstatat, "fstatat64");
  Resolve(r.statx, "statx");
  Resolve(r.fxstat, "__fxstat64");
  Resolve(r.xstat, "__xstat64");
  Resolve(r.lxstat, "__lxstat64");
  Resolve(r.fxstatat, "__fxstatat64");
  Resolve(r.fsync, "fsync");
  Resolve(r.fdatasync, "fdatasync");
  Resolve(r.sync_file_range, "sync_file_range");
  Resolve(r.syncfs, "syncfs");
  Resolve(r.sync, "sync");
  Resolve(r.ftruncate, "ftruncate64");
  Resolve(r.truncate, "truncate64");
  Resolve(r.fallocate, "fallocate64");
  Resolve(r.posix_fallocate, "posix_fallocate");
  Resolve(r.posix_fallocate64, "posix_fallocate64");
  Resolve(r.posix_fadvise, "posix_fadvise64");
  Resolve(r.readahead, "readahead");
  Resolve(r.dup, "dup");
  Resolve(r.dup2, "dup2");
  Resolve(r.dup3, "dup3");
  Resolve(r.fcntl, "fcntl64");
  Resolve(r.ioctl, "ioctl");
  Resolve(r.flock, "flock");
  Resolve(r.lockf, "lockf64");
  Resolve(r.mmap, "mmap64");
  Resolve(r.munmap, "munmap");
  Resolve(r.mremap, "mremap");
  Resolve(r.copy_file_range, "copy_file_range");
  Resolve(r.sendfile, "sendfile64");
  Resolve(r.splice, "splice");
  Resolve(r.fchmod, "fchmod");
  Resolve(r.fchown, "fchown");
  Resolve(r.futimens, "futimens");
  Resolve(r.utimensat, "utimensat");
  Resolve(r.futimes, "futimes");
  Resolve(r.fgetxattr, "fgetxattr");
  Resolve(r.fsetxattr, "fsetxattr");
  Resolve(r.flistxattr, "flistxattr");
  Resolve(r.fremovexattr, "fremovexattr");
  Resolve(r.fopen, "fopen64");
  Resolve(r.fdopen, "fdopen");
  Resolve(r.freopen, "freopen64");
  Resolve(r.execve, "execve");
  Resolve(r.execvpe, "execvpe");
  Resolve(r.fexecve, "fexecve");
  Resolve(r.posix_spawn, "posix_spawn");
  Resolve(r.posix_spawnp, "posix_spawnp");
  Resolve(r.system, "system");
  Resolve(r.popen, "popen");
  Resolve(r.spawn_addopen, "posix_spawn_file_actions_addopen");
  Resolve(r.spawn_destroy, "posix_spawn_file_actions_destroy");
  Resolve(r.fork, "fork");
  Resolve(r.unlinkat, "unlinkat");
  Resolve(r.rename, "rename");
  Resolve(r.renameat, "renameat");
  Resolve(r.renameat2, "renameat2");
  Resolve(r.link, "link");
  Resolve(r.linkat, "linkat");
  Resolve(r.umask, "umask");
  Resolve(r.getrlimit, "getrlimit");
  Resolve(r.prlimit, "prlimit");
  Resolve(r.aio_read, "aio_read");
  Resolve(r.aio_write, "aio_write");
  Resolve(r.aio_fsync, "aio_fsync");
  Resolve(r.lio_listio, "lio_listio");
  Resolve(r.sigaction, "sigaction");
  Resolve(r.signal, "signal");
  Resolve(r.sysv_signal, "sysv_signal");
  Resolve(r.sigset, "sigset");
  Resolve(r.pthread_cancel, "pthread_cancel");
  Resolve(r.setuid, "setuid");
  Resolve(r.setgid, "setgid");
  Resolve(r.seteuid, "seteuid");
  Resolve(r.setegid, "setegid");
  Resolve(r.setreuid, "setreuid");
  Resolve(r.setregid, "setregid");
  Resolve(r.setresuid, "setresuid");
  Resolve(r.setresgid, "setresgid");
  Resolve(r.setfsuid, "setfsuid");
  Resolve(r.setfsgid, "setfsgid");
  Resolve(r.setgroups, "setgroups");
  Resolve(r.initgroups, "initgroups");
  Resolve(r.capset, "capset");
}

}  // namespace

const RealLibc& detail::LoadReal() {
  // dlsym may run before main (another library's constructor calling open), so this is the only
  // initialisation the table needs.
  static std::once_flag once;
  std::call_once(once, [] {
    Load();
    g_real_ready.store(true, std::memory_order_release);
  });
  return g_real;
}

}  // namespace tern::shim
