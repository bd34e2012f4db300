// What an open already found allowed, so that the next open of a file this process has open can
// skip asking the kernel again (faccessat: one of a reopen's four system calls, a quarter of its
// cost on this VM). The kernel's answer depends on the file's mode, owner, group, ACL and flags —
// every change to those changes the file's ctime, mode, uid or gid, which the grant remembers —
// and on the process's credentials, which only the calls that change them change: the shim wraps
// those (set*id, setgroups, initgroups, capset) and calls NoteCredentialsChanged, which voids
// every grant. Not seen: credentials changed by a raw syscall, and an ACL or attribute change
// within the same clock tick as the ctime the grant saw. Either way the process has the file's
// bytes mapped already (it has the file open), so a stale grant lets a reopen succeed that the
// kernel would refuse; it never reaches a file the process could not open before.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>

namespace tern {

class AccessGrant {
 public:
  // Nothing granted.
  AccessGrant() = default;
  // The kernel allowed `access` (R_OK, W_OK) to the file as `st` shows it, just now.
  static AccessGrant Of(const struct stat& st, int access);
  // True if `access` to the file as `st` shows it was allowed with today's credentials.
  bool Covers(const struct stat& st, int access) const;
  // `access` was allowed too: added when `st` and the credentials are those of this grant,
  // else this grant becomes Of(st, access).
  void Add(const struct stat& st, int access);

  // The process's credentials changed (or may have): every grant is void.
  static void NoteCredentialsChanged();

 private:
  bool SameFile(const struct stat& st) const;

  int64_t ctime_sec_ = 0;
  int64_t ctime_nsec_ = 0;
  mode_t mode_ = 0;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  int access_ = 0;  // R_OK | W_OK allowed; 0: none
  uint64_t credentials_ = 0;
};

}  // namespace tern
