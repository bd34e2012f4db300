// Entry points: unlink and unlinkat of tern files, rename and link out of the root, and umask.
//
// An unlinked tern file whose backing this process still keeps mapped (it closed the file earlier)
// and that nobody else has open is recycled: BackingCache renames it aside as a spare instead of
// removing it, and the next file this process creates takes it over, emptied, with its pages
// already mapped (lib/backing_cache.h says why). Either way the name is gone when unlink returns.
// A large file's shared state resting between opens (lib/file_core_rest.cc) is removed with it.
// umask is followed so that a recycled file gets the mode a created one would.
//
// A tern file's bytes mean something only through tern: renamed or linked to a name the shim does
// not serve (outside the root, or excluded), it would read as its backing file's format (a 6-byte
// file as 64 KiB starting "NRFILES1"). Such a rename or link fails with EXDEV, as one to another
// filesystem does, and `mv` then copies through the shim and removes the original. So does the
// rename of a directory under the root to outside it: it may hold tern files.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "lib/backing_cache.h"
#include "lib/file_core.h"
#include "lib/meta_block_format.h"
#include "lib/pool.h"
#include "shim/common.h"
#include "shim/paths.h"
#include "shim/real_libc.h"
#include "shim/shim.h"

using namespace tern::shim;

extern "C" {
int TernUnlink(const char* path) noexcept TERN_EXPORT_AS("unlink");
int TernUnlinkat(int dirfd, const char* path, int flags) noexcept TERN_EXPORT_AS("unlinkat");
int TernRename(const char* from, const char* to) noexcept TERN_EXPORT_AS("rename");
int TernRenameat(int from_dirfd, const char* from, int to_dirfd, const char* to) noexcept TERN_EXPORT_AS("renameat");
int TernRenameat2(int from_dirfd, const char* from, int to_dirfd, const char* to, unsigned flags) noexcept
    TERN_EXPORT_AS("renameat2");
int TernLink(const char* from, const char* to) noexcept TERN_EXPORT_AS("link");
int TernLinkat(int from_dirfd, const char* from, int to_dirfd, const char* to, int flags) noexcept
    TERN_EXPORT_AS("linkat");
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
  // A file closed here a moment ago may still linger open: closed now, its backing can be a spare.
  tern::Pool::Default().EndLinger(st.st_dev, st.st_ino);
  if (tern::BackingCache::Default().Retire(abs, st)) return true;
  tern::FileCore::DropRestingState(abs, st);
  return false;
}

// True when the file or directory `from` names lies under the root and `to` names a place outside
// it (or excluded), and `from` is a directory or a file in tern's format. `follow`: a symlink
// `from` counts as its target (linkat with AT_SYMLINK_FOLLOW).
bool WouldLeaveTheRoot(int from_dirfd, const char* from, int to_dirfd, const char* to, bool follow = false) {
  std::string from_abs, to_abs;
  if (!ShimReady() || InEngine() || from == nullptr || to == nullptr) return false;
  if (!TernCandidate(from_dirfd, from, &from_abs) || !AbsolutePath(to_dirfd, to, &to_abs) || UnderRoot(to_abs)) {
    return false;  // (a path that cannot be made absolute: the kernel reports why)
  }
  struct stat st;
  int rc = follow ? Real().stat(from_abs.c_str(), &st) : Real().lstat(from_abs.c_str(), &st);
  if (rc != 0) return false;
  if (S_ISDIR(st.st_mode)) return true;
  if (!ShapedLikeTernFile(st)) return false;
  int fd = Real().open(from_abs.c_str(), O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
  if (fd < 0) return false;
  uint64_t magic = 0;
  bool tern = Real().pread(fd, &magic, sizeof(magic), 0) == static_cast<ssize_t>(sizeof(magic)) &&
              magic == tern::pmem::kMetaMagic;
  Real().close(fd);
  return tern;
}

}  // namespace

int TernRename(const char* from, const char* to) noexcept {
  TERN_ENTRY_TRY
  if (WouldLeaveTheRoot(AT_FDCWD, from, AT_FDCWD, to)) return Fail(EXDEV);
  return Real().rename(from, to);
  TERN_ENTRY_CATCH(-1)
}

int TernRenameat(int from_dirfd, const char* from, int to_dirfd, const char* to) noexcept {
  TERN_ENTRY_TRY
  if (WouldLeaveTheRoot(from_dirfd, from, to_dirfd, to)) return Fail(EXDEV);
  return Real().renameat(from_dirfd, from, to_dirfd, to);
  TERN_ENTRY_CATCH(-1)
}

int TernRenameat2(int from_dirfd, const char* from, int to_dirfd, const char* to, unsigned flags) noexcept {
  TERN_ENTRY_TRY
  if (Real().renameat2 == nullptr) return Fail(ENOSYS);
  // RENAME_EXCHANGE moves `to`'s file to `from`'s place as well.
  if (WouldLeaveTheRoot(from_dirfd, from, to_dirfd, to) ||
      ((flags & RENAME_EXCHANGE) != 0 && WouldLeaveTheRoot(to_dirfd, to, from_dirfd, from))) {
    return Fail(EXDEV);
  }
  return Real().renameat2(from_dirfd, from, to_dirfd, to, flags);
  TERN_ENTRY_CATCH(-1)
}

int TernLink(const char* from, const char* to) noexcept {
  TERN_ENTRY_TRY
  if (WouldLeaveTheRoot(AT_FDCWD, from, AT_FDCWD, to)) return Fail(EXDEV);
  return Real().link(from, to);
  TERN_ENTRY_CATCH(-1)
}

int TernLinkat(int from_dirfd, const char* from, int to_dirfd, const char* to, int flags) noexcept {
  TERN_ENTRY_TRY
  // (AT_EMPTY_PATH links what from_dirfd itself names: a tern file's fd is an O_PATH descriptor,
  // which the check below does not see; left to the kernel.)
  if (WouldLeaveTheRoot(from_dirfd, from, to_dirfd, to, (flags & AT_SYMLINK_FOLLOW) != 0)) return Fail(EXDEV);
  return Real().linkat(from_dirfd, from, to_dirfd, to, flags);
  TERN_ENTRY_CATCH(-1)
}

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
