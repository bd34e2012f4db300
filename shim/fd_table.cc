#include "shim/fd_table.h"

#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <bit>
#include <string>

#include "lib/atomic_max.h"
#include "lib/drop_mode.h"
#include "pmem/log.h"
#include "shim/env.h"
#include "shim/real_libc.h"

namespace tern::shim {

std::atomic<Desc*>* detail::g_entries = nullptr;
detail::FdHints detail::g_hints;
std::atomic<Desc*> detail::g_static_entries[detail::kStaticFds];

namespace {

// Desc storage grows in chunks that double, from one of kFirstChunk (a process that opens a few
// files touches one page of it, where a fixed 256 cost eight faults, ~80 µs here).
constexpr size_t kFirstChunk = 16;
constexpr size_t kMaxChunks = 17;  // 16 * (2^17 - 1) descriptions: more than kMaxFds
constexpr size_t kMaxDescs = kMaxFds;

// The chunk that holds description i, and where that chunk starts.
size_t ChunkOf(size_t i) { return static_cast<size_t>(std::bit_width(i / kFirstChunk + 1)) - 1; }
size_t ChunkStart(size_t chunk) { return kFirstChunk * ((size_t{1} << chunk) - 1); }

using detail::EntryOf;
using detail::g_entries;
// A set of fd numbers: one bit each, and the highest ever set. The words of the lowest fds (the
// engine's internal ones start at 768) are kept here, in the shim's data, as EntryOf does.
struct FdBits {
  static constexpr int kStaticBits = 1024;
  std::atomic<uint64_t>* bits = nullptr;  // kMaxFds bits, once InitFdTable mapped them
  std::atomic<int> max{-1};
  std::atomic<uint64_t> low[kStaticBits / 64] = {};

  bool InRange(int fd) const { return bits != nullptr && fd >= 0 && fd < kMaxFds; }
  std::atomic<uint64_t>& Word(int fd) { return fd < kStaticBits ? low[fd / 64] : bits[fd / 64]; }
  const std::atomic<uint64_t>& Word(int fd) const { return fd < kStaticBits ? low[fd / 64] : bits[fd / 64]; }
  void Set(int fd) {
    if (!InRange(fd)) return;
    Word(fd).fetch_or(uint64_t{1} << (fd % 64));
    RaiseAtomic(max, fd);
  }
  void Clear(int fd) {
    if (fd <= max.load(std::memory_order_relaxed) && InRange(fd)) Word(fd).fetch_and(~(uint64_t{1} << (fd % 64)));
  }
  bool Test(int fd) const {
    return fd <= max.load(std::memory_order_relaxed) && InRange(fd) &&
           ((Word(fd).load(std::memory_order_relaxed) >> (fd % 64)) & 1);
  }
};

FdBits g_internal;
FdBits g_tern_path_fds;
int g_internal_base = 768;

std::mutex g_desc_mu;  // guards the free list and chunk growth
Desc* g_chunks[kMaxChunks];
std::atomic<size_t> g_desc_count{0};
Desc* g_free = nullptr;
std::atomic<int> g_posix_lock_descs{0};  // Descs marked by MarkPosixLocks

Desc* AllocDescStorage() {
  HeldLockGuard lock(g_desc_mu);
  if (g_free != nullptr) {
    Desc* d = g_free;
    g_free = d->next_free;
    d->next_free = nullptr;
    return d;
  }
  size_t n = g_desc_count.load();
  if (n >= kMaxDescs) return nullptr;
  size_t chunk = ChunkOf(n);
  if (n == ChunkStart(chunk)) g_chunks[chunk] = new Desc[kFirstChunk << chunk];
  g_desc_count.store(n + 1);
  return &g_chunks[chunk][n - ChunkStart(chunk)];
}

void DestroyDesc(Desc* d) {
  if (File* f = d->file.exchange(nullptr)) {
    EngineScope engine;
    delete f;
  }
  int lock_fd = d->lock_fd.exchange(-1);
  if (lock_fd >= 0) {
    UnmarkInternalFd(lock_fd);
    Real().close(lock_fd);
  }
  d->dirty.store(false);
  ClearPosixLocksMark(d);
  std::string().swap(d->path);
  HeldLockGuard lock(g_desc_mu);  // ShareDescriptions may be moving the slot right now
  if (d->slot_index != 0) UnrefSlot(d->slot_index);
  delete d->private_slot;
  d->private_slot = nullptr;
  d->slot.store(nullptr);
  d->slot_index = 0;
  d->next_free = g_free;
  g_free = d;
}

// `wait`: for a description's operations in flight (its slot lock). Without waiting, one that is
// busy stays private. REQUIRES: g_desc_mu held.
void ShareDescriptionsLocked(bool wait) {
  size_t n = g_desc_count.load();
  for (size_t i = 0; i < n; ++i) {
    Desc* d = DescStorageAt(i);
    if (d->refs.load() <= 0 || d->slot_index != 0) continue;
    OfdSlot* own = d->Slot();
    // Under the private slot's lock no read or write of the description is between looking at its
    // offset and moving it; those that wait for the lock find the new slot when they get it.
    if (wait) {
      LockSlot(own);
    } else if (!TryLockSlot(own)) {
      continue;
    }
    uint32_t index = AllocSlot(own->flags.load(), d->dev, d->ino);
    if (index != 0) {
      SlotAt(index)->offset.store(own->offset.load());
      d->slot_index = index;
      d->slot.store(SlotAt(index), std::memory_order_release);
    }
    UnlockSlot(own);
    if (index == 0) return;  // no region (one warning): every description stays private
  }
}

constexpr const char kFdLimitVar[] = "TERN_SHIM_NOFILE";

// The soft limit the program had, and what RaiseFdLimit made it (0: not raised).
rlim_t g_program_soft_limit = 0;
rlim_t g_raised_soft_limit = 0;

// `program_soft`: the soft limit the program has, which is rl's, or less when this process was
// spawned by one whose shim had raised it (TERN_SHIM_NOFILE).
void RaiseFdLimit(const struct rlimit& rl, rlim_t program_soft) {
  // Up to three of tern's descriptors for each of the program's (the backing file, the shared
  // state, and for a file opened again the O_PATH one its reopens duplicate), and the kept files'
  // and spares'.
  rlim_t want = std::min<rlim_t>({rl.rlim_max, program_soft * 4 + 256, kMaxFds});
  if (want <= program_soft) return;
  if (want != rl.rlim_cur) {
    struct rlimit raised = {want, rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) return;
  }
  g_program_soft_limit = program_soft;
  g_raised_soft_limit = want;
  g_internal_base = static_cast<int>(program_soft);  // above every number the program could have had
}

// The program's soft limit as a spawning parent's shim handed it over ("P:R", valid while the
// limit is still the R it raised to), else the current one.
rlim_t ProgramSoftLimitAtStart(rlim_t current) {
  const char* handed = EnvGet(kFdLimitVar);
  if (handed == nullptr) return current;
  unsigned long long program = 0, raised = 0;
  bool valid = sscanf(handed, "%llu:%llu", &program, &raised) == 2 && raised == current && program < current;
  EnvUnset(kFdLimitVar);
  return valid ? static_cast<rlim_t>(program) : current;
}

// Sets the soft limit to `to` if it is still `from` (the program may have set its own since).
bool MoveSoftFdLimit(rlim_t from, rlim_t to) {
  struct rlimit rl;
  if (from == to || Real().getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur != from) return false;
  rl.rlim_cur = to;
  return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

}  // namespace

void ShowProgramFdLimit(struct rlimit* rl) {
  if (g_raised_soft_limit != 0 && rl->rlim_cur == g_raised_soft_limit) rl->rlim_cur = g_program_soft_limit;
}

std::string FdLimitHandOver() {
  if (g_raised_soft_limit == 0) return "";
  return std::string(kFdLimitVar) + "=" + std::to_string(g_program_soft_limit) + ":" + std::to_string(g_raised_soft_limit);
}

ProgramFdLimitForExec::ProgramFdLimitForExec()
    : lowered_(g_raised_soft_limit != 0 && MoveSoftFdLimit(g_raised_soft_limit, g_program_soft_limit)) {}

ProgramFdLimitForExec::~ProgramFdLimitForExec() {
  if (lowered_) (void)MoveSoftFdLimit(g_program_soft_limit, g_raised_soft_limit);
}

void InitFdTable() {
  static std::once_flag once;
  std::call_once(once, [] {
    size_t entry_bytes = sizeof(std::atomic<Desc*>) * kMaxFds;
    size_t bit_bytes = kMaxFds / 8;
    void* p = mmap(nullptr, entry_bytes + 2 * bit_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      TERN_LOG_ERROR("shim: cannot map the fd table (errno %d); tern files are served by the kernel", errno);
      return;
    }
    g_internal.bits = reinterpret_cast<std::atomic<uint64_t>*>(static_cast<char*>(p) + entry_bytes);
    g_tern_path_fds.bits = reinterpret_cast<std::atomic<uint64_t>*>(static_cast<char*>(p) + entry_bytes + bit_bytes);
    struct rlimit rl;
    if (Real().getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
      auto soft = static_cast<int>(std::min<rlim_t>(rl.rlim_cur, kMaxFds));
      g_internal_base = std::min(768, soft * 3 / 4);
      RaiseFdLimit(rl, ProgramSoftLimitAtStart(rl.rlim_cur));
    }
    // release; pairs with the acquire loads in DescRef: the table is ready before it is published.
    std::atomic_thread_fence(std::memory_order_release);
    g_entries = static_cast<std::atomic<Desc*>*>(p);
  });
}

bool FdTableReady() { return g_entries != nullptr; }

void MarkPosixLocks(Desc* d) {
  if (!d->had_posix_locks.exchange(true)) g_posix_lock_descs.fetch_add(1);
}

bool ClearPosixLocksMark(Desc* d) {
  if (!d->had_posix_locks.exchange(false)) return false;
  g_posix_lock_descs.fetch_sub(1);
  return true;
}

bool AnyPosixLocks() { return g_posix_lock_descs.load(std::memory_order_relaxed) > 0; }

DescRef::DescRef(int fd) {
  if (g_entries == nullptr || static_cast<unsigned>(fd) >= static_cast<unsigned>(kMaxFds) || InEngine()) return;
  for (;;) {
    Desc* d = EntryOf(fd).load(std::memory_order_acquire);
    if (d == nullptr) return;
    int32_t r = d->refs.load(std::memory_order_relaxed);
    bool taken = false;
    while (r > 0) {
      if (d->refs.compare_exchange_weak(r, r + 1, std::memory_order_acq_rel)) {
        taken = true;
        break;
      }
    }
    if (!taken) continue;  // freed under us; the entry has changed by now
    if (EntryOf(fd).load(std::memory_order_acquire) == d) {
      d_ = d;
      EnterInterruptionHold();  // for as long as the description is used (interruption_hold.h)
      return;
    }
    InterruptionsHeld held;
    UnrefDesc(d);  // the fd was closed or redirected meanwhile: look again
  }
}

DescRef::~DescRef() {
  if (d_ == nullptr) return;
  UnrefDesc(d_);
  LeaveInterruptionHold();
}

DescSlotGuard::DescSlotGuard(Desc* d) {
  for (;;) {
    slot_ = d->Slot();
    LockSlot(slot_);
    if (d->Slot() == slot_) return;
    UnlockSlot(slot_);  // moved to the shared region while we waited
  }
}

Desc* NewDesc(File* file, uint32_t slot_index, uint32_t flags, dev_t dev, ino_t ino, std::string path) {
  Desc* d = AllocDescStorage();
  if (d == nullptr) return nullptr;
  if (slot_index == 0) {
    d->private_slot = new OfdSlot();
    d->private_slot->flags.store(flags);
    d->slot.store(d->private_slot);
  } else {
    d->slot.store(SlotAt(slot_index));
  }
  d->slot_index = slot_index;
  d->dev = dev;
  d->ino = ino;
  d->path = std::move(path);
  d->file.store(file);
  d->refs.store(1, std::memory_order_release);
  return d;
}

void RefDesc(Desc* d) { d->refs.fetch_add(1); }

void UnrefDesc(Desc* d) {
  if (d->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) DestroyDesc(d);
}

void InstallFd(int fd, Desc* d) {
  RefDesc(d);
  // The hints first: a lookup that sees the entry must not have been told to pass by them.
  RaiseAtomic(detail::g_hints.max_tern_fd, fd);
  if (fd < detail::kLowFds) detail::g_hints.low[fd / 64].fetch_or(uint64_t{1} << (fd % 64));
  Desc* old = EntryOf(fd).exchange(d);
  if (old != nullptr) UnrefDesc(old);
}

Desc* TakeFd(int fd) {
  if (g_entries == nullptr || static_cast<unsigned>(fd) >= static_cast<unsigned>(kMaxFds)) return nullptr;
  if (EntryOf(fd).load(std::memory_order_relaxed) == nullptr) return nullptr;
  Desc* d = EntryOf(fd).exchange(nullptr);
  if (fd < detail::kLowFds) {
    uint64_t bit = uint64_t{1} << (fd % 64);
    detail::g_hints.low[fd / 64].fetch_and(~bit);
    // An InstallFd of the same fd number racing this close set its bit before its entry: put the
    // bit back if an entry is there now (a stale bit costs a table look, a missing one a miss).
    if (EntryOf(fd).load() != nullptr) detail::g_hints.low[fd / 64].fetch_or(bit);
  }
  return d;
}

int MaxTernFd() { return detail::g_hints.max_tern_fd.load(); }

Desc* DescStorageAt(size_t i) {
  size_t chunk = ChunkOf(i);
  return &g_chunks[chunk][i - ChunkStart(chunk)];
}
size_t DescStorageCount() { return g_desc_count.load(); }

Result<File*> EnsureFile(Desc* d, int fd) {
  File* f = d->file.load(std::memory_order_acquire);
  if (f != nullptr) return f;
  HeldLockGuard lock(d->mu);
  f = d->file.load(std::memory_order_acquire);
  if (f != nullptr) return f;
  auto opened = [&] {
    EngineScope engine;
    return File::Open(ProcFdPath(fd).c_str(), d->access());
  }();
  if (!opened.ok()) {
    TERN_LOG_WARN("shim: %s (fd %d): cannot open the inherited tern file: errno %d (%s)",
                  d->path.c_str(), fd, opened.status().err(), opened.status().context());
    return opened.status();
  }
  f = opened->release();
  d->file.store(f, std::memory_order_release);
  return f;
}

void MarkInternalFd(int fd) { g_internal.Set(fd); }

void UnmarkInternalFd(int fd) { g_internal.Clear(fd); }

bool IsInternalFd(int fd) { return g_internal.Test(fd); }

void MarkTernPathFd(int fd) { g_tern_path_fds.Set(fd); }

void UnmarkTernPathFd(int fd) { g_tern_path_fds.Clear(fd); }

bool IsTernPathFd(int fd) { return g_tern_path_fds.Test(fd); }

void CopyTernPathMark(int from, int to) {
  if (IsTernPathFd(from)) {
    MarkTernPathFd(to);
  } else {
    UnmarkTernPathFd(to);
  }
}

int MaxTernPathFd() { return g_tern_path_fds.max.load(std::memory_order_relaxed); }

int MaxInternalFd() { return g_internal.max.load(); }

int MoveToInternalRange(int fd, bool cloexec) {
  if (fd < 0 || fd >= g_internal_base) return fd;
  int moved = Real().fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, g_internal_base);
  if (moved < 0) return fd;
  Real().close(fd);
  return moved;
}

void ReleaseSharedSlotsAtExit(DropMode mode) {
  std::unique_lock lock = LockToDrop(g_desc_mu, mode);
  if (!lock.owns_lock()) return;
  // After _exit nothing writes (no stdio flush), and a signal handler must not malloc: one slot
  // stands in for all (a thread still writing as the process dies shares its offset with no one).
  static OfdSlot after_immediate_exit;
  size_t n = g_desc_count.load();
  for (size_t i = 0; i < n; ++i) {
    Desc* d = DescStorageAt(i);
    if (d->refs.load() <= 0 || d->slot_index == 0) continue;
    OfdSlot* own = &after_immediate_exit;
    if (mode != DropMode::kImmediateExit) {
      if (d->private_slot == nullptr) d->private_slot = new OfdSlot();
      own = d->private_slot;
    }
    own->offset.store(d->Slot()->offset.load());
    own->flags.store(d->Slot()->flags.load());
    uint32_t shared = d->slot_index;
    d->slot.store(own);
    d->slot_index = 0;
    UnrefSlot(shared);
  }
}

void ShareDescriptions() {
  HeldLockGuard lock(g_desc_mu);
  ShareDescriptionsLocked(/*wait=*/true);
}

void FdTablePrepareFork() {
  g_desc_mu.lock();
  // Those made since ShareDescriptions (the first prepare handler) and not busy now: the engine's
  // handlers hold its locks, which a busy description's operation may be waiting for.
  ShareDescriptionsLocked(/*wait=*/false);
}
void FdTableParentAfterFork() { g_desc_mu.unlock(); }

void FdTableChildAfterFork() {
  g_desc_mu.unlock();
  ForEachDesc([](Desc* d) { RefSlot(d->slot_index); });
}

}  // namespace tern::shim
