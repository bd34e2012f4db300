// Byte-range OFD locks on the backing file that tern uses as liveness signals; the kernel drops
// them when the holder's open file description goes away (process death included), so they never
// go stale. None of the bytes is anywhere near data an application could lock.
//
// The open lock: every open holds it shared for as long as the file is open. Holding it
// exclusively proves nobody else has the file open: only then does tern format a new file, scrub
// the log tail after a crash, create the shared state, or remove the shared state at close.
//
// Slot locks: one byte per process slot (shared_state.h), held exclusively by the slot's process.
//
// The slotless-reader lock: held shared, for as long as it has the file open, by every process
// that opened the file without write permission (it cannot take the locks above, which need a
// writable descriptor, nor write the shared state, which has the file's owner and mode). Such a
// reader has no slot, so GC cannot count its operations: while the lock is held, GC frees no log
// block (file_core_readonly.cc).
//
// The build lock: held exclusively by the one process building the file's block allocator from
// the log (FileCore::EnsureAllocatorReady); the others wait for it.
#pragma once

#include <climits>
#include <cstdint>
#include <sys/types.h>

#include "lib/status.h"

namespace tern {

// Every lock byte tern uses lies at or above this offset of the backing file: an application's
// byte-range locks (which the shim takes on the backing file) must stay below it.
inline constexpr off_t kEngineLockRangeStart = LLONG_MAX - (off_t{1} << 21);

// Tries to take the open lock exclusively without waiting. Returns true if taken.
Result<bool> TryLockExclusive(int fd);
// Takes the open lock shared, waiting while somebody holds it exclusively (a first opener
// recovering). Also converts an exclusive lock of this open file description to shared, atomically.
Status LockShared(int fd);
// Releases the open lock of this open file description.
void Unlock(int fd);
// True while an open file description other than fd's holds the open lock (the file is open
// somewhere, in any process). Takes no lock.
Result<bool> OpenedElsewhere(int fd);

// Takes the slotless-reader lock shared (a read-only descriptor suffices); dropped with the
// descriptor's open file description, at close (BackingCache keeps only writable descriptors).
Status HoldSlotlessReaderLock(int fd);
// True while some open file description (not fd's) holds the slotless-reader lock.
Result<bool> SlotlessReadersPresent(int fd);

// Takes the build lock, waiting while another process holds it; releases it.
Status LockBuild(int fd);
void UnlockBuild(int fd);

// Tries to take slot `slot`'s lock without waiting. Returns true if taken.
Result<bool> TryLockSlot(int fd, uint32_t slot);
void UnlockSlot(int fd, uint32_t slot);

}  // namespace tern
