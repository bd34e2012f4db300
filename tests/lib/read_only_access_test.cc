// Opens without write access (lib/file_core_readonly.cc): a process that may only read a tern file
// (another user, the file's mode 0644) reads it, follows what writers commit while it has the file
// open, and keeps GC from freeing the log blocks it may still read. The readers are forked children
// that drop root for `nobody`; the test process opens no tern file before it forks them, so that
// they carry no engine state of its own.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace tern::test {
namespace {

constexpr uid_t kNobody = 65534;
constexpr size_t kBlocks = 16;

// Block b of version v: every 8-byte word says (b, v), so a block torn between versions, or one
// read from a block reused for another, shows.
std::vector<uint64_t> Stamp(uint64_t b, uint64_t v) { return std::vector<uint64_t>(kBlockSize / 8, b << 32 | v); }

// A pipe a child waits on (or reports through): one byte each way.
struct Signal {
  int fds[2] = {-1, -1};
  Signal() { EXPECT_EQ(pipe(fds), 0); }
  ~Signal() {
    close(fds[0]);
    close(fds[1]);
  }
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;
  void Send(char c = 1) { EXPECT_EQ(write(fds[1], &c, 1), 1); }
  char Wait() {
    char c = 0;
    return read(fds[0], &c, 1) == 1 ? c : 0;
  }
};

class ReadOnlyAccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root, to drop to another user who may only read the file";
    ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
    // Each block at version 1, written by a process of its own.
    ASSERT_TRUE(InForkedChild([&] {
      auto f = File::Open(path_, O_RDWR | O_CREAT, 0644);
      if (!f.ok()) return false;
      for (uint64_t b = 0; b < kBlocks; ++b) {
        if (!(*f)->Pwrite(Stamp(b, 1).data(), kBlockSize, b * kBlockSize).ok()) return false;
      }
      return true;
    }));
  }

  // A child that becomes `nobody`, opens the file read-only, says so on `opened` ('y', or 'n' when
  // the open failed), waits for `go`, then runs `check` on the open file (which it may close) and
  // exits with its result.
  template <typename Check>
  pid_t StartReader(Signal& opened, Signal& go, Check check) {
    pid_t pid = ForkChild();
    if (pid != 0) return pid;
    if (setgid(kNobody) != 0 || setuid(kNobody) != 0) {
      opened.Send('n');
      ExitChild(false);
    }
    auto f = File::Open(path_, O_RDONLY);
    opened.Send(f.ok() ? 'y' : 'n');
    if (!f.ok()) {
      fprintf(stderr, "reader: open: %s\n", Describe(f.status()).c_str());
      ExitChild(false);
    }
    go.Wait();
    std::unique_ptr<File> file = std::move(*f);
    ExitChild(check(file));
  }

  // True when every block of f is one whole stamp of its own index, at least at `min_version`.
  static bool AllBlocksWhole(File& f, uint64_t min_version, std::string* why) {
    std::vector<uint64_t> words(kBlocks * kBlockSize / 8);
    auto n = f.Pread(words.data(), kBlocks * kBlockSize, 0);
    if (!n.ok() || *n != kBlocks * kBlockSize) {
      *why = n.ok() ? "short read of " + std::to_string(*n) : Describe(n.status());
      return false;
    }
    for (uint64_t b = 0; b < kBlocks; ++b) {
      const uint64_t* block = words.data() + b * (kBlockSize / 8);
      uint64_t first = block[0];
      if (first >> 32 != b || (first & 0xffffffff) < min_version) {
        *why = "block " + std::to_string(b) + " holds stamp " + std::to_string(first >> 32) + "/" + std::to_string(first & 0xffffffff);
        return false;
      }
      for (size_t w = 1; w < kBlockSize / 8; ++w) {
        if (block[w] != first) {
          *why = "block " + std::to_string(b) + " is torn at word " + std::to_string(w);
          return false;
        }
      }
    }
    return true;
  }

  TempDir dir_;
  std::string path_ = dir_.File("data");
};

TEST_F(ReadOnlyAccessTest, AnotherUserReadsTheFileAndCannotWriteIt) {
  Signal opened, go;
  pid_t reader = StartReader(opened, go, [&](std::unique_ptr<File>& f) {
    std::string why;
    bool whole = AllBlocksWhole(*f, 1, &why);
    if (!whole) fprintf(stderr, "reader: %s\n", why.c_str());
    auto w = File::Open(path_, O_RDWR);
    bool refused = !w.ok() && w.status().err() == EACCES;
    if (!refused) fprintf(stderr, "reader: a read-write open was not refused with EACCES\n");
    // A child of the reader reads too (its own description of the file).
    bool child_reads = InForkedChild([&] { return AllBlocksWhole(*f, 1, &why); });
    if (!child_reads) fprintf(stderr, "reader's child: %s\n", why.c_str());
    return whole && refused && child_reads;
  });
  ASSERT_GT(reader, 0);
  EXPECT_EQ(opened.Wait(), 'y') << "a user with read permission could not open the file";
  go.Send();
  EXPECT_TRUE(WaitChildSucceeded(reader));
}

// The reader opens; the writer then commits past it and compacts the log: the compaction frees
// nothing while the reader has the file open (its slotless-reader lock), the reader catches up
// across the checkpoint, and once it has closed the file (the process lives on, and may keep the
// file's descriptor for a later open) the next compaction frees the old log blocks.
TEST_F(ReadOnlyAccessTest, GcKeepsOldLogBlocksWhileSuchAReaderHasTheFileOpen) {
  Signal opened, go, closed, done;
  pid_t reader = StartReader(opened, go, [&](std::unique_ptr<File>& f) {
    std::string why;
    bool whole = AllBlocksWhole(*f, 3, &why);
    if (!whole) fprintf(stderr, "reader: %s\n", why.c_str());
    f.reset();
    closed.Send();
    done.Wait();
    return whole;
  });
  ASSERT_GT(reader, 0);
  ASSERT_EQ(opened.Wait(), 'y');
  auto f = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(f);
  // Two rounds over every block, one commit each, many log blocks' worth of entries.
  for (uint64_t v = 2; v <= 3; ++v) {
    for (int round = 0; round < 100; ++round) {
      for (uint64_t b = 0; b < kBlocks; ++b) {
        TERN_ASSERT_OK((*f)->Pwrite(Stamp(b, v).data(), kBlockSize, b * kBlockSize));
      }
    }
  }
  TERN_ASSERT_OK((*f)->Fsync());
  auto held = (*f)->core().Compact(FileCore::GcMode::kFull);
  TERN_ASSERT_OK(held);
  EXPECT_GT(held->checkpoint_position, 0u) << "nothing was compacted";
  EXPECT_FALSE(held->drained);
  EXPECT_EQ(held->blocks_freed, 0u) << "GC freed log blocks while a slotless reader had the file open";
  go.Send();
  EXPECT_EQ(closed.Wait(), 1) << "the reader did not get to its close";
  auto freed = (*f)->core().Compact(FileCore::GcMode::kFull);
  done.Send();
  TERN_ASSERT_OK(freed);
  EXPECT_TRUE(freed->drained);
  EXPECT_GT(freed->blocks_freed, 0u) << "the old log blocks were not freed once the reader closed the file";
  EXPECT_TRUE(WaitChildSucceeded(reader)) << "the reader did not see the writer's last commits whole";
}

// Readers without write access read over and over while a writer rewrites every block and
// compacts: every read is whole (no block torn or taken from a reused block) and no block goes
// back to an older version than the reader saw before.
TEST_F(ReadOnlyAccessTest, ReadsStayWholeWhileAWriterCommitsAndCompacts) {
  constexpr uint64_t kVersions = 2000;
  Signal opened, go;
  pid_t reader = StartReader(opened, go, [&](std::unique_ptr<File>& f) {
    std::vector<uint64_t> seen(kBlocks, 1);
    std::vector<uint64_t> words(kBlocks * kBlockSize / 8);
    for (int pass = 0;; ++pass) {
      std::string why;
      if (!AllBlocksWhole(*f, 1, &why)) {
        fprintf(stderr, "reader, pass %d: %s\n", pass, why.c_str());
        return false;
      }
      auto n = f->Pread(words.data(), kBlocks * kBlockSize, 0);
      if (!n.ok()) return false;
      bool last = true;
      for (uint64_t b = 0; b < kBlocks; ++b) {
        uint64_t v = words[b * (kBlockSize / 8)] & 0xffffffff;
        if (v < seen[b]) {
          fprintf(stderr, "reader, pass %d: block %llu went back from version %llu to %llu\n", pass,
                  static_cast<unsigned long long>(b), static_cast<unsigned long long>(seen[b]),
                  static_cast<unsigned long long>(v));
          return false;
        }
        seen[b] = v;
        last = last && v == kVersions;
      }
      if (last) return true;
    }
  });
  ASSERT_GT(reader, 0);
  ASSERT_EQ(opened.Wait(), 'y');
  go.Send();
  auto f = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(f);
  for (uint64_t v = 2; v <= kVersions; ++v) {
    for (uint64_t b = 0; b < kBlocks; ++b) {
      TERN_ASSERT_OK((*f)->Pwrite(Stamp(b, v).data(), kBlockSize, b * kBlockSize));
    }
    TERN_ASSERT_OK((*f)->Fsync());
    if (v % 100 == 0) {
      TERN_ASSERT_OK((*f)->core().Compact(FileCore::GcMode::kFull));
    }
  }
  EXPECT_TRUE(WaitChildSucceeded(reader));
}

}  // namespace
}  // namespace tern::test
