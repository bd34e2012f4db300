// SharedStateSpares (lib/shared_state_spares.h): the shared-state object of a file whose last open
// this process closed is kept and reused for the next file this process opens first. A reused
// object must start as clean as a fresh one (no block of the last file counted as used, no slot or
// counter left over), an object mapped when the process forked is never kept, and spares never
// outlive their process for long (DropAll; a dead keeper's are swept).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/shared_state_spares.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::CloseAndSettle;
using test::Pattern;

size_t SpareNames(const test::TempDir& dir) {
  size_t n = 0;
  for (const std::string& name : dir.ShmEntries()) n += name.starts_with(SharedStateSpares::kPrefix);
  return n;
}

void WriteBlocks(File& f, uint32_t blocks, uint64_t seed) {
  std::vector<uint8_t> data = Pattern(seed, 0, uint64_t{blocks} * kBlockSize);
  TERN_ASSERT_OK(f.Pwrite(data.data(), data.size(), 0));
  TERN_ASSERT_OK(f.Fsync());
}

void ExpectBlocks(File& f, uint32_t blocks, uint64_t seed) {
  std::vector<uint8_t> got(uint64_t{blocks} * kBlockSize);
  auto n = f.Pread(got.data(), got.size(), 0);
  TERN_ASSERT_OK(n);
  EXPECT_EQ(*n, got.size());
  EXPECT_TRUE(got == Pattern(seed, 0, got.size()));
}

// Used blocks as the shared bitmap counts them equal the blocks the log references.
void ExpectNoStrayUsedBlocks(File& f) {
  auto reachable = f.core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_EQ(f.core().BlocksInUse(), *reachable);
}

class SharedStateSparesTest : public ::testing::Test {
 protected:
  void SetUp() override { SharedStateSpares::Default().Enable(); }
  void TearDown() override { SharedStateSpares::Default().DropAll(); }
  SharedStateSpares::Counts counts() const { return SharedStateSpares::Default().counts(); }
};

TEST_F(SharedStateSparesTest, ANewFileReusesTheObjectOfAClosedOneAndStartsClean) {
  test::TempDir dir;
  SharedStateSpares::Counts before = counts();
  {
    auto a = File::Open(dir.File("a"), O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(a);
    WriteBlocks(**a, 300, 1);
    CloseAndSettle(std::move(*a));
  }
  EXPECT_EQ(counts().kept, before.kept + 1);
  EXPECT_EQ(counts().spares, 1u);
  EXPECT_EQ(SpareNames(dir), 1u) << "kept under a spare name, its own name gone";
  EXPECT_EQ(dir.ShmEntries().size(), 1u);
  {
    auto b = File::Open(dir.File("b"), O_RDWR | O_CREAT, 0600);
    TERN_ASSERT_OK(b);
    EXPECT_EQ(counts().reused, before.reused + 1);
    EXPECT_EQ(counts().spares, 0u);
    EXPECT_EQ(SpareNames(dir), 0u) << "published under b's name";
    // Nothing of a's 300 blocks is counted as used by b, and b's counters start at zero.
    ExpectNoStrayUsedBlocks(**b);
    EXPECT_EQ((*b)->core().Counters().commits, 0u);
    WriteBlocks(**b, 2, 2);
    ExpectNoStrayUsedBlocks(**b);
    EXPECT_EQ((*b)->core().Counters().commits, 1u);
    // A second opener attaches to the published object and sees the same.
    auto b2 = File::Open(dir.File("b"), O_RDONLY);
    TERN_ASSERT_OK(b2);
    ExpectBlocks(**b2, 2, 2);
    b2->reset();
    CloseAndSettle(std::move(*b));
  }
  // a again: rebuilt from its log into a reused object.
  auto a = File::Open(dir.File("a"), O_RDWR);
  TERN_ASSERT_OK(a);
  ExpectBlocks(**a, 300, 1);
  ExpectNoStrayUsedBlocks(**a);
  WriteBlocks(**a, 10, 3);  // allocation works in the reused object
  ExpectNoStrayUsedBlocks(**a);
}

TEST_F(SharedStateSparesTest, NotKeptWhileAnotherOpenerHasTheFile) {
  test::TempDir dir;
  auto a = File::Open(dir.File("a"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(a);
  WriteBlocks(**a, 4, 1);
  uint64_t kept = counts().kept;
  {
    auto again = File::Open(dir.File("a"), O_RDONLY);
    TERN_ASSERT_OK(again);
  }
  EXPECT_EQ(counts().kept, kept) << "not the last close";
  EXPECT_EQ(SpareNames(dir), 0u);
  ExpectBlocks(**a, 4, 1);
}

TEST_F(SharedStateSparesTest, AnObjectMappedAcrossAForkIsNotKept) {
  test::TempDir dir;
  auto a = File::Open(dir.File("a"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(a);
  WriteBlocks(**a, 4, 1);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);  // it could have gone on using the object
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  uint64_t kept = counts().kept;
  CloseAndSettle(std::move(*a));
  EXPECT_EQ(counts().kept, kept);
  EXPECT_TRUE(dir.ShmEntries().empty()) << "removed as before";
  // One mapped after the fork is kept again.
  {
    auto b = File::Open(dir.File("b"), O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(b);
    CloseAndSettle(std::move(*b));
  }
  EXPECT_EQ(counts().kept, kept + 1);
}

TEST_F(SharedStateSparesTest, DropAllRemovesTheSparesAndASweepOnlyTheDeadKeepers) {
  test::TempDir dir;
  {
    auto a = File::Open(dir.File("a"), O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(a);
    CloseAndSettle(std::move(*a));
  }
  ASSERT_EQ(SpareNames(dir), 1u);
  // A spare of a process that is gone: the name, with nobody holding its lock.
  std::string orphan = dir.shm_dir() + "/" + SharedStateSpares::kPrefix + "999999.0";
  int fd = open(orphan.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  auto swept = SharedStateSpares::SweepOrphans(dir.shm_dir());
  TERN_ASSERT_OK(swept);
  EXPECT_EQ(*swept, 1u) << "ours is locked, so it stays";
  EXPECT_EQ(SpareNames(dir), 1u);
  SharedStateSpares::Default().DropAll();
  EXPECT_EQ(SpareNames(dir), 0u);
  EXPECT_EQ(counts().spares, 0u);
}

}  // namespace
}  // namespace tern
