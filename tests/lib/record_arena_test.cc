// The record-arena hand-over (lib/file_core_arena.cc): processes that each append a little and
// close share one arena block instead of taking one each. Two ways it is handed over: the closer
// publishes the room it left (when another process keeps the file's shared state alive), and the
// allocator's build publishes the room after the newest record the log references (when nobody
// had the file open). A compaction voids a published room: it may free the block.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "lib/file.h"
#include "lib/file_core.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace tern::test {
namespace {

class RecordArenaTest : public ::testing::Test {
 protected:
  // In a process of its own: opens the file, appends `line` (an unaligned size: a record), closes.
  bool AppendInChild(const std::string& line) {
    return InForkedChild([&] {
      auto f = File::Open(path_, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (!f.ok()) return false;
      auto n = (*f)->Append(line.data(), line.size());
      return n.ok();
    });
  }
  bool CompactInChild() {
    return InForkedChild([&] {
      auto f = File::Open(path_, O_RDWR);
      return f.ok() && (*f)->core().Compact(FileCore::GcMode::kFull).ok();
    });
  }
  // Blocks in use, and that the allocator counts exactly what the log reaches (no leak). From a
  // child: the test process opens no tern file, so that its forks carry no engine state.
  uint64_t InUseInChild() {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    bool ok = InForkedChild([&] {
      auto f = File::Open(path_, O_RDWR);
      if (!f.ok()) return false;
      auto reachable = (*f)->core().BlocksReachable();
      uint64_t used = (*f)->core().BlocksInUse();
      if (!reachable.ok() || *reachable != used) return false;
      return write(fds[1], &used, sizeof(used)) == static_cast<ssize_t>(sizeof(used));
    });
    uint64_t used = 0;
    EXPECT_TRUE(ok) << "the allocator does not count what the log reaches";
    EXPECT_EQ(read(fds[0], &used, sizeof(used)), static_cast<ssize_t>(sizeof(used)));
    close(fds[0]);
    close(fds[1]);
    return used;
  }
  // A process that holds the file open until killed: the shared state outlives every other close.
  pid_t StartHolder() {
    int ready[2];
    EXPECT_EQ(pipe(ready), 0);
    pid_t pid = ForkChild();
    if (pid == 0) {
      auto f = File::Open(path_, O_RDONLY);
      char c = f.ok() ? 1 : 0;
      (void)!write(ready[1], &c, 1);
      for (;;) pause();
    }
    char c = 0;
    EXPECT_EQ(read(ready[0], &c, 1), 1);
    EXPECT_EQ(c, 1) << "the holder could not open the file";
    close(ready[0]);
    close(ready[1]);
    return pid;
  }

  TempDir dir_;
  std::string path_ = dir_.File("log");
};

std::string Line(int i) { return "line " + std::to_string(i) + "\n"; }

std::string Content(const std::string& path) {
  auto f = File::Open(path, O_RDONLY);
  if (!f.ok()) return "(cannot open)";
  auto bytes = ReadAll(**f);
  return bytes.ok() ? std::string(bytes->begin(), bytes->end()) : "(cannot read)";
}

TEST_F(RecordArenaTest, ProcessesThatAppendOneLineEachShareAnArena) {
  std::string expected;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(AppendInChild(Line(i)));
    expected += Line(i);
  }
  // The meta block, the last data block and one arena: 50 one-run records are 2,000 bytes. (One
  // arena per process: 52 blocks.)
  EXPECT_EQ(InUseInChild(), 3u);
  EXPECT_EQ(Content(path_), expected);
}

TEST_F(RecordArenaTest, ClosersHandTheirRoomOverWhileTheFileStaysOpen) {
  ASSERT_TRUE(AppendInChild(Line(0)));
  pid_t holder = StartHolder();
  std::string expected = Line(0);
  for (int i = 1; i < 50; ++i) {
    ASSERT_TRUE(AppendInChild(Line(i)));
    expected += Line(i);
  }
  uint64_t before = InUseInChild();
  EXPECT_EQ(before, 3u);
  // A compaction voids the room handed over (it may free the block: here the log still references
  // it, so it stays in use), and the next record goes into a new arena.
  ASSERT_TRUE(CompactInChild());
  ASSERT_TRUE(AppendInChild(Line(50)));
  expected += Line(50);
  EXPECT_EQ(InUseInChild(), before + 1);
  // And that arena's room is handed over again.
  ASSERT_TRUE(AppendInChild(Line(51)));
  expected += Line(51);
  EXPECT_EQ(InUseInChild(), before + 1);
  KillAndReap(holder);
  EXPECT_EQ(Content(path_), expected);
}

}  // namespace
}  // namespace tern::test
