// The engine through its public API (lib/file.h): aligned, unaligned, multi-block, huge, sparse and
// truncating writes, appends, open flags, foreign files — each checked byte for byte against a model
// of the content, before and after closing and reopening.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/layout_constants.h"
#include "tests/lib/file_model_fixture.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

constexpr int kCreate = O_RDWR | O_CREAT;

class FileIoTest : public test::FileModelTest {};

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

TEST_F(FileIoTest, WritesPastTheSizeLimitFail) {
  auto f = Create();
  ASSERT_NE(f, nullptr);
  char c = 'x';
  TERN_EXPECT_ERRNO(f->Pwrite(&c, 1, kMaxFileSize), EFBIG);
  ExpectModel(*f, "nothing written");
}

TEST_F(FileIoTest, AFileThatEndsAtTheSizeLimitOpensForWriting) {
  // A writable open prepares the table node where the next write lands, past the end: for a file
  // of the largest size there is none (the fuzzer found the out-of-range index).
  auto f = Create();
  ASSERT_NE(f, nullptr);
  char c = 'z';
  TERN_ASSERT_OK(f->Pwrite(&c, 1, kMaxFileSize - 1));
  f.reset();
  auto again = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(again);
  char got = 0;
  TERN_ASSERT_OK((*again)->Pread(&got, 1, kMaxFileSize - 1));
  EXPECT_EQ(got, 'z');
  TERN_EXPECT_ERRNO((*again)->Pwrite(&c, 1, kMaxFileSize), EFBIG);
}

}  // namespace
}  // namespace tern
