// The block allocator is built at first need (SharedHeader::alloc_state, FileCore::
// EnsureAllocatorReady): an open, and anything that only reads, leaves the shared bitmap and owner
// map unbuilt; the first write (in any process) builds them from the log, under the build lock,
// and a build a dead process left half-done is redone from scratch. Each case checks that the
// built allocator counts exactly the blocks the log reaches (with two writer processes, after GC's
// full sweep), after writes that would land on live blocks had it called them free.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "lib/shared_state.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace tern::test {
namespace {

constexpr uint64_t kLiveBlocks = 40;
constexpr uint64_t kWriterBlocks = 32;

// Where writer `w`'s blocks go: past the live ones, disjoint per writer and thread.
uint64_t WriterOffset(uint64_t writer, uint64_t thread) {
  return (kLiveBlocks + 8 + (writer * 2 + thread) * kWriterBlocks) * kBlockSize;
}

// A writer process: opens the file read-write and writes its ranges from two threads at once.
int WriterChildMain(const std::string& path, uint64_t writer) {
  auto f = File::Open(path, O_RDWR);
  if (!f.ok()) return 3;
  std::atomic<bool> ok[2] = {false, false};
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      bool good = true;
      for (uint64_t i = 0; i < kWriterBlocks && good; ++i) {
        uint64_t off = WriterOffset(writer, t) + i * kBlockSize;
        std::vector<uint8_t> data = Pattern(100 + writer * 2 + t, off, kBlockSize);
        auto n = (*f)->Pwrite(data.data(), data.size(), off);
        good = n.ok() && *n == data.size();
      }
      ok[t].store(good);
    });
  }
  for (auto& t : threads) t.join();
  if (!ok[0] || !ok[1]) return 4;
  return (*f)->Fsync().ok() ? 0 : 5;
}

class AllocatorBuildTest : public ::testing::Test {
 protected:
  void Write(File& f, uint64_t off, const std::vector<uint8_t>& data) {
    auto n = f.Pwrite(data.data(), data.size(), off);
    ASSERT_TRUE(n.ok() && *n == data.size()) << Describe(n.status());
    Model(off, data);
  }
  void Model(uint64_t off, const std::vector<uint8_t>& data) {
    if (model_.size() < off + data.size()) model_.resize(off + data.size(), 0);
    std::copy(data.begin(), data.end(), model_.begin() + static_cast<std::ptrdiff_t>(off));
  }
  void ExpectModel(File& f, const std::string& when) {
    auto content = ReadAll(f);
    ASSERT_TRUE(content.ok()) << Describe(content.status());
    EXPECT_EQ(FirstDifference(*content, model_), -1) << when << ": content differs";
  }
  // A closed file with data, a hole and blocks an overwrite superseded.
  void MakeFile() {
    auto f = File::Open(path_, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    for (uint64_t i = 0; i < kLiveBlocks; ++i) Write(**f, i * kBlockSize, Pattern(i, i * kBlockSize, kBlockSize));
    Write(**f, 5000, Pattern(51, 5000, 20000));
    Write(**f, (kLiveBlocks + 4) * kBlockSize + 10, Pattern(52, (kLiveBlocks + 4) * kBlockSize + 10, 300));
    TERN_ASSERT_OK((*f)->Fsync());
    // Closed for good before the next open: a grow-ahead the writes asked for may hold the engine
    // a moment longer, and an open meanwhile would find its (built) shared state.
    CloseAndSettle(std::move(*f));
  }
  // The file's one shared-state object, mapped whole (its header first).
  SharedHeader* MapState() {
    std::vector<std::string> entries = dir_.ShmEntries();
    if (entries.size() != 1) {
      ADD_FAILURE() << entries.size() << " shared-state objects, expected 1";
      return nullptr;
    }
    return static_cast<SharedHeader*>(MapSharedFile(dir_.shm_dir() + "/" + entries[0], SharedState::kObjectSize, false));
  }
  // MakeFile, then a read-only open (reader_): the file's shared state, published and unbuilt.
  SharedHeader* OpenForReading() {
    MakeFile();
    auto reader = File::Open(path_, O_RDONLY);
    EXPECT_TRUE(reader.ok()) << Describe(reader.status());
    if (!reader.ok()) return nullptr;
    reader_ = std::move(*reader);
    SharedHeader* h = MapState();
    if (h != nullptr) {
      EXPECT_EQ(h->alloc_state.load(), kAllocUnbuilt) << "a read-only open built the allocator";
    }
    return h;
  }
  // Twice as many new blocks as live ones: handed a live block, they would overwrite data the
  // model still expects.
  void WritePastLiveBlocks(File& f, uint64_t seed) {
    for (uint64_t i = 0; i < 2 * kLiveBlocks; ++i) {
      uint64_t off = (kLiveBlocks + 8 + i) * kBlockSize;
      Write(f, off, Pattern(seed + i, off, kBlockSize));
    }
  }
  void ExpectUsedIsReachable(File& f, const std::string& when) {
    auto reachable = f.core().BlocksReachable();
    TERN_ASSERT_OK(reachable);
    EXPECT_EQ(f.core().BlocksInUse(), *reachable) << when << ": the allocator does not match the log";
  }

  TempDir dir_;
  std::string path_ = dir_.File("f");
  std::vector<uint8_t> model_;
  std::unique_ptr<File> reader_;
};

TEST_F(AllocatorBuildTest, AReaderLeavesItUnbuiltAndTheFirstWriteBuildsIt) {
  SharedHeader* h = OpenForReading();
  ASSERT_NE(h, nullptr);
  ExpectModel(*reader_, "read-only open");
  struct stat st;
  TERN_ASSERT_OK(reader_->Stat(&st));
  EXPECT_EQ(h->alloc_state.load(), kAllocUnbuilt) << "stat built the allocator";

  auto writer = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(writer);
  EXPECT_EQ(h->alloc_state.load(), kAllocUnbuilt) << "a read-write open built the allocator";
  WritePastLiveBlocks(**writer, 200);
  Write(**writer, 100, Pattern(300, 100, 3 * kBlockSize));
  EXPECT_EQ(h->alloc_state.load(), kAllocReady);
  ExpectModel(*reader_, "after the first writes");
  TERN_ASSERT_OK((*writer)->Fsync());
  ExpectUsedIsReachable(**writer, "after the first writes");
}

TEST_F(AllocatorBuildTest, ABuildADeadProcessLeftHalfDoneIsRedone) {
  SharedHeader* h = OpenForReading();
  ASSERT_NE(h, nullptr);
  // What a builder killed half-way leaves: the building state with nobody holding the build
  // lock, and marks of its own — here every block of the file in use, owned by a slot. (Nothing
  // grows the file before the allocator is ready, so a builder never marks past its end.)
  auto* base = reinterpret_cast<char*>(h);
  auto* words = reinterpret_cast<std::atomic<uint64_t>*>(base + SharedState::kBitmapOffset);
  auto* owners = reinterpret_cast<std::atomic<BlockOwner>*>(base + SharedState::kOwnersOffset);
  const uint64_t nblocks = h->num_blocks.load();
  for (uint64_t b = 0; b < nblocks; ++b) {
    words[b / 64].fetch_or(uint64_t{1} << (b % 64));
    owners[b].store(OwnerOf(7));
  }
  h->alloc_state.store(kAllocBuilding);

  auto writer = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(writer);
  WritePastLiveBlocks(**writer, 400);
  EXPECT_EQ(h->alloc_state.load(), kAllocReady);
  TERN_ASSERT_OK((*writer)->Fsync());
  ExpectModel(*reader_, "after the rebuild");
  ExpectUsedIsReachable(**writer, "after the rebuild");
}

TEST_F(AllocatorBuildTest, WritersInTwoProcessesBuildItOnce) {
  SharedHeader* h = OpenForReading();
  ASSERT_NE(h, nullptr);
  // Two processes, two threads each, all writing first at once: one of them builds, the others
  // wait for it (a race, so a smoke test of the build lock rather than a proof).
  std::vector<pid_t> pids;
  for (uint64_t w = 0; w < 2; ++w) pids.push_back(SpawnSelf({"--writer-child", path_, std::to_string(w)}));
  for (pid_t pid : pids) {
    ASSERT_GT(pid, 0);
    EXPECT_TRUE(WaitChildSucceeded(pid));
  }
  for (uint64_t w = 0; w < 2; ++w) {
    for (uint64_t t = 0; t < 2; ++t) {
      for (uint64_t i = 0; i < kWriterBlocks; ++i) {
        uint64_t off = WriterOffset(w, t) + i * kBlockSize;
        Model(off, Pattern(100 + w * 2 + t, off, kBlockSize));
      }
    }
  }
  EXPECT_EQ(h->alloc_state.load(), kAllocReady);
  ExpectModel(*reader_, "after both writers");
  // Every block the log references is in use. One block more may be: a partial last block that
  // one process's commit superseded while the other held a claim on it stays log-owned until GC's
  // next full sweep (SupersedeClaims::Update: space, never data). After one, nothing is left over.
  auto reachable = reader_->core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_GE(reader_->core().BlocksInUse(), *reachable);
  auto writer = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(writer);
  TERN_ASSERT_OK((*writer)->core().Compact(FileCore::GcMode::kFull).status());
  ExpectUsedIsReachable(*reader_, "after both writers and a full sweep");
  ExpectModel(*reader_, "after the sweep");
}

}  // namespace
}  // namespace tern::test

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--writer-child") {
    tern::test::DieWithParent();
    return tern::test::WriterChildMain(argv[2], std::stoull(argv[3]));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
