// The engine through its public API (lib/file.h): aligned, unaligned, multi-block, huge, sparse and
// truncating writes, appends, open flags, foreign files — each checked byte for byte against a model
// of the content, before and after closing and reopening.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

constexpr int kCreate = O_RDWR | O_CREAT;

class FileIoTest : public ::testing::Test {
 protected:
  // The content the file must have: every write also lands here.
  void ModelWrite(uint64_t offset, const std::vector<uint8_t>& data) {
    if (model_.size() < offset + data.size()) model_.resize(offset + data.size(), 0);
    std::copy(data.begin(), data.end(), model_.begin() + static_cast<ptrdiff_t>(offset));
  }
  void ModelTruncate(uint64_t size) { model_.resize(size, 0); }

  // Writes through the engine and into the model.
  void Write(File& f, uint64_t offset, const std::vector<uint8_t>& data) {
    auto n = f.Pwrite(data.data(), data.size(), offset);
    ASSERT_TRUE(n.ok()) << "pwrite " << data.size() << "@" << offset << ": " << test::Describe(n.status());
    ASSERT_EQ(*n, data.size());
    ModelWrite(offset, data);
  }
  void Truncate(File& f, uint64_t size) {
    TERN_ASSERT_OK(f.Truncate(size));
    ModelTruncate(size);
  }

  // The file's size and every byte equal the model.
  void ExpectModel(File& f, const char* when) {
    auto size = f.Size();
    ASSERT_TRUE(size.ok()) << when;
    ASSERT_EQ(*size, model_.size()) << when;
    auto got = test::ReadAll(f);
    ASSERT_TRUE(got.ok()) << when << ": " << test::Describe(got.status());
    int64_t d = test::FirstDifference(*got, model_);
    ASSERT_EQ(d, -1) << when << ": first wrong byte at offset " << d << " (size " << model_.size() << ")";
  }

  // Closes f, reopens the path and checks the model again.
  void ReopenAndExpect(std::unique_ptr<File>& f, const char* when, int flags = O_RDWR) {
    f.reset();
    auto r = File::Open(path_, flags);
    ASSERT_TRUE(r.ok()) << "reopen " << when << ": " << test::Describe(r.status());
    f = std::move(r).value();
    ExpectModel(*f, when);
  }

  std::unique_ptr<File> Create() {
    auto r = File::Open(path_, kCreate, 0644);
    EXPECT_TRUE(r.ok()) << test::Describe(r.status());
    return r.ok() ? std::move(r).value() : nullptr;
  }

  test::TempDir dir_;
  std::string path_ = dir_.File("f");
  std::vector<uint8_t> model_;
};

TEST_F(FileIoTest, CreateGivesAnEmptyFile) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  auto size = f->Size();
  TERN_ASSERT_OK(size);
  EXPECT_EQ(*size, 0u);
  char buf[16];
  auto n = f->Pread(buf, sizeof(buf), 0);
  TERN_ASSERT_OK(n);
  EXPECT_EQ(*n, 0u);
  struct stat st;
  TERN_ASSERT_OK(f->Stat(&st));
  EXPECT_EQ(st.st_size, 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  ReopenAndExpect(f, "after create");
  ReopenAndExpect(f, "read-only", O_RDONLY);
}

TEST_F(FileIoTest, AlignedWrites) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(1, 0, kBlockSize));
  ExpectModel(*f, "one block");
  Write(*f, 2 * kBlockSize, Pattern(2, 0, 3 * kBlockSize));  // leaves block 1 a hole
  ExpectModel(*f, "after a hole");
  Write(*f, kBlockSize, Pattern(3, 0, 2 * kBlockSize));  // overwrite across the hole
  ExpectModel(*f, "overwrite");
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileIoTest, UnalignedWrites) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  struct W {
    uint64_t offset;
    size_t len;
  };
  const W writes[] = {{0, 1},       {4000, 100},  {3, 5000},     {4100, 10},  {8191, 2},
                      {12287, 1},   {5, 4096},    {10000, 6000}, {4095, 1},   {20000, 1},
                      {16380, 9},   {0, 3},       {1, 8190},     {30001, 4095}};
  uint64_t seed = 10;
  for (const W& w : writes) {
    Write(*f, w.offset, Pattern(seed++, w.offset, w.len));
    ExpectModel(*f, "unaligned write");
  }
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileIoTest, MultiBlockWrites) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 12345, Pattern(20, 0, 200 * 1024));            // 50 blocks, unaligned both ends
  Write(*f, 7, Pattern(21, 0, (1 << 20) + 17));            // > 63 blocks in one write
  Write(*f, 64 * kBlockSize, Pattern(22, 0, 64 * kBlockSize));  // 64 aligned blocks
  Write(*f, 3 * kBlockSize, Pattern(23, 0, 63 * kBlockSize));   // exactly 63
  ExpectModel(*f, "multi-block");
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileIoTest, HugeSingleWrite) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  const size_t len = (64u << 20) + 100;  // > 64 MiB, unaligned at both ends
  const uint64_t offset = 1000;
  std::vector<uint8_t> data = Pattern(30, offset, len);
  auto n = f->Pwrite(data.data(), data.size(), offset);
  TERN_ASSERT_OK(n);
  ASSERT_EQ(*n, len);
  ModelWrite(offset, data);
  ExpectModel(*f, "huge write");
  // Overwrite the middle with a second huge write; the rest must stay.
  Write(*f, 32u << 20, Pattern(31, 0, 33u << 20));
  ExpectModel(*f, "huge overwrite");
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileIoTest, SparseWriteFarPastEof) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(40, 0, 100));
  const uint64_t far = (1ull << 30) + 5;
  std::vector<uint8_t> tail = Pattern(41, far, 10);
  auto n = f->Pwrite(tail.data(), tail.size(), far);
  TERN_ASSERT_OK(n);
  auto size = f->Size();
  TERN_ASSERT_OK(size);
  EXPECT_EQ(*size, far + 10);

  auto check = [&](File& file) {
    std::vector<uint8_t> buf(1 << 20, 0xEE);
    auto r = file.Pread(buf.data(), 4096, 0);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(*r, 4096u);
    EXPECT_EQ(test::FirstDifference(buf.data(), Pattern(40, 0, 100).data(), 100), -1);
    EXPECT_TRUE(std::all_of(buf.begin() + 100, buf.begin() + 4096, [](uint8_t b) { return b == 0; }))
        << "hole after the first write";
    std::fill(buf.begin(), buf.end(), 0xEE);
    r = file.Pread(buf.data(), buf.size(), 512u << 20);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(*r, buf.size());
    EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; })) << "middle of the hole";
    std::fill(buf.begin(), buf.end(), 0xEE);
    r = file.Pread(buf.data(), 200, far - 190);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(*r, 200u);
    EXPECT_TRUE(std::all_of(buf.begin(), buf.begin() + 190, [](uint8_t b) { return b == 0; })) << "before the tail";
    EXPECT_EQ(test::FirstDifference(buf.data() + 190, tail.data(), 10), -1);
    struct stat st;
    ASSERT_TRUE(file.Stat(&st).ok());
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), far + 10);
    // Two data blocks are mapped; a 1 GiB file that allocated its hole would show ~2M sectors.
    EXPECT_LE(st.st_blocks, 1024) << "the hole took space";
  };
  check(*f);
  f.reset();
  struct stat backing;
  ASSERT_EQ(stat(path_.c_str(), &backing), 0);
  EXPECT_LT(backing.st_size, 64 << 20) << "backing file grew for a hole";
  auto r = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(r);
  check(**r);
}

TEST_F(FileIoTest, ReadsAtAndPastEof) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(50, 0, 5000));
  std::vector<uint8_t> buf(200, 0xEE);
  auto n = f->Pread(buf.data(), 100, 4950);
  TERN_ASSERT_OK(n);
  EXPECT_EQ(*n, 50u);
  EXPECT_EQ(test::FirstDifference(buf.data(), Pattern(50, 4950, 50).data(), 50), -1);
  n = f->Pread(buf.data(), 100, 5000);
  TERN_ASSERT_OK(n);
  EXPECT_EQ(*n, 0u);
  n = f->Pread(buf.data(), 100, 1ull << 40);
  TERN_ASSERT_OK(n);
  EXPECT_EQ(*n, 0u);
  n = f->Pread(buf.data(), 0, 10);
  TERN_ASSERT_OK(n);
  EXPECT_EQ(*n, 0u);
}

TEST_F(FileIoTest, ZeroLengthWriteChangesNothing) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(51, 0, 10));
  char c = 'x';
  auto n = f->Pwrite(&c, 0, 100000);
  TERN_ASSERT_OK(n);
  EXPECT_EQ(*n, 0u);
  ExpectModel(*f, "after an empty write");
}

TEST_F(FileIoTest, TruncateDownAlignedThenExtend) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(60, 0, 5 * kBlockSize));
  Truncate(*f, 2 * kBlockSize);
  ExpectModel(*f, "after shrink");
  Truncate(*f, 5 * kBlockSize);
  ExpectModel(*f, "after growing back: old bytes must read as zeros");
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileIoTest, TruncateDownUnalignedThenExtend) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(61, 0, 5 * kBlockSize));
  Truncate(*f, 5000);  // keeps a partial block whose tail held data
  ExpectModel(*f, "after shrink");
  Truncate(*f, 20000);
  ExpectModel(*f, "after truncate up");
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileIoTest, TruncateDownUnalignedThenWritePastEof) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(62, 0, 3 * kBlockSize));
  Truncate(*f, 5000);
  Write(*f, 15000, Pattern(63, 15000, 10));  // [5000, 15000) must read as zeros
  ExpectModel(*f, "after pwrite past EOF");
  Truncate(*f, 4100);
  auto at = f->Append(Pattern(64, 0, 7).data(), 7);
  TERN_ASSERT_OK(at);
  EXPECT_EQ(*at, 4100u);
  ModelWrite(4100, Pattern(64, 0, 7));
  ExpectModel(*f, "after append");
  Truncate(*f, 9000);
  ExpectModel(*f, "after truncate up");
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileIoTest, TruncateAcrossReopenThenExtend) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(65, 0, 4 * kBlockSize + 77));
  Truncate(*f, 6001);
  ReopenAndExpect(f, "reopen after shrink");
  Truncate(*f, 4 * kBlockSize + 77);
  ExpectModel(*f, "grown after reopen");
  Truncate(*f, 0);
  ExpectModel(*f, "empty");
  Truncate(*f, 3 * kBlockSize);
  ExpectModel(*f, "grown from empty");
  ReopenAndExpect(f, "reopen at the end");
}

TEST_F(FileIoTest, TruncateToSameSizeAndUnalignedGrow) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(66, 0, 3000));
  Truncate(*f, 3000);
  ExpectModel(*f, "same size");
  Truncate(*f, 3500);  // grows inside the same block
  ExpectModel(*f, "grown in-block");
  Write(*f, 3400, Pattern(67, 0, 50));
  ExpectModel(*f, "write into the grown part");
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileIoTest, AppendReturnsIncreasingOffsets) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  const size_t sizes[] = {1, 4095, 4096, 10000, 3, 70 * 4096 + 5, 8, 4096};
  uint64_t expect_at = 0;
  uint64_t seed = 70;
  for (size_t len : sizes) {
    std::vector<uint8_t> data = Pattern(seed++, 0, len);
    auto at = f->Append(data.data(), data.size());
    TERN_ASSERT_OK(at);
    EXPECT_EQ(*at, expect_at);
    ModelWrite(*at, data);
    expect_at += len;
  }
  ExpectModel(*f, "appends");
  ReopenAndExpect(f, "reopen");
  std::vector<uint8_t> more = Pattern(99, 0, 33);
  auto at = f->Append(more.data(), more.size());
  TERN_ASSERT_OK(at);
  EXPECT_EQ(*at, expect_at) << "append after reopen";
  ModelWrite(*at, more);
  ExpectModel(*f, "append after reopen");
}

TEST_F(FileIoTest, OTruncEmptiesAnExistingFile) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(80, 0, 3 * kBlockSize + 5));
  f.reset();
  auto r = File::Open(path_, O_RDWR | O_TRUNC);
  TERN_ASSERT_OK(r);
  f = std::move(r).value();
  ModelTruncate(0);
  ExpectModel(*f, "after O_TRUNC");
  Write(*f, 10, Pattern(81, 0, 20));  // bytes [0, 10) must be zeros, not old data
  ExpectModel(*f, "write after O_TRUNC");
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileIoTest, OAppendWritesAtEof) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  Write(*f, 0, Pattern(82, 0, 5000));
  f.reset();
  auto r = File::Open(path_, O_RDWR | O_APPEND);
  TERN_ASSERT_OK(r);
  f = std::move(r).value();
  std::vector<uint8_t> data = Pattern(83, 0, 100);
  auto n = f->Pwrite(data.data(), data.size(), 0);  // offset ignored under O_APPEND
  TERN_ASSERT_OK(n);
  EXPECT_EQ(*n, 100u);
  ModelWrite(5000, data);
  ExpectModel(*f, "O_APPEND write");
  ReopenAndExpect(f, "reopen");
}

TEST_F(FileIoTest, OExcl) {
  {
    auto r = File::Open(path_, O_RDWR | O_CREAT | O_EXCL, 0600);
    TERN_ASSERT_OK(r);
  }
  TERN_EXPECT_ERRNO(File::Open(path_, O_RDWR | O_CREAT | O_EXCL, 0600), EEXIST);
  auto f = File::Open(path_, O_RDWR);
  TERN_EXPECT_OK(f) << "the file O_EXCL created must still open";
}

TEST_F(FileIoTest, CreateHonoursMode) {
  mode_t old = umask(022);
  auto r = File::Open(path_, kCreate, 0640);
  umask(old);
  TERN_ASSERT_OK(r);
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(FileIoTest, AccessModeIsEnforced) {
  {
    auto f = Create();
    ASSERT_NE(f, nullptr);
    Write(*f, 0, Pattern(84, 0, 100));
  }
  {
    auto r = File::Open(path_, O_WRONLY);
    TERN_ASSERT_OK(r);
    char buf[10];
    TERN_EXPECT_ERRNO((*r)->Pread(buf, sizeof(buf), 0), EBADF);
  }
  {
    auto r = File::Open(path_, O_RDONLY);
    TERN_ASSERT_OK(r);
    char buf[10] = {};
    TERN_EXPECT_ERRNO((*r)->Pwrite(buf, sizeof(buf), 0), EBADF);
    TERN_EXPECT_ERRNO((*r)->Append(buf, sizeof(buf)), EBADF);
    TERN_EXPECT_ERRNO((*r)->Truncate(0), EINVAL);  // as ftruncate(2) on a read-only fd
    auto n = (*r)->Pread(buf, sizeof(buf), 0);
    TERN_ASSERT_OK(n);
    EXPECT_EQ(*n, 10u);
  }
  auto f = File::Open(path_, O_RDONLY);
  TERN_ASSERT_OK(f);
  ExpectModel(**f, "nothing changed through the read-only handle");
}

TEST_F(FileIoTest, OpenErrors) {
  TERN_EXPECT_ERRNO(File::Open(dir_.File("missing"), O_RDWR), ENOENT);
  TERN_EXPECT_ERRNO(File::Open(dir_.File("no/such/dir"), kCreate), ENOENT);
  TERN_EXPECT_ERRNO(File::Open(dir_.path(), O_RDWR), EISDIR);
  TERN_EXPECT_ERRNO(File::Open(dir_.path(), O_RDONLY), EISDIR);
}

TEST_F(FileIoTest, ForeignFileIsRefusedAndLeftUntouched) {
  std::vector<std::vector<uint8_t>> contents = {
      {'h', 'e', 'l', 'l', 'o'},
      std::vector<uint8_t>(kBlockSize, 0),  // a block of zeros is not a tern file either
      Pattern(85, 0, 3 * kBlockSize + 1),
  };
  const int flag_sets[] = {O_RDONLY, O_RDWR, O_WRONLY, O_RDWR | O_CREAT, O_RDWR | O_TRUNC,
                           O_RDWR | O_APPEND};
  for (const auto& content : contents) {
    ASSERT_TRUE(test::WritePlainFile(path_, content));
    struct stat before;
    ASSERT_EQ(stat(path_.c_str(), &before), 0);
    for (int flags : flag_sets) {
      TERN_EXPECT_ERRNO(File::Open(path_, flags), kNotTernFile)
          << "flags " << std::hex << flags << " size " << std::dec << content.size();
      EXPECT_EQ(test::ReadRawFile(path_), content) << "flags " << std::hex << flags;
    }
    struct stat after;
    ASSERT_EQ(stat(path_.c_str(), &after), 0);
    EXPECT_EQ(after.st_size, before.st_size);
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  }
  EXPECT_TRUE(dir_.ShmEntries().empty()) << "a refused open left shared state behind";
}

TEST_F(FileIoTest, EmptyFileOpenedReadOnlyIsNotTern) {
  ASSERT_TRUE(test::WritePlainFile(path_, {}));
  TERN_EXPECT_ERRNO(File::Open(path_, O_RDONLY), kNotTernFile);
  EXPECT_TRUE(test::ReadRawFile(path_).empty());
  // Writable, an empty file becomes a new tern file.
  auto r = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(r);
  auto f = std::move(r).value();
  Write(*f, 0, Pattern(86, 0, 10));
  ReopenAndExpect(f, "reopen read-only", O_RDONLY);
}

TEST_F(FileIoTest, TwoOpensSeeEachOthersWrites) {
  auto a = Create();
  ASSERT_NE(a, nullptr);
  auto r = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(r);
  auto b = std::move(r).value();
  Write(*a, 0, Pattern(87, 0, 6000));
  ExpectModel(*b, "b sees a's write");
  Write(*b, 3000, Pattern(88, 0, 10000));
  ExpectModel(*a, "a sees b's write");
  TERN_ASSERT_OK(a->Truncate(100));
  ModelTruncate(100);
  ExpectModel(*b, "b sees a's truncate");
  a.reset();
  ExpectModel(*b, "b after a closed");
}

TEST_F(FileIoTest, ManySmallWritesSpillIntoLogBlocks) {
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

TEST_F(FileIoTest, OverwritesAndTruncatesDoNotLeakBlocks) {
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

// A checkpoint longer than one bitmap word of blocks (more than ~16,000 runs) needs a contiguous
// run that a single allocator word cannot give; compaction once looped, growing the file until
// memory ran out. Every other block of a 40,000-block file is overwritten: ~40,000 runs.
TEST_F(FileIoTest, CompactionOfAFragmentedMapKeepsTheFileBounded) {
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

TEST_F(FileIoTest, AFragmentedFileReopensFromALargeCheckpoint) {
  // ~40,000 runs: the checkpoint (~640 KiB) is read through the kernel into huge pages, and the
  // table (10 chunks) takes chunks from a huge-page slab. Both must give back every byte.
  auto f = Create();
  ASSERT_NE(f, nullptr);
  constexpr uint64_t kBlocks = 40000;
  Write(*f, 0, Pattern(1, 0, kBlocks * kBlockSize));
  std::vector<uint8_t> block = Pattern(2, 0, kBlockSize);
  for (uint64_t b = 0; b < kBlocks; b += 2) Write(*f, b * kBlockSize, block);
  TERN_ASSERT_OK(f->Fsync());
  auto stats = f->core().Compact();
  TERN_ASSERT_OK(stats);
  ASSERT_GT(stats->checkpoint_runs, 30000u);
  // Closed for good (the background thread may hold the engine a moment longer), so that the
  // next open loads the checkpoint.
  auto close_and_settle = [](std::unique_ptr<File>& file) {
    std::weak_ptr<FileCore> core = file->core().shared_from_this();
    file.reset();
    while (!core.expired()) usleep(1000);
  };
  close_and_settle(f);
  {
    auto cold = File::Open(path_, O_RDWR);
    TERN_ASSERT_OK(cold);
    f = std::move(cold).value();
  }
  ExpectModel(*f, "cold reopen from the checkpoint");
  close_and_settle(f);
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

TEST_F(FileIoTest, SharedStateIsRemovedAtLastClose) {
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

TEST_F(FileIoTest, FsyncAndCounters) {
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

TEST_F(FileIoTest, WritesPastTheSizeLimitFail) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  char c = 'x';
  TERN_EXPECT_ERRNO(f->Pwrite(&c, 1, kMaxFileSize), EFBIG);
  ExpectModel(*f, "nothing written");
}

}  // namespace
}  // namespace tern
