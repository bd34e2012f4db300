// The engine's log and space over a file's life, through its public API: commits spilling into log
// blocks, superseded blocks freed and reused, compaction of a fragmented mapping and opens from its
// checkpoint, the shared state's lifetime, counters — each checked against a model of the content.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "tests/lib/file_model_fixture.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

class FileLogTest : public test::FileModelTest {
 protected:
  // A file of `blocks` blocks with every other one overwritten (~`blocks` runs once compacted),
  // compacted and closed for good, so that the next open loads the checkpoint.
  void CreateFragmentedAndCompact(uint64_t blocks) {
    auto f = Create();
    ASSERT_NE(f, nullptr);
    Write(*f, 0, Pattern(1, 0, blocks * kBlockSize));
    std::vector<uint8_t> block = Pattern(2, 0, kBlockSize);
    for (uint64_t b = 0; b < blocks; b += 2) Write(*f, b * kBlockSize, block);
    TERN_ASSERT_OK(f->Fsync());
    auto stats = f->core().Compact();
    TERN_ASSERT_OK(stats);
    ASSERT_GT(stats->checkpoint_runs, blocks * 3 / 4);
    test::CloseAndSettle(std::move(f));
  }
};

TEST_F(FileLogTest, ManySmallWritesSpillIntoLogBlocks) {
  // 504 inline slots in the meta block, 510 per log block: 1500 commits need three log blocks.
  auto f = Create();
  ASSERT_NE(f, nullptr);
  for (uint64_t i = 0; i < 1500; ++i) {
    uint64_t offset = (i * 7919) % (300 * kBlockSize) + (i % 3);
    Write(*f, offset, Pattern(1000 + i, offset, 1 + i % 50));
  }
  ExpectModel(*f, "after 1500 writes");
  ReopenAndExpect(f, "reopen");
  for (uint64_t i = 0; i < 600; ++i) {
    auto at = f->Append(Pattern(5000 + i, 0, 5).data(), 5);
    TERN_ASSERT_OK(at);
    ModelWrite(*at, Pattern(5000 + i, 0, 5));
  }
  ReopenAndExpect(f, "reopen after appends");
}

TEST_F(FileLogTest, OverwritesAndTruncatesDoNotLeakBlocks) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  auto churn = [&](int rounds, bool sync_each_round) {
    for (int round = 0; round < rounds; ++round) {
      Write(*f, 0, Pattern(static_cast<uint64_t>(round), 0, 16 * kBlockSize));
      Write(*f, 100, Pattern(static_cast<uint64_t>(round) + 50, 0, 3 * kBlockSize));
      Truncate(*f, 9 * kBlockSize + 10);
      if (sync_each_round) {
        TERN_ASSERT_OK(f->Fsync());
      }
    }
  };
  churn(100, false);
  ExpectModel(*f, "after churn");
  // Superseded blocks are freed once the superseding commit is durable: settle them first.
  TERN_ASSERT_OK(f->Fsync());
  auto reachable = f->core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_EQ(f->core().BlocksInUse(), *reachable) << "blocks in use but unreachable from the log";
  ReopenAndExpect(f, "reopen");
  reachable = f->core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_EQ(f->core().BlocksInUse(), *reachable);
  // 10 data blocks are live. With every round made durable, what a round supersedes is free for
  // the next one: a long churn must not grow the file.
  struct stat before, after;
  ASSERT_EQ(stat(path_.c_str(), &before), 0);
  churn(300, true);
  ExpectModel(*f, "after synced churn");
  ASSERT_EQ(stat(path_.c_str(), &after), 0);
  EXPECT_LE(after.st_size, std::max<off_t>(before.st_size, 4 << 20)) << "the file grew under synced churn";
}

// A program whose writing thread never syncs and whose other thread does (a flusher): the
// writer's deferred frees are kept with its thread, and the syncing thread's fsync, having none
// of its own, frees them.
TEST_F(FileLogTest, AnFsyncOnASyncingThreadFreesWhatTheWriterDeferred) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  // Room for the writer's rounds: a writer that runs out of space frees every list itself.
  Write(*f, 0, Pattern(1, 0, 256 * kBlockSize));
  Truncate(*f, 16 * kBlockSize);
  TERN_ASSERT_OK(f->Fsync());
  std::thread writer([&] {
    for (int round = 0; round < 10; ++round) Write(*f, 0, Pattern(static_cast<uint64_t>(round) + 2, 0, 16 * kBlockSize));
  });
  writer.join();
  ExpectModel(*f, "after the writer");
  uint64_t used_before = f->core().BlocksInUse();
  TERN_ASSERT_OK(f->Fsync());
  auto reachable = f->core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_GE(used_before, *reachable + 16 * 9) << "the writer's superseded blocks were not pending";
  EXPECT_EQ(f->core().BlocksInUse(), *reachable) << "the syncing thread's fsync left the writer's frees pending";
}

// A checkpoint longer than one bitmap word of blocks (more than ~16,000 runs) needs a contiguous
// run that a single allocator word cannot give; compaction once looped, growing the file until
// memory ran out. Every other block of a 40,000-block file is overwritten: ~40,000 runs.
TEST_F(FileLogTest, CompactionOfAFragmentedMapKeepsTheFileBounded) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  constexpr uint64_t kBlocks = 40000;
  std::vector<uint8_t> chunk = Pattern(1, 0, 1000 * kBlockSize);
  for (uint64_t b = 0; b < kBlocks; b += 1000) {
    TERN_ASSERT_OK(f->Pwrite(chunk.data(), chunk.size(), b * kBlockSize));
  }
  std::vector<uint8_t> block = Pattern(2, 0, kBlockSize);
  for (uint64_t b = 0; b < kBlocks; b += 2) TERN_ASSERT_OK(f->Pwrite(block.data(), block.size(), b * kBlockSize));
  TERN_ASSERT_OK(f->Fsync());
  auto stats = f->core().Compact();
  TERN_ASSERT_OK(stats);
  EXPECT_GT(stats->checkpoint_runs, 30000u);
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_size), 2 * kBlocks * kBlockSize) << "compaction grew the file";
  std::vector<uint8_t> got(kBlockSize);
  for (uint64_t b : {uint64_t{0}, uint64_t{1}, kBlocks / 2, kBlocks - 1}) {
    TERN_ASSERT_OK(f->Pread(got.data(), got.size(), b * kBlockSize));
    const uint8_t* want = b % 2 == 0 ? block.data() : chunk.data() + (b % 1000) * kBlockSize;
    EXPECT_EQ(std::memcmp(got.data(), want, kBlockSize), 0) << "block " << b;
  }
  // Everything in use is reachable, but for the record arena's current block: its records now
  // live only in the checkpoint, and it stays with this process for the next record.
  auto unreferenced = f->core().UnreferencedInUse();
  TERN_ASSERT_OK(unreferenced);
  EXPECT_LE(unreferenced->size(), 1u) << "blocks leaked by the compaction";
}

TEST_F(FileLogTest, AFragmentedFileReopensFromALargeCheckpoint) {
  // ~40,000 runs: the checkpoint (~640 KiB) is read through the kernel into huge pages, and the
  // table (10 chunks) takes chunks from a huge-page slab. Both must give back every byte.
  ASSERT_NO_FATAL_FAILURE(CreateFragmentedAndCompact(40000));
  std::unique_ptr<File> f;
  {
    auto cold = File::Open(path_, O_RDWR);
    TERN_ASSERT_OK(cold);
    f = std::move(cold).value();
  }
  ExpectModel(*f, "cold reopen from the checkpoint");
  test::CloseAndSettle(std::move(f));
  // While another process holds the file open, an open here attaches to the shared state and
  // loads its own table from the checkpoint.
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto holder = File::Open(path_, O_RDONLY);
    char c = holder.ok() ? 1 : 0;
    if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1) _exit(2);
    _exit(holder.ok() ? 0 : 1);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 1) << "the holder process could not open the file";
  {
    auto attached = File::Open(path_, O_RDWR);
    TERN_ASSERT_OK(attached);
    ExpectModel(**attached, "attached open from the checkpoint");
  }
  ASSERT_EQ(write(go[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
  // A damaged byte in the middle of the checkpoint's runs is caught by the checksum on the copy.
  int fd = open(path_.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint64_t ck = 0;
  ASSERT_EQ(pread(fd, &ck, sizeof(ck), 32), 8) << "MetaHeader::checkpoint";
  ASSERT_NE(ck, 0u);
  off_t at = static_cast<off_t>(ck * kBlockSize + 300 * 1024);
  uint8_t byte = 0;
  ASSERT_EQ(pread(fd, &byte, 1, at), 1);
  byte ^= 0x10;
  ASSERT_EQ(pwrite(fd, &byte, 1, at), 1);
  close(fd);
  auto damaged = File::Open(path_, O_RDWR);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().err(), EUCLEAN) << test::Describe(damaged.status());
}

// An open loads a large checkpoint lazily: each chunk of its table (4,096 blocks) is copied in at
// first use, also by a forked child for itself. Meanwhile another process writes into chunks this one has not used, compacts (the
// checkpoint this process loaded from is retired and its blocks freed) and writes again; this
// process then reads everything right.
TEST_F(FileLogTest, ALazilyLoadedTableFollowsAnotherProcesssWritesAndCompaction) {
  ASSERT_NO_FATAL_FAILURE(CreateFragmentedAndCompact(24000));  // ~6 chunks, ~24,000 runs
  auto opened = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(opened);
  std::unique_ptr<File> f = std::move(opened).value();
  const uint32_t pending = f->core().PendingTableChunks();
  EXPECT_EQ(pending, 6u) << "the checkpoint was not loaded lazily";
  std::vector<uint8_t> got(kBlockSize);
  TERN_ASSERT_OK(f->Pread(got.data(), got.size(), 5 * kBlockSize));  // chunk 0 copied in
  EXPECT_EQ(f->core().PendingTableChunks(), pending - 1);
  // A child forked now inherits the pending chunks and copies them in for itself.
  pid_t reader = fork();
  ASSERT_GE(reader, 0);
  if (reader == 0) {
    auto all = test::ReadAll(*f);
    _exit(all.ok() && test::FirstDifference(*all, model_) == -1 && f->core().PendingTableChunks() == 0 ? 0 : 1);
  }
  EXPECT_EQ(test::WaitExitStatus(reader), 0) << "the forked child read wrong bytes";
  EXPECT_EQ(f->core().PendingTableChunks(), pending - 1) << "the child's reads copied chunks in here";

  // The other process's writes: into chunk 0 (copied in here), chunks 2 and 4 (pending here), a
  // compaction, then more writes into chunk 3.
  auto other_writes = [&](File* file, int phase) {
    for (uint64_t b : phase == 0 ? std::vector<uint64_t>{7, 2 * 4096 + 1, 4 * 4096 + 10, 4 * 4096 + 11}
                                 : std::vector<uint64_t>{3 * 4096 + 2, 3 * 4096 + 3}) {
      std::vector<uint8_t> data = Pattern(100 + b, 0, kBlockSize);
      if (file != nullptr) {
        if (!file->Pwrite(data.data(), data.size(), b * kBlockSize).ok()) _exit(3);
      }
      ModelWrite(b * kBlockSize, data);
    }
  };
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto other = File::Open(path_, O_RDWR);
    if (!other.ok()) _exit(1);
    other_writes(other->get(), 0);
    if (!(*other)->Fsync().ok() || !(*other)->core().Compact().ok()) _exit(2);
    other_writes(other->get(), 1);
    _exit((*other)->Fsync().ok() ? 0 : 4);
  }
  EXPECT_EQ(test::WaitExitStatus(pid), 0);
  other_writes(nullptr, 0);
  other_writes(nullptr, 1);
  ExpectModel(*f, "after the other process's writes and compaction");
  EXPECT_EQ(f->core().PendingTableChunks(), 0u);
  // And this process's own writes into what it copied in.
  Write(*f, (5 * 4096 + 1) * kBlockSize, Pattern(7, 0, 3 * kBlockSize));
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileLogTest, SharedStateIsRemovedAtLastClose) {
  auto a = Create();
  ASSERT_NE(a, nullptr);
  auto r = File::Open(path_, O_RDONLY);
  TERN_ASSERT_OK(r);
  auto b = std::move(r).value();
  EXPECT_FALSE(dir_.ShmEntries().empty()) << "no shared state while open";
  a.reset();
  EXPECT_FALSE(dir_.ShmEntries().empty()) << "removed while still open elsewhere";
  b.reset();
  EXPECT_TRUE(dir_.ShmEntries().empty()) << "left behind after last close";
}

TEST_F(FileLogTest, FsyncAndCounters) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  FileCounters before = f->Counters();
  for (int i = 0; i < 10; ++i) Write(*f, static_cast<uint64_t>(i) * 100, Pattern(90, 0, 100));
  TERN_EXPECT_OK(f->Fsync());
  FileCounters after = f->Counters();
  EXPECT_GE(after.commits - before.commits, 10u);
  EXPECT_EQ(after.conflicts, before.conflicts) << "one thread cannot conflict with itself";
  ReopenAndExpect(f, "reopen");
}

}  // namespace
}  // namespace tern
