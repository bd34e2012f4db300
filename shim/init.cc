// Start-up: the library constructor, fork handlers, and adoption of tern fds inherited across exec.
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "lib/backing_cache.h"
#include "lib/pool.h"
#include "lib/process_id.h"
#include "lib/shared_state_spares.h"
#include "pmem/log.h"
#include "shim/env.h"
#include "shim/fd_table.h"
#include "shim/map_pins.h"
#include "shim/ofd_region.h"
#include "shim/ops.h"
#include "shim/paths.h"
#include "lib/file.h"
#include "shim/real_libc.h"
#include "shim/shim.h"

namespace tern::shim {

constinit thread_local int t_engine_depth = 0;

namespace {

std::atomic<bool> g_ready{false};

// Fork: the shim's own handlers bracket the engine Pool's (pthread_atfork runs child handlers in
// registration order), so the engine's child-side reopen runs as engine code, its fds go to the
// internal range, and nothing it does re-enters the shim.
void EarlyPrepare() {
  StdioPrepareFork();
  FdTablePrepareFork();
}
void EarlyParent() {
  FdTableParentAfterFork();
  StdioAfterFork();
}
void EarlyChild() {
  ++t_engine_depth;
  RefreshThisProcessId();
  ForgetPinsInChild();
  FdTableChildAfterFork();
  StdioAfterFork();
}
void LateChild() {
  --t_engine_depth;
  ForgetHeldSignals();  // the parent runs them
  LeaveInterruptionHold();
}
// Registered last, so the hold spans every prepare handler's locks (taken first, in the parent
// released last): a handler's write to a tern file meanwhile would wait for them. Descriptions the
// child will share move to the shared offset region first, before any lock is held: that waits
// for their operations in flight, which may need the engine's locks.
void HoldInterruptionsForFork() {
  ShareDescriptions();
  EnterInterruptionHold();
}
void ReleaseInterruptionsAfterFork() { LeaveInterruptionHold(); }

struct Inherited {
  int fd;
  uint32_t slot;
  uint32_t flags;
  uint64_t offset;
};

// Parses TERN_SHIM_FDS; returns its mode ('e', 's') when it was written for this process, else 0.
char ParseInherited(std::vector<Inherited>* out) {
  const char* env = EnvGet("TERN_SHIM_FDS");
  if (env == nullptr) return 0;
  char mode = env[0];
  char* end = nullptr;
  long pid = strtol(env + 1, &end, 10);
  bool ours = (mode == 'e' && pid == getpid()) || (mode == 's' && pid == getppid());
  if (!ours || end == nullptr || *end != ';') return 0;
  const char* p = end + 1;
  while (*p != '\0') {
    Inherited in{};
    unsigned long long offset = 0;
    int used = 0;
    if (sscanf(p, "%d:%u:%u:%llu%n", &in.fd, &in.slot, &in.flags, &offset, &used) != 4) break;
    in.offset = offset;
    if (in.slot >= SlotCount()) in.slot = 0;
    out->push_back(in);
    p += used;
    if (*p == ',') ++p;
  }
  return mode;
}

bool SlotMatches(uint32_t slot, const struct stat& st) {
  if (slot == 0) return false;
  OfdSlot* s = SlotAt(slot);
  return s->refs.load() > 0 && s->dev.load() == st.st_dev && s->ino.load() == st.st_ino;
}

}  // namespace

bool ShimReady() { return g_ready.load(std::memory_order_acquire); }

void InstallForkHandlers() {
  pthread_atfork(EarlyPrepare, EarlyParent, EarlyChild);
  {
    EngineScope engine;
    Pool::Default();  // registers the engine's handlers between the two of the shim
  }
  pthread_atfork(HoldInterruptionsForFork, ReleaseInterruptionsAfterFork, LateChild);
}

void AdoptInheritedFds() {
  std::vector<Inherited> listed;
  char mode = ParseInherited(&listed);
  EnvUnset("TERN_SHIM_FDS");
  // A shim before this image listed every tern fd it had: none, none to look for. Without a list
  // (the parent ran without the shim), any inherited O_PATH fd under the root may be one.
  if (mode != 0 && listed.empty()) return;
  std::map<uint32_t, Desc*> by_slot;  // one description per shared slot, as before the exec
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  int dir_fd = dirfd(dir);
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name);
    if (fd == dir_fd || IsInternalFd(fd) || fd >= kMaxFds) continue;
    int fl = Real().fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_PATH) == 0) continue;
    struct stat st;
    if (Real().fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    char target[PATH_MAX];
    ssize_t n = readlink(ProcFdPath(fd).c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    std::string path(target, static_cast<size_t>(n));
    constexpr const char kDeleted[] = " (deleted)";
    if (path.size() > sizeof(kDeleted) && path.compare(path.size() - sizeof(kDeleted) + 1, std::string::npos, kDeleted) == 0) {
      path.resize(path.size() - sizeof(kDeleted) + 1);
    }
    if (path.empty() || path[0] != '/') continue;
    const Inherited* mine = nullptr;
    const Inherited* same_file = nullptr;
    for (const Inherited& in : listed) {
      if (in.fd == fd) mine = &in;
      if (same_file == nullptr && SlotMatches(in.slot, st)) same_file = &in;
    }
    // What the last image served as a tern file stays one, whatever TERN_EXCLUDE says now (the
    // tern tool re-runs itself with every path excluded, its stdout may be a tern file).
    if (mine == nullptr && same_file == nullptr && !UnderRoot(NormalizePath(path))) continue;
    uint32_t slot = 0;
    uint32_t flags = 0;
    uint64_t offset = 0;
    if (mine != nullptr && (mine->slot == 0 || SlotMatches(mine->slot, st))) {
      slot = mine->slot;
      flags = mine->flags;
      offset = mine->offset;
    } else if (same_file != nullptr) {  // moved by the spawner's file actions (dup2)
      slot = same_file->slot;
      flags = same_file->flags;
    } else {
      flags = static_cast<uint32_t>(access(path.c_str(), W_OK) == 0 ? O_RDWR : O_RDONLY) | kKernelLargefile;
      TERN_LOG_INFO("shim: fd %d (%s) inherited without its state: opened %s at offset 0", fd, path.c_str(),
                    (flags & O_ACCMODE) == O_RDWR ? "read-write" : "read-only");
    }
    if (slot != 0) {
      auto it = by_slot.find(slot);
      if (it != by_slot.end()) {
        InstallFd(fd, it->second);
        continue;
      }
      if (mode != 'e') RefSlot(slot);  // an exec'ed process already holds its reference
    }
    Desc* d = NewDesc(nullptr, slot, flags, st.st_dev, st.st_ino, path);
    if (d == nullptr) {
      UnrefSlot(slot);
      continue;
    }
    if (slot == 0) d->Slot()->offset.store(offset);
    if (slot != 0) by_slot[slot] = d;
    InstallFd(fd, d);
    UnrefDesc(d);
  }
  closedir(dir);
  if (mode == 'e') {
    // References handed over for descriptions whose fds did not survive the exec (close-on-exec).
    std::set<uint32_t> dropped;
    for (const Inherited& in : listed) {
      if (in.slot != 0 && by_slot.count(in.slot) == 0 && dropped.insert(in.slot).second) UnrefSlot(in.slot);
    }
  }
  for (int i = 0; i <= 2; ++i) {
    if (IsTernFd(i)) SyncStdStream(i);
  }
}

// Files this process deletes lend their mapped backing files to the files it creates next
// (lib/backing_cache.h); TERN_RECYCLE=0 turns that off. Spares wait in a hidden directory beside
// the root (/dev/shm/.tern-spares-UID for the default root): on the same filesystem unless the
// root is a mount point (then nothing is recycled), and never in a directory a program lists.
// The same switch keeps the shared-state objects of closed files for the next files opened
// (lib/shared_state_spares.h), and lets files opened again linger open after their close
// (lib/pool.h).
void EnableBackingCache() {
  const char* recycle = EnvGet("TERN_RECYCLE");
  if (recycle != nullptr && strcmp(recycle, "0") == 0) return;
  SharedStateSpares::Default().Enable();
  std::string spare_dir = BackingCache::SpareDirFor(Paths().root, geteuid());
  if (spare_dir.empty()) return;  // the root is "/"
  mode_t mask = Real().umask(0);  // the library constructor: no other thread creates files yet
  Real().umask(mask);
  BackingCache::Default().Enable(std::move(spare_dir), mask);
  Pool::Default().EnableLinger();  // a reopen is told by the Backing the cache kept
}

// A program's first read-only open of a file reads it without joining its shared state
// (lib/pool.h, "Reading without joining"); TERN_SLOTLESS_READS=0 turns that off.
void EnableSlotlessFirstReads() {
  const char* v = EnvGet("TERN_SLOTLESS_READS");
  if (v != nullptr && strcmp(v, "0") == 0) return;
  Pool::Default().EnableSlotlessFirstReads();
}

void InitShim() {
  static std::once_flag once;
  std::call_once(once, [] {
    Real();
    NoteStartupSettings();
    InitPaths();
    InitFdTable();
    if (!FdTableReady()) return;
    InitOfdRegion();
    CaptureStdStreams();
    InstallForkHandlers();
    // The engine's background thread (compaction, growing files ahead) is engine code for its
    // whole life: its libc calls go straight to the kernel.
    SetEngineThreadHook([] { ++t_engine_depth; });
    EnableBackingCache();
    EnableSlotlessFirstReads();
    g_ready.store(true, std::memory_order_release);
    AdoptInheritedFds();
  });
}

void LogUnexpectedException(const char* where) {
  TERN_LOG_ERROR("shim: unexpected exception in %s; the call fails with EIO", where);
}

}  // namespace tern::shim

__attribute__((constructor)) static void TernShimConstructor() { tern::shim::InitShim(); }

namespace {

// What a process leaves when it ends: its references to fork-shared offset slots, and the names of
// the spares it kept (shared-state objects, backings), which would otherwise wait for a sweep.
void ReleaseAtProcessEnd(tern::DropMode mode) {
  tern::shim::ReleaseSharedSlotsAtExit(mode);
  tern::shim::EngineScope engine;
  // First: closing a lingering file hands its backing and shared state to the caches below.
  tern::Pool::Default().EndAllLingering(mode);
  tern::BackingCache::Default().DropSpares(mode);
  tern::SharedStateSpares::Default().DropAll(mode);
}

[[noreturn]] void ImmediateExit(int status) {
  // _exit runs no atexit handler and no destructor, and dash ends every `sh -c` this way (as do
  // forked children and Python's os._exit): each left a spare shared-state object in /dev/shm
  // until the minute's sweep. Only the process the caches belong to drops them: a child of a raw
  // clone(2) shares them with its parent (the shim turns vfork into fork).
  if (tern::shim::ShimReady() && static_cast<uint32_t>(syscall(SYS_getpid)) == tern::ThisProcessId()) {
    ReleaseAtProcessEnd(tern::DropMode::kImmediateExit);
  }
  for (;;) syscall(SYS_exit_group, status);
}

}  // namespace

extern "C" {
[[noreturn]] void TernUnderscoreExit(int status) noexcept TERN_EXPORT_AS("_exit");
[[noreturn]] void TernUnderscoreCapitalExit(int status) noexcept TERN_EXPORT_AS("_Exit");
}

void TernUnderscoreExit(int status) noexcept { ImmediateExit(status); }
void TernUnderscoreCapitalExit(int status) noexcept { ImmediateExit(status); }

// Runs at exit() (not at _exit, above, or exec). Flush first so the streams' last writes still
// share the offset with whoever else has the description open.
__attribute__((destructor)) static void TernShimDestructor() {
  if (!tern::shim::ShimReady()) return;
  fflush(nullptr);
  ReleaseAtProcessEnd(tern::DropMode::kProcessExit);
}
