// A process opening a file that another process has open attaches to its shared state and checks
// that the shared block count does not exceed the backing file (FileCore::OpenWith): a count past
// the file's end is damage (EUCLEAN). A writer that grows the file between the opener's two looks
// must not look like damage: growth runs fallocate before it publishes the count, so the opener
// reads the count first and the size after. Forced open with a trace-build hook (label crash);
// read the other way round, the open failed — the cause of a rare kill-soak failure (a respawned
// writer exiting with "shared state names 3072 blocks, the file has 10485760 bytes").
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/layout_constants.h"
#include "lib/test_hooks.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

constexpr uint64_t kFirstBytes = 4 * kBlockSize;
constexpr uint64_t kGrownBytes = 4 << 20;  // past the backing file's first 64 KiB: it grows

TEST(AttachGrowRaceTest, AFileGrowingWhileItIsAttachedToOpensAndReads) {
  test::TempDir dir;
  std::string path = dir.File("f");
  int up[2], down[2];
  ASSERT_EQ(pipe(up), 0);
  ASSERT_EQ(pipe(down), 0);
  // Forked before the parent opens the file, so that its open is its own (no inherited engine).
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    test::SetHandOverPipes(up[1], down[0]);
    char go;
    if (read(down[0], &go, 1) != 1) _exit(9);
    test_hooks::between_attach_size_looks.callback.store(test::HandOverToParentOnce);
    auto f = File::Open(path, O_RDWR);  // the parent holds it: this one attaches
    if (!f.ok()) _exit(2);
    std::vector<uint8_t> got(kBlockSize);
    auto n = (*f)->Pread(got.data(), got.size(), kGrownBytes - kBlockSize);
    if (!n.ok() || *n != kBlockSize || got != Pattern(2, kGrownBytes - kBlockSize, kBlockSize)) _exit(3);
    f->reset();  // (the parent holds it open: not a last close)
    _exit(0);
  }
  close(up[1]);
  close(down[0]);
  auto holder = File::Open(path, O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(holder);
  std::vector<uint8_t> first = Pattern(1, 0, kFirstBytes);
  TERN_ASSERT_OK((*holder)->Pwrite(first.data(), first.size(), 0));
  char c = 'g';
  ASSERT_EQ(write(down[1], &c, 1), 1);
  ASSERT_EQ(read(up[0], &c, 1), 1) << "the child attached and waits between its looks";
  // Grow the backing file (and publish the larger count) while the child is between its looks.
  std::vector<uint8_t> more = Pattern(2, kFirstBytes, kGrownBytes - kFirstBytes);
  TERN_ASSERT_OK((*holder)->Pwrite(more.data(), more.size(), kFirstBytes));
  TERN_ASSERT_OK((*holder)->Fsync());
  ASSERT_EQ(write(down[1], &c, 1), 1);
  EXPECT_EQ(test::WaitExitStatus(pid), 0) << "2: the open failed (the count past the file's end), 3: the bytes";
  close(up[0]);
  close(down[1]);
  test::CloseAndSettle(std::move(*holder));
}

}  // namespace
}  // namespace tern
