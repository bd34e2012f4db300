#include "shim/ofd_region.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "lib/process_id.h"
#include "pmem/log.h"
#include "shim/env.h"
#include "shim/fd_table.h"
#include "shim/interruption_hold.h"
#include "shim/real_libc.h"

namespace tern::shim {
namespace {

constexpr uint64_t kMagic = 0x6d6968732d6e7274ULL;  // "trn-shim"
constexpr uint32_t kVersion = 1;
constexpr size_t kRegionBytes = size_t{4} << 20;   // 65,536 slots; sparse until touched
constexpr uint32_t kSlots = kRegionBytes / sizeof(OfdSlot);

struct Header {
  uint64_t magic;
  uint32_t version;
  uint32_t slots;
  std::atomic<uint32_t> hint;
  uint8_t reserved[44];
};
static_assert(sizeof(Header) == sizeof(OfdSlot));

// Set once (at start-up when inherited, else by the first AllocSlot); read by every thread.
std::atomic<OfdSlot*> g_base{nullptr};
std::atomic<int> g_fd{-1};
uint64_t g_ino = 0;
char g_env[64];
std::atomic<bool> g_env_ready{false};  // g_env describes the region
// One attempt at creation. A fork never splits one (the child would keep a mapping or an fd it
// does not know of): AllocSlot runs under the fd table's lock, which fork's handlers hold.
std::mutex g_create_mu;
bool g_create_tried = false;  // guarded by g_create_mu

OfdSlot* Base() { return g_base.load(std::memory_order_acquire); }
Header* Head() { return reinterpret_cast<Header*>(Base()); }

bool MapFd(int fd) {
  struct stat st;
  if (Real().fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != kRegionBytes) return false;
  void* p = mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return false;
  auto* h = static_cast<Header*>(p);
  if (h->magic != kMagic || h->version != kVersion || h->slots != kSlots) {
    munmap(p, kRegionBytes);
    return false;
  }
  g_ino = st.st_ino;
  g_base.store(static_cast<OfdSlot*>(p), std::memory_order_release);
  return true;
}

bool Inherit() {
  const char* env = EnvGet("TERN_SHIM_OFD");
  if (env == nullptr) return false;
  int fd = -1;
  unsigned long long ino = 0;
  if (sscanf(env, "%d:%llu", &fd, &ino) != 2 || fd < 0) return false;
  struct stat st;
  if (Real().fstat(fd, &st) != 0 || st.st_ino != ino) return false;
  if (!MapFd(fd)) return false;
  g_fd = fd;
  return true;
}

bool Create() {
  int fd = static_cast<int>(syscall(SYS_memfd_create, "tern-ofd", 0));  // inheritable on purpose
  if (fd < 0) return false;
  if (Real().ftruncate(fd, static_cast<off_t>(kRegionBytes)) != 0) {
    Real().close(fd);
    return false;
  }
  void* p = mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    Real().close(fd);
    return false;
  }
  auto* h = static_cast<Header*>(p);
  h->magic = kMagic;
  h->version = kVersion;
  h->slots = kSlots;
  h->hint.store(1);
  struct stat st;
  Real().fstat(fd, &st);
  g_ino = st.st_ino;
  g_fd.store(MoveToInternalRange(fd, /*cloexec=*/false));
  g_base.store(static_cast<OfdSlot*>(p), std::memory_order_release);
  return true;
}

void UpdateEnv() {
  g_env_ready.store(false, std::memory_order_relaxed);
  snprintf(g_env, sizeof(g_env), "%d:%llu", g_fd.load(), static_cast<unsigned long long>(g_ino));
  g_env_ready.store(true, std::memory_order_release);
  EnvSet("TERN_SHIM_OFD", g_env);
}

// The region, made when this process first shares a description with a child: most processes
// (a compiler's helpers, cat, sort) never do, and creating and tearing down the region was
// ~0.15 ms of every process's start and exit here.
bool EnsureRegion() {
  if (Base() != nullptr) return true;
  HeldLockGuard lock(g_create_mu);
  if (Base() != nullptr) return true;
  if (g_create_tried) return false;
  g_create_tried = true;
  if (!Create()) {
    TERN_LOG_WARN("shim: no shared offset region (errno %d): offsets are not shared with children", errno);
    return false;
  }
  MarkInternalFd(g_fd.load());
  UpdateEnv();
  return true;
}

long Futex(std::atomic<uint32_t>* word, int op, uint32_t val, const struct timespec* timeout) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, val, timeout, nullptr, 0);
}

}  // namespace

void InitOfdRegion() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!Inherit()) return;  // made by the first AllocSlot
    MarkInternalFd(g_fd.load());
    UpdateEnv();
  });
}

int OfdRegionFd() { return g_fd.load(); }

void SetOfdRegionFd(int fd) {
  g_fd.store(fd);
  UpdateEnv();
}

const char* OfdRegionEnv() { return g_env_ready.load(std::memory_order_acquire) ? g_env : ""; }

uint32_t SlotCount() { return Base() == nullptr ? 0 : kSlots; }

OfdSlot* SlotAt(uint32_t index) { return &Base()[index]; }

uint32_t AllocSlot(uint32_t flags, dev_t dev, ino_t ino) {
  if (!EnsureRegion()) return 0;
  OfdSlot* base = Base();
  uint32_t start = Head()->hint.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < kSlots - 1; ++i) {
    uint32_t index = 1 + (start - 1 + i) % (kSlots - 1);
    OfdSlot* s = &base[index];
    uint32_t expected = 0;
    if (s->refs.load(std::memory_order_relaxed) != 0) continue;
    if (!s->refs.compare_exchange_strong(expected, 1)) continue;
    s->offset.store(0);
    s->flags.store(flags);
    s->lock.store(0);
    s->waiters.store(0);
    s->dev.store(dev);
    s->ino.store(ino);
    Head()->hint.store(index + 1 < kSlots ? index + 1 : 1, std::memory_order_relaxed);
    return index;
  }
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true)) {
    TERN_LOG_WARN("shim: shared offset region full; new files get offsets private to this process");
  }
  return 0;
}

void RefSlot(uint32_t index) {
  if (index != 0) SlotAt(index)->refs.fetch_add(1);
}

void UnrefSlot(uint32_t index) {
  if (index == 0) return;
  OfdSlot* s = SlotAt(index);
  uint32_t r = s->refs.load();
  // Never below zero, even if a crashed process's bookkeeping was off.
  while (r != 0 && !s->refs.compare_exchange_weak(r, r - 1)) {
  }
}

void LockSlot(OfdSlot* slot) {
  uint32_t me = ThisProcessId();
  for (uint32_t round = 0;; ++round) {
    uint32_t holder = 0;
    // acquire; pairs with the release in UnlockSlot.
    if (slot->lock.compare_exchange_weak(holder, me, std::memory_order_acquire)) return;
    if (holder == 0) continue;
    if (round < 64) {
      __builtin_ia32_pause();
      continue;
    }
    // Sleep (10 ms at most), then check that the holder still lives: a process killed while
    // holding the lock must not wedge the processes sharing the description.
    slot->waiters.fetch_add(1);
    struct timespec ts = {0, 10 * 1000 * 1000};
    Futex(&slot->lock, FUTEX_WAIT, holder, &ts);
    slot->waiters.fetch_sub(1);
    if (holder != me && (round & 15) == 15 && kill(static_cast<pid_t>(holder), 0) != 0 && errno == ESRCH) {
      slot->lock.compare_exchange_strong(holder, 0);
    }
  }
}

bool TryLockSlot(OfdSlot* slot) {
  uint32_t free_value = 0;
  return slot->lock.compare_exchange_strong(free_value, ThisProcessId(), std::memory_order_acquire);
}

void UnlockSlot(OfdSlot* slot) {
  slot->lock.store(0, std::memory_order_release);
  if (slot->waiters.load() != 0) Futex(&slot->lock, FUTEX_WAKE, 1, nullptr);
}

}  // namespace tern::shim
