// The recovery rule of doc/format/file.md: commit slots are flushed lazily (Fsync flushes them), so
// a power failure can lose a cache line of slots while a later line reached the media — a gap. The
// log then ends at the gap; the first opener scrubs every entry after it (and unlinks later log
// blocks), so an entry that was never acknowledged cannot come back when new commits fill the gap;
// and everything Fsync acknowledged before the gap is intact.
//
// The images are made the way such a failure would leave them: a closed file whose slots of one
// whole 64-byte line (8 slots, a line is written back as a unit) are zeroed, later lines kept.
#include <fcntl.h>

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "lib/file.h"
#include "lib/layout_constants.h"
#include "lib/log_block_format.h"
#include "lib/meta_block_format.h"
#include "tests/test_util.h"

namespace tern {
namespace {

constexpr uint64_t kSlotsPerLine = kCacheLine / sizeof(uint64_t);

struct W {
  uint64_t off;
  std::vector<uint8_t> data;
};

class RecoveryTest : public ::testing::Test {
 protected:
  // Commits the writes, one log entry each, with an Fsync after write `fsync_after` (if any).
  void Commit(const std::vector<W>& writes, int64_t fsync_after = -1) {
    auto r = File::Open(path_, O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(r.ok()) << test::Describe(r.status());
    for (size_t i = 0; i < writes.size(); ++i) {
      auto n = (*r)->Pwrite(writes[i].data.data(), writes[i].data.size(), writes[i].off);
      ASSERT_TRUE(n.ok());
      if (static_cast<int64_t>(i) == fsync_after) {
        TERN_ASSERT_OK((*r)->Fsync());
      }
      writes_.push_back(writes[i]);
    }
    // Closed for good before the test damages the file: the Pool's thread, growing it ahead, may
    // hold it a moment past the close.
    test::CloseAndSettle(std::move(*r));
  }

  // Content after the first `k` writes, then `extra`.
  std::vector<uint8_t> Model(size_t k, const std::vector<W>& extra = {}) const {
    std::vector<uint8_t> m;
    auto apply = [&](const W& w) {
      if (m.size() < w.off + w.data.size()) m.resize(w.off + w.data.size(), 0);
      std::copy(w.data.begin(), w.data.end(), m.begin() + static_cast<ptrdiff_t>(w.off));
    };
    for (size_t i = 0; i < k; ++i) apply(writes_[i]);
    for (const W& w : extra) apply(w);
    return m;
  }

  // File offset of the slot at log position pos, following the chain on disk.
  uint64_t SlotOffset(uint64_t pos) const {
    if (pos < pmem::kMetaSlots) return offsetof(pmem::MetaBlock, slots) + 8 * pos;
    std::vector<uint8_t> raw = test::ReadRawFile(path_);
    uint32_t block;
    memcpy(&block, raw.data() + offsetof(pmem::MetaHeader, log_head), 4);
    for (uint64_t k = (pos - pmem::kMetaSlots) / pmem::kLogSlots; k > 0; --k) block = NextOf(raw, block);
    return uint64_t{block} * kBlockSize + 8 * ((pos - pmem::kMetaSlots) % pmem::kLogSlots);
  }
  static uint32_t NextOf(const std::vector<uint8_t>& raw, uint32_t block) {
    uint32_t next;
    memcpy(&next, raw.data() + uint64_t{block} * kBlockSize + offsetof(pmem::LogBlock, trailer) +
                      offsetof(pmem::LogBlockTrailer, next), 4);
    return next;
  }
  uint64_t RawWord(uint64_t offset) const {
    std::vector<uint8_t> raw = test::ReadRawFile(path_);
    uint64_t v;
    memcpy(&v, raw.data() + offset, 8);
    return v;
  }

  // Loses the line of slots starting at log position `pos` (a multiple of 8).
  void LoseLine(uint64_t pos) {
    ASSERT_EQ(SlotOffset(pos) % kCacheLine, 0u) << "not the start of a line";
    std::vector<uint8_t> zeros(kCacheLine, 0);
    ASSERT_TRUE(test::WriteRawBytes(path_, SlotOffset(pos), zeros.data(), zeros.size()));
  }

  void ExpectContent(const std::vector<uint8_t>& want, const char* when) {
    auto r = File::Open(path_, O_RDONLY);
    ASSERT_TRUE(r.ok()) << when << ": " << test::Describe(r.status());
    auto got = test::ReadAll(**r);
    ASSERT_TRUE(got.ok());
    int64_t d = test::FirstDifference(*got, want);
    EXPECT_EQ(d, -1) << when << ": first wrong byte at " << d << " (virtual block " << d / kBlockSize
                     << "), size " << got->size() << " vs " << want.size();
  }

  // Writes that each map a fresh block and never supersede one (nothing is freed).
  static std::vector<W> FreshBlockWrites(uint32_t count) {
    std::vector<W> out;
    for (uint32_t i = 0; i < count; ++i) out.push_back({uint64_t{i} * kBlockSize, test::Pattern(i + 1, 0, kBlockSize)});
    return out;
  }

  test::TempDir dir_;
  std::string path_ = dir_.File("f");
  std::vector<W> writes_;
};

TEST_F(RecoveryTest, LostLineOfMetaSlotsEndsTheLogAndIsScrubbed) {
  Commit(FreshBlockWrites(80));
  const uint64_t gap = 32;
  LoseLine(gap);
  ExpectContent(Model(gap), "after the lost line");
  for (uint64_t pos = gap; pos < 80; ++pos) EXPECT_EQ(RawWord(SlotOffset(pos)), 0u) << "slot " << pos << " not scrubbed";
  // New commits fill the gap; the dropped entries stay dropped.
  std::vector<W> extra;
  for (uint32_t i = 0; i < 20; ++i) extra.push_back({(i % 16) * kBlockSize + 3000, test::Pattern(1000 + i, 0, 200)});
  {
    auto r = File::Open(path_, O_RDWR);
    TERN_ASSERT_OK(r);
    for (const W& w : extra) {
      TERN_ASSERT_OK((*r)->Pwrite(w.data.data(), w.data.size(), w.off));
    }
  }
  ExpectContent(Model(gap, extra), "after new commits over the gap");
}

TEST_F(RecoveryTest, LostLineInALogBlockUnlinksTheBlocksAfterIt) {
  Commit(FreshBlockWrites(1300));  // meta slots, one full log block, part of a second
  const uint64_t gap = pmem::kMetaSlots + 104;
  const uint64_t first_log_block = SlotOffset(pmem::kMetaSlots) / kBlockSize;
  const uint64_t next_field = first_log_block * kBlockSize + offsetof(pmem::LogBlock, trailer) +
                              offsetof(pmem::LogBlockTrailer, next);
  ASSERT_NE(RawWord(next_field) & 0xFFFFFFFF, 0u) << "the first log block should link a second";
  LoseLine(gap);
  ExpectContent(Model(gap), "after the lost line");
  EXPECT_EQ(RawWord(next_field) & 0xFFFFFFFF, 0u) << "the log block after the tail is still linked";
  for (uint64_t pos = gap; pos < pmem::kMetaSlots + pmem::kLogSlots; ++pos) {
    ASSERT_EQ(RawWord(first_log_block * kBlockSize + 8 * (pos - pmem::kMetaSlots)), 0u) << "slot " << pos;
  }
  // Enough new commits to fill the first log block and link a fresh second one.
  std::vector<W> extra;
  for (uint32_t i = 0; i < 600; ++i) {
    extra.push_back({(i % 16) * kBlockSize + 2000 + (i % 30) * 8, test::Pattern(5000 + i, 0, 24)});
  }
  {
    auto r = File::Open(path_, O_RDWR);
    TERN_ASSERT_OK(r);
    for (const W& w : extra) {
      TERN_ASSERT_OK((*r)->Pwrite(w.data.data(), w.data.size(), w.off));
    }
  }
  ExpectContent(Model(gap, extra), "after new commits past the old second block");
}

// Overwrites supersede blocks. A write whose commit lands after the last Fsync frees the block it
// superseded at once, and the next writes may reuse it. If a power failure then loses that commit's
// slot line, the durable prefix of the log still maps the freed block — which must therefore still
// hold what the prefix says, in particular data an Fsync acknowledged.
TEST_F(RecoveryTest, FsyncedDataSurvivesALostLineOfSlots) {
  // Room for every write: a writer short of blocks makes its log durable before it reuses what
  // its commits superseded, and a power failure then could not lose those commits' slots.
  test::CreateRoomyFile(path_, 2u << 20);
  std::vector<W> writes;
  writes.push_back({0, test::Pattern(1, 0, 16 * kBlockSize)});
  for (uint32_t i = 1; i < 80; ++i) {
    uint64_t off = (i * 7 % 16) * kBlockSize + (i % 50) * 40;  // in place: supersedes a block
    writes.push_back({off, test::Pattern(i + 1, off, 40)});
  }
  const int64_t fsync_after = 25;
  Commit(writes, fsync_after);
  const uint64_t gap = 32;  // entries 26..31 survived by chance, the line 32..39 did not
  LoseLine(gap);
  std::vector<uint8_t> want = Model(gap);
  ExpectContent(want, "after the lost line");
  // The same, said about acknowledged writes alone: each fsynced write's bytes are there unless a
  // surviving later write covers them.
  auto r = File::Open(path_, O_RDONLY);
  TERN_ASSERT_OK(r);
  auto got = test::ReadAll(**r);
  TERN_ASSERT_OK(got);
  for (int64_t i = 0; i <= fsync_after; ++i) {
    const W& w = writes_[static_cast<size_t>(i)];
    for (uint64_t b = 0; b < w.data.size(); ++b) {
      uint64_t at = w.off + b;
      bool covered_later = false;
      for (uint64_t j = static_cast<uint64_t>(i) + 1; j < gap; ++j) {
        covered_later |= writes_[j].off <= at && at < writes_[j].off + writes_[j].data.size();
      }
      if (covered_later) continue;
      ASSERT_LT(at, got->size());
      ASSERT_EQ((*got)[at], w.data[b]) << "fsynced write " << i << " lost its byte at offset " << at;
    }
  }
}

// The plainest power failure: no slot after the last Fsync reached the media. The log on media ends
// at the Fsync, and must read back as it was then — even though the writes after it freed (and
// reused) blocks that this durable log still maps.
TEST_F(RecoveryTest, FsyncedStateSurvivesLosingEverythingAfterTheFsync) {
  // Room for every write: a writer short of blocks makes its log durable before it reuses what
  // its commits superseded, and a power failure then could not lose those commits' slots.
  test::CreateRoomyFile(path_, 2u << 20);
  std::vector<W> writes;
  writes.push_back({0, test::Pattern(1, 0, 16 * kBlockSize)});
  for (uint32_t i = 1; i < 80; ++i) {
    uint64_t off = (i * 7 % 16) * kBlockSize + (i % 50) * 40;
    writes.push_back({off, test::Pattern(i + 1, off, 40)});
  }
  const uint64_t synced = 26;  // entries 0..25 acknowledged by Fsync
  Commit(writes, static_cast<int64_t>(synced) - 1);
  for (uint64_t pos = synced; pos < writes.size(); ++pos) {
    uint64_t zero = 0;
    ASSERT_TRUE(test::WriteRawBytes(path_, SlotOffset(pos), &zero, sizeof(zero)));
  }
  ExpectContent(Model(synced), "the fsynced state");
}

TEST_F(RecoveryTest, CleanFileIsNotChangedByOpening) {
  Commit(FreshBlockWrites(600));
  std::vector<uint8_t> before = test::ReadRawFile(path_);
  ExpectContent(Model(600), "clean reopen");
  {
    auto r = File::Open(path_, O_RDWR);
    TERN_ASSERT_OK(r);
  }
  EXPECT_EQ(test::FirstDifference(test::ReadRawFile(path_), before), -1) << "open and close changed a clean file";
}

}  // namespace
}  // namespace tern
