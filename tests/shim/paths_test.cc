// Unit tests of the shim's path classification (shim/paths.h).
#include "shim/paths.h"

#include <fcntl.h>
#include <stdlib.h>

#include <gtest/gtest.h>

namespace tern::shim {
namespace {

TEST(NormalizePath, FoldsDotsAndSlashes) {
  EXPECT_EQ(NormalizePath("/"), "/");
  EXPECT_EQ(NormalizePath("//a///b/"), "/a/b");
  EXPECT_EQ(NormalizePath("/a/./b/../c"), "/a/c");
  EXPECT_EQ(NormalizePath("/../a"), "/a");
  EXPECT_EQ(NormalizePath("/a/b/../../.."), "/");
}

class UnderRootTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("TERN_ROOT", "/dev/shm/tern-paths-test//root/", 1);
    setenv("TERN_EXCLUDE", "*/skip/*:*.tmp", 1);
    InitPaths();
  }
};

TEST_F(UnderRootTest, OnlyStrictlyBelowTheRoot) {
  EXPECT_EQ(Paths().root, "/dev/shm/tern-paths-test/root");
  EXPECT_TRUE(UnderRoot("/dev/shm/tern-paths-test/root/f"));
  EXPECT_TRUE(UnderRoot("/dev/shm/tern-paths-test/root/d/f"));
  EXPECT_FALSE(UnderRoot("/dev/shm/tern-paths-test/root"));
  EXPECT_FALSE(UnderRoot("/dev/shm/tern-paths-test/rootx/f"));
  EXPECT_FALSE(UnderRoot("/dev/shm/tern-paths-test/f"));
}

TEST_F(UnderRootTest, ExclusionsAndEngineObjects) {
  EXPECT_FALSE(UnderRoot("/dev/shm/tern-paths-test/root/skip/f"));
  EXPECT_FALSE(UnderRoot("/dev/shm/tern-paths-test/root/a.tmp"));
  EXPECT_FALSE(UnderRoot("/dev/shm/tern-paths-test/root/.tern.801.1234.00ff"));
  EXPECT_TRUE(UnderRoot("/dev/shm/tern-paths-test/root/tern.f"));
}

TEST(PlainByDefaultTest, SqliteWalIndexesAndSharedObjects) {
  EXPECT_TRUE(PlainByDefault("/r/app.db-shm"));
  EXPECT_TRUE(PlainByDefault("/r/d/x-shm"));
  EXPECT_FALSE(PlainByDefault("/r/-shm"));  // no database name before the suffix
  EXPECT_FALSE(PlainByDefault("/r/app.db-shm.bak"));
  EXPECT_FALSE(PlainByDefault("/r/app.db-wal"));
  EXPECT_FALSE(PlainByDefault("/r/shm"));
  EXPECT_TRUE(PlainByDefault("/r/build/libfoo.so"));
  EXPECT_TRUE(PlainByDefault("/r/libfoo.so.1"));
  EXPECT_TRUE(PlainByDefault("/r/libfoo.so.1.2.3"));
  EXPECT_TRUE(PlainByDefault("/r/ext.cpython-311-x86_64-linux-gnu.so"));
  EXPECT_FALSE(PlainByDefault("/r/.so"));
  EXPECT_FALSE(PlainByDefault("/r/libfoo.so."));
  EXPECT_FALSE(PlainByDefault("/r/also.sorted"));
  EXPECT_FALSE(PlainByDefault("/r/x.so/child"));
  EXPECT_FALSE(PlainByDefault("/r/libfoo.a"));
}

TEST_F(UnderRootTest, RelativePathsUseTheDirectory) {
  std::string abs;
  EXPECT_TRUE(AbsolutePath(AT_FDCWD, "/x/../dev/shm/tern-paths-test/root/./f", &abs));
  EXPECT_EQ(abs, "/dev/shm/tern-paths-test/root/f");
  ASSERT_EQ(chdir("/dev/shm"), 0);
  EXPECT_TRUE(TernCandidate(AT_FDCWD, "tern-paths-test/root/f", &abs));
  EXPECT_FALSE(TernCandidate(AT_FDCWD, "tern-paths-test/root/../f", &abs));
  int dir = open("/dev/shm", O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dir, 0);
  EXPECT_TRUE(TernCandidate(dir, "tern-paths-test/root/g", &abs));
  EXPECT_EQ(abs, "/dev/shm/tern-paths-test/root/g");
  close(dir);
}

}  // namespace
}  // namespace tern::shim
