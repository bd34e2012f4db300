// A process opening a file that another process has open attaches to its shared state and checks
// that the shared block count does not exceed the backing file (FileCore::OpenWith): a count past
// the file's end is damage (EUCLEAN). A writer that grows the file between the opener's two looks
// must not look like damage: growth runs fallocate before it publishes the count, so the opener
// reads the count first and the size after. Forced open with a trace-build hook (label crash);
// read the other way round, the open failed — the cause of a rare kill-soak failure (a respawned
// writer exiting with "shared state names 3072 blocks, the file has 10485760 bytes").
#include <fcntl.h>
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
  auto child = test::HookedChild::Fork(test_hooks::between_attach_size_looks, [&] {
    auto f = File::Open(path, O_RDWR);  // the parent holds it: this one attaches
    if (!f.ok()) return 2;
    std::vector<uint8_t> got(kBlockSize);
    auto n = (*f)->Pread(got.data(), got.size(), kGrownBytes - kBlockSize);
    if (!n.ok() || *n != kBlockSize || got != Pattern(2, kGrownBytes - kBlockSize, kBlockSize)) return 3;
    f->reset();  // (the parent holds it open: not a last close)
    return 0;
  });
  ASSERT_NE(child, nullptr);
  auto holder = File::Open(path, O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(holder);
  std::vector<uint8_t> first = Pattern(1, 0, kFirstBytes);
  TERN_ASSERT_OK((*holder)->Pwrite(first.data(), first.size(), 0));
  child->Go();
  ASSERT_TRUE(child->Stopped()) << "the child attached and waits between its looks";
  // Grow the backing file (and publish the larger count) while the child is between its looks.
  std::vector<uint8_t> more = Pattern(2, kFirstBytes, kGrownBytes - kFirstBytes);
  TERN_ASSERT_OK((*holder)->Pwrite(more.data(), more.size(), kFirstBytes));
  TERN_ASSERT_OK((*holder)->Fsync());
  child->Resume();
  EXPECT_EQ(child->Wait(), 0) << "2: the open failed (the count past the file's end), 3: the bytes";
  test::CloseAndSettle(std::move(*holder));
}

}  // namespace
}  // namespace tern
