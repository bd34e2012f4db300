// The shared-state object (lib/shared_state.h) is a sparse 548 MiB file in TERN_SHM_DIR, a tmpfs:
// a file uses only the pages its blocks and its processes' slots need. Scans of the slot array stop
// at slots_high (a read of a page nobody backed would allocate it — 64 pages for the whole array —
// and, in a full directory, fault), and every page is allocated before its first touch, so a full
// directory is ENOSPC, never a SIGBUS (tests/shim/shim_state_test.cc runs that with a real tmpfs).
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/shared_state.h"
#include "tests/test_util.h"

namespace tern {
namespace {

// Bytes of the one published object in `dir`'s shared-state directory that hold pages.
uint64_t ObjectBytesInUse(const test::TempDir& dir) {
  std::vector<std::string> names = dir.ShmEntries();
  EXPECT_EQ(names.size(), 1u);
  struct stat st {};
  if (names.size() != 1 || stat((dir.shm_dir() + "/" + names[0]).c_str(), &st) != 0) return UINT64_MAX;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

TEST(SharedStatePagesTest, CompactionsAndStatTouchOnlyTheSlotsInUse) {
  test::TempDir dir;
  auto f = File::Open(dir.File("f"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(f);
  std::vector<uint8_t> block = test::Pattern(1, 0, kBlockSize);
  for (uint64_t b = 0; b < 3000; ++b) TERN_ASSERT_OK((*f)->Pwrite(block.data(), block.size(), b % 600 * kBlockSize));
  for (int round = 0; round < 3; ++round) {
    auto stats = (*f)->core().Compact();  // waits for the old epoch's operations: reads the slots
    TERN_ASSERT_OK(stats);
  }
  TERN_ASSERT_OK((*f)->core().ReclaimDeadSlots());
  EXPECT_EQ((*f)->core().AttachedProcesses().size(), 1u);
  // The header, one page of slots, one of op cells, one of bitmap, and the owner map of the
  // file's blocks (2 bytes each: two pages for up to 4,096 blocks).
  uint64_t blocks = (*f)->core().BlocksInUse();
  ASSERT_LE(blocks, 4096u);
  EXPECT_LE(ObjectBytesInUse(dir), 6 * kBlockSize);
}

}  // namespace
}  // namespace tern
