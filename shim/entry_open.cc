// Entry points: the open family (plain, 64, fortify and creat variants).
#include <fcntl.h>
#include <stdarg.h>

#include "shim/common.h"
#include "shim/shim.h"

using namespace tern::shim;

namespace {

bool TakesMode(int flags) { return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE; }

}  // namespace

extern "C" {
int TernOpen(const char* path, int flags, ...) TERN_EXPORT_AS("open");
int TernOpen64(const char* path, int flags, ...) TERN_EXPORT_AS("open64");
int TernOpenat(int dirfd, const char* path, int flags, ...) TERN_EXPORT_AS("openat");
int TernOpenat64(int dirfd, const char* path, int flags, ...) TERN_EXPORT_AS("openat64");
int TernOpen2(const char* path, int flags) TERN_EXPORT_AS("__open_2");
int TernOpen64_2(const char* path, int flags) TERN_EXPORT_AS("__open64_2");
int TernOpenat2(int dirfd, const char* path, int flags) TERN_EXPORT_AS("__openat_2");
int TernOpenat64_2(int dirfd, const char* path, int flags) TERN_EXPORT_AS("__openat64_2");
int TernCreat(const char* path, mode_t mode) TERN_EXPORT_AS("creat");
int TernCreat64(const char* path, mode_t mode) TERN_EXPORT_AS("creat64");
}

#define TERN_MODE_ARG(flags, last)                     \
  mode_t mode = 0;                                     \
  if (TakesMode(flags)) {                              \
    va_list ap;                                        \
    va_start(ap, last);                                \
    mode = static_cast<mode_t>(va_arg(ap, unsigned));  \
    va_end(ap);                                        \
  }

int TernOpen(const char* path, int flags, ...) {
  TERN_MODE_ARG(flags, flags);
  TERN_ENTRY_TRY
  ActOnCancellation();
  return ShimOpen(AT_FDCWD, path, flags, mode);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernOpen64(const char* path, int flags, ...) {
  TERN_MODE_ARG(flags, flags);
  TERN_ENTRY_TRY
  ActOnCancellation();
  return ShimOpen(AT_FDCWD, path, flags, mode);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernOpenat(int dirfd, const char* path, int flags, ...) {
  TERN_MODE_ARG(flags, flags);
  TERN_ENTRY_TRY
  ActOnCancellation();
  return ShimOpen(dirfd, path, flags, mode);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernOpenat64(int dirfd, const char* path, int flags, ...) {
  TERN_MODE_ARG(flags, flags);
  TERN_ENTRY_TRY
  ActOnCancellation();
  return ShimOpen(dirfd, path, flags, mode);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

// The fortify variants are called when the flags are not a compile-time constant; glibc aborts
// there if O_CREAT comes without a mode. tern returns EINVAL instead of aborting.
int TernOpen2(const char* path, int flags) {
  TERN_ENTRY_TRY
  ActOnCancellation();
  if (TakesMode(flags)) return Fail(EINVAL);
  return ShimOpen(AT_FDCWD, path, flags, 0);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernOpen64_2(const char* path, int flags) { return TernOpen2(path, flags); }

int TernOpenat2(int dirfd, const char* path, int flags) {
  TERN_ENTRY_TRY
  ActOnCancellation();
  if (TakesMode(flags)) return Fail(EINVAL);
  return ShimOpen(dirfd, path, flags, 0);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernOpenat64_2(int dirfd, const char* path, int flags) { return TernOpenat2(dirfd, path, flags); }

int TernCreat(const char* path, mode_t mode) {
  TERN_ENTRY_TRY
  ActOnCancellation();
  return ShimOpen(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  TERN_CANCELLABLE_ENTRY_CATCH(-1)
}

int TernCreat64(const char* path, mode_t mode) { return TernCreat(path, mode); }
