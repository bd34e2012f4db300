// Opening paths: which opens become tern files, and how.
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <string>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/pool.h"
#include "lib/process_id.h"
#include "pmem/log.h"
#include "shim/fd_table.h"
#include "shim/ops.h"
#include "shim/paths.h"
#include "shim/real_libc.h"
#include "shim/shim.h"

namespace tern::shim {
namespace {

// The status flags F_GETFL reports (O_CREAT, O_EXCL, O_TRUNC, O_NOCTTY and O_CLOEXEC are not kept).
constexpr uint32_t kKeptFlags = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECT |
                                O_NOATIME | O_ASYNC;

void LogNotTern(const std::string& abs, const char* why) {
  static std::mutex mu;
  static auto* seen = new std::set<std::string>();
  HeldLockGuard lock(mu);
  if (seen->size() < 64 && seen->insert(abs).second) {
    TERN_LOG_WARN("shim: %s is not a tern file (%s); served by the kernel untouched", abs.c_str(), why);
  }
}

// OpenTernOnce: the path named another file by the time the engine had opened one (try again).
constexpr int kReplacedMeanwhile = -2;
// ReopenOpenHere: not a file open here (or an open it leaves to OpenTernOnce's whole way).
constexpr int kNotOpenHere = -3;
// Opens `path` (absolute: `abs`) as a tern file, or through the kernel when it is not one.
int OpenTernOnce(int dirfd, const char* path, const std::string& abs, int flags, mode_t mode);
int ReopenOpenHere(const std::string& abs, int flags, mode_t mode);
// The last step of an open: `fd` (the program's O_PATH descriptor of the file that `st` describes)
// gets a description of `file`. Returns fd, or -1 with errno (fd closed).
int InstallTernFd(int fd, std::unique_ptr<File> file, int flags, const struct stat& st, const std::string& abs);

// The tern fd that /dev/stdin, /dev/stdout, /dev/stderr, /dev/fd/N or /proc/{self,thread-self,PID}/fd/N
// names, or -1.
int TernFdNamedBy(const char* path) {
  if (strncmp(path, "/dev/", 5) != 0 && strncmp(path, "/proc/", 6) != 0) return -1;  // most opens
  int n = -1;
  if (strcmp(path, "/dev/stdin") == 0) {
    n = 0;
  } else if (strcmp(path, "/dev/stdout") == 0) {
    n = 1;
  } else if (strcmp(path, "/dev/stderr") == 0) {
    n = 2;
  } else {
    const char* digits = nullptr;
    if (strncmp(path, "/dev/fd/", 8) == 0) {
      digits = path + 8;
    } else if (path[1] == 'p') {  // "/proc/" (the default root is under /dev: no formatting there)
      char own[40];
      snprintf(own, sizeof(own), "/proc/%u/fd/", ThisProcessId());
      for (const char* prefix : {"/proc/self/fd/", "/proc/thread-self/fd/", static_cast<const char*>(own)}) {
        if (strncmp(path, prefix, strlen(prefix)) == 0) digits = path + strlen(prefix);
      }
    }
    if (digits == nullptr || *digits < '0' || *digits > '9') return -1;
    char* end = nullptr;
    long v = strtol(digits, &end, 10);
    if (*end != '\0' || v >= kMaxFds) return -1;
    n = static_cast<int>(v);
  }
  return IsTernFd(n) || IsTernPathFd(n) ? n : -1;
}

// An open of /dev/stdin (or /dev/fd/N, /proc/self/fd/N) while that fd is a tern file: the kernel
// would follow the O_PATH descriptor to the backing file and show its format. The file is opened
// again by the name it has now — a new open file description at offset 0, as the kernel's reopen
// gives; a deleted file cannot be (ENXIO, with a line).
int ReopenTernFd(int n, int flags, mode_t mode) {
  char target[PATH_MAX];
  ssize_t len = readlink(ProcFdPath(n).c_str(), target, sizeof(target) - 1);
  if (len < 0) return -1;
  std::string abs(target, static_cast<size_t>(len));
  struct stat was, now;
  if (Real().fstat(n, &was) != 0) return -1;
  if (was.st_nlink == 0) {
    TERN_LOG_WARN("shim: fd %d: reopening a deleted tern file through /proc is not supported (ENXIO)", n);
    return Fail(ENXIO);
  }
  int fd = ShimOpen(AT_FDCWD, abs.c_str(), flags & ~(O_CREAT | O_EXCL), mode);
  if (fd < 0) return fd;
  // (Not a tern fd: the file was moved out of the root by a process without tern. A program's
  // O_PATH fd may name a kernel file under the root that only looked like a tern file.)
  bool served_alike = IsTernFd(fd) || !IsTernFd(n);
  if (!served_alike || Real().fstat(fd, &now) != 0 || now.st_dev != was.st_dev || now.st_ino != was.st_ino) {
    RoutedClose(fd);
    TERN_LOG_WARN("shim: fd %d: %s names another file now, or one outside the root; reopening it through /proc is "
                  "not supported (ENXIO)", n, abs.c_str());
    return Fail(ENXIO);
  }
  return fd;
}

// A program's O_PATH open of what may be a tern file (fd_table.h, MarkTernPathFd): a regular file
// under the root made of whole blocks. What names the file through fd checks it is one.
void MarkIfTernPathFd(int fd, int dirfd, const char* path) {
  std::string abs;
  struct stat st;
  if (TernCandidate(dirfd, path, &abs) && Real().fstat(fd, &st) == 0 && ShapedLikeTernFile(st)) MarkTernPathFd(fd);
}

int KernelOpen(int dirfd, const char* path, int flags, mode_t mode) {
  int fd = Real().openat(dirfd, path, flags, mode);
  if (fd >= 0) NoteKernelFd(fd);
  return fd;
}

}  // namespace

int TrackEngineFd(int fd, int flags) {
  if (fd < 0) return fd;
  fd = MoveToInternalRange(fd, (flags & O_CLOEXEC) != 0);
  MarkInternalFd(fd);
  return fd;
}

int ShimOpen(int dirfd, const char* path, int flags, mode_t mode) {
  const RealLibc& real = Real();
  if (InEngine()) return TrackEngineFd(real.openat(dirfd, path, flags, mode), flags);
  std::string abs;
  // O_PATH and directories are the kernel's; so is access mode 3 (no reads or writes, ioctl only).
  if (!ShimReady() || path == nullptr || (flags & (O_PATH | O_DIRECTORY)) != 0 || (flags & O_ACCMODE) == O_ACCMODE) {
    int fd = KernelOpen(dirfd, path, flags, mode);
    if (fd >= 0 && ShimReady() && (flags & O_PATH) != 0) MarkIfTernPathFd(fd, dirfd, path);
    return fd;
  }
  if (path[0] == '/') {
    if (int n = TernFdNamedBy(path); n >= 0) return ReopenTernFd(n, flags, mode);
  }
  if (!TernCandidate(dirfd, path, &abs)) return KernelOpen(dirfd, path, flags, mode);
  if (int fd = ReopenOpenHere(abs, flags, mode); fd != kNotOpenHere) return fd;
  // A file replaced by rename between the first look and the engine's open (written as a copy and
  // renamed over, as editors, config writers and git do) is looked at again: the kernel resolves
  // the path once, so its open never fails for that. Each retry means another rename meanwhile.
  constexpr int kAttempts = 100;
  for (int attempt = 1;; ++attempt) {
    int fd = OpenTernOnce(dirfd, path, abs, flags, mode);
    if (fd != kReplacedMeanwhile) return fd;
    if (attempt == kAttempts) {
      TERN_LOG_WARN("shim: %s was replaced %d times while it was being opened (EAGAIN)", abs.c_str(), kAttempts);
      return Fail(EAGAIN);
    }
  }
}

namespace {

int OpenTernOnce(int dirfd, const char* path, const std::string& abs, int flags, mode_t mode) {
  const RealLibc& real = Real();
  // Only regular files (existing, or about to be created) are tern files. The application's fd,
  // an O_PATH descriptor, is taken first: its fstat is the one look at the file the whole open
  // needs (the engine trusts it, and it proves the engine opened that same inode).
  struct stat st;
  int path_flags = O_PATH | (flags & O_CLOEXEC);
  int fd = real.openat(AT_FDCWD, abs.c_str(), path_flags | O_NOFOLLOW);
  bool exists = fd >= 0 && real.fstat(fd, &st) == 0;
  auto to_kernel = [&] {
    if (fd >= 0) real.close(fd);
    return KernelOpen(dirfd, path, flags, mode);
  };
  auto fail = [&](const Status& why) {
    if (fd >= 0) real.close(fd);
    return FailWith(why);
  };
  if (exists && S_ISLNK(st.st_mode) && (flags & O_NOFOLLOW) == 0) {
    // A symlink under the root to a file outside it (a venv's bin/python) names a kernel file.
    char target[PATH_MAX];
    if (realpath(abs.c_str(), target) != nullptr && !UnderRoot(NormalizePath(target))) return to_kernel();
    real.close(fd);
    fd = real.openat(AT_FDCWD, abs.c_str(), path_flags);
    exists = fd >= 0 && real.fstat(fd, &st) == 0;
  }
  if (fd >= 0 && !exists) return to_kernel();  // fstat of an O_PATH fd failed: let the kernel say why
  if (exists && !S_ISREG(st.st_mode)) return to_kernel();
  if (!exists && (errno != ENOENT || (flags & O_CREAT) == 0)) return to_kernel();
  if (exists && (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) return fail(Status::Error(EEXIST, "O_EXCL"));
  bool plain_by_default = PlainByDefault(abs);
  if (!exists && plain_by_default) return to_kernel();
  if (exists && st.st_size % 4096 != 0) {
    if (!plain_by_default) LogNotTern(abs, "its size is not a whole number of blocks");
    return to_kernel();
  }

  int access = flags & O_ACCMODE;
  int engine_flags = flags & (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW);
  if (!exists && access == O_RDONLY) {
    // O_RDONLY|O_CREAT creates the file as the kernel does (flock(1) and daemons' lock files): the
    // engine makes it an empty tern file through a writable open of its own, and the program's
    // open then reads that file. Someone else creating the name first is EEXIST here: look again.
    Status made = [&] {
      EngineScope engine;
      auto creator = File::Open(abs, O_RDWR | O_CREAT | O_EXCL | (flags & O_NOFOLLOW), mode, nullptr);
      return creator.ok() ? Status::Ok() : creator.status();
    }();
    if (!made.ok()) return made.err() == EEXIST ? kReplacedMeanwhile : fail(made);
    engine_flags = O_RDONLY | (flags & O_NOFOLLOW);
  }
  // Linux truncates on O_RDONLY|O_TRUNC too (when the caller may write); the engine wants a
  // writable open for it.
  bool truncate_read_only = (flags & O_TRUNC) && access == O_RDONLY;
  if (truncate_read_only) engine_flags &= ~O_TRUNC;
  auto opened = [&] {
    EngineScope engine;
    return File::Open(abs, engine_flags, mode, exists ? &st : &kPathAbsent);
  }();
  if (!opened.ok()) {
    if (opened.status().err() == kNotTernFile) {
      if (!plain_by_default) LogNotTern(abs, opened.status().context());
      return to_kernel();
    }
    return fail(opened.status());
  }
  std::unique_ptr<File> file = std::move(*opened);
  if (truncate_read_only) {
    EngineScope engine;
    auto writer = File::Open(abs, O_WRONLY | O_TRUNC);
    if (!writer.ok()) return fail(writer.status());
  }

  if (fd < 0) {  // created by the engine just now
    fd = real.openat(AT_FDCWD, abs.c_str(), path_flags | (flags & O_NOFOLLOW));
    if (fd < 0) return -1;
    if (real.fstat(fd, &st) != 0) st = {};
  }
  if (st.st_ino != file->core().ino() || st.st_dev != file->core().dev()) {
    real.close(fd);
    EngineScope engine;
    file.reset();
    return kReplacedMeanwhile;
  }
  return InstallTernFd(fd, std::move(file), flags, st, abs);
}

// A file this process has open, or keeps open after its last close (lingering, lib/pool.h), opened
// again: a stat of the name and a duplicate of the O_PATH descriptor the engine keeps of the file
// (FileCore::PathDescriptor) instead of an O_PATH open and its fstat. The kernel's open resolves
// the name once, as the stat does, and the duplicate names that very inode (the engine holds it
// open, so its number cannot have gone to another file). As many system calls, but no kernel file
// is made, and the close that follows frees none. O_EXCL creates, O_TRUNC on a read-only open, names
// that are not a regular file (a symlink: followed or refused the whole way) and files with more
// than one name are left to OpenTernOnce, as is a file that closed meanwhile.
int ReopenOpenHere(const std::string& abs, int flags, mode_t mode) {
  const RealLibc& real = Real();
  if (!Pool::Default().MayHaveOpenFiles()) return kNotOpenHere;
  if ((flags & O_EXCL) != 0 || ((flags & O_TRUNC) != 0 && (flags & O_ACCMODE) == O_RDONLY)) return kNotOpenHere;
  struct stat st;
  // One name only: the kept descriptor shows (in /proc/self/fd) the name it was opened by, which
  // for a file with several hard links may not be the one opened now.
  if (real.fstatat(AT_FDCWD, abs.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !ShapedLikeTernFile(st) ||
      st.st_nlink != 1 || !Pool::Default().IsOpenHere(st.st_dev, st.st_ino)) {
    return kNotOpenHere;
  }
  int engine_flags = flags & (O_ACCMODE | O_CREAT | O_TRUNC | O_NOFOLLOW);
  std::unique_ptr<File> file;
  int fd = -1;
  {
    EngineScope engine;
    auto opened = File::Open(abs, engine_flags, mode, &st);
    if (!opened.ok()) return opened.status().err() == kNotTernFile ? kNotOpenHere : FailWith(opened.status());
    file = std::move(*opened);
    int kept = -1;
    if (st.st_ino != file->core().ino() || st.st_dev != file->core().dev() ||
        (kept = file->core().PathDescriptor()) < 0) {
      file.reset();
      return kNotOpenHere;
    }
    fd = real.fcntl(kept, (flags & O_CLOEXEC) != 0 ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    if (fd < 0) {
      int err = errno;  // EMFILE, as open would say
      file.reset();
      return Fail(err);
    }
  }
  return InstallTernFd(fd, std::move(file), flags, st, abs);
}

int InstallTernFd(int fd, std::unique_ptr<File> file, int flags, const struct stat& st, const std::string& abs) {
  const RealLibc& real = Real();
  if (fd >= kMaxFds) {
    real.close(fd);
    EngineScope engine;
    file.reset();
    return Fail(EMFILE);
  }
  uint32_t flags_kept = (static_cast<uint32_t>(flags) & kKeptFlags) | kKernelLargefile;
  {
    EngineScope engine;  // File's destructor on the error path
    Desc* d = NewDesc(file.get(), /*slot_index=*/0, flags_kept, st.st_dev, st.st_ino, abs);
    if (d == nullptr) {
      real.close(fd);
      return Fail(ENFILE);
    }
    file.release();
    InstallFd(fd, d);
    UnrefDesc(d);
  }
  if (fd <= 2) SyncStdStream(fd);
  return fd;
}

}  // namespace

bool NamesTernFd(const char* path) { return path != nullptr && path[0] == '/' && TernFdNamedBy(path) >= 0; }

void NoteKernelFd(int fd) {
  if (fd < 0) return;
  UnmarkTernPathFd(fd);
  if (Desc* stale = TakeFd(fd)) UnrefDesc(stale);
  if (fd <= 2) SyncStdStream(fd);
}

}  // namespace tern::shim
