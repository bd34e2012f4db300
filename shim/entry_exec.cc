// Entry points: exec and spawn. Before a new program image starts, the shim writes which fds are
// tern files into TERN_SHIM_FDS ("<e|s><pid>;fd:slot:flags:offset,...") in the environment it passes
// on; the new image's shim adopts them at start-up (adopt.cc). `e` (exec: the same process) hands the
// slot references over; `s` (posix_spawn: a child) makes the child take its own.
// vfork becomes fork, so the fork handlers run and slot references stay counted.
// A program that is itself a tern file cannot be read by the kernel's exec (it would see the
// backing file's format): its bytes are copied into a memfd that is executed instead, and a script's
// `#!` line is followed here, so its interpreter opens the script by its own path, through the shim.
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/backing_cache.h"
#include "lib/pool.h"
#include "lib/shared_state_spares.h"
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
int TernSystem(const char* command) noexcept TERN_EXPORT_AS("system");
FILE* TernPopen(const char* command, const char* mode) noexcept TERN_EXPORT_AS("popen");
int TernSpawnAddopen(posix_spawn_file_actions_t* fa, int fd, const char* path, int oflag, mode_t mode) noexcept
    TERN_EXPORT_AS("posix_spawn_file_actions_addopen");
int TernSpawnDestroy(posix_spawn_file_actions_t* fa) noexcept TERN_EXPORT_AS("posix_spawn_file_actions_destroy");
}

namespace {

constexpr const char kHandOverPrefix[] = "TERN_SHIM_";
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

std::vector<std::string>& StartupSettings() {
  static std::vector<std::string> settings;
  return settings;
}

// NAME of a NAME=value entry, with its '='.
std::string_view EntryName(const char* entry) {
  const char* eq = strchr(entry, '=');
  return eq == nullptr ? std::string_view(entry) : std::string_view(entry, static_cast<size_t>(eq - entry + 1));
}

// The environment for the next program image: envp without stale tern variables, plus the current
// fd list and offset region. A program started from one that runs under tern runs under tern too:
// one without the shim would read tern files as their backing format. So when envp has no
// LD_PRELOAD at all (env -i, an empty subprocess environment), the shim and this process's TERN_*
// settings are put back; and a program that inherits tern fds, which only the shim can use, gets
// the shim in front of whatever LD_PRELOAD it has. An LD_PRELOAD set without the shim (even empty)
// is a choice, and kept.
class ChildEnv {
 public:
  ChildEnv(char* const* envp, char mode) {
    if (mode == 'e') {
      limit_.emplace();
      // Nothing of the engine survives exec: the spares it keeps would stay behind as files.
      EngineScope engine;
      tern::Pool::Default().EndAllLingering();  // first: their closes feed the caches below
      tern::BackingCache::Default().DropSpares();
      tern::SharedStateSpares::Default().DropAll();
    }
    // A spawned child shares the descriptions it inherits (an exec'ed image takes over offsets).
    if (mode == 's') ShareDescriptions();
    fds_ = kFdsVar;
    fds_ += mode;
    fds_ += std::to_string(getpid());
    fds_ += ';';
    bool first = true;
    bool inherited = false;
    ForEachTernFd([&](int fd, Desc* d) {
      char item[96];
      snprintf(item, sizeof(item), "%s%d:%u:%u:%llu", first ? "" : ",", fd, d->slot_index, d->flags(),
               static_cast<unsigned long long>(d->Slot()->offset.load()));
      fds_ += item;
      first = false;
      if ((Real().fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0) inherited = true;
    });
    ofd_ = kOfdVar;
    ofd_ += OfdRegionEnv();
    bool has_preload = false, has_root = false, any_preload = false;
    for (char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
      if (strncmp(*e, kHandOverPrefix, sizeof(kHandOverPrefix) - 1) == 0) continue;
      if (strncmp(*e, "LD_PRELOAD=", 11) == 0) any_preload = true;
      if (strncmp(*e, "LD_PRELOAD=", 11) == 0 && strstr(*e, "libtern") != nullptr) has_preload = true;
      if (strncmp(*e, "TERN_ROOT=", 10) == 0) has_root = true;
      vars_.push_back(*e);
    }
    bool put_back = (inherited || !any_preload) && !has_preload && SelfPath()[0] != '\0';
    if (put_back) {
      preload_ = std::string("LD_PRELOAD=") + SelfPath();
      for (auto it = vars_.begin(); it != vars_.end(); ++it) {
        if (strncmp(*it, "LD_PRELOAD=", 11) == 0) {  // keep what was there, after the shim
          preload_ += std::string(":") + (*it + 11);
          vars_.erase(it);
          break;
        }
      }
      vars_.push_back(preload_.data());
      size_t given = vars_.size();
      for (std::string& setting : StartupSettings()) {
        std::string_view name = EntryName(setting.c_str());
        bool present = false;
        for (size_t i = 0; i < given && !present; ++i) present = EntryName(vars_[i]) == name;
        if (!present) vars_.push_back(setting.data());
        has_root = has_root || name == "TERN_ROOT=";
      }
    }
    if (put_back && !has_root) {
      root_ = "TERN_ROOT=" + Paths().root;
      vars_.push_back(root_.data());
    }
    // Also when empty: the next image then knows that it inherits no tern fd and skips its scan of
    // /proc/self/fd (a tenth of a millisecond of every process's start here).
    vars_.push_back(fds_.data());
    if (mode != 'e') {  // a spawned child starts with the raised limit, an exec'ed image without
      fd_limit_ = FdLimitHandOver();
      if (!fd_limit_.empty()) vars_.push_back(fd_limit_.data());
    }
    if (ofd_.size() > sizeof(kOfdVar) - 1) vars_.push_back(ofd_.data());
    vars_.push_back(nullptr);
  }
  char* const* get() { return vars_.data(); }

 private:
  std::optional<ProgramFdLimitForExec> limit_;  // exec only: a spawned child inherits the raised one
  std::string fds_;
  std::string ofd_;
  std::string preload_;
  std::string root_;
  std::string fd_limit_;
  std::vector<char*> vars_;
};

}  // namespace

void tern::shim::NoteStartupSettings() {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    // (TERN_SHIM_*: what one image hands the next, made anew at each exec and spawn.)
    if (strncmp(*e, "TERN_", 5) != 0 || strncmp(*e, kHandOverPrefix, sizeof(kHandOverPrefix) - 1) == 0) continue;
    StartupSettings().emplace_back(*e);
  }
}

namespace {

// system(3) and popen(3) start their child with glibc's own posix_spawn, which the shim does not
// see, and give it `environ`: for the call, `environ` is what the shim's posix_spawn would pass, so
// the child gets the fd hand-over. (Without it a child adopted inherited tern fds without their
// shared offset: `system("echo x")` with stdout redirected to a tern file wrote at offset 0, over
// the lines the program had written.)
class SpawnEnvironment {
 public:
  SpawnEnvironment() : saved_(environ), env_(environ, 's') { environ = const_cast<char**>(env_.get()); }
  ~SpawnEnvironment() { environ = saved_; }
  SpawnEnvironment(const SpawnEnvironment&) = delete;
  SpawnEnvironment& operator=(const SpawnEnvironment&) = delete;

 private:
  char** saved_;
  ChildEnv env_;
};

std::vector<char*> CollectArgs(const char* arg, va_list ap, char* const** envp) {
  std::vector<char*> args;
  args.push_back(const_cast<char*>(arg));
  while (args.back() != nullptr) args.push_back(va_arg(ap, char*));
  if (envp != nullptr) *envp = va_arg(ap, char* const*);
  return args;
}

// What the real exec runs in place of a program stored as a tern file: a memfd holding its bytes
// (by /proc/self/fd path, so that posix_spawn's child can open it too), or, for a script, its
// interpreter with the script's path among the arguments (as the kernel would pass them).
class ExecPlan {
 public:
  ExecPlan() = default;
  ExecPlan(const ExecPlan&) = delete;
  ExecPlan& operator=(const ExecPlan&) = delete;
  ~ExecPlan() {
    if (memfd_ >= 0) Real().close(memfd_);
  }

  // 1: `path` is a tern file and path()/argv() say what to run instead; 0: it is not (run it as
  // is); -1: it cannot be run (errno set as the kernel's exec would: EACCES, ENOEXEC, ELOOP, EIO).
  int Prepare(const char* path, char* const argv[]) {
    for (int depth = 0;; ++depth) {
      std::string abs;
      if (InEngine() || !TernCandidate(AT_FDCWD, path, &abs)) return depth > 0 ? 1 : 0;
      int saved = errno;
      int fd = ShimOpen(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
      if (fd < 0 || !IsTernFd(fd)) {  // missing, unreadable or plain: the real exec says why
        if (fd >= 0) RoutedClose(fd);
        errno = saved;
        return depth > 0 ? 1 : 0;
      }
      int rc = access(path, X_OK) != 0 ? -1 : FromTernFile(fd, path, argv);
      int err = errno;
      RoutedClose(fd);
      errno = err;
      if (rc <= 0) return rc;
      if (memfd_ >= 0) return 1;
      // A script: its interpreter may be a tern file too (the kernel allows four levels).
      if (depth == 4) {
        errno = ELOOP;
        return -1;
      }
      path = path_.c_str();
      argv = argv_.data();
    }
  }
  const char* path() const { return path_.c_str(); }
  char* const* argv() const { return argv_.data(); }

 private:
  // 1 with the plan filled, -1 with errno.
  int FromTernFile(int fd, const char* path, char* const argv[]) {
    char head[256];
    ssize_t n = RoutedPread(fd, head, sizeof(head) - 1, 0);
    if (n < 0) return -1;
    if (n >= 2 && head[0] == '#' && head[1] == '!') return FromScript(head, static_cast<size_t>(n), path, argv);
    int mem = static_cast<int>(syscall(SYS_memfd_create, "tern-exec", MFD_CLOEXEC));
    if (mem < 0) return -1;
    for (off_t off = 0;;) {
      ssize_t got = CopyThrough(fd, &off, mem, nullptr, SIZE_MAX);
      if (got < 0) {
        Real().close(mem);
        return -1;
      }
      if (got == 0) break;
    }
    memfd_ = mem;
    path_ = ProcFdPath(mem).c_str();
    std::vector<char*> args;  // argv may be argv_ itself (a script's interpreter)
    for (char* const* a = argv; a != nullptr && *a != nullptr; ++a) args.push_back(*a);
    args.push_back(nullptr);
    argv_ = std::move(args);
    return 1;
  }

  // "#!interpreter [one argument]": argv becomes interpreter, [argument,] path, argv[1..].
  int FromScript(char* head, size_t n, const char* path, char* const argv[]) {
    head[n] = '\0';
    char* line = head + 2;
    char* end = strchr(line, '\n');
    if (end == nullptr && n == 255) {  // longer than the kernel's limit
      errno = ENOEXEC;
      return -1;
    }
    if (end != nullptr) *end = '\0';
    auto blank = [](char c) { return c == ' ' || c == '\t'; };
    while (blank(*line)) ++line;
    char* stop = line;
    while (*stop != '\0' && !blank(*stop)) ++stop;
    std::string interpreter(line, stop);
    while (blank(*stop)) ++stop;
    std::string argument(stop);
    while (!argument.empty() && blank(argument.back())) argument.pop_back();
    if (interpreter.empty()) {
      errno = ENOEXEC;
      return -1;
    }
    std::vector<std::string> args{interpreter};
    if (!argument.empty()) args.push_back(argument);
    args.emplace_back(path);
    if (argv != nullptr && argv[0] != nullptr) {
      for (char* const* a = argv + 1; *a != nullptr; ++a) args.emplace_back(*a);
    }
    strings_ = std::move(args);  // the previous level's strings are copied in by now
    path_ = strings_[0];
    argv_.clear();
    for (std::string& a : strings_) argv_.push_back(a.data());
    argv_.push_back(nullptr);
    return 1;
  }

  int memfd_ = -1;
  std::string path_;
  std::vector<std::string> strings_;
  std::vector<char*> argv_;
};

int Execve(const char* path, char* const argv[], char* const envp[]) {
  if (!ShimReady()) return Real().execve(path, argv, envp);
  ExecPlan plan;
  int planned = plan.Prepare(path, argv);
  if (planned < 0) return -1;
  ChildEnv env(envp, 'e');
  if (planned == 0) return Real().execve(path, argv, env.get());
  return Real().execve(plan.path(), plan.argv(), env.get());
}

// The program execvp's PATH search would run: `file` itself when it names a path, else the first
// executable PATH entry; empty when none is found (execvpe then reports it).
std::string SearchPath(const char* file) {
  if (strchr(file, '/') != nullptr) return file;
  const char* path = getenv("PATH");
  std::string dirs = path != nullptr ? path : "/bin:/usr/bin";
  for (size_t from = 0; from <= dirs.size();) {
    size_t to = dirs.find(':', from);
    if (to == std::string::npos) to = dirs.size();
    std::string dir = dirs.substr(from, to - from);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + file;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    from = to + 1;
  }
  return {};
}

int Execvpe(const char* file, char* const argv[], char* const envp[]) {
  if (!ShimReady()) return Real().execvpe(file, argv, envp);
  std::string found = SearchPath(file);
  ExecPlan plan;
  int planned = found.empty() ? 0 : plan.Prepare(found.c_str(), argv);
  if (planned < 0) return -1;
  ChildEnv env(envp, 'e');
  if (planned > 0) return Real().execve(plan.path(), plan.argv(), env.get());
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
  HeldLockGuard lock(SpawnMu());
  SpawnFds()[fa].push_back(opened);
  errno = saved;
  return 0;
}

int SpawnDestroy(posix_spawn_file_actions_t* fa) {
  std::vector<int> fds;
  {
    HeldLockGuard lock(SpawnMu());
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
  ExecPlan plan;
  int planned = plan.Prepare(path, argv);
  if (planned < 0) return errno;
  ChildEnv env(envp, 's');
  if (planned > 0) return Real().posix_spawn(pid, plan.path(), fa, attr, plan.argv(), env.get());
  return Real().posix_spawn(pid, path, fa, attr, argv, env.get());
  TERN_ENTRY_CATCH(ENOMEM)
}

int TernPosixSpawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* fa,
                    const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) noexcept {
  TERN_ENTRY_TRY
  if (!ShimReady()) return Real().posix_spawnp(pid, file, fa, attr, argv, envp);
  std::string found = SearchPath(file);
  ExecPlan plan;
  int planned = found.empty() ? 0 : plan.Prepare(found.c_str(), argv);
  if (planned < 0) return errno;
  ChildEnv env(envp, 's');
  if (planned > 0) return Real().posix_spawn(pid, plan.path(), fa, attr, plan.argv(), env.get());
  return Real().posix_spawnp(pid, file, fa, attr, argv, env.get());
  TERN_ENTRY_CATCH(ENOMEM)
}

pid_t TernVfork() noexcept { return Real().fork(); }

int TernSystem(const char* command) noexcept {
  TERN_ENTRY_TRY
  if (!ShimReady() || command == nullptr) return Real().system(command);
  SpawnEnvironment env;
  return Real().system(command);
  TERN_ENTRY_CATCH(-1)
}

FILE* TernPopen(const char* command, const char* mode) noexcept {
  TERN_ENTRY_TRY
  if (!ShimReady()) return Real().popen(command, mode);
  SpawnEnvironment env;
  return Real().popen(command, mode);
  TERN_ENTRY_CATCH(nullptr)
}

