// Backing's reservations: a file opened to be read starts in a small one (its blocks move once if it
// grows out of it, and what was mapped before stays readable where it was); any other starts in a
// large one, where growth never moves a block.
#include "lib/backing.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/layout_constants.h"
#include "tests/test_util.h"

namespace tern::test {
namespace {

constexpr uint64_t kSmallBlocks = kBlocksPerGrowStep;        // 2 MiB
constexpr uint64_t kGrownBlocks = 40 * kBlocksPerGrowStep;   // 80 MiB: past a 64 MiB reservation

class BackingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = open(dir_.File("backing").c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd_, 0);
    ASSERT_EQ(fallocate(fd_, 0, 0, static_cast<off_t>(kSmallBlocks * kBlockSize)), 0);
    PutPattern(1, 11);
  }
  void PutPattern(uint64_t block, uint64_t seed) {
    std::vector<uint8_t> data = Pattern(seed, block * kBlockSize, kBlockSize);
    ASSERT_EQ(pwrite(fd_, data.data(), data.size(), static_cast<off_t>(block * kBlockSize)),
              static_cast<ssize_t>(data.size()));
  }
  static bool HasPattern(const uint8_t* p, uint64_t block, uint64_t seed) {
    std::vector<uint8_t> want = Pattern(seed, block * kBlockSize, kBlockSize);
    return p != nullptr && memcmp(p, want.data(), want.size()) == 0;
  }
  void Grow() {
    ASSERT_EQ(fallocate(fd_, 0, 0, static_cast<off_t>(kGrownBlocks * kBlockSize)), 0);
    PutPattern(kGrownBlocks - 1, 12);
  }

  void TearDown() override {
    if (fd_ >= 0) close(fd_);
  }

  TempDir dir_;
  int fd_ = -1;
};

TEST_F(BackingTest, AFileOpenedToBeReadMovesOnceWhenItGrowsPastItsSmallReservation) {
  Backing b(dup(fd_), true, 0, 0);
  b.ExpectReadsOnly();
  TERN_ASSERT_OK(b.EnsureMapped(kSmallBlocks));
  const uint8_t* before = b.BlockAddress(LogicalBlock(1));
  ASSERT_TRUE(HasPattern(before, 1, 11));
  Grow();
  TERN_ASSERT_OK(b.EnsureMapped(kGrownBlocks));
  const uint8_t* after = b.BlockAddress(LogicalBlock(1));
  EXPECT_NE(after, before) << "80 MiB fit in the reservation of a file opened to be read";
  EXPECT_TRUE(HasPattern(after, 1, 11));
  EXPECT_TRUE(HasPattern(before, 1, 11)) << "the old address no longer shows the block";
  EXPECT_TRUE(HasPattern(b.BlockAddress(LogicalBlock(static_cast<uint32_t>(kGrownBlocks - 1))), kGrownBlocks - 1, 12));
}

TEST_F(BackingTest, AnyOtherFileGrowsInPlace) {
  Backing b(dup(fd_), true, 0, 0);
  TERN_ASSERT_OK(b.EnsureMapped(kSmallBlocks));
  const uint8_t* before = b.BlockAddress(LogicalBlock(1));
  ASSERT_TRUE(HasPattern(before, 1, 11));
  Grow();
  TERN_ASSERT_OK(b.EnsureMapped(kGrownBlocks));
  EXPECT_EQ(b.BlockAddress(LogicalBlock(1)), before) << "a block moved while the file grew";
  EXPECT_TRUE(HasPattern(b.BlockAddress(LogicalBlock(static_cast<uint32_t>(kGrownBlocks - 1))), kGrownBlocks - 1, 12));
}

// BackingCache parks mappings: the descriptor goes, the mapping stays readable, and no lock of
// the descriptor outlives it (the mapping keeps its open file description alive).
TEST_F(BackingTest, ClosingTheDescriptorKeepsTheMappingAndDropsItsLocks) {
  Backing b(dup(fd_), true, 0, 0);
  TERN_ASSERT_OK(b.EnsureMapped(kSmallBlocks));
  struct flock byte {};
  byte.l_type = F_WRLCK;
  byte.l_whence = SEEK_SET;
  byte.l_start = 1000;
  byte.l_len = 1;
  ASSERT_EQ(fcntl(b.fd(), F_OFD_SETLK, &byte), 0);
  int other = open(dir_.File("backing").c_str(), O_RDWR);
  ASSERT_GE(other, 0);
  ASSERT_NE(fcntl(other, F_OFD_SETLK, &byte), 0) << "the backing's lock should hold before";
  int before = b.fd();
  b.CloseDescriptor();
  EXPECT_EQ(b.fd(), -1);
  EXPECT_EQ(fcntl(before, F_GETFD), -1) << "the descriptor should be closed";
  EXPECT_EQ(fcntl(other, F_OFD_SETLK, &byte), 0) << "a lock of the closed descriptor outlived it";
  EXPECT_TRUE(HasPattern(b.BlockAddress(LogicalBlock(1)), 1, 11));
  close(other);
}

// Parked Backings are unmapped together: every reservation handed over goes, adjacent ones in one
// munmap, and nothing else does.
TEST_F(BackingTest, ReservationsTakenTogetherAreReleasedAndNothingElse) {
  auto mapped = [](const uint8_t* p) {
    unsigned char resident;
    return mincore(const_cast<uint8_t*>(p), 4096, &resident) == 0;  // ENOMEM: not mapped
  };
  std::vector<std::unique_ptr<Backing>> taken;
  std::vector<const uint8_t*> addresses;
  for (int i = 0; i < 6; ++i) {
    taken.push_back(std::make_unique<Backing>(dup(fd_), true, 0, 0));
    TERN_ASSERT_OK(taken.back()->EnsureMapped(kSmallBlocks));
    addresses.push_back(taken.back()->BlockAddress(LogicalBlock(1)));
    ASSERT_TRUE(HasPattern(addresses.back(), 1, 11));
  }
  Backing kept(dup(fd_), true, 0, 0);
  TERN_ASSERT_OK(kept.EnsureMapped(kSmallBlocks));
  std::vector<pmem::AddressRange> ranges;
  for (auto& b : taken) {
    b->CloseDescriptor();
    b->TakeReservations(&ranges);
  }
  ASSERT_EQ(ranges.size(), taken.size());
  pmem::ReleaseAddressSpaces(ranges);
  for (const uint8_t* p : addresses) EXPECT_FALSE(mapped(p)) << "a released reservation is still mapped";
  EXPECT_TRUE(HasPattern(kept.BlockAddress(LogicalBlock(1)), 1, 11));
  taken.clear();  // nothing left for the destructors to unmap
  EXPECT_TRUE(HasPattern(kept.BlockAddress(LogicalBlock(1)), 1, 11));
}

// Recycled address space: a reset reservation stays reserved with nothing of the old file in it,
// and a Backing that adopts it maps its own file there.
TEST_F(BackingTest, AResetReservationIsAdoptedByTheNextBacking) {
  auto old = std::make_unique<Backing>(dup(fd_), true, 0, 0);
  TERN_ASSERT_OK(old->EnsureMapped(kSmallBlocks));
  uint8_t* base = old->BlockAddress(LogicalBlock(0));
  ASSERT_TRUE(HasPattern(base + kBlockSize, 1, 11));
  std::vector<pmem::AddressRange> ranges;
  old->CloseDescriptor();
  old->TakeReservations(&ranges);
  old.reset();
  ASSERT_EQ(ranges.size(), 1u);
  ASSERT_EQ(ranges[0].base, base);
  ASSERT_TRUE(pmem::ResetAddressRange(base, kSmallBlocks * kBlockSize));
  unsigned char resident = 1;
  EXPECT_EQ(mincore(base + kBlockSize, 4096, &resident), 0) << "the reservation should still be there";
  EXPECT_EQ(resident & 1, 0) << "the old file's page should be gone";

  int other = open(dir_.File("other").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(other, 0);
  ASSERT_EQ(fallocate(other, 0, 0, static_cast<off_t>(kSmallBlocks * kBlockSize)), 0);
  std::vector<uint8_t> data = Pattern(21, kBlockSize, kBlockSize);
  ASSERT_EQ(pwrite(other, data.data(), data.size(), kBlockSize), static_cast<ssize_t>(data.size()));
  Backing adopter(other, true, 0, 0);
  adopter.AdoptReservation(ranges[0]);
  TERN_ASSERT_OK(adopter.EnsureMapped(kSmallBlocks));
  EXPECT_EQ(adopter.BlockAddress(LogicalBlock(0)), base);
  EXPECT_TRUE(HasPattern(adopter.BlockAddress(LogicalBlock(1)), 1, 21));
}

TEST(BackingFileTest, AFileOpenedToBeReadThenWrittenPastItsReservationReadsBack) {
  // The engine's path through the move: a read-only open maps the file first (small reservation),
  // a read-write open of the same file shares that mapping and grows it to 80 MiB.
  TempDir dir;
  std::string path = dir.File("f");
  std::vector<uint8_t> model = Pattern(1, 0, 3 * kBlockSize);
  {
    auto f = File::Open(path, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    auto n = (*f)->Pwrite(model.data(), model.size(), 0);
    ASSERT_TRUE(n.ok() && *n == model.size());
  }
  auto reader = File::Open(path, O_RDONLY);
  TERN_ASSERT_OK(reader);
  auto writer = File::Open(path, O_RDWR);
  TERN_ASSERT_OK(writer);
  constexpr size_t kChunk = 1 << 20;
  for (uint64_t off = model.size(); off < kGrownBlocks * kBlockSize; off += kChunk) {
    std::vector<uint8_t> data = Pattern(2, off, kChunk);
    auto n = (*writer)->Pwrite(data.data(), data.size(), off);
    ASSERT_TRUE(n.ok() && *n == data.size()) << Describe(n.status());
    model.insert(model.end(), data.begin(), data.end());
  }
  auto content = ReadAll(**reader);
  TERN_ASSERT_OK(content);
  EXPECT_EQ(FirstDifference(*content, model), -1);
}

}  // namespace
}  // namespace tern::test
