// Entry points: exec and spawn. Before a new program image starts, the shim writes which fds are
// tern files into TERN_SHIM_FDS ("<e|s><pid>;fd:slot:flags:offset,...") in the environment it passes
// on; the new image's shim adopts them at start-up (adopt.cc). `e` (exec: the same process) hands the
// slot references over; `s` (posix_spawn: a child) makes the child take its own.
// vfork becomes fork, so the fork handlers run and slot references stay counted.
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "shim/common.h"
#include "shim/fd_table.h"
#include "shim/ofd_region.h"
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
}

namespace {

constexpr const char kFdsVar[] = "TERN_SHIM_FDS=";
constexpr const char kOfdVar[] = "TERN_SHIM_OFD=";

// The environment for the next program image: envp without stale tern variables, plus the current
// fd list and offset region.
class ChildEnv {
 public:
  ChildEnv(char* const* envp, char mode) {
    fds_ = kFdsVar;
    fds_ += mode;
    fds_ += std::to_string(getpid());
    fds_ += ';';
    bool first = true;
    int max = MaxTernFd();
    for (int fd = 0; fd <= max; ++fd) {
      DescRef d(fd);
      if (!d) continue;
      char item[96];
      snprintf(item, sizeof(item), "%s%d:%u:%u:%llu", first ? "" : ",", fd, d->slot_index, d->flags(),
               static_cast<unsigned long long>(d->slot->offset.load()));
      fds_ += item;
      first = false;
    }
    ofd_ = kOfdVar;
    ofd_ += OfdRegionEnv();
    for (char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
      if (strncmp(*e, kFdsVar, sizeof(kFdsVar) - 1) == 0 || strncmp(*e, kOfdVar, sizeof(kOfdVar) - 1) == 0) continue;
      vars_.push_back(*e);
    }
    if (!first) vars_.push_back(fds_.data());
    if (ofd_.size() > sizeof(kOfdVar) - 1) vars_.push_back(ofd_.data());
    vars_.push_back(nullptr);
  }
  char* const* get() { return vars_.data(); }

 private:
  std::string fds_;
  std::string ofd_;
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

}  // namespace

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
