// AccessGrant (lib/access_grant.h): what the kernel allowed holds while the file's mode, owner,
// group and ctime and the process's credentials stay as they were, and for no more access than
// was allowed.
#include "lib/access_grant.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace tern {
namespace {

struct stat StatOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st;
}

class AccessGrantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fd = open(path_.c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
  }

  test::TempDir dir_;
  std::string path_ = dir_.File("f");
};

TEST_F(AccessGrantTest, NothingIsGrantedByDefault) {
  AccessGrant none;
  EXPECT_FALSE(none.Covers(StatOf(path_), R_OK));
}

TEST_F(AccessGrantTest, AGrantCoversWhatWasAllowedAndNoMore) {
  struct stat st = StatOf(path_);
  AccessGrant grant = AccessGrant::Of(st, R_OK);
  EXPECT_TRUE(grant.Covers(st, R_OK));
  EXPECT_FALSE(grant.Covers(st, W_OK));
  EXPECT_FALSE(grant.Covers(st, R_OK | W_OK));
  grant.Add(st, W_OK);
  EXPECT_TRUE(grant.Covers(st, R_OK | W_OK));
}

TEST_F(AccessGrantTest, AChangeOfModeOwnerOrCtimeVoidsIt) {
  struct stat st = StatOf(path_);
  AccessGrant grant = AccessGrant::Of(st, R_OK | W_OK);
  struct stat changed = st;
  changed.st_mode = S_IFREG | 0444;
  EXPECT_FALSE(grant.Covers(changed, W_OK)) << "chmod";
  changed = st;
  changed.st_uid = st.st_uid + 1;
  EXPECT_FALSE(grant.Covers(changed, R_OK)) << "chown";
  changed = st;
  changed.st_gid = st.st_gid + 1;
  EXPECT_FALSE(grant.Covers(changed, R_OK)) << "chgrp";
  changed = st;
  changed.st_ctim.tv_nsec = (st.st_ctim.tv_nsec + 1) % 1000000000;
  EXPECT_FALSE(grant.Covers(changed, R_OK)) << "an ACL or attribute change (ctime only)";
  // A real chmod, back to the same mode: the ctime moved on.
  ASSERT_EQ(chmod(path_.c_str(), 0600), 0);
  ASSERT_EQ(chmod(path_.c_str(), st.st_mode & 07777), 0);
  struct stat now = StatOf(path_);
  if (now.st_ctim.tv_sec != st.st_ctim.tv_sec || now.st_ctim.tv_nsec != st.st_ctim.tv_nsec) {
    EXPECT_FALSE(grant.Covers(now, R_OK)) << "chmod and back";
  }
  // Add after a change starts over with what was allowed now.
  grant.Add(now, R_OK);
  EXPECT_TRUE(grant.Covers(now, R_OK));
  EXPECT_FALSE(grant.Covers(now, W_OK));
}

TEST_F(AccessGrantTest, ACredentialChangeVoidsEveryGrant) {
  struct stat st = StatOf(path_);
  AccessGrant a = AccessGrant::Of(st, R_OK);
  AccessGrant b = AccessGrant::Of(st, R_OK | W_OK);
  AccessGrant::NoteCredentialsChanged();
  EXPECT_FALSE(a.Covers(st, R_OK));
  EXPECT_FALSE(b.Covers(st, R_OK));
  b.Add(st, W_OK);
  EXPECT_TRUE(b.Covers(st, W_OK));
  EXPECT_FALSE(b.Covers(st, R_OK)) << "what was allowed before the change is not carried over";
}

}  // namespace
}  // namespace tern
