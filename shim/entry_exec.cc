// Entry points: exec and spawn. Before a new program image starts, the shim writes which fds are
// tern files into TERN_SHIM_FDS ("<e|s><pid>;fd:slot:flags:offset,...") in the environment it passes
// on; the new image's shim adopts them at start-up (adopt.cc). `e` (exec: the same process) hands the
// slot references over; `s` (posix_spawn: a child) makes the child take its own.
// vfork becomes fork, so the fork handlers run and slot references stay counted.
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "shim/common.h"
#include "shim/fd_table.h"
#include "shim/ofd_region.h"
#include "shim/ops.h"
#include "shim/paths.h"
#include "shim/real_libc.h"
#include "shim/shim.h"

using namespace tern::shim;

extern "C" {
extern char** environ;
int TernExecve(const char* path, char* const argv[], char* const envp[]) noexcept TERN_EXPORT_AS("execve");
int TernExecv(const char* path, char* const argv[]) noexcept TERN_EXPORT_AS("execv");
int TernExecvp(const char* file, char* const argv[]) noexcept TERN_EXPORT_AS("execvp");
int TernExecvpe(const char* file, char* const argv[], char* const envp[]) noexcept TERN_EXPORT_AS("execvpe");
int TernExecl(const char* path, const char* arg, ...) noexcept TERN_EXPORT_AS("execl");
int TernExeclp(const char* file, const char* arg, ...) noexcept TERN_EXPORT_AS("execlp");
int TernExecle(const char* path, const char* arg, ...) noexcept TERN_EXPORT_AS("execle");
int TernFexecve(int fd, char* const argv[], char* const envp[]) noexcept TERN_EXPORT_AS("fexecve");
int TernPosixSpawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* fa,
                   const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) noexcept
    TERN_EXPORT_AS("posix_spawn");
int TernPosixSpawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* fa,
                    const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) noexcept
    TERN_EXPORT_AS("posix_spawnp");
pid_t TernVfork() noexcept TERN_EXPORT_AS("vfork");
int TernSpawnAddopen(posix_spawn_file_actions_t* fa, int fd, const char* path, int oflag, mode_t mode) noexcept
    TERN_EXPORT_AS("posix_spawn_file_actions_addopen");
int TernSpawnDestroy(posix_spawn_file_actions_t* fa) noexcept TERN_EXPORT_AS("posix_spawn_file_actions_destroy");
}

namespace {

constexpr const char kFdsVar[] = "TERN_SHIM_FDS=";
constexpr const char kOfdVar[] = "TERN_SHIM_OFD=";

// The path of this library, for children whose environment lost LD_PRELOAD.
const char* SelfPath() {
  static const char* path = [] {
    Dl_info info;
    return dladdr(reinterpret_cast<void*>(&SelfPath), &info) != 0 && info.dli_fname != nullptr ? info.dli_fname : "";
  }();
  return path;
}

// The environment for the next program image: envp without stale tern variables, plus the current
// fd list and offset region. A program that inherits tern fds can only use them with the shim
// loaded, so when envp dropped LD_PRELOAD or TERN_ROOT (env -i, an empty subprocess env) they are
// put back.
class ChildEnv {
 public:
  ChildEnv(char* const* envp, char mode) {
    fds_ = kFdsVar;
    fds_ += mode;
    fds_ += std::to_string(getpid());
    fds_ += ';';
    bool first = true;
    bool inherited = false;
    int max = MaxTernFd();
    for (int fd = 0; fd <= max; ++fd) {
      DescRef d(fd);
      if (!d) continue;
      char item[96];
      snprintf(item, sizeof(item), "%s%d:%u:%u:%llu", first ? "" : ",", fd, d->slot_index, d->flags(),
               static_cast<unsigned long long>(d->slot->offset.load()));
      fds_ += item;
      first = false;
      if ((Real().fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0) inherited = true;
    }
    ofd_ = kOfdVar;
    ofd_ += OfdRegionEnv();
    bool has_preload = false, has_root = false;
    for (char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
      if (strncmp(*e, kFdsVar, sizeof(kFdsVar) - 1) == 0 || strncmp(*e, kOfdVar, sizeof(kOfdVar) - 1) == 0) continue;
      if (strncmp(*e, "LD_PRELOAD=", 11) == 0 && strstr(*e, "libtern") != nullptr) has_preload = true;
      if (strncmp(*e, "TERN_ROOT=", 10) == 0) has_root = true;
      vars_.push_back(*e);
    }
    if (inherited && !has_preload && SelfPath()[0] != '\0') {
      preload_ = std::string("LD_PRELOAD=") + SelfPath();
      for (auto it = vars_.begin(); it != vars_.end(); ++it) {
        if (strncmp(*it, "LD_PRELOAD=", 11) == 0) {  // keep what was there, after the shim
          preload_ += std::string(":") + (*it + 11);
          vars_.erase(it);
          break;
        }
      }
      vars_.push_back(preload_.data());
    }
    if (inherited && !has_root) {
      root_ = "TERN_ROOT=" + Paths().root;
      vars_.push_back(root_.data());
    }
    if (!first) vars_.push_back(fds_.data());
    if (ofd_.size() > sizeof(kOfdVar) - 1) vars_.push_back(ofd_.data());
    vars_.push_back(nullptr);
  }
  char* const* get() { return vars_.data(); }

 private:
  std::string fds_;
  std::string ofd_;
  std::string preload_;
  std::string root_;
  std::vector<char*> vars_;
};

std::vector<char*> CollectArgs(const char* arg, va_list ap, char* const** envp) {
  std::vector<char*> args;
  args.push_back(const_cast<char*>(arg));
  while (args.back() != nullptr) args.push_back(va_arg(ap, char*));
  if (envp != nullptr) *envp = va_arg(ap, char* const*);
  return args;
}

int Execve(const char* path, char* const argv[], char* const envp[]) {
  if (!ShimReady()) return Real().execve(path, argv, envp);
  ChildEnv env(envp, 'e');
  return Real().execve(path, argv, env.get());
}

int Execvpe(const char* file, char* const argv[], char* const envp[]) {
  if (!ShimReady()) return Real().execvpe(file, argv, envp);
  ChildEnv env(envp, 'e');
  return Real().execvpe(file, argv, env.get());
}

// A spawn file action that opens a tern path would open the backing file raw in the child (glibc's
// spawn helper calls the kernel directly). The shim opens it here instead and turns the action into
// a dup2 of that fd; the fd is closed when the actions object is destroyed.
std::mutex& SpawnMu() {
  static auto* mu = new std::mutex();
  return *mu;
}
std::map<posix_spawn_file_actions_t*, std::vector<int>>& SpawnFds() {
  static auto* fds = new std::map<posix_spawn_file_actions_t*, std::vector<int>>();
  return *fds;
}

int SpawnAddopen(posix_spawn_file_actions_t* fa, int fd, const char* path, int oflag, mode_t mode) {
  std::string abs;
  if (!ShimReady() || InEngine() || !TernCandidate(AT_FDCWD, path, &abs)) {
    return Real().spawn_addopen(fa, fd, path, oflag, mode);
  }
  int saved = errno;
  int opened = ShimOpen(AT_FDCWD, path, oflag | O_CLOEXEC, mode);
  if (opened < 0 || !IsTernFd(opened)) {
    if (opened >= 0) RoutedClose(opened);
    errno = saved;
    return Real().spawn_addopen(fa, fd, path, oflag, mode);  // the child's open behaves the same
  }
  int r = posix_spawn_file_actions_adddup2(fa, opened, fd);
  if (r != 0) {
    RoutedClose(opened);
    errno = saved;
    return r;
  }
  std::lock_guard lock(SpawnMu());
  SpawnFds()[fa].push_back(opened);
  errno = saved;
  return 0;
}

int SpawnDestroy(posix_spawn_file_actions_t* fa) {
  std::vector<int> fds;
  {
    std::lock_guard lock(SpawnMu());
    auto it = SpawnFds().find(fa);
    if (it != SpawnFds().end()) {
      fds = std::move(it->second);
      SpawnFds().erase(it);
    }
  }
  for (int fd : fds) RoutedClose(fd);
  return Real().spawn_destroy(fa);
}

}  // namespace

int TernSpawnAddopen(posix_spawn_file_actions_t* fa, int fd, const char* path, int oflag, mode_t mode) noexcept {
  TERN_ENTRY_TRY
  return SpawnAddopen(fa, fd, path, oflag, mode);
  TERN_ENTRY_CATCH(ENOMEM)
}

int TernSpawnDestroy(posix_spawn_file_actions_t* fa) noexcept {
  TERN_ENTRY_TRY
  return SpawnDestroy(fa);
  TERN_ENTRY_CATCH(EINVAL)
}

int TernExecve(const char* path, char* const argv[], char* const envp[]) noexcept {
  TERN_ENTRY_TRY
  return Execve(path, argv, envp);
  TERN_ENTRY_CATCH(-1)
}

int TernExecv(const char* path, char* const argv[]) noexcept { return TernExecve(path, argv, environ); }

int TernExecvp(const char* file, char* const argv[]) noexcept {
  TERN_ENTRY_TRY
  return Execvpe(file, argv, environ);
  TERN_ENTRY_CATCH(-1)
}

int TernExecvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
  TERN_ENTRY_TRY
  return Execvpe(file, argv, envp);
  TERN_ENTRY_CATCH(-1)
}

int TernExecl(const char* path, const char* arg, ...) noexcept {
  TERN_ENTRY_TRY
  va_list ap;
  va_start(ap, arg);
  std::vector<char*> args = CollectArgs(arg, ap, nullptr);
  va_end(ap);
  return Execve(path, args.data(), environ);
  TERN_ENTRY_CATCH(-1)
}

int TernExeclp(const char* file, const char* arg, ...) noexcept {
  TERN_ENTRY_TRY
  va_list ap;
  va_start(ap, arg);
  std::vector<char*> args = CollectArgs(arg, ap, nullptr);
  va_end(ap);
  return Execvpe(file, args.data(), environ);
  TERN_ENTRY_CATCH(-1)
}

int TernExecle(const char* path, const char* arg, ...) noexcept {
  TERN_ENTRY_TRY
  va_list ap;
  va_start(ap, arg);
  char* const* envp = nullptr;
  std::vector<char*> args = CollectArgs(arg, ap, &envp);
  va_end(ap);
  return Execve(path, args.data(), envp);
  TERN_ENTRY_CATCH(-1)
}

int TernFexecve(int fd, char* const argv[], char* const envp[]) noexcept {
  TERN_ENTRY_TRY
  if (!ShimReady()) return Real().fexecve(fd, argv, envp);
  ChildEnv env(envp, 'e');
  return Real().fexecve(fd, argv, env.get());
  TERN_ENTRY_CATCH(-1)
}

int TernPosixSpawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* fa,
                   const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) noexcept {
  TERN_ENTRY_TRY
  if (!ShimReady()) return Real().posix_spawn(pid, path, fa, attr, argv, envp);
  ChildEnv env(envp, 's');
  return Real().posix_spawn(pid, path, fa, attr, argv, env.get());
  TERN_ENTRY_CATCH(ENOMEM)
}

int TernPosixSpawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* fa,
                    const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) noexcept {
  TERN_ENTRY_TRY
  if (!ShimReady()) return Real().posix_spawnp(pid, file, fa, attr, argv, envp);
  ChildEnv env(envp, 's');
  return Real().posix_spawnp(pid, file, fa, attr, argv, env.get());
  TERN_ENTRY_CATCH(ENOMEM)
}

pid_t TernVfork() noexcept { return Real().fork(); }
