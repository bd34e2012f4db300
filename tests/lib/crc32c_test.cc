// CRC-32C (lib/crc32c.h) against published check values, and chaining through the seed.
#include "lib/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace tern {
namespace {

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);  // the standard check value
  EXPECT_EQ(Crc32c("", 0), 0u);
  // RFC 3720 (iSCSI) B.4 test vectors.
  std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF), inc(32), dec(32);
  for (size_t i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(inc.data(), inc.size()), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(dec.data(), dec.size()), 0x113FDB5Cu);
}

TEST(Crc32cTest, InstructionAndTableAgree) {
  std::vector<uint8_t> data(4096 + 13);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + (i >> 7));
  for (size_t len : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{63}, data.size()}) {
    for (size_t start : {size_t{0}, size_t{3}}) {
      EXPECT_EQ(Crc32c(data.data() + start, len - (len > start ? start : 0), 0x1234),
                Crc32cPortable(data.data() + start, len - (len > start ? start : 0), 0x1234))
          << "len " << len << " start " << start;
    }
  }
}

// Inputs of 12 KiB and more are summed as three interleaved streams joined by a shift: every
// length around the stripe edges must give the table's sum.
TEST(Crc32cTest, InterleavedStreamsAgreeWithTheTable) {
  std::vector<uint8_t> data(5 * 12288 + 77);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 197 + (i >> 9) + 5);
  for (size_t len : {size_t{12287}, size_t{12288}, size_t{12289}, size_t{12296}, size_t{24576}, size_t{30000},
                     data.size() - 1, data.size()}) {
    EXPECT_EQ(Crc32c(data.data(), len, 0xabcdef), Crc32cPortable(data.data(), len, 0xabcdef)) << "len " << len;
    EXPECT_EQ(Crc32c(data.data() + 1, len - 1), Crc32cPortable(data.data() + 1, len - 1)) << "len " << len;
  }
}

TEST(Crc32cTest, SeedChainsPieces) {
  const char* text = "the quick brown fox jumps over the lazy dog";
  size_t len = strlen(text);
  uint32_t whole = Crc32c(text, len);
  for (size_t split = 0; split <= len; ++split) {
    uint32_t part = Crc32c(text, split);
    EXPECT_EQ(Crc32c(text + split, len - split, part), whole) << "split at " << split;
  }
}

TEST(Crc32cTest, EverySingleBitFlipChangesTheSum) {
  std::vector<uint8_t> buf(64);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 7 + 3);
  uint32_t base = Crc32c(buf.data(), buf.size());
  for (size_t bit = 0; bit < buf.size() * 8; ++bit) {
    buf[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_NE(Crc32c(buf.data(), buf.size()), base) << "bit " << bit;
    buf[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  }
}

}  // namespace
}  // namespace tern
