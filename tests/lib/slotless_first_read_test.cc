// Pool's reading without joining (lib/pool.h, EnableSlotlessFirstReads): a first read-only open of
// a file that is open nowhere else and that this process has not kept reads it slotless — no
// shared state published, nothing locked that keeps a writer from being the file's first opener —
// and still sees every write that finished before a read began, in this process or another. A
// second read-only open of it (after the first closed) joins as before, as do an open for writing
// and a first read of a file open elsewhere; a mapping pins blocks through an attached open
// (AttachedFor). Private state objects are reused.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "lib/backing_cache.h"
#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/pool.h"
#include "lib/shared_state.h"
#include "lib/shared_state_spares.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

class SlotlessFirstReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BackingCache::Default().Enable(dir_.File(".spares"), 022);
    SharedStateSpares::Default().Enable();
    Pool::Default().EndAllLingering();
    Pool::Default().EnableLinger(std::chrono::hours(1));
    Pool::Default().EnableSlotlessFirstReads();
  }
  void TearDown() override {
    Pool::Default().EndAllLingering();
    SharedStateSpares::Default().DropAll();
    BackingCache::Default().DropSpares();
  }

  // Writes `bytes` of pattern `seed` at `offset` of `name` in a child process, so that this
  // process keeps nothing of the file (its Backing and table would make the next open a reopen).
  void WriteInChild(const std::string& name, uint64_t seed, uint64_t offset, size_t bytes) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto f = File::Open(dir_.File(name), O_RDWR | O_CREAT, 0644);
      std::vector<uint8_t> data = Pattern(seed, offset, bytes);
      bool ok = f.ok() && (*f)->Pwrite(data.data(), data.size(), offset).ok() && (*f)->Fsync().ok();
      if (f.ok()) f->reset();  // closed: its shared state unpublished
      _exit(ok ? 0 : 1);
    }
    ASSERT_EQ(test::WaitExitStatus(pid), 0);
  }

  // The file's bytes as `f` reads them now (empty on an error, which no expected content is).
  static std::vector<uint8_t> ReadAll(File& f) {
    auto got = test::ReadAll(f);
    EXPECT_TRUE(got.ok());
    return got.ok() ? *got : std::vector<uint8_t>{};
  }

  test::TempDir dir_;
};

TEST_F(SlotlessFirstReadTest, AFirstReadJoinsNothingAndASecondJoins) {
  WriteInChild("f", 1, 0, 20000);
  auto first = File::Open(dir_.File("f"), O_RDONLY);
  TERN_ASSERT_OK(first);
  EXPECT_FALSE((*first)->core().attached()) << "a first read-only open reads slotless";
  EXPECT_TRUE(ReadAll(**first) == Pattern(1, 0, 20000));
  EXPECT_EQ(test::PublishedObjects(dir_), 0u) << "no shared state published for a slotless reader";
  EXPECT_FALSE(test::OpenSomewhere(dir_.File("f"))) << "a writer coming now is the file's first opener";
  {
    auto meanwhile = File::Open(dir_.File("f"), O_RDONLY);
    TERN_ASSERT_OK(meanwhile);
    EXPECT_EQ(&(*meanwhile)->core(), &(*first)->core()) << "a second open while it is open shares it";
  }
  first->reset();
  auto again = File::Open(dir_.File("f"), O_RDONLY);
  TERN_ASSERT_OK(again);
  EXPECT_TRUE((*again)->core().attached()) << "read lately: the second read-only open joins";
  EXPECT_TRUE(ReadAll(**again) == Pattern(1, 0, 20000));
  EXPECT_EQ(test::PublishedObjects(dir_), 1u);
}

TEST_F(SlotlessFirstReadTest, AFileOpenElsewhereIsReadAttached) {
  WriteInChild("f", 4, 0, 9000);
  // Another process keeps the file open (a daemon and its log): a reader joins, so that the
  // other's compactions can free what they retire while it reads.
  int opened[2], release[2];
  ASSERT_EQ(pipe(opened), 0);
  ASSERT_EQ(pipe(release), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto f = File::Open(dir_.File("f"), O_RDWR);
    char c = f.ok() ? 'y' : 'n';
    (void)!write(opened[1], &c, 1);
    (void)!read(release[0], &c, 1);
    if (f.ok()) f->reset();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(opened[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  {
    auto reader = File::Open(dir_.File("f"), O_RDONLY);
    TERN_ASSERT_OK(reader);
    EXPECT_TRUE((*reader)->core().attached()) << "open elsewhere: read attached";
    EXPECT_TRUE(ReadAll(**reader) == Pattern(4, 0, 9000));
  }
  ASSERT_EQ(write(release[1], "x", 1), 1);
  EXPECT_EQ(test::WaitExitStatus(pid), 0);
  for (int fd : {opened[0], opened[1], release[0], release[1]}) close(fd);
}

TEST_F(SlotlessFirstReadTest, ReadsSeeWritesThatFinishedBeforeThem) {
  WriteInChild("f", 1, 0, 20000);
  auto reader = File::Open(dir_.File("f"), O_RDONLY);
  TERN_ASSERT_OK(reader);
  ASSERT_FALSE((*reader)->core().attached());
  // Another process writes (and grows the file) while the reader has it open.
  WriteInChild("f", 2, 16384, 50000);
  std::vector<uint8_t> want = Pattern(1, 0, 16384);
  std::vector<uint8_t> tail = Pattern(2, 16384, 50000);
  want.insert(want.end(), tail.begin(), tail.end());
  EXPECT_TRUE(ReadAll(**reader) == want);
  // A writer here gets its own engine, attached; the reader sees its writes, and its compactions
  // leave the reader's view intact.
  auto writer = File::Open(dir_.File("f"), O_RDWR);
  TERN_ASSERT_OK(writer);
  EXPECT_TRUE((*writer)->core().attached());
  EXPECT_NE(&(*writer)->core(), &(*reader)->core());
  // Each round's commits fill log blocks past the meta block's slots, which its compaction retires.
  for (uint64_t round = 0; round < 5; ++round) {
    for (uint64_t i = 0; i < 1200; ++i) {
      uint64_t b = (i * 7 + round) % 16;
      std::vector<uint8_t> data = Pattern(10 + round * 1200 + i, b * 4096, 4096);
      TERN_ASSERT_OK((*writer)->Pwrite(data.data(), data.size(), b * 4096));
      std::copy(data.begin(), data.end(), want.begin() + static_cast<ptrdiff_t>(b * 4096));
    }
    auto compacted = (*writer)->core().Compact();
    TERN_ASSERT_OK(compacted);
    EXPECT_FALSE(compacted->drained) << "no log block is freed under a slotless reader";
    EXPECT_TRUE(ReadAll(**reader) == want) << "round " << round;
  }
  reader->reset();
  auto compacted = (*writer)->core().Compact();
  TERN_ASSERT_OK(compacted);
  EXPECT_TRUE(compacted->drained) << "the reader gone, what was retired is freed";
  EXPECT_GT(compacted->blocks_freed, 0u);
  EXPECT_TRUE(ReadAll(**writer) == want);
}

TEST_F(SlotlessFirstReadTest, AMappingPinsThroughAnAttachedOpen) {
  WriteInChild("f", 3, 0, 8 * 4096);
  auto reader = File::Open(dir_.File("f"), O_RDONLY);
  TERN_ASSERT_OK(reader);
  FileCore& slotless = (*reader)->core();
  ASSERT_FALSE(slotless.attached());
  EXPECT_FALSE(slotless.PinBlocks(0, 8).ok()) << "a slotless engine has no slot to pin with";
  auto attached = Pool::Default().AttachedFor(slotless);
  TERN_ASSERT_OK(attached);
  EXPECT_TRUE((*attached)->attached());
  EXPECT_EQ((*attached)->ino(), slotless.ino());
  auto pinned = (*attached)->PinBlocks(0, 8);
  TERN_ASSERT_OK(pinned);
  EXPECT_EQ(pinned->blocks.size(), 8u);
  (*attached)->UnpinBlocks(pinned->blocks);
  auto same = Pool::Default().AttachedFor(slotless);
  TERN_ASSERT_OK(same);
  EXPECT_EQ(same->get(), attached->get()) << "registered: later asks (and opens) find it";
  auto opened = File::Open(dir_.File("f"), O_RDONLY);
  TERN_ASSERT_OK(opened);
  EXPECT_EQ(&(*opened)->core(), attached->get());
}

TEST_F(SlotlessFirstReadTest, PrivateStateObjectsAreReused) {
  auto first = SharedState::CreatePrivate(100);
  TERN_ASSERT_OK(first);
  SharedHeader* header = (*first)->header();
  header->counters.commits.store(7);
  first->reset();
  auto second = SharedState::CreatePrivate(200);
  TERN_ASSERT_OK(second);
  EXPECT_EQ((*second)->header(), header) << "the object went back to the pool and came out again";
  EXPECT_EQ((*second)->header()->counters.commits.load(), 0u) << "zeroed for its next reader";
  EXPECT_EQ((*second)->header()->num_blocks.load(), 200u);
}

}  // namespace
}  // namespace tern
