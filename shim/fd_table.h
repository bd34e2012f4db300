// The shim's fd table: fd number → open file description (Desc) for every fd that names a tern
// file, plus the set of fds the shim and the engine use privately.
//
// The fd number an application holds for a tern file is an O_PATH descriptor of the file: the kernel
// refuses read/write/mmap through it (EBADF), so any path the shim does not see (glibc-internal
// stdio, raw syscalls) fails loudly instead of touching the backing bytes (DESIGN §6).
//
// A Desc is the open file description: the engine File, the shared offset/flags slot
// (ofd_region.h) and the lazily opened fd used for fcntl/flock locks. dup'ed fds point to one Desc.
// Descs live in type-stable storage (never returned to the heap), so a lookup racing with close
// can safely try to take a reference and then check that the fd still points to it.
//
// Thread-safety: lookups are lock-free (one atomic load for a non-tern fd); the table is an array
// indexed by fd. Installing and clearing entries is atomic per entry.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "lib/drop_mode.h"
#include "lib/file.h"
#include "lib/status.h"
#include "shim/common.h"
#include "shim/interruption_hold.h"
#include "shim/ofd_region.h"

namespace tern::shim {

inline constexpr int kMaxFds = 1 << 20;

struct Desc {
  std::atomic<int32_t> refs{0};    // fds in this process + operations in flight; 0 = free
  std::atomic<File*> file{nullptr};  // owned; null until first use for adopted descriptions
  // The offset and flags: a private slot until a child process is about to share the description
  // (ShareDescriptionsLocked moves it to the shared region, once, under the private slot's lock).
  std::atomic<OfdSlot*> slot{nullptr};
  OfdSlot* private_slot = nullptr;  // owned; null for a description adopted with a shared slot
  uint32_t slot_index = 0;         // 0: `slot` is private_slot. Guarded by the table's lock
  dev_t dev = 0;                   // the file, for the shared slot's identity
  ino_t ino = 0;
  std::atomic<int> lock_fd{-1};    // a real fd of the file for fcntl/flock locks, opened on demand
  std::atomic<bool> dirty{false};  // written since the last mtime update
  std::atomic<bool> had_posix_locks{false};  // see MarkPosixLocks
  std::mutex mu;                   // serialises the lazy open and the lock fd's creation
  std::string path;                // absolute path at open (logs)
  Desc* next_free = nullptr;

  OfdSlot* Slot() const { return slot.load(std::memory_order_acquire); }
  int access() const { return static_cast<int>(Slot()->flags.load() & O_ACCMODE); }
  uint32_t flags() const { return Slot()->flags.load(); }
};

// Holds the offset lock of d's slot (LockSlot): the description's offset and flags change under
// it, and its slot does not move meanwhile.
class DescSlotGuard {
 public:
  explicit DescSlotGuard(Desc* d);
  ~DescSlotGuard() { UnlockSlot(slot_); }
  DescSlotGuard(const DescSlotGuard&) = delete;
  DescSlotGuard& operator=(const DescSlotGuard&) = delete;
  OfdSlot* slot() const { return slot_; }

 private:
  InterruptionsHeld held_;  // before the lock, after the unlock
  OfdSlot* slot_;
};

// Record locks belong to the process and the file, not to a description: closing any fd of a file
// drops the process's locks on it (POSIX). A Desc that took one is marked, so a close can find the
// lock descriptors to unlock through; AnyPosixLocks keeps the common close (no locks) one load.
void MarkPosixLocks(Desc* d);
bool ClearPosixLocksMark(Desc* d);  // true when d was marked
bool AnyPosixLocks();

// Creates the table (idempotent). FdTableReady is false when that failed.
// Also raises the soft RLIMIT_NOFILE, as far as the hard limit allows. A tern file holds two of
// tern's descriptors besides the program's (its backing file and its shared state): with the usual
// soft limit of 1,024 a program could open ~340 tern files where the kernel lets it open 1,021.
// Tern's descriptors go above the program's old limit, so the program keeps every number it could
// have had; getrlimit shows the program its own (ShowProgramFdLimit). Children made by fork and
// posix_spawn inherit the raised limit.
void InitFdTable();
bool FdTableReady();

// getrlimit(RLIMIT_NOFILE) as the program sees it: its own soft limit while tern's raise is in
// effect (the real one once the program has set a limit of its own).
void ShowProgramFdLimit(struct rlimit* rl);
// For a child started by posix_spawn, which inherits the raised limit: "TERN_SHIM_NOFILE=P:R"
// (the program's soft limit and the raised one), so that its shim shows P too; empty when tern
// raised nothing.
std::string FdLimitHandOver();

// Around an exec: the next program image starts with the soft limit the program had (its own shim
// raises it again), unless the program set a limit of its own. Put back if the exec fails.
class ProgramFdLimitForExec {
 public:
  ProgramFdLimitForExec();
  ~ProgramFdLimitForExec();
  ProgramFdLimitForExec(const ProgramFdLimitForExec&) = delete;
  ProgramFdLimitForExec& operator=(const ProgramFdLimitForExec&) = delete;

 private:
  bool lowered_;
};

namespace detail {
extern std::atomic<Desc*>* g_entries;  // kMaxFds entries (see EntryOf); null until InitFdTable
// What a pass-through call reads, on one cache line: after every system call this VM refills the
// TLB, and each further page an entry point touches costs a page walk (~50 ns a call when the
// table's page was one of them).
inline constexpr int kLowFds = 512;
struct alignas(64) FdHints {
  std::atomic<int> max_tern_fd{-1};  // highest fd that ever named a tern file, -1: none
  // Bit fd set: fd (< kLowFds) may name a tern file (set before its entry is, cleared after).
  std::atomic<uint64_t> low[kLowFds / 64] = {};
};
extern FdHints g_hints;
// The entries of the lowest fds live in the shim's own data, where a process's first tern fds
// land, rather than in the large mapped table: the first touch of a page there, and of the page
// table above it, cost a process's first open tens of microseconds on this VM.
inline constexpr int kStaticFds = 64;
extern std::atomic<Desc*> g_static_entries[kStaticFds];
// fd's entry. REQUIRES: 0 <= fd < kMaxFds, g_entries set.
inline std::atomic<Desc*>& EntryOf(int fd) {
  return fd < kStaticFds ? g_static_entries[fd] : g_entries[fd];
}
}  // namespace detail

// True when fd currently names a tern file (no reference taken). Inline, and for most fds one
// cache line: an fd above every tern fd ever installed, or whose hint bit is clear, is not one.
inline bool IsTernFd(int fd) {
  if (detail::g_entries == nullptr || fd > detail::g_hints.max_tern_fd.load(std::memory_order_relaxed)) return false;
  if (static_cast<unsigned>(fd) < static_cast<unsigned>(detail::kLowFds) &&
      ((detail::g_hints.low[fd / 64].load(std::memory_order_acquire) >> (fd % 64)) & 1) == 0) {
    return false;
  }
  return static_cast<unsigned>(fd) < static_cast<unsigned>(kMaxFds) &&
         detail::EntryOf(fd).load(std::memory_order_acquire) != nullptr;
}

// True when the shim has nothing to do with fd: it names no tern file, or the engine itself runs on
// this thread. The entry points' fast path for pipes, sockets and other files: a few loads, then a
// tail call into libc with no frame of ours left under the syscall. A false answer is only a hint
// (DescRef decides, and takes a reference).
inline bool PassThrough(int fd) { return !IsTernFd(fd) || InEngine(); }

// A counted reference to the Desc of a tern fd. Empty for every other fd (and always while the
// engine is running on this thread).
// Interruptions (signals, cancellation) are held off while a DescRef holds a description
// (interruption_hold.h).
class DescRef {
 public:
  DescRef() = default;
  explicit DescRef(int fd);
  ~DescRef();
  DescRef(DescRef&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
  DescRef& operator=(DescRef&&) = delete;
  DescRef(const DescRef&) = delete;
  explicit operator bool() const { return d_ != nullptr; }
  Desc* operator->() const { return d_; }
  Desc* get() const { return d_; }

 private:
  Desc* d_ = nullptr;
};

// A new Desc with refs = 1 (the caller's), owning `file` (may be null: opened on first use) of
// the file (dev, ino), using shared slot `slot_index` (0: a private slot is made with `flags`).
Desc* NewDesc(File* file, uint32_t slot_index, uint32_t flags, dev_t dev, ino_t ino, std::string path);
void RefDesc(Desc* d);
void UnrefDesc(Desc* d);

// Points fd at d, taking a new reference on d; whatever fd pointed to before is released.
void InstallFd(int fd, Desc* d);
// Clears fd's entry; returns the Desc it held (the caller now owns that reference) or null.
Desc* TakeFd(int fd);
// Highest fd that ever held a tern file (bounds scans).
int MaxTernFd();

// Visits every fd that names a tern file with its Desc, holding a reference to it meanwhile (any
// thread; nothing inside the engine: DescRef sees no tern fd there).
template <typename F>
void ForEachTernFd(F&& f);

// Every live Desc (single-threaded contexts only).
template <typename F>
void ForEachDesc(F&& f);

// The engine File of d, opening it through fd when it is not open yet (adopted descriptions).
Result<File*> EnsureFile(Desc* d, int fd);

// Private fds (the offset region, lock fds, the engine's backing and shared-state fds). They are
// moved to a high range on creation so the application's numbering stays what the kernel would give,
// and close/close_range/dup2 from the application leave them alone.
void MarkInternalFd(int fd);
void UnmarkInternalFd(int fd);
bool IsInternalFd(int fd);
int MaxInternalFd();

// The program's own O_PATH descriptors of tern files (open with O_PATH). Kernel fds like any other:
// the kernel refuses reads and writes through them as through any O_PATH fd. But what names the
// file through them must show the tern file, not its backing file: fstat (and fstatat/statx with
// AT_EMPTY_PATH), and an open of /proc/self/fd/N. A mark is cleared when the number is closed or
// taken by another kernel fd the shim sees; a stale one (a number reused unseen) only makes those
// look again, and they check what the fd names.
void MarkTernPathFd(int fd);
void UnmarkTernPathFd(int fd);
bool IsTernPathFd(int fd);
int MaxTernPathFd();  // -1: none ever marked
// `to` became a duplicate of `from`: it carries `from`'s mark, or none.
void CopyTernPathMark(int from, int to);
// Moves fd to the internal range (first free number at or above the base); returns the new fd
// (or fd itself when it cannot be moved). Closes the old number.
int MoveToInternalRange(int fd, bool cloexec);

// Process exit (exit, or _exit: kImmediateExit): every description moves to a private copy of its
// offset slot and gives the shared one back, so slots do not leak with each process that exits with
// files open. (Writes after this, such as glibc's last flush of stdout, still work; they just no
// longer share the offset.)
void ReleaseSharedSlotsAtExit(DropMode mode);

// Before a child process comes to share this process's descriptions (fork, posix_spawn): each
// that still has a private slot gets one in the shared offset region (made now if this is the
// first), so that the child and this process move one offset. A process that never starts a child
// while it has tern files open never makes the region. Takes the table's lock, and waits for the
// operations in flight on each description it moves.
void ShareDescriptions();

// fork: the prepare/parent/child steps of the table (the desc allocator's lock; the child takes a
// slot reference for every live description).
void FdTablePrepareFork();
void FdTableParentAfterFork();
void FdTableChildAfterFork();

// --- implementation details of the templates ---
Desc* DescStorageAt(size_t i);
size_t DescStorageCount();

template <typename F>
void ForEachTernFd(F&& f) {
  for (int fd = 0, max = MaxTernFd(); fd <= max; ++fd) {
    if (DescRef d(fd); d) f(fd, d.get());
  }
}

template <typename F>
void ForEachDesc(F&& f) {
  size_t n = DescStorageCount();
  for (size_t i = 0; i < n; ++i) {
    Desc* d = DescStorageAt(i);
    if (d->refs.load() > 0) f(d);
  }
}

}  // namespace tern::shim
