// A large file's shared state rests between opens (lib/file_core_rest.cc): the last close leaves
// the object published with a stamp of the log, the next first open adopts it when the file still
// matches the stamp, and rebuilds it when anything changed (a stale object is never trusted: the
// allocator would hand out live blocks); a sweep spares a resting object until it is old.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/meta_block_format.h"
#include "lib/shared_state.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

constexpr uint64_t kChunk = uint64_t{1} << 20;
constexpr uint64_t kFileBytes = 130 * kChunk;  // a backing past FileCore's 2^15-block threshold
// Rewritten a block per commit: 1,280 entries, more than compaction's minimum (the meta block's
// and the first log block's slots).
constexpr uint64_t kRewritten = 5 * kChunk;

// The published name of the file's shared-state object in the current TERN_SHM_DIR.
std::string ObjectName(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  pmem::MetaHeader h{};
  int fd = open(path.c_str(), O_RDONLY);
  EXPECT_EQ(pread(fd, &h, sizeof(h), 0), static_cast<ssize_t>(sizeof(h)));
  close(fd);
  return SharedState::NameFor(st, h.nonce);
}

// The inode of the object published under `name`, 0 when there is none: a first open that adopts
// the resting object keeps it, a rebuild publishes a new one.
ino_t ObjectInode(const std::string& name) {
  struct stat st;
  return stat(name.c_str(), &st) == 0 ? st.st_ino : 0;
}

void WritePattern(File& f, uint64_t seed, uint64_t offset, uint64_t bytes) {
  for (uint64_t at = offset; at < offset + bytes; at += kChunk) {
    std::vector<uint8_t> data = Pattern(seed, at, std::min(kChunk, offset + bytes - at));
    TERN_ASSERT_OK(f.Pwrite(data.data(), data.size(), at));
  }
}

// One commit per block: enough of them make a log worth compacting.
void WriteBlocks(File& f, uint64_t seed, uint64_t offset, uint64_t nblocks) {
  for (uint64_t b = 0; b < nblocks; ++b) {
    std::vector<uint8_t> data = Pattern(seed, offset + b * kBlockSize, kBlockSize);
    TERN_ASSERT_OK(f.Pwrite(data.data(), data.size(), offset + b * kBlockSize));
  }
}

void CompactToACheckpoint(File& f) {
  auto stats = f.core().Compact();
  TERN_ASSERT_OK(stats);
  ASSERT_GT(stats->checkpoint_position, 0u) << "no checkpoint written";
}

// Samples of the file: 4 KiB at 64 places spread over [offset, offset + bytes).
void ExpectPattern(File& f, uint64_t seed, uint64_t offset, uint64_t bytes) {
  for (uint64_t i = 0; i < 64; ++i) {
    uint64_t at = offset + (bytes - kBlockSize) / 63 * i / kBlockSize * kBlockSize;
    std::vector<uint8_t> got(kBlockSize);
    auto n = f.Pread(got.data(), got.size(), at);
    TERN_ASSERT_OK(n);
    ASSERT_EQ(*n, got.size());
    ASSERT_TRUE(got == Pattern(seed, at, got.size())) << "at " << at;
  }
}

// An adopted object holds no process's claims: every block in use that the log does not reach is
// the log's (a closed process's record arena), for GC's full sweep to free, as for a dead process.
void ExpectNoClaimsLeft(File& f) {
  auto unreferenced = f.core().UnreferencedInUse();
  TERN_ASSERT_OK(unreferenced);
  for (auto& [b, owner] : *unreferenced) EXPECT_EQ(owner, kLogOwner) << "block " << b;
}

// The rebuilt (or fully swept) object counts exactly what the log reaches.
void ExpectAllocatorMatchesTheLog(File& f) {
  auto reachable = f.core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_EQ(f.core().BlocksInUse(), *reachable);
  auto unreferenced = f.core().UnreferencedInUse();
  TERN_ASSERT_OK(unreferenced);
  for (auto& [b, owner] : *unreferenced) ADD_FAILURE() << "block " << b << " in use, owner " << owner;
}

void MakeLargeFile(const std::string& path, uint64_t seed) {
  auto f = File::Open(path, O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(f);
  WritePattern(**f, seed, 0, kFileBytes);
  TERN_ASSERT_OK((*f)->Fsync());
  test::CloseAndSettle(std::move(*f));
}

// A 130 MiB file, written and closed: its object rests under `name_` as inode `resting_`.
class SharedStateRestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("big");
    ASSERT_NO_FATAL_FAILURE(MakeLargeFile(path_, 1));
    name_ = ObjectName(path_);
    resting_ = ObjectInode(name_);
    ASSERT_NE(resting_, 0u) << "the last close left the object published";
  }

  test::TempDir dir_;
  std::string path_, name_;
  ino_t resting_ = 0;
};

TEST_F(SharedStateRestTest, TheLastCloseOfALargeFileLeavesItsObjectAtRestAndTheNextOpenAdoptsIt) {
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto f = File::Open(path_, O_RDWR);
    TERN_ASSERT_OK(f);
    EXPECT_EQ(ObjectInode(name_), resting_) << "adopted, not rebuilt";
    ExpectNoClaimsLeft(**f);
    ExpectPattern(**f, 1, kRewritten, kFileBytes - kRewritten);
    // Each round changes the file, in place and by compaction; the next round adopts what this
    // close leaves.
    WriteBlocks(**f, 10 + static_cast<uint64_t>(round), 0, kRewritten / kBlockSize);
    // Small appends: records in the process's arena and in-place tail claims, which a close must
    // leave to the log, not to its slot.
    for (int i = 0; i < 100; ++i) {
      std::vector<uint8_t> tail = Pattern(100 + static_cast<uint64_t>(i), 0, 100);
      TERN_ASSERT_OK((*f)->Append(tail.data(), tail.size()));
    }
    if (round == 1) {
      ASSERT_NO_FATAL_FAILURE(CompactToACheckpoint(**f));
    }
    ExpectPattern(**f, 10 + static_cast<uint64_t>(round), 0, kRewritten);
    TERN_ASSERT_OK((*f)->Fsync());
    test::CloseAndSettle(std::move(*f));
  }
  auto f = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(f);
  EXPECT_EQ(ObjectInode(name_), resting_);
  ExpectPattern(**f, 12, 0, kRewritten);
  ExpectPattern(**f, 1, kRewritten, kFileBytes - kRewritten);
  ExpectNoClaimsLeft(**f);
  // GC's full sweep frees what the closed processes' arenas left to the log; the close settles
  // the frees, and the object it leaves at rest counts exactly what the log reaches.
  WriteBlocks(**f, 13, 0, kRewritten / kBlockSize);  // a log worth compacting again
  ASSERT_NO_FATAL_FAILURE(CompactToACheckpoint(**f));
  test::CloseAndSettle(std::move(*f));
  auto again = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(again);
  EXPECT_EQ(ObjectInode(name_), resting_);
  ExpectAllocatorMatchesTheLog(**again);
  ExpectPattern(**again, 13, 0, kRewritten);
}

// Deleting the file takes its resting object along (the shim's unlink calls DropRestingState), but
// never while the file is open or has another name; a file deleted while open does not rest.
TEST_F(SharedStateRestTest, ADeletedFileTakesItsRestingObjectAlong) {
  std::string other = dir_.File("other-name");
  ASSERT_EQ(link(path_.c_str(), other.c_str()), 0);
  FileCore::DropRestingState(path_);
  EXPECT_EQ(ObjectInode(name_), resting_) << "the file lives on under its other name";
  ASSERT_EQ(unlink(other.c_str()), 0);
  {
    auto f = File::Open(path_, O_RDONLY);
    TERN_ASSERT_OK(f);
    FileCore::DropRestingState(path_);
    EXPECT_EQ(ObjectInode(name_), resting_) << "open: its object is in use";
    test::CloseAndSettle(std::move(*f));
  }
  ASSERT_NE(ObjectInode(name_), 0u);
  FileCore::DropRestingState(path_);
  EXPECT_EQ(ObjectInode(name_), 0u);
  EXPECT_TRUE(dir_.ShmEntries().empty());
  {
    auto f = File::Open(path_, O_RDWR);  // rebuilt, and the file intact
    TERN_ASSERT_OK(f);
    ExpectPattern(**f, 1, 0, kFileBytes);
    ASSERT_EQ(unlink(path_.c_str()), 0);  // deleted while open
    test::CloseAndSettle(std::move(*f));
  }
  EXPECT_TRUE(dir_.ShmEntries().empty()) << "a deleted file's last close leaves nothing at rest";
}

TEST(SharedStateSmallFileTest, LeavesNoObjectBehind) {
  test::TempDir dir;
  {
    auto f = File::Open(dir.File("small"), O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    WritePattern(**f, 1, 0, 4 * kChunk);
    test::CloseAndSettle(std::move(*f));
  }
  EXPECT_TRUE(dir.ShmEntries().empty());
}

// Each field of the stamp, made to disagree with the file as a change since the last close would.
TEST_F(SharedStateRestTest, AnObjectWhoseStampDisagreesWithTheFileIsRebuilt) {
  {
    auto f = File::Open(path_, O_RDWR);  // a checkpoint, then entries after it
    TERN_ASSERT_OK(f);
    WriteBlocks(**f, 2, 0, kRewritten / kBlockSize);
    ASSERT_NO_FATAL_FAILURE(CompactToACheckpoint(**f));
    WriteBlocks(**f, 2, 0, 4);
    test::CloseAndSettle(std::move(*f));
  }
  struct Change {
    const char* what;
    size_t offset;
    uint64_t delta;
  };
  const Change changes[] = {
      {"a commit at the stamped tail (the tail stamped one entry early)", offsetof(RestStamp, tail), ~uint64_t{0}},
      {"the entry before the tail rewritten (a repair)", offsetof(RestStamp, last_entry), 1},
      {"another checkpoint", offsetof(RestStamp, ckpt_generation), 1},
      {"the backing file grown", offsetof(RestStamp, backing_bytes), kBlockSize},
      {"not at rest (a process died with it)", offsetof(RestStamp, state), 1},
  };
  for (const Change& c : changes) {
    SCOPED_TRACE(c.what);
    ino_t before = ObjectInode(name_);
    ASSERT_NE(before, 0u);
    int fd = open(name_.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint64_t v = 0;
    off_t at = static_cast<off_t>(offsetof(SharedHeader, rest) + c.offset);
    ASSERT_EQ(pread(fd, &v, sizeof(v), at), 8);
    v += c.delta;
    ASSERT_EQ(pwrite(fd, &v, sizeof(v), at), 8);
    close(fd);
    auto f = File::Open(path_, O_RDWR);
    TERN_ASSERT_OK(f);
    EXPECT_NE(ObjectInode(name_), before) << "rebuilt and published anew";
    ExpectAllocatorMatchesTheLog(**f);
    ExpectPattern(**f, 2, 0, kRewritten);
    ExpectPattern(**f, 1, kRewritten, kFileBytes - kRewritten);
    test::CloseAndSettle(std::move(*f));
  }
}

// The real way an object goes stale: the file changes while it rests, through processes that use
// another shared-state directory. Adopting it would hand out blocks the new data lives in.
TEST_F(SharedStateRestTest, ChangesMadeUnderAnotherStateDirectoryAreNeverLost) {
  std::string other = dir_.File("other-shm");
  ASSERT_EQ(mkdir(other.c_str(), 0700), 0);
  setenv("TERN_SHM_DIR", other.c_str(), 1);
  {
    auto f = File::Open(path_, O_RDWR);
    TERN_ASSERT_OK(f);
    WritePattern(**f, 2, 0, 8 * kChunk);  // 2,048 blocks the resting_ object thinks are free
    TERN_ASSERT_OK((*f)->Fsync());
    test::CloseAndSettle(std::move(*f));
  }
  setenv("TERN_SHM_DIR", dir_.shm_dir().c_str(), 1);

  auto f = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(f);
  EXPECT_NE(ObjectInode(name_), resting_) << "the out-of-date object was replaced";
  ExpectAllocatorMatchesTheLog(**f);
  WritePattern(**f, 3, 64 * kChunk, 16 * kChunk);  // takes free blocks
  ExpectPattern(**f, 2, 0, 8 * kChunk);
  ExpectPattern(**f, 1, 8 * kChunk, 56 * kChunk);
  ExpectPattern(**f, 3, 64 * kChunk, 16 * kChunk);
  std::vector<uint8_t> all(8 * kChunk);
  auto n = (*f)->Pread(all.data(), all.size(), 0);
  TERN_ASSERT_OK(n);
  EXPECT_TRUE(all == Pattern(2, 0, all.size())) << "every block written under the other directory is intact";
}

TEST_F(SharedStateRestTest, TheSweepSparesAnObjectAtRestUntilItIsOld) {
  auto swept = SharedState::SweepOrphans(dir_.shm_dir());
  TERN_ASSERT_OK(swept);
  EXPECT_EQ(*swept, 0u);
  EXPECT_NE(ObjectInode(name_), 0u);

  struct timespec old[2];
  clock_gettime(CLOCK_REALTIME, &old[0]);
  old[0].tv_sec -= SharedState::kRestSeconds + 10;
  old[1] = old[0];
  ASSERT_EQ(utimensat(AT_FDCWD, name_.c_str(), old, 0), 0);
  swept = SharedState::SweepOrphans(dir_.shm_dir());
  TERN_ASSERT_OK(swept);
  EXPECT_EQ(*swept, 1u);
  EXPECT_EQ(ObjectInode(name_), 0u);

  auto f = File::Open(path_, O_RDWR);  // rebuilt from the log
  TERN_ASSERT_OK(f);
  ExpectPattern(**f, 1, 0, kFileBytes);
  ExpectAllocatorMatchesTheLog(**f);
}

}  // namespace
}  // namespace tern
