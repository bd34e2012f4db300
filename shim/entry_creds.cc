// Entry points: the calls that change the process's credentials (user and group ids, groups,
// capabilities). The kernel's permission check at open depends on them; a reopen of a file this
// process has open checks only what changed since an earlier open was allowed
// (lib/access_grant.h), so each of these calls voids what earlier opens found allowed. glibc's own
// callers of these (initgroups calls setgroups inside libc) are covered by wrapping the outer call.
#include <grp.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include "lib/access_grant.h"
#include "shim/common.h"
#include "shim/real_libc.h"

using namespace tern::shim;

namespace {

// Calls the real function (ENOSYS if libc has none) and voids every access grant, whatever the
// outcome: a call that failed may still have changed some of the ids.
template <typename R, typename... Params, typename... Args>
R ChangeCredentials(R (*real)(Params...), Args... args) {
  if (real == nullptr) return static_cast<R>(Fail(ENOSYS));
  R result = real(args...);
  tern::AccessGrant::NoteCredentialsChanged();
  return result;
}

}  // namespace

extern "C" {
int TernSetuid(uid_t uid) noexcept TERN_EXPORT_AS("setuid");
int TernSetgid(gid_t gid) noexcept TERN_EXPORT_AS("setgid");
int TernSeteuid(uid_t uid) noexcept TERN_EXPORT_AS("seteuid");
int TernSetegid(gid_t gid) noexcept TERN_EXPORT_AS("setegid");
int TernSetreuid(uid_t ruid, uid_t euid) noexcept TERN_EXPORT_AS("setreuid");
int TernSetregid(gid_t rgid, gid_t egid) noexcept TERN_EXPORT_AS("setregid");
int TernSetresuid(uid_t ruid, uid_t euid, uid_t suid) noexcept TERN_EXPORT_AS("setresuid");
int TernSetresgid(gid_t rgid, gid_t egid, gid_t sgid) noexcept TERN_EXPORT_AS("setresgid");
int TernSetfsuid(uid_t uid) noexcept TERN_EXPORT_AS("setfsuid");
int TernSetfsgid(gid_t gid) noexcept TERN_EXPORT_AS("setfsgid");
int TernSetgroups(size_t n, const gid_t* groups) noexcept TERN_EXPORT_AS("setgroups");
int TernInitgroups(const char* user, gid_t group) noexcept TERN_EXPORT_AS("initgroups");
int TernCapset(void* header, const void* data) noexcept TERN_EXPORT_AS("capset");
}

int TernSetuid(uid_t uid) noexcept { return ChangeCredentials(Real().setuid, uid); }
int TernSetgid(gid_t gid) noexcept { return ChangeCredentials(Real().setgid, gid); }
int TernSeteuid(uid_t uid) noexcept { return ChangeCredentials(Real().seteuid, uid); }
int TernSetegid(gid_t gid) noexcept { return ChangeCredentials(Real().setegid, gid); }
int TernSetreuid(uid_t ruid, uid_t euid) noexcept { return ChangeCredentials(Real().setreuid, ruid, euid); }
int TernSetregid(gid_t rgid, gid_t egid) noexcept { return ChangeCredentials(Real().setregid, rgid, egid); }
int TernSetresuid(uid_t ruid, uid_t euid, uid_t suid) noexcept {
  return ChangeCredentials(Real().setresuid, ruid, euid, suid);
}
int TernSetresgid(gid_t rgid, gid_t egid, gid_t sgid) noexcept {
  return ChangeCredentials(Real().setresgid, rgid, egid, sgid);
}
int TernSetfsuid(uid_t uid) noexcept { return ChangeCredentials(Real().setfsuid, uid); }
int TernSetfsgid(gid_t gid) noexcept { return ChangeCredentials(Real().setfsgid, gid); }
int TernSetgroups(size_t n, const gid_t* groups) noexcept { return ChangeCredentials(Real().setgroups, n, groups); }
int TernInitgroups(const char* user, gid_t group) noexcept { return ChangeCredentials(Real().initgroups, user, group); }
int TernCapset(void* header, const void* data) noexcept { return ChangeCredentials(Real().capset, header, data); }
