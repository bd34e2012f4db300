// The open lock: an OFD lock on one byte far past any data of the backing file. Every open holds it
// shared for as long as the file is open (the kernel drops it when the process dies, so it is a
// liveness signal that really works). Holding it exclusively proves nobody else has the file open:
// only then does tern format a new file, scrub the log tail after a crash, rebuild the shared state,
// or remove the shared state at close.
#pragma once

#include "lib/status.h"

namespace tern {

// Tries to take the lock exclusively without waiting. Returns true if taken.
Result<bool> TryLockExclusive(int fd);
// Takes the lock shared, waiting while somebody holds it exclusively (a first opener recovering).
// Also converts an exclusive lock of this open file description to shared, atomically.
Status LockShared(int fd);
// Releases the lock of this open file description.
void Unlock(int fd);

}  // namespace tern
