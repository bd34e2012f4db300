// The races of the shared-state orphan sweep (lib/shared_state_sweep.cc), each forced open with a
// trace-build hook (label crash):
//  - a first opener publishes a fresh object over the stale one after the sweeper locked the stale
//    one: the sweep must leave the fresh object published;
//  - an opener opened the object, its last mapper closed, and a sweep removed it before the opener
//    locked it: the opener must notice and build a fresh one rather than use an unlinked object.
// Either mistake leaves an open file whose shared state has no name, so the next process cannot
// attach to it (or builds a second one): the tests check the name and a second process's open.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/open_lock.h"
#include "lib/shared_state.h"
#include "lib/test_hooks.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

constexpr uint64_t kBytes = 5 * kBlockSize;

bool Reads(File& f, uint64_t seed) {
  std::vector<uint8_t> got(kBytes);
  auto n = f.Pread(got.data(), got.size(), 0);
  return n.ok() && *n == kBytes && got == Pattern(seed, 0, kBytes);
}

std::string g_path;
std::unique_ptr<File> g_opened;
void OpenFileOnce() {
  if (g_opened != nullptr) return;
  auto f = File::Open(g_path, O_RDWR);
  if (f.ok()) g_opened = std::move(f).value();
}

TEST(StateSweepRaceTest, AnObjectPublishedWhileTheSweeperHeldTheStaleOneStaysPublished) {
  test::TempDir dir;
  g_path = dir.File("f");
  ASSERT_EQ(test::DieWithFileOpen(g_path, 1, kBytes), 0);
  ASSERT_EQ(test::PublishedObjects(dir), 1u);

  // Between the sweeper's lock on the stale object and its next step, a first open replaces it.
  test_hooks::after_state_sweep_lock.callback.store(OpenFileOnce);
  auto swept = SharedState::SweepOrphans(dir.shm_dir());
  test_hooks::after_state_sweep_lock.callback.store(nullptr);
  TERN_ASSERT_OK(swept);
  ASSERT_NE(g_opened, nullptr) << "the hook ran and the open succeeded";
  EXPECT_EQ(*swept, 0u) << "the stale object went with the publish; the fresh one is not an orphan";
  EXPECT_EQ(test::PublishedObjects(dir), 1u) << "the fresh object keeps its name";
  EXPECT_EQ(dir.ShmEntries().size(), 1u) << "nothing left set aside";
  EXPECT_EQ(test::ChildReads(g_path, 1, kBytes), 0) << "a second process attaches to it";
  EXPECT_TRUE(Reads(*g_opened, 1));
  test::CloseAndSettle(std::move(g_opened));
}

TEST(StateSweepRaceTest, AnOpenerWhoseObjectWasSweptBeforeItLockedItBuildsAFreshOne) {
  test::TempDir dir;
  std::string path = dir.File("f");
  // Stopped after it opened the object, before it locks it.
  auto child = test::HookedChild::Fork(test_hooks::after_state_attach_open, [&] {
    auto f = File::Open(path, O_RDWR);  // the parent holds it: this one attaches
    if (!f.ok()) return 2;
    if (!Reads(**f, 2)) return 3;
    auto reachable = (*f)->core().BlocksReachable();
    if (!reachable.ok() || (*f)->core().BlocksInUse() != *reachable) return 4;
    // Its object must be the published one, so that others can share it.
    if (test::PublishedObjects(dir) != 1) return 5;
    int code = test::ChildReads(path, 2, kBytes) == 0 ? 0 : 6;
    test::CloseAndSettle(std::move(*f));  // a last close: removes the name
    return code;
  });
  ASSERT_NE(child, nullptr);
  auto holder = File::Open(path, O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(holder);
  std::vector<uint8_t> data = Pattern(2, 0, kBytes);
  TERN_ASSERT_OK((*holder)->Pwrite(data.data(), data.size(), 0));
  TERN_ASSERT_OK((*holder)->Fsync());
  child->Go();
  ASSERT_TRUE(child->Stopped()) << "the child opened the object and waits";
  // The holder closes: the child holds the file open, so this is not a last close and the object
  // keeps its name, with no process mapping it; the sweep removes it.
  std::string object;
  for (const std::string& name : dir.ShmEntries()) {
    if (name.starts_with(SharedState::kPublishedPrefix)) object = dir.shm_dir() + "/" + name;
  }
  int object_fd = open(object.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(object_fd, 0) << object;
  holder->reset();
  // Not CloseAndSettle: the child holds the file open. Wait until the close (perhaps on the
  // background thread) has unmapped the object and dropped its lock.
  for (int ms = 0; ms < 10000; ++ms) {
    auto mapped = OpenedElsewhere(object_fd);
    ASSERT_TRUE(mapped.ok());
    if (!*mapped) break;
    usleep(1000);
  }
  close(object_fd);
  auto swept = SharedState::SweepOrphans(dir.shm_dir());
  TERN_ASSERT_OK(swept);
  EXPECT_EQ(*swept, 1u);
  child->Resume();
  EXPECT_EQ(child->Wait(), 0) << "2: open failed, 3: bytes, 4: free-block count, 5: no name, 6: a second "
                                 "process could not attach";
  EXPECT_EQ(test::PublishedObjects(dir), 0u) << "the child's last close removed its object";
}

}  // namespace
}  // namespace tern
