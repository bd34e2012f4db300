// DecodeCommit (lib/commit.h): valid inline and extended entries decode to what they say, and every
// kind of damage gives EUCLEAN without reading outside the blocks the resolver hands out. The fake
// media is one exactly-sized heap buffer, so an over-read shows under ASan.
#include "lib/commit.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "lib/crc32c.h"
#include "lib/entry_format.h"
#include "lib/ext_record_format.h"
#include "tests/test_util.h"

namespace tern {
namespace {

class FakeMedia : public BlockResolver {
 public:
  explicit FakeMedia(uint32_t nblocks)
      : nblocks_(nblocks), bytes_(new uint8_t[uint64_t{nblocks} * kBlockSize]()) {}

  const uint8_t* Resolve(LogicalBlock block, uint32_t count) override {
    if (uint64_t{block.value()} + count > nblocks_) return nullptr;
    return bytes_.get() + block.ToBytes();
  }
  uint8_t* At(uint32_t block, uint32_t offset) { return bytes_.get() + uint64_t{block} * kBlockSize + offset; }
  uint64_t nblocks() const { return nblocks_; }

  // Writes an extended record at (block, offset) and returns its commit entry.
  uint64_t PutRecord(uint32_t block, uint32_t offset, pmem::ExtKind kind, uint64_t new_size,
                     const std::vector<pmem::ExtRun>& runs) {
    pmem::ExtRecordHeader h{};
    h.magic = pmem::kExtMagic;
    h.kind = static_cast<uint8_t>(kind);
    h.nruns = static_cast<uint32_t>(runs.size());
    h.new_size = new_size;
    memcpy(At(block, offset), &h, sizeof(h));
    if (!runs.empty()) {
      memcpy(At(block, offset) + sizeof(h), runs.data(), runs.size() * sizeof(pmem::ExtRun));
    }
    Reseal(block, offset);
    return pmem::EncodeExtended({LogicalBlock(block), offset});
  }
  // Recomputes the record's crc after a test changed it, so only the intended damage remains.
  void Reseal(uint32_t block, uint32_t offset) {
    pmem::ExtRecordHeader h;
    memcpy(&h, At(block, offset), sizeof(h));
    h.crc = 0;
    uint32_t crc = Crc32c(&h, sizeof(h));
    crc = Crc32c(At(block, offset) + sizeof(h), uint64_t{h.nruns} * sizeof(pmem::ExtRun), crc);
    h.crc = crc;
    memcpy(At(block, offset), &h, sizeof(h));
  }
  pmem::ExtRecordHeader* Header(uint32_t block, uint32_t offset) {
    return reinterpret_cast<pmem::ExtRecordHeader*>(At(block, offset));
  }
  pmem::ExtRun* Runs(uint32_t block, uint32_t offset) {
    return reinterpret_cast<pmem::ExtRun*>(At(block, offset) + sizeof(pmem::ExtRecordHeader));
  }

 private:
  uint64_t nblocks_;
  std::unique_ptr<uint8_t[]> bytes_;
};

constexpr uint32_t kBlocks = 64;

Result<Commit> Decode(FakeMedia& m, uint64_t entry, bool verify_crc = true) {
  return DecodeCommit(entry, m.nblocks(), m, verify_crc);
}

std::vector<MapRun> RunsOf(const Commit& c) {
  std::vector<MapRun> out;
  c.ForEachRun([&](const MapRun& r) { out.push_back(r); });
  return out;
}

TEST(DecodeCommitTest, FreeWordIsNotACommit) {
  FakeMedia m(kBlocks);
  TERN_EXPECT_ERRNO(Decode(m, 0), EUCLEAN);
}

TEST(DecodeCommitTest, InlineEntries) {
  FakeMedia m(kBlocks);
  for (bool extend : {true, false}) {
    uint64_t w = pmem::EncodeInline({VirtualBlock(100), LogicalBlock(10), 5, extend});
    auto c = Decode(m, w);
    TERN_ASSERT_OK(c);
    EXPECT_EQ(c->size_rule, extend ? Commit::SizeRule::kExtendToEnd : Commit::SizeRule::kKeep);
    EXPECT_FALSE(c->unmap_beyond);
    EXPECT_EQ(c->record.count, 0u);
    auto runs = RunsOf(*c);
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].vblock.value(), 100u);
    EXPECT_EQ(runs[0].lblock.value(), 10u);
    EXPECT_EQ(runs[0].count, 5u);
  }
}

TEST(DecodeCommitTest, InlineEntryEndingAtTheLastBlockIsValid) {
  FakeMedia m(kBlocks);
  TERN_EXPECT_OK(Decode(m, pmem::EncodeInline({VirtualBlock(0), LogicalBlock(kBlocks - 3), 3, true})));
}

TEST(DecodeCommitTest, InlineLogicalBlockOutOfRange) {
  FakeMedia m(kBlocks);
  TERN_EXPECT_ERRNO(Decode(m, pmem::EncodeInline({VirtualBlock(0), LogicalBlock(kBlocks - 2), 3, true})),
                    EUCLEAN);
  TERN_EXPECT_ERRNO(Decode(m, pmem::EncodeInline({VirtualBlock(0), LogicalBlock(kBlocks), 1, true})),
                    EUCLEAN);
}

// A damaged word can name virtual blocks [2^28 - 1, 2^28 + 62): past the 1 TiB limit, past the end
// of every block table sized for kMaxBlocks. The encoder never writes it (FitsInline), so the
// decoder must refuse it rather than hand the replay an index it cannot store.
TEST(DecodeCommitTest, InlineVirtualRangePastTheFileLimit) {
  FakeMedia m(kBlocks);
  uint64_t w = pmem::EncodeInline({VirtualBlock(kMaxBlocks - 1), LogicalBlock(1), 63, true});
  ASSERT_FALSE(pmem::FitsInline(VirtualBlock(kMaxBlocks - 1), LogicalBlock(1), 63));
  TERN_EXPECT_ERRNO(Decode(m, w), EUCLEAN);
}

TEST(DecodeCommitTest, ExtendedWriteRecord) {
  FakeMedia m(kBlocks);
  std::vector<pmem::ExtRun> runs = {{0, 5, 3, 0}, {100, 0, 7, 0}, {7, 20, 1, 0}};
  uint64_t w = m.PutRecord(4, 128, pmem::ExtKind::kWrite, 12345, runs);
  auto c = Decode(m, w);
  TERN_ASSERT_OK(c);
  EXPECT_EQ(c->size_rule, Commit::SizeRule::kSet);
  EXPECT_EQ(c->size, 12345u);
  EXPECT_FALSE(c->unmap_beyond);
  EXPECT_EQ(c->record.start.value(), 4u);
  EXPECT_EQ(c->record.count, 1u);
  auto got = RunsOf(*c);
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < runs.size(); ++i) {
    EXPECT_EQ(got[i].vblock.value(), runs[i].vblock) << i;
    EXPECT_EQ(got[i].lblock.value(), runs[i].lblock) << i;
    EXPECT_EQ(got[i].count, runs[i].nblocks) << i;
  }
}

TEST(DecodeCommitTest, ExtendedTruncateRecord) {
  FakeMedia m(kBlocks);
  uint64_t w = m.PutRecord(3, 0, pmem::ExtKind::kTruncate, 5000, {});
  auto c = Decode(m, w);
  TERN_ASSERT_OK(c);
  EXPECT_TRUE(c->unmap_beyond);
  EXPECT_EQ(c->size, 5000u);
  EXPECT_EQ(c->nruns, 0u);
  EXPECT_TRUE(RunsOf(*c).empty());
}

TEST(DecodeCommitTest, ExtendedRecordSpanningBlocks) {
  FakeMedia m(kBlocks);
  std::vector<pmem::ExtRun> runs;
  for (uint32_t i = 0; i < 300; ++i) runs.push_back({i * 2, 30 + (i % 20), 1, 0});  // 4824 bytes
  uint64_t w = m.PutRecord(8, 4000, pmem::ExtKind::kWrite, 600 * 4096, runs);
  auto c = Decode(m, w);
  TERN_ASSERT_OK(c);
  EXPECT_EQ(c->record.start.value(), 8u);
  EXPECT_EQ(c->record.count, 3u);  // 4000 + 24 + 4800 bytes -> blocks 8, 9, 10
  auto got = RunsOf(*c);
  ASSERT_EQ(got.size(), 300u);
  EXPECT_EQ(got[299].vblock.value(), 598u);
  EXPECT_EQ(got[299].lblock.value(), 30u + 299 % 20);
}

TEST(DecodeCommitTest, ExtendedBadCrc) {
  FakeMedia m(kBlocks);
  uint64_t w = m.PutRecord(4, 0, pmem::ExtKind::kWrite, 8192, {{0, 5, 2, 0}});
  m.Runs(4, 0)[0].lblock = 6;  // damage a run, keep the old crc
  TERN_EXPECT_ERRNO(Decode(m, w, /*verify_crc=*/true), EUCLEAN);
  TERN_EXPECT_OK(Decode(m, w, /*verify_crc=*/false));  // crc is checked once, at replay
  m.Header(4, 0)->crc ^= 1;
  m.Runs(4, 0)[0].lblock = 5;
  TERN_EXPECT_ERRNO(Decode(m, w, /*verify_crc=*/true), EUCLEAN);
}

TEST(DecodeCommitTest, ExtendedHeaderDamage) {
  struct Case {
    const char* what;
    void (*damage)(pmem::ExtRecordHeader*);
  };
  const Case cases[] = {
      {"magic", [](pmem::ExtRecordHeader* h) { h->magic = 0x1234; }},
      {"kind 0", [](pmem::ExtRecordHeader* h) { h->kind = 0; }},
      {"kind 3", [](pmem::ExtRecordHeader* h) { h->kind = 3; }},
      {"reserved0", [](pmem::ExtRecordHeader* h) { h->reserved0 = 1; }},
      {"reserved1", [](pmem::ExtRecordHeader* h) { h->reserved1 = 1; }},
      {"size past 1 TiB", [](pmem::ExtRecordHeader* h) { h->new_size = kMaxFileSize + 1; }},
      {"nruns past the media", [](pmem::ExtRecordHeader* h) { h->nruns = 100000; }},
      {"nruns ~0", [](pmem::ExtRecordHeader* h) { h->nruns = 0xFFFFFFFFu; }},
  };
  for (const Case& k : cases) {
    FakeMedia m(kBlocks);
    uint64_t w = m.PutRecord(4, 16, pmem::ExtKind::kWrite, 8192, {{0, 5, 2, 0}});
    TERN_ASSERT_OK(Decode(m, w));
    k.damage(m.Header(4, 16));
    if (m.Header(4, 16)->nruns < 1000) m.Reseal(4, 16);  // only the intended damage remains
    TERN_EXPECT_ERRNO(Decode(m, w), EUCLEAN) << k.what;
  }
}

TEST(DecodeCommitTest, ExtendedRunDamage) {
  struct Case {
    const char* what;
    pmem::ExtRun run;
  };
  const Case cases[] = {
      {"reserved", {0, 5, 2, 1}},
      {"zero length", {0, 5, 0, 0}},
      {"logical end past the media", {0, kBlocks - 1, 2, 0}},
      {"logical start past the media", {0, kBlocks + 10, 1, 0}},
      {"virtual end past 1 TiB", {kMaxBlocks - 1, 5, 2, 0}},
  };
  for (const Case& k : cases) {
    FakeMedia m(kBlocks);
    uint64_t w = m.PutRecord(4, 0, pmem::ExtKind::kWrite, 8192, {{9, 6, 1, 0}, k.run});
    TERN_EXPECT_ERRNO(Decode(m, w), EUCLEAN) << k.what;
  }
  FakeMedia m(kBlocks);
  uint64_t hole = m.PutRecord(4, 0, pmem::ExtKind::kWrite, 8192, {{0, 0, 40, 0}});
  TERN_EXPECT_OK(Decode(m, hole)) << "an unmapping run (lblock 0) names no media block";
}

TEST(DecodeCommitTest, ExtendedPointerOutOfRange) {
  FakeMedia m(kBlocks);
  TERN_EXPECT_ERRNO(Decode(m, pmem::EncodeExtended({LogicalBlock(kBlocks), 0})), EUCLEAN);
  TERN_EXPECT_ERRNO(Decode(m, pmem::EncodeExtended({LogicalBlock(0xFFFFFFF0u), 0})), EUCLEAN);
  TERN_EXPECT_ERRNO(Decode(m, pmem::EncodeExtended({LogicalBlock(5), 64}) | (uint64_t{1} << 20)),
                    EUCLEAN);
}

// A header that would straddle the end of its block is refused; and the check comes before any
// read, so a pointer at the last 8 bytes of the last block does not read past the media.
TEST(DecodeCommitTest, ExtendedHeaderAtTheEndOfTheLastBlock) {
  FakeMedia m(kBlocks);
  memset(m.At(kBlocks - 1, 0), 0xAB, kBlockSize);
  TERN_EXPECT_ERRNO(Decode(m, pmem::EncodeExtended({LogicalBlock(kBlocks - 1), kBlockSize - 8})),
                    EUCLEAN);
}

TEST(DecodeCommitTest, ExtendedRecordRunningPastTheLastBlock) {
  FakeMedia m(kBlocks);
  // Header fits in the last block; runs would continue into a block that does not exist.
  pmem::ExtRecordHeader h{};
  h.magic = pmem::kExtMagic;
  h.kind = static_cast<uint8_t>(pmem::ExtKind::kWrite);
  h.nruns = 10;
  h.new_size = 4096;
  memcpy(m.At(kBlocks - 1, 4064), &h, sizeof(h));
  TERN_EXPECT_ERRNO(Decode(m, pmem::EncodeExtended({LogicalBlock(kBlocks - 1), 4064})), EUCLEAN);
}

}  // namespace
}  // namespace tern
