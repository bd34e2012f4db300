// Open-file-description state that must be shared between processes: the file offset and the
// status flags (O_APPEND...). The kernel keeps these in the open file description, which dup'ed fds,
// a forked child and an exec'ed program all share; tern keeps them in a slot of a MAP_SHARED memfd
// region that every process of a `tern run` tree maps (the memfd is inherited across fork and exec;
// its fd number travels in TERN_SHIM_OFD). Slot 0 is the header. A description starts with a
// slot of its own in the process's heap and moves here when a child process is about to share it
// (fork, posix_spawn: ShareDescriptions in fd_table.h); the region is made then, so a process that
// starts no child while it has tern files open (a compiler's cc1, cat, sort) never makes one.
//
// Reference counting: every process that has a description using a slot holds one reference
// (taken when the description moves here, by the child at fork, transferred across exec). A slot
// whose count drops to zero is free. A process killed without closing leaks its references; when
// the region is full, descriptions keep their private slots (offsets then are not shared with
// children) and one log line says so.
//
// Thread- and process-safety: all fields are atomics in shared memory; Lock/Unlock is a
// process-shared futex lock that a dead holder cannot wedge (its pid is checked).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace tern::shim {

struct OfdSlot {
  std::atomic<uint64_t> offset;
  std::atomic<uint32_t> refs;      // processes holding this slot; 0 = free
  std::atomic<uint32_t> flags;     // access mode | status flags, as F_GETFL reports them
  std::atomic<uint32_t> lock;      // 0, or the pid of the holder
  std::atomic<uint32_t> waiters;   // threads sleeping in Lock
  std::atomic<uint64_t> dev;       // identity of the file, checked when an exec'ed program adopts
  std::atomic<uint64_t> ino;
  uint8_t reserved[24];
};
static_assert(sizeof(OfdSlot) == 64);
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free);

// Maps the inherited region (TERN_SHIM_OFD=fd:ino), if any. Idempotent. Without one, the first
// AllocSlot creates the region.
void InitOfdRegion();
// The region's fd (kept open and inheritable), or -1 when there is no region.
int OfdRegionFd();
// Replaces the region fd number (the application wants that number).
void SetOfdRegionFd(int fd);
// The value TERN_SHIM_OFD should carry for a child ("fd:ino"), empty when there is no region.
const char* OfdRegionEnv();

// Allocates a slot with refs = 1, creating the region first if there is none; returns its index, or
// 0 when the region is full or cannot be made. REQUIRES: the fd table's lock (ShareDescriptions),
// which fork's handlers hold: no fork splits a creation.
uint32_t AllocSlot(uint32_t flags, dev_t dev, ino_t ino);
// The slot at `index` (1 ≤ index < SlotCount()).
OfdSlot* SlotAt(uint32_t index);
uint32_t SlotCount();
void RefSlot(uint32_t index);
void UnrefSlot(uint32_t index);

// Serialises offset updates of one description across threads and processes (the kernel's f_pos lock).
void LockSlot(OfdSlot* slot);
bool TryLockSlot(OfdSlot* slot);  // LockSlot if the lock is free now
void UnlockSlot(OfdSlot* slot);

}  // namespace tern::shim
