// Entry points: unlink and unlinkat of tern files, and umask.
//
// An unlinked tern file whose backing this process still keeps mapped (it closed the file earlier)
// and that nobody else has open is recycled: BackingCache renames it aside as a spare instead of
// removing it, and the next file this process creates takes it over, emptied, with its pages
// already mapped (lib/backing_cache.h says why). Either way the name is gone when unlink returns.
// A large file's shared state resting between opens (lib/file_core_rest.cc) is removed with it.
// umask is followed so that a recycled file gets the mode a created one would.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "lib/backing_cache.h"
#include "lib/file_core.h"
#include "shim/common.h"
#include "shim/paths.h"
#include "shim/real_libc.h"
#include "shim/shim.h"

using namespace tern::shim;

extern "C" {
int TernUnlink(const char* path) noexcept TERN_EXPORT_AS("unlink");
int TernUnlinkat(int dirfd, const char* path, int flags) noexcept TERN_EXPORT_AS("unlinkat");
mode_t TernUmask(mode_t mask) noexcept TERN_EXPORT_AS("umask");
}

namespace {

// Before unlinking `path`: true when the engine took it away as a spare (the unlink is done).
// Otherwise a large tern file's shared state resting between opens goes first, and the caller
// unlinks.
bool UnlinkedByEngine(int dirfd, const char* path) {
  std::string abs;
  if (!ShimReady() || InEngine() || path == nullptr || !TernCandidate(dirfd, path, &abs)) return false;
  EngineScope engine;
  struct stat st;
  if (lstat(abs.c_str(), &st) != 0) return false;  // the unlink reports it
  if (tern::BackingCache::Default().Retire(abs, st)) return true;
  tern::FileCore::DropRestingState(abs, st);
  return false;
}

}  // namespace

int TernUnlink(const char* path) noexcept {
  TERN_ENTRY_TRY
  if (Real().unlinkat == nullptr) return Fail(ENOSYS);
  if (UnlinkedByEngine(AT_FDCWD, path)) return 0;
  return Real().unlinkat(AT_FDCWD, path, 0);
  TERN_ENTRY_CATCH(-1)
}

int TernUnlinkat(int dirfd, const char* path, int flags) noexcept {
  TERN_ENTRY_TRY
  if (Real().unlinkat == nullptr) return Fail(ENOSYS);
  if ((flags & AT_REMOVEDIR) == 0 && UnlinkedByEngine(dirfd, path)) return 0;
  return Real().unlinkat(dirfd, path, flags);
  TERN_ENTRY_CATCH(-1)
}

mode_t TernUmask(mode_t mask) noexcept {
  mode_t old = Real().umask(mask);
  tern::BackingCache::Default().SetUmask(mask & 0777);
  return old;
}
