#include "lib/access_grant.h"

#include <atomic>

namespace tern {
namespace {

// Bumped by every credential change; a grant holds the value it was made under. Starts at 1 so
// that a default (empty) grant never matches.
std::atomic<uint64_t> credentials_generation{1};

}  // namespace

AccessGrant AccessGrant::Of(const struct stat& st, int access) {
  AccessGrant grant;
  grant.ctime_sec_ = st.st_ctim.tv_sec;
  grant.ctime_nsec_ = st.st_ctim.tv_nsec;
  grant.mode_ = st.st_mode;
  grant.uid_ = st.st_uid;
  grant.gid_ = st.st_gid;
  grant.access_ = access;
  grant.credentials_ = credentials_generation.load(std::memory_order_acquire);
  return grant;
}

bool AccessGrant::SameFile(const struct stat& st) const {
  return credentials_ == credentials_generation.load(std::memory_order_acquire) &&
         ctime_sec_ == st.st_ctim.tv_sec && ctime_nsec_ == st.st_ctim.tv_nsec && mode_ == st.st_mode &&
         uid_ == st.st_uid && gid_ == st.st_gid;
}

bool AccessGrant::Covers(const struct stat& st, int access) const {
  return access_ != 0 && (access & ~access_) == 0 && SameFile(st);
}

void AccessGrant::Add(const struct stat& st, int access) {
  if (access_ != 0 && SameFile(st)) {
    access_ |= access;
  } else {
    *this = Of(st, access);
  }
}

void AccessGrant::NoteCredentialsChanged() { credentials_generation.fetch_add(1, std::memory_order_acq_rel); }

}  // namespace tern
