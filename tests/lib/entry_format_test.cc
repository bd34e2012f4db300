// The 8-byte commit entry codec (lib/entry_format.h): round trips of every kind at the edges of
// every field, and rejection of words that are not well-formed entries.
#include "lib/entry_format.h"

#include <gtest/gtest.h>

#include <random>

namespace tern::pmem {
namespace {

constexpr uint32_t kIndexLimit = 1u << kInlineIndexBits;

TEST(EntryFormatTest, FreeSlotIsZeroAndDecodesAsNothing) {
  EXPECT_EQ(TagOf(0), EntryTag::kFree);
  EXPECT_FALSE(DecodeInline(0).has_value());
  EXPECT_FALSE(DecodeExtended(0).has_value());
}

TEST(EntryFormatTest, InlineRoundTripAtFieldEdges) {
  const uint32_t vblocks[] = {0, 1, 4095, 12345, kIndexLimit - 64, kIndexLimit - 63};
  const uint32_t lblocks[] = {1, 2, 511, 99999, kIndexLimit - 64, kIndexLimit - 63};
  const uint32_t counts[] = {1, 2, 31, 62, 63};
  for (uint32_t v : vblocks) {
    for (uint32_t l : lblocks) {
      for (uint32_t count : counts) {
        for (bool extend : {false, true}) {
          InlineEntry e{VirtualBlock(v), LogicalBlock(l), count, extend};
          ASSERT_TRUE(FitsInline(e.vblock, e.lblock, e.count)) << v << " " << l << " " << count;
          uint64_t word = EncodeInline(e);
          ASSERT_NE(word, 0u);
          EXPECT_EQ(TagOf(word), extend ? EntryTag::kInlineExtend : EntryTag::kInlineKeepSize);
          auto d = DecodeInline(word);
          ASSERT_TRUE(d.has_value()) << std::hex << word;
          EXPECT_EQ(d->vblock, e.vblock);
          EXPECT_EQ(d->lblock, e.lblock);
          EXPECT_EQ(d->count, count);
          EXPECT_EQ(d->extend, extend);
          EXPECT_FALSE(DecodeExtended(word).has_value()) << "inline word read as extended";
        }
      }
    }
  }
}

TEST(EntryFormatTest, InlineFieldsDoNotBleedIntoEachOther) {
  // All-ones in one field and zeros (where allowed) in the others: a shift or mask error moves bits.
  InlineEntry a{VirtualBlock(kIndexLimit - 64), LogicalBlock(1), 63, true};
  auto da = DecodeInline(EncodeInline(a));
  ASSERT_TRUE(da.has_value());
  EXPECT_EQ(da->vblock.value(), kIndexLimit - 64);
  EXPECT_EQ(da->lblock.value(), 1u);
  EXPECT_EQ(da->count, 63u);

  InlineEntry b{VirtualBlock(0), LogicalBlock(kIndexLimit - 63), 1, false};
  auto db = DecodeInline(EncodeInline(b));
  ASSERT_TRUE(db.has_value());
  EXPECT_EQ(db->vblock.value(), 0u);
  EXPECT_EQ(db->lblock.value(), kIndexLimit - 63);
  EXPECT_EQ(db->count, 1u);
  EXPECT_FALSE(db->extend);
}

TEST(EntryFormatTest, FitsInlineRejectsWhatTheWordCannotHold) {
  EXPECT_FALSE(FitsInline(VirtualBlock(0), LogicalBlock(1), 0)) << "count 0";
  EXPECT_FALSE(FitsInline(VirtualBlock(0), LogicalBlock(1), 64)) << "count 64";
  EXPECT_FALSE(FitsInline(VirtualBlock(0), kNoBlock, 1)) << "logical block 0 is the meta block";
  EXPECT_FALSE(FitsInline(VirtualBlock(kIndexLimit - 1), LogicalBlock(1), 2)) << "vblock overflow";
  EXPECT_FALSE(FitsInline(VirtualBlock(kIndexLimit), LogicalBlock(1), 1)) << "vblock 2^28";
  EXPECT_FALSE(FitsInline(VirtualBlock(0), LogicalBlock(kIndexLimit - 1), 2)) << "lblock overflow";
  EXPECT_FALSE(FitsInline(VirtualBlock(0), LogicalBlock(kIndexLimit), 1)) << "lblock 2^28";
  EXPECT_TRUE(FitsInline(VirtualBlock(kIndexLimit - 1), LogicalBlock(kIndexLimit - 1), 1));
}

TEST(EntryFormatTest, DecodeInlineRejectsMalformedWords) {
  uint64_t good = EncodeInline({VirtualBlock(7), LogicalBlock(9), 3, true});
  // Count 0.
  EXPECT_FALSE(DecodeInline(good & ~(uint64_t{0x3F} << 2)).has_value());
  // Logical block 0 (the meta block can never hold data).
  EXPECT_FALSE(DecodeInline(good & ~(~uint64_t{0} << 36)).has_value());
  // Tags that are not inline.
  EXPECT_FALSE(DecodeInline((good & ~uint64_t{3}) | 3).has_value());
  EXPECT_FALSE(DecodeInline(good & ~uint64_t{3}).has_value());
}

TEST(EntryFormatTest, ExtendedRoundTrip) {
  const uint32_t blocks[] = {1, 2, 4095, kIndexLimit, 0xFFFFFFFFu};
  for (uint32_t block : blocks) {
    for (uint32_t offset = 0; offset < kBlockSize; offset += 8) {
      uint64_t word = EncodeExtended({LogicalBlock(block), offset});
      ASSERT_EQ(TagOf(word), EntryTag::kExtended);
      auto d = DecodeExtended(word);
      ASSERT_TRUE(d.has_value()) << block << "@" << offset;
      EXPECT_EQ(d->block.value(), block);
      EXPECT_EQ(d->offset, offset);
      EXPECT_FALSE(DecodeInline(word).has_value()) << "extended word read as inline";
    }
  }
}

TEST(EntryFormatTest, DecodeExtendedRejectsMalformedWords) {
  uint64_t good = EncodeExtended({LogicalBlock(5), 64});
  ASSERT_TRUE(DecodeExtended(good).has_value());
  for (int bit = 11; bit < 32; ++bit) {
    EXPECT_FALSE(DecodeExtended(good | (uint64_t{1} << bit)).has_value()) << "reserved bit " << bit;
  }
  EXPECT_FALSE(DecodeExtended(good & 0xFFFFFFFFull).has_value()) << "record in block 0";
  EXPECT_FALSE(DecodeExtended((good & ~uint64_t{3}) | 1).has_value()) << "inline tag";
  EXPECT_FALSE(DecodeExtended((good & ~uint64_t{3}) | 2).has_value()) << "inline tag";
}

TEST(EntryFormatTest, EveryDecodedRandomWordReencodesToItself) {
  // Whatever a decoder accepts must be exactly what the encoder would write for it: no ignored bits
  // that a torn or corrupted word could set unnoticed.
  std::mt19937_64 rng(42);
  int inline_hits = 0, extended_hits = 0;
  for (int i = 0; i < 200000; ++i) {
    uint64_t w = rng();
    if (i % 2 == 0) w &= ~(uint64_t{0x1FFFFF} << 11);  // make extended words plausible
    if (auto e = DecodeInline(w)) {
      ++inline_hits;
      ASSERT_EQ(EncodeInline(*e), w) << std::hex << w;
    }
    if (auto p = DecodeExtended(w)) {
      ++extended_hits;
      ASSERT_EQ(p->offset % 8, 0u);
      ASSERT_LT(p->offset, kBlockSize);
      ASSERT_EQ(EncodeExtended(*p), w) << std::hex << w;
    }
  }
  EXPECT_GT(inline_hits, 1000);
  EXPECT_GT(extended_hits, 1000);
}

}  // namespace
}  // namespace tern::pmem
