#include "lib/open_lock.h"

#include <fcntl.h>

#include <climits>

namespace tern {
namespace {

// The top of the offset range: no application byte-range lock reaches it.
constexpr off_t kOpenLockOffset = LLONG_MAX - 1;
constexpr off_t kBuildLockOffset = kOpenLockOffset - 1;
constexpr off_t kSlotlessReaderOffset = kOpenLockOffset - 2;
constexpr off_t kSlotLockBase = kOpenLockOffset - (1 << 20);
static_assert(kSlotLockBase >= kEngineLockRangeStart);

struct flock LockOf(short type, off_t offset) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = offset;
  fl.l_len = 1;
  return fl;
}

Result<bool> TryLock(int fd, short type, off_t offset) {
  struct flock fl = LockOf(type, offset);
  if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return true;
  if (errno == EAGAIN || errno == EACCES) return false;
  return Status::Error(errno, "lock backing file");
}

Status LockWaiting(int fd, short type, off_t offset, const char* what) {
  struct flock fl = LockOf(type, offset);
  while (fcntl(fd, F_OFD_SETLKW, &fl) != 0) {
    if (errno != EINTR) return Status::Error(errno, what);
  }
  return Status::Ok();
}

void UnlockAt(int fd, off_t offset) {
  struct flock fl = LockOf(F_UNLCK, offset);
  fcntl(fd, F_OFD_SETLK, &fl);
}

}  // namespace

Result<bool> TryLockExclusive(int fd) { return TryLock(fd, F_WRLCK, kOpenLockOffset); }

Status LockShared(int fd) { return LockWaiting(fd, F_RDLCK, kOpenLockOffset, "open lock"); }

void Unlock(int fd) { UnlockAt(fd, kOpenLockOffset); }

Status LockBuild(int fd) { return LockWaiting(fd, F_WRLCK, kBuildLockOffset, "build lock"); }

void UnlockBuild(int fd) { UnlockAt(fd, kBuildLockOffset); }

Result<bool> OpenedElsewhere(int fd) {
  struct flock fl = LockOf(F_WRLCK, kOpenLockOffset);
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return Status::Error(errno, "query open lock");
  return fl.l_type != F_UNLCK;
}

Status HoldSlotlessReaderLock(int fd) { return LockWaiting(fd, F_RDLCK, kSlotlessReaderOffset, "reader lock"); }

Result<bool> SlotlessReadersPresent(int fd) {
  struct flock fl = LockOf(F_WRLCK, kSlotlessReaderOffset);
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return Status::Error(errno, "query reader lock");
  return fl.l_type != F_UNLCK;
}

Result<bool> TryLockSlot(int fd, uint32_t slot) { return TryLock(fd, F_WRLCK, kSlotLockBase + slot); }

void UnlockSlot(int fd, uint32_t slot) { UnlockAt(fd, kSlotLockBase + slot); }

}  // namespace tern
