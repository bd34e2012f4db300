// KeptTable (lib/kept_table.h): a process that closes a file keeps, with its Backing, the block
// table and log position it had; its next open of the unchanged inode starts from there instead of
// replaying the log. Other processes may have written, compacted the log (retiring and reusing the
// log blocks the kept table knew), or both, meanwhile: the reopen must show exactly the file's
// bytes and count exactly the blocks the log reaches, as a full replay would.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lib/backing_cache.h"
#include "lib/file.h"
#include "lib/file_core.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::CloseAndSettle;
using test::Pattern;

class KeptTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BackingCache::Default().Enable(dir_.File(".spares"), 022);
    path_ = dir_.File("f");
  }
  void TearDown() override { BackingCache::Default().DropSpares(); }

  uint64_t Unchanged() const { return BackingCache::Default().counts().adopted_unchanged; }

  // Writes through `f` (unless null: the model only) and into the model.
  void Write(File* f, uint64_t off, size_t len, uint64_t seed) {
    std::vector<uint8_t> data = Pattern(seed, off, len);
    if (f != nullptr) {
      TERN_ASSERT_OK(f->Pwrite(data.data(), data.size(), off));
    }
    if (model_.size() < off + len) model_.resize(off + len, 0);
    std::copy(data.begin(), data.end(), model_.begin() + static_cast<std::ptrdiff_t>(off));
  }

  // Many small writes: a log of several log blocks (each holds a few hundred entries).
  void ManySmallWrites(File* f, int n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < n; ++i) Write(f, rng() % (model_.size() + 4096), 1 + rng() % 300, seed * 1000 + static_cast<uint64_t>(i));
  }

  // Creates the file with `blocks` blocks of pattern `seed`, in a backing file grown well past
  // them first (8 MiB written, then cut), so that other processes' writes find free space and do
  // not grow it: growth changes the inode's ctime, and a changed inode is opened afresh (the kept
  // table is not used; a test that wants it used must avoid that).
  void Create(uint32_t blocks, uint64_t seed) {
    auto f = File::Open(path_, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    std::vector<uint8_t> fill(8 << 20, 0x11);
    TERN_ASSERT_OK((*f)->Pwrite(fill.data(), fill.size(), 0));
    TERN_ASSERT_OK((*f)->Truncate(0));
    Write(f->get(), 0, uint64_t{blocks} * kBlockSize, seed);
    TERN_ASSERT_OK((*f)->Fsync());
    CloseAndSettle(std::move(*f));
  }

  // Runs `fn` on the file in another process, then on this one's model alone (fn(nullptr): the
  // same deterministic calls, so the model follows the file).
  void InChild(const std::function<void(File*)>& fn) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto f = File::Open(path_, O_RDWR);
      if (!f.ok()) _exit(2);
      fn(f->get());
      if (::testing::Test::HasFailure()) _exit(3);
      CloseAndSettle(std::move(*f));
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    fn(nullptr);
  }

  // Reopens in this process and checks bytes and block accounting against the model.
  std::unique_ptr<File> ReopenAndCheck(bool expect_kept_table) {
    uint64_t before = Unchanged();
    auto f = File::Open(path_, O_RDWR);
    EXPECT_TRUE(f.ok());
    if (!f.ok()) return nullptr;
    EXPECT_EQ(Unchanged(), before + (expect_kept_table ? 1 : 0))
        << (expect_kept_table ? "reopened from the kept backing and table" : "opened afresh");
    auto got = test::ReadAll(**f);
    EXPECT_TRUE(got.ok());
    if (got.ok()) {
      EXPECT_EQ(got->size(), model_.size());
      EXPECT_EQ(test::FirstDifference(*got, model_), -1);
    }
    auto reachable = (*f)->core().BlocksReachable();
    EXPECT_TRUE(reachable.ok());
    if (reachable.ok()) {
      EXPECT_EQ((*f)->core().BlocksInUse(), *reachable);
    }
    return std::move(f).value();
  }

  test::TempDir dir_;
  std::string path_;
  std::vector<uint8_t> model_;
};

// Another process's writes announce themselves in the inode's times (a new ctime), so the next
// open here does not use the kept table: it replays, and sees them.
TEST_F(KeptTableTest, AfterAnotherProcessWroteTheFileIsReplayedAfreshAndShowsItsWrites) {
  Create(8, 1);
  {
    auto f = ReopenAndCheck(true);
    ASSERT_NE(f, nullptr);
    ManySmallWrites(f.get(), 600, 2);
    CloseAndSettle(std::move(f));
  }
  ASSERT_EQ(BackingCache::Default().counts().closed, 1u);
  InChild([this](File* f) {
    Write(f, 2 * kBlockSize, 2 * kBlockSize, 3);       // overwrite
    Write(f, model_.size(), 3 * kBlockSize + 100, 4);  // append past the end
    ManySmallWrites(f, 700, 5);
  });
  auto f = ReopenAndCheck(false);
  ASSERT_NE(f, nullptr);
  ManySmallWrites(f.get(), 300, 6);
  CloseAndSettle(std::move(f));
  ReopenAndCheck(true);
}

// A compaction changes no byte and leaves the times alone: the reopen uses the kept table, whose
// checkpoint and log blocks are stale (the ones it knew were retired and freed), and must move to
// the new checkpoint; this process's writes then reuse the freed blocks.
TEST_F(KeptTableTest, AReopenAfterAnotherProcessCompactedTheLogMovesToTheNewCheckpoint) {
  Create(16, 7);
  {
    auto f = ReopenAndCheck(true);
    ASSERT_NE(f, nullptr);
    ManySmallWrites(f.get(), 1500, 8);  // several log blocks
    CloseAndSettle(std::move(f));
  }
  InChild([](File* other) {
    if (other != nullptr) {
      auto stats = other->core().Compact();
      EXPECT_TRUE(stats.ok());
    }
  });
  auto f = ReopenAndCheck(true);
  ASSERT_NE(f, nullptr);
  ManySmallWrites(f.get(), 1500, 9);
  CloseAndSettle(std::move(f));
  f = ReopenAndCheck(true);
  ASSERT_NE(f, nullptr);
  TERN_ASSERT_OK(f->core().Compact());
  ManySmallWrites(f.get(), 200, 10);
  CloseAndSettle(std::move(f));
  InChild([](File* other) {
    if (other != nullptr) {
      auto stats = other->core().Compact();
      EXPECT_TRUE(stats.ok());
    }
  });
  ReopenAndCheck(true);
}

TEST_F(KeptTableTest, AFileTruncatedAndFormattedAgainThroughTheKernelIsReadAsItIsNow) {
  {
    auto f = File::Open(path_, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    Write(f->get(), 0, 5 * kBlockSize, 13);
    CloseAndSettle(std::move(*f));
  }
  ASSERT_EQ(truncate(path_.c_str(), 0), 0);  // a plain empty file now: the next writable open formats it
  model_.clear();
  {
    auto f = File::Open(path_, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    auto got = test::ReadAll(**f);
    TERN_ASSERT_OK(got);
    EXPECT_TRUE(got->empty()) << "nothing of the old log";
    Write(f->get(), 0, 100, 14);
    CloseAndSettle(std::move(*f));
  }
  ReopenAndCheck(true);
}

}  // namespace
}  // namespace tern
