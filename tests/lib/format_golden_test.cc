// The worked example of doc/format/file.md, byte for byte: a file made by the engine holds exactly
// the entries and records the format page shows. A change to the on-media encoding fails here
// (and must come with a format version bump and an updated page).
#include <fcntl.h>

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "lib/crc32c.h"
#include "lib/ext_record_format.h"
#include "lib/file.h"
#include "lib/layout_constants.h"
#include "lib/meta_block_format.h"
#include "tests/test_util.h"

namespace tern {
namespace {

TEST(FormatGoldenTest, WorkedExampleOfTheFormatPage) {
  test::TempDir dir;
  std::string path = dir.File("f");
  {
    auto r = File::Open(path, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(r);
    File& f = **r;
    std::vector<uint8_t> block = test::Pattern(1, 0, kBlockSize);
    auto n = f.Pwrite(block.data(), block.size(), 0);  // 1. 4096 bytes at 0
    TERN_ASSERT_OK(n);
    std::vector<uint8_t> hundred = test::Pattern(2, 0, 100);
    auto at = f.Append(hundred.data(), hundred.size());  // 2. append 100 bytes
    TERN_ASSERT_OK(at);
    EXPECT_EQ(*at, 4096u);
    TERN_ASSERT_OK(f.Truncate(1000));  // 3. truncate to 1000
  }
  std::vector<uint8_t> raw = test::ReadRawFile(path);
  ASSERT_EQ(raw.size(), 64u << 10) << "a fresh file's backing is 64 KiB";
  auto word = [&](uint64_t off) {
    uint64_t v;
    memcpy(&v, raw.data() + off, 8);
    return v;
  };

  pmem::MetaHeader h;
  memcpy(&h, raw.data(), sizeof(h));
  EXPECT_EQ(memcmp(raw.data(), "NRFILES1", 8), 0);
  EXPECT_EQ(h.format_version, 1u);
  EXPECT_EQ(h.log_head, 0u);
  EXPECT_EQ(h.flags, 0u);
  pmem::MetaHeader zeroed = h;
  zeroed.checksum = 0;
  zeroed.log_head = 0;
  EXPECT_EQ(h.checksum, Crc32c(&zeroed, sizeof(zeroed)));

  const uint64_t slots = offsetof(pmem::MetaBlock, slots);
  EXPECT_EQ(word(slots + 0), 0x0000001000000005ull) << "slot 0: inline, extend, 1 block, v0 -> l1";
  EXPECT_EQ(word(slots + 8), 0x0000000300000003ull) << "slot 1: record in block 3 at offset 0";
  EXPECT_EQ(word(slots + 16), 0x0000000300000017ull) << "slot 2: record in block 3 at offset 40";
  EXPECT_EQ(word(slots + 24), 0u) << "slot 3 is the tail";

  const uint8_t record1[] = {0x45, 0x58, 0x01, 0x00, 0xb3, 0x37, 0xcc, 0x73, 0x01, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00, 0x64, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                             0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00};
  const uint8_t record2[] = {0x45, 0x58, 0x02, 0x00, 0x11, 0xd7, 0x97, 0x20, 0x01, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00};
  const uint64_t b3 = 3 * kBlockSize;
  EXPECT_EQ(test::FirstDifference(raw.data() + b3, record1, sizeof(record1)), -1) << "write record";
  EXPECT_EQ(test::FirstDifference(raw.data() + b3 + 40, record2, sizeof(record2)), -1) << "truncate record";

  // Data: block 1 holds the first write, block 2 the append (zeros after it), block 4 the
  // truncated copy of block 1 (zeros past 1000).
  std::vector<uint8_t> want = test::Pattern(1, 0, kBlockSize);
  EXPECT_EQ(test::FirstDifference(raw.data() + kBlockSize, want.data(), want.size()), -1);
  want.assign(kBlockSize, 0);
  std::vector<uint8_t> hundred = test::Pattern(2, 0, 100);
  std::copy(hundred.begin(), hundred.end(), want.begin());
  EXPECT_EQ(test::FirstDifference(raw.data() + 2 * kBlockSize, want.data(), want.size()), -1);
  want = test::Pattern(1, 0, kBlockSize);
  std::fill(want.begin() + 1000, want.end(), 0);
  EXPECT_EQ(test::FirstDifference(raw.data() + 4 * kBlockSize, want.data(), want.size()), -1);
}

}  // namespace
}  // namespace tern
