#include "lib/open_lock.h"

#include <fcntl.h>

#include <climits>

namespace tern {
namespace {

// One byte at the top of the offset range: no application byte-range lock reaches it.
constexpr off_t kLockOffset = LLONG_MAX - 1;

struct flock LockOf(short type) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = kLockOffset;
  fl.l_len = 1;
  return fl;
}

}  // namespace

Result<bool> TryLockExclusive(int fd) {
  struct flock fl = LockOf(F_WRLCK);
  if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return true;
  if (errno == EAGAIN || errno == EACCES) return false;
  return Status::Error(errno, "open lock");
}

Status LockShared(int fd) {
  struct flock fl = LockOf(F_RDLCK);
  while (fcntl(fd, F_OFD_SETLKW, &fl) != 0) {
    if (errno != EINTR) return Status::Error(errno, "open lock");
  }
  return Status::Ok();
}

void Unlock(int fd) {
  struct flock fl = LockOf(F_UNLCK);
  fcntl(fd, F_OFD_SETLK, &fl);
}

}  // namespace tern
