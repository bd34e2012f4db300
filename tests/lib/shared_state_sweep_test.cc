// SharedState::SweepOrphans (lib/shared_state_sweep.cc): a process killed as a file's last opener
// leaves the file's shared-state object published; the sweep removes such objects, and only them:
// an object some process maps stays, and a file whose object was swept opens again with its bytes.
// The races with openers and publishers are in tests/crash/state_sweep_race_test.cc (trace build).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/shared_state.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

constexpr uint32_t kBlocks = 5;
constexpr size_t kBytes = uint64_t{kBlocks} * kBlockSize;


void ExpectContents(File& f, uint64_t seed) {
  std::vector<uint8_t> got(kBytes);
  auto n = f.Pread(got.data(), got.size(), 0);
  TERN_ASSERT_OK(n);
  EXPECT_EQ(*n, got.size());
  EXPECT_TRUE(got == Pattern(seed, 0, got.size()));
}

TEST(SharedStateSweepTest, TheObjectOfAKilledLastOpenerIsRemovedAndTheFileOpensAgain) {
  test::TempDir dir;
  ASSERT_EQ(test::DieWithFileOpen(dir.File("a"), 1, kBytes), 0);
  ASSERT_EQ(test::DieWithFileOpen(dir.File("b"), 2, kBytes), 0);
  ASSERT_EQ(test::PublishedObjects(dir), 2u) << "the dead processes' objects stay published";

  auto swept = SharedState::SweepOrphans(dir.shm_dir());
  TERN_ASSERT_OK(swept);
  EXPECT_EQ(*swept, 2u);
  EXPECT_TRUE(dir.ShmEntries().empty()) << "nothing else left behind, no name set aside";

  auto a = File::Open(dir.File("a"), O_RDWR);
  TERN_ASSERT_OK(a);
  ExpectContents(**a, 1);
  auto reachable = (*a)->core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_EQ((*a)->core().BlocksInUse(), *reachable) << "the rebuilt object counts what the log reaches";
}

TEST(SharedStateSweepTest, AnObjectThatSomeProcessMapsStays) {
  test::TempDir dir;
  ASSERT_EQ(test::DieWithFileOpen(dir.File("a"), 3, kBytes), 0);
  auto a = File::Open(dir.File("a"), O_RDWR);  // replaces the dead opener's object with its own
  TERN_ASSERT_OK(a);
  ASSERT_EQ(test::PublishedObjects(dir), 1u);

  auto swept = SharedState::SweepOrphans(dir.shm_dir());
  TERN_ASSERT_OK(swept);
  EXPECT_EQ(*swept, 0u);
  EXPECT_EQ(test::PublishedObjects(dir), 1u);
  EXPECT_EQ(test::ChildReads(dir.File("a"), 3, kBytes), 0) << "a second process still attaches to it";
  std::vector<uint8_t> data = Pattern(4, 0, kBytes);
  TERN_ASSERT_OK((*a)->Pwrite(data.data(), data.size(), 0));
  ExpectContents(**a, 4);
  test::CloseAndSettle(std::move(*a));
  EXPECT_EQ(test::PublishedObjects(dir), 0u) << "the last close removes it as before";
}

TEST(SharedStateSweepTest, NamesLeftHalfWayAreRemovedAndForeignFilesStay) {
  test::TempDir dir;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // A sweeper killed between setting an object aside and unlinking it; a publisher killed
    // between linking its temporary name and renaming it.
    struct stat like{};
    like.st_mode = S_IFREG | 0600;
    like.st_uid = geteuid();
    like.st_gid = getegid();
    bool ok = true;
    for (const char* name : {"/.tern-swept-state.1.0", "/.tern.1.2.0000000000000003.tmp.4.5"}) {
      auto state = SharedState::CreateUnpublished(like, 64);
      ok = ok && state.ok() && (*state)->Publish(dir.shm_dir() + name).ok();
      if (state.ok()) (void)state->release();  // mapped and locked until this process dies
    }
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Not an object of the right size: somebody else's file that happens to have such a name.
  std::string foreign = dir.shm_dir() + "/.tern.not-ours";
  int fd = open(foreign.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "x", 1), 1);
  close(fd);
  ASSERT_EQ(dir.ShmEntries().size(), 3u);

  auto swept = SharedState::SweepOrphans(dir.shm_dir());
  TERN_ASSERT_OK(swept);
  EXPECT_EQ(*swept, 2u);
  std::vector<std::string> left = dir.ShmEntries();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0], ".tern.not-ours");
  unlink(foreign.c_str());
}

TEST(SharedStateSweepTest, SweepIfDueSweepsAtMostOncePerInterval) {
  test::TempDir dir;
  ASSERT_EQ(test::DieWithFileOpen(dir.File("a"), 5, kBytes), 0);
  SharedState::SweepOrphansIfDue(dir.shm_dir(), 3600);
  EXPECT_EQ(test::PublishedObjects(dir), 0u) << "the first sweep in a directory is due";
  ASSERT_EQ(test::DieWithFileOpen(dir.File("b"), 6, kBytes), 0);
  SharedState::SweepOrphansIfDue(dir.shm_dir(), 3600);
  EXPECT_EQ(test::PublishedObjects(dir), 1u) << "swept a moment ago: not due";
  SharedState::SweepOrphansIfDue(dir.shm_dir(), 0);
  EXPECT_EQ(test::PublishedObjects(dir), 0u);
  EXPECT_TRUE(dir.ShmEntries().empty());
  std::string marker = dir.shm_dir() + "/" + SharedState::kSweepMarkerPrefix + std::to_string(geteuid());
  EXPECT_EQ(access(marker.c_str(), F_OK), 0) << "one marker per user says when the last sweep ran";
}

}  // namespace
}  // namespace tern
