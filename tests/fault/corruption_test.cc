// Damaged tern files: a valid file is built through the engine, closed, then damaged on disk with
// plain syscalls at one structure of the format (lib/*_format.h, doc/format/file.md). Opening it
// (and reading everything) must fail with EUCLEAN — kNotTernFile when the magic is gone — must not
// modify the file, and must never crash or hang: each open runs in a forked child, so a crash is
// reported as the signal that killed it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lib/crc32c.h"
#include "lib/entry_format.h"
#include "lib/ext_record_format.h"
#include "lib/file.h"
#include "lib/log_block_format.h"
#include "lib/meta_block_format.h"
#include "tests/test_util.h"

namespace tern {
namespace {

constexpr int kOpenedFine = 0;  // child exit code: opened and read everything without error

// The raw structure of a closed tern file, parsed with the format headers only.
struct Image {
  std::vector<uint8_t> raw;
  pmem::MetaHeader header{};
  std::vector<uint32_t> chain;          // log blocks in chain order
  std::vector<uint64_t> entries;        // committed entries, log order
  std::vector<uint64_t> entry_offsets;  // file offset of each entry's slot
  uint64_t nblocks = 0;

  template <typename T>
  T At(uint64_t offset) const {
    T v;
    memcpy(&v, raw.data() + offset, sizeof(T));
    return v;
  }
  static uint64_t TrailerOffset(uint32_t block) {
    return uint64_t{block} * kBlockSize + offsetof(pmem::LogBlock, trailer);
  }
  pmem::LogBlockTrailer Trailer(uint32_t block) const { return At<pmem::LogBlockTrailer>(TrailerOffset(block)); }
  // File offsets of extended records the log points to.
  std::vector<uint64_t> RecordOffsets() const {
    std::vector<uint64_t> out;
    for (uint64_t e : entries) {
      if (auto p = pmem::DecodeExtended(e)) out.push_back(p->block.ToBytes() + p->offset);
    }
    return out;
  }
};

Image Parse(const std::string& path) {
  Image img;
  img.raw = test::ReadRawFile(path);
  img.nblocks = img.raw.size() / kBlockSize;
  if (img.raw.size() < kBlockSize) return img;
  img.header = img.At<pmem::MetaHeader>(0);
  auto walk = [&](uint64_t first_slot_offset, uint32_t nslots) {
    for (uint32_t i = 0; i < nslots; ++i) {
      uint64_t off = first_slot_offset + 8ull * i;
      uint64_t e = img.At<uint64_t>(off);
      if (e == 0) return false;
      img.entries.push_back(e);
      img.entry_offsets.push_back(off);
    }
    return true;
  };
  if (!walk(offsetof(pmem::MetaBlock, slots), pmem::kMetaSlots)) return img;
  uint32_t next = img.header.log_head;
  while (next != 0 && next < img.nblocks && img.chain.size() < img.nblocks) {
    img.chain.push_back(next);
    if (!walk(uint64_t{next} * kBlockSize, pmem::kLogSlots)) break;
    next = img.Trailer(next).next;
  }
  return img;
}

uint32_t TrailerChecksum(const pmem::LogBlockTrailer& t) {
  uint32_t fixed[2] = {t.magic, t.seq};
  return Crc32c(fixed, sizeof(fixed));
}

uint32_t RecordCrc(const Image& img, uint64_t offset) {
  auto h = img.At<pmem::ExtRecordHeader>(offset);
  h.crc = 0;
  uint32_t crc = Crc32c(&h, sizeof(h));
  return Crc32c(img.raw.data() + offset + sizeof(h), uint64_t{h.nruns} * sizeof(pmem::ExtRun), crc);
}

class CorruptionTest : public ::testing::Test {
 protected:
  // Builds a valid file with `commits` commits: one aligned write, small in-place writes (inline
  // entries), then a truncate, an unaligned write past EOF and an append (extended records).
  void Build(uint32_t commits) {
    {
      auto r = File::Open(path_, O_RDWR | O_CREAT, 0644);
      ASSERT_TRUE(r.ok()) << test::Describe(r.status());
      File& f = **r;
      auto write = [&](uint64_t off, const std::vector<uint8_t>& d) {
        auto n = f.Pwrite(d.data(), d.size(), off);
        ASSERT_TRUE(n.ok() && *n == d.size()) << test::Describe(n.status());
      };
      write(0, test::Pattern(1, 0, 8 * kBlockSize));
      for (uint32_t i = 0; i + 4 < commits; ++i) {
        uint64_t off = (i * 3 % 8) * kBlockSize + (i % 200) * 16;
        write(off, test::Pattern(100 + i, off, 16));
      }
      TERN_ASSERT_OK(f.Truncate(30000));
      write(40000, test::Pattern(2, 40000, 100));
      auto at = f.Append(test::Pattern(3, 0, 10).data(), 10);
      TERN_ASSERT_OK(at);
      auto content = test::ReadAll(f);
      TERN_ASSERT_OK(content);
      content_ = *content;
    }
    img_ = Parse(path_);
    ASSERT_EQ(img_.entries.size(), commits) << "the helper cannot parse what the engine wrote";
  }

  // Opens the file in a child and reads all of it. Returns the errno of the first failure, or
  // kOpenedFine.
  test::ChildOutcome TryOpen(int flags = O_RDWR) {
    std::string path = path_;
    return test::RunIsolated([path, flags] {
      auto r = File::Open(path, flags);
      if (!r.ok()) return r.status().err();
      auto all = test::ReadAll(**r);
      if (!all.ok()) return all.status().err();
      return kOpenedFine;
    });
  }

  void Damage(uint64_t offset, const void* bytes, size_t len) {
    ASSERT_TRUE(test::WriteRawBytes(path_, offset, bytes, len));
  }
  template <typename T>
  void DamageValue(uint64_t offset, T value) {
    Damage(offset, &value, sizeof(value));
  }

  // The damaged file gives `err` for every way of opening it, and is left exactly as it was.
  void ExpectRefused(int err, const char* what) {
    std::vector<uint8_t> before = test::ReadRawFile(path_);
    for (int flags : {O_RDWR, O_RDONLY}) {
      test::ChildOutcome out = TryOpen(flags);
      ASSERT_TRUE(out.exited) << what << ": open " << out.Describe();
      EXPECT_EQ(out.code, err) << what << " (flags " << flags << "): got "
                               << (out.code == kOpenedFine ? "opened fine" : strerrorname_np(out.code));
    }
    EXPECT_EQ(test::FirstDifference(test::ReadRawFile(path_), before), -1)
        << what << ": a refused open changed the file";
  }

  test::TempDir dir_;
  std::string path_ = dir_.File("f");
  std::vector<uint8_t> content_;
  Image img_;
};

TEST_F(CorruptionTest, PristineFileOpensAndReadsBack) {
  Build(1600);  // meta slots + 2 full log blocks + part of a third
  EXPECT_EQ(img_.header.magic, pmem::kMetaMagic);
  EXPECT_EQ(img_.header.format_version, pmem::kFormatVersion);
  EXPECT_EQ(img_.header.checksum, pmem::MetaChecksum(img_.header));
  ASSERT_EQ(img_.chain.size(), 3u);
  for (size_t k = 0; k < img_.chain.size(); ++k) {
    pmem::LogBlockTrailer t = img_.Trailer(img_.chain[k]);
    EXPECT_EQ(t.magic, pmem::kLogMagic);
    EXPECT_EQ(t.seq, k + 1);
    EXPECT_EQ(t.checksum, TrailerChecksum(t));
  }
  ASSERT_GE(img_.RecordOffsets().size(), 3u);
  for (uint64_t off : img_.RecordOffsets()) EXPECT_EQ(img_.At<pmem::ExtRecordHeader>(off).crc, RecordCrc(img_, off));
  test::ChildOutcome out = TryOpen();
  ASSERT_TRUE(out.exited) << out.Describe();
  EXPECT_EQ(out.code, kOpenedFine);
  auto r = File::Open(path_, O_RDONLY);
  TERN_ASSERT_OK(r);
  auto all = test::ReadAll(**r);
  TERN_ASSERT_OK(all);
  EXPECT_EQ(test::FirstDifference(*all, content_), -1);
}

TEST_F(CorruptionTest, BadMetaMagicIsNotATernFile) {
  Build(10);
  DamageValue<uint64_t>(offsetof(pmem::MetaHeader, magic), 0x0123456789ABCDEFull);
  ExpectRefused(kNotTernFile, "bad meta magic");
}

TEST_F(CorruptionTest, UnknownFormatVersion) {
  Build(10);
  pmem::MetaHeader h = img_.header;
  h.format_version = pmem::kFormatVersion + 1;
  h.checksum = pmem::MetaChecksum(h);  // a well-formed header of a newer version
  DamageValue(0, h);
  ExpectRefused(EUCLEAN, "newer format version");
  DamageValue<uint32_t>(offsetof(pmem::MetaHeader, format_version), 0);
  ExpectRefused(EUCLEAN, "version 0, stale checksum");
}

TEST_F(CorruptionTest, BadMetaChecksum) {
  Build(10);
  DamageValue<uint32_t>(offsetof(pmem::MetaHeader, checksum), img_.header.checksum ^ 0x10);
  ExpectRefused(EUCLEAN, "checksum bit flipped");
  DamageValue<uint32_t>(offsetof(pmem::MetaHeader, checksum), img_.header.checksum);
  DamageValue<uint8_t>(offsetof(pmem::MetaHeader, nonce) + 3, static_cast<uint8_t>(img_.header.nonce >> 24) ^ 1);
  ExpectRefused(EUCLEAN, "nonce changed under the checksum");
  DamageValue<uint64_t>(offsetof(pmem::MetaHeader, nonce), img_.header.nonce);
  DamageValue<uint8_t>(offsetof(pmem::MetaHeader, reserved) + 31, 0x80);
  ExpectRefused(EUCLEAN, "reserved byte set under the checksum");
}

TEST_F(CorruptionTest, NonZeroMetaFlags) {
  Build(10);
  pmem::MetaHeader h = img_.header;
  h.flags = 1;
  h.checksum = pmem::MetaChecksum(h);
  DamageValue(0, h);
  ExpectRefused(EUCLEAN, "unknown flag");
}

TEST_F(CorruptionTest, LogBlockWithBadMagicAfterAValidPrefix) {
  Build(1600);
  ASSERT_EQ(img_.chain.size(), 3u);
  for (size_t k : {0u, 1u, 2u}) {
    uint64_t at = Image::TrailerOffset(img_.chain[k]) + offsetof(pmem::LogBlockTrailer, magic);
    DamageValue<uint32_t>(at, 0xDEADBEEF);
    ExpectRefused(EUCLEAN, ("bad magic in log block " + std::to_string(k + 1)).c_str());
    DamageValue<uint32_t>(at, pmem::kLogMagic);
  }
  EXPECT_EQ(TryOpen().code, kOpenedFine);
}

TEST_F(CorruptionTest, LogBlockWithBadChecksumOrSequence) {
  Build(1200);
  ASSERT_EQ(img_.chain.size(), 2u);
  uint32_t b = img_.chain[1];
  pmem::LogBlockTrailer t = img_.Trailer(b);
  pmem::LogBlockTrailer bad = t;
  bad.checksum ^= 4;
  DamageValue(Image::TrailerOffset(b), bad);
  ExpectRefused(EUCLEAN, "log block checksum");
  bad = t;
  bad.seq = 7;  // well-formed block from elsewhere in some chain
  bad.checksum = TrailerChecksum(bad);
  DamageValue(Image::TrailerOffset(b), bad);
  ExpectRefused(EUCLEAN, "log block with the wrong sequence number");
}

TEST_F(CorruptionTest, LogChainPointsPastTheFile) {
  Build(1200);
  ASSERT_EQ(img_.chain.size(), 2u);
  DamageValue<uint32_t>(offsetof(pmem::MetaHeader, log_head), static_cast<uint32_t>(img_.nblocks + 10));
  ExpectRefused(EUCLEAN, "log_head past the end of the file");
  DamageValue<uint32_t>(offsetof(pmem::MetaHeader, log_head), 0xFFFFFFFFu);
  ExpectRefused(EUCLEAN, "log_head ~0");
  DamageValue<uint32_t>(offsetof(pmem::MetaHeader, log_head), img_.chain[0]);
  DamageValue<uint32_t>(Image::TrailerOffset(img_.chain[0]) + offsetof(pmem::LogBlockTrailer, next),
                        static_cast<uint32_t>(img_.nblocks));
  ExpectRefused(EUCLEAN, "next past the end of the file");
}

TEST_F(CorruptionTest, LogHeadAtADataBlock) {
  Build(1200);
  // Logical block of virtual block 0's data: not a log block.
  uint32_t data_block = 0;
  for (uint64_t e : img_.entries) {
    if (auto in = pmem::DecodeInline(e)) data_block = in->lblock.value();
  }
  ASSERT_NE(data_block, 0u);
  DamageValue<uint32_t>(offsetof(pmem::MetaHeader, log_head), data_block);
  ExpectRefused(EUCLEAN, "log_head at a data block");
}

TEST_F(CorruptionTest, CycleInTheLogChain) {
  Build(1600);
  ASSERT_EQ(img_.chain.size(), 3u);
  const uint64_t next_of_1 = Image::TrailerOffset(img_.chain[0]) + offsetof(pmem::LogBlockTrailer, next);
  const uint64_t next_of_2 = Image::TrailerOffset(img_.chain[1]) + offsetof(pmem::LogBlockTrailer, next);
  DamageValue<uint32_t>(next_of_1, img_.chain[0]);
  ExpectRefused(EUCLEAN, "log block pointing at itself");
  DamageValue<uint32_t>(next_of_1, img_.chain[1]);
  DamageValue<uint32_t>(next_of_2, img_.chain[0]);
  ExpectRefused(EUCLEAN, "log block pointing at an earlier one");
  DamageValue<uint32_t>(next_of_2, img_.chain[2]);
  DamageValue<uint32_t>(offsetof(pmem::MetaHeader, log_head), img_.chain[1]);
  ExpectRefused(EUCLEAN, "log_head skipping the first block");
}

TEST_F(CorruptionTest, InlineEntryWithBlockIndexOutOfRange) {
  Build(1200);
  const size_t in_meta = 5, in_log = 700;
  for (size_t i : {in_meta, in_log}) {
    uint64_t word = pmem::EncodeInline({VirtualBlock(1), LogicalBlock(static_cast<uint32_t>(img_.nblocks + 3)), 1, false});
    DamageValue(img_.entry_offsets[i], word);
    ExpectRefused(EUCLEAN, "logical block past the end of the file");
    word = pmem::EncodeInline({VirtualBlock(1), LogicalBlock(static_cast<uint32_t>(img_.nblocks - 1)), 2, false});
    DamageValue(img_.entry_offsets[i], word);
    ExpectRefused(EUCLEAN, "run ending past the end of the file");
    DamageValue(img_.entry_offsets[i], img_.entries[i]);
  }
}

// A damaged word can name virtual blocks past 2^28 (the encoder never writes one: FitsInline).
TEST_F(CorruptionTest, InlineEntryPastTheVirtualLimit) {
  Build(10);
  uint64_t word = pmem::EncodeInline({VirtualBlock(kMaxBlocks - 1), LogicalBlock(1), 63, false});
  DamageValue(img_.entry_offsets[3], word);
  ExpectRefused(EUCLEAN, "inline entry past the 1 TiB limit");
}

TEST_F(CorruptionTest, MalformedEntries) {
  Build(20);
  struct Case {
    const char* what;
    uint64_t word;
  };
  const Case cases[] = {
      {"non-zero word with the free tag", 0x100},
      {"inline entry with count 0", 1 | (uint64_t{5} << 36)},
      {"inline entry at logical block 0", 2 | (uint64_t{1} << 2)},
      {"extended pointer with reserved bits", pmem::EncodeExtended({LogicalBlock(1), 0}) | (uint64_t{1} << 15)},
      {"extended pointer past the file", pmem::EncodeExtended({LogicalBlock(static_cast<uint32_t>(img_.nblocks)), 0})},
      {"extended pointer at the meta block slots", uint64_t{3} | (uint64_t{8} << 2)},
  };
  for (const Case& c : cases) {
    DamageValue(img_.entry_offsets[7], c.word);
    ExpectRefused(EUCLEAN, c.what);
  }
}

TEST_F(CorruptionTest, ExtendedRecordDamage) {
  Build(30);
  std::vector<uint64_t> records = img_.RecordOffsets();
  ASSERT_FALSE(records.empty());
  for (uint64_t off : records) {
    auto h = img_.At<pmem::ExtRecordHeader>(off);
    ASSERT_EQ(h.magic, pmem::kExtMagic);
    auto restore = [&] { Damage(off, img_.raw.data() + off, pmem::ExtRecordBytes(h.nruns)); };

    DamageValue<uint32_t>(off + offsetof(pmem::ExtRecordHeader, crc), h.crc ^ 0x100);
    ExpectRefused(EUCLEAN, "record crc");
    restore();
    if (h.nruns > 0) {
      uint64_t run = off + sizeof(pmem::ExtRecordHeader);
      DamageValue<uint32_t>(run + offsetof(pmem::ExtRun, vblock), img_.At<uint32_t>(run) + 1);
      ExpectRefused(EUCLEAN, "run changed under the crc");
      restore();
    }

    // Well-formed records (crc recomputed) that are still impossible.
    auto resealed = [&](auto change) {
      Image copy = img_;
      auto hh = copy.At<pmem::ExtRecordHeader>(off);
      change(hh, copy, off);
      memcpy(copy.raw.data() + off, &hh, sizeof(hh));
      hh.crc = RecordCrc(copy, off);
      memcpy(copy.raw.data() + off, &hh, sizeof(hh));
      Damage(off, copy.raw.data() + off, pmem::ExtRecordBytes(h.nruns));
    };
    resealed([](pmem::ExtRecordHeader& x, Image&, uint64_t) { x.magic = 0x4242; });
    ExpectRefused(EUCLEAN, "record magic");
    resealed([](pmem::ExtRecordHeader& x, Image&, uint64_t) { x.kind = 9; });
    ExpectRefused(EUCLEAN, "record kind");
    resealed([](pmem::ExtRecordHeader& x, Image&, uint64_t) { x.new_size = kMaxFileSize + 4096; });
    ExpectRefused(EUCLEAN, "record size past 1 TiB");
    if (h.nruns > 0) {
      resealed([&](pmem::ExtRecordHeader&, Image& c, uint64_t o) {
        pmem::ExtRun r;
        memcpy(&r, c.raw.data() + o + sizeof(pmem::ExtRecordHeader), sizeof(r));
        r.lblock = static_cast<uint32_t>(img_.nblocks);
        memcpy(c.raw.data() + o + sizeof(pmem::ExtRecordHeader), &r, sizeof(r));
      });
      ExpectRefused(EUCLEAN, "run past the end of the file");
    }
    restore();
  }
  EXPECT_EQ(TryOpen().code, kOpenedFine) << "repaired file";
}

// An extended pointer to the last 8 bytes of the backing file: the 24-byte header would run past
// the end of the mapping. Refused before anything is read there.
TEST_F(CorruptionTest, ExtendedPointerAtTheEndOfTheFile) {
  Build(10);
  uint64_t word = pmem::EncodeExtended({LogicalBlock(static_cast<uint32_t>(img_.nblocks - 1)), kBlockSize - 8});
  DamageValue(img_.entry_offsets[4], word);
  ExpectRefused(EUCLEAN, "extended header past the end of the file");
}

// Entries that point past the end of a backing file that lost its tail (a truncated copy). The
// missing blocks are not zeros to be served: the file is damaged.
TEST_F(CorruptionTest, TruncatedBackingFile) {
  Build(40);
  uint32_t highest = 0;
  for (uint64_t e : img_.entries) {
    if (auto in = pmem::DecodeInline(e)) highest = std::max(highest, in->lblock.value() + in->count - 1);
  }
  ASSERT_GE(highest, 2u);
  ASSERT_EQ(truncate(path_.c_str(), 2 * kBlockSize), 0);
  ExpectRefused(EUCLEAN, "entries past the end of a truncated backing file");
}

// The same with a file whose log holds only inline entries: nothing but the block indices can show
// that data is missing, and the missing blocks must not be served as zeros.
TEST_F(CorruptionTest, TruncatedBackingFileWithOnlyInlineEntries) {
  {
    auto r = File::Open(path_, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(r);
    for (uint64_t i = 0; i < 8; ++i) {
      std::vector<uint8_t> d = test::Pattern(i, i * kBlockSize, kBlockSize);
      auto n = (*r)->Pwrite(d.data(), d.size(), i * kBlockSize);
      TERN_ASSERT_OK(n);
    }
  }
  img_ = Parse(path_);
  ASSERT_EQ(img_.entries.size(), 8u);
  for (uint64_t e : img_.entries) ASSERT_TRUE(pmem::DecodeInline(e).has_value());
  ASSERT_EQ(truncate(path_.c_str(), 2 * kBlockSize), 0);
  ExpectRefused(EUCLEAN, "inline entries past the end of a truncated backing file");
}

// Random damage anywhere in the structures the log reaches: never a crash or a hang; either a clean
// error or a file that opens (a flipped data-carrying bit can still be a well-formed entry).
TEST_F(CorruptionTest, RandomDamageNeverCrashes) {
  Build(1100);
  std::vector<uint64_t> targets;  // 8-byte words worth damaging
  for (uint64_t off = 0; off < 64; off += 8) targets.push_back(off);
  for (uint64_t off : img_.entry_offsets) targets.push_back(off);
  for (uint32_t b : img_.chain) {
    for (uint64_t off = 0; off < 16; off += 8) targets.push_back(Image::TrailerOffset(b) + off);
  }
  for (uint64_t rec : img_.RecordOffsets()) {
    auto h = img_.At<pmem::ExtRecordHeader>(rec);
    for (uint64_t off = 0; off < pmem::ExtRecordBytes(h.nruns); off += 8) targets.push_back(rec + off);
  }
  std::mt19937_64 rng(2024);
  int opened = 0, refused = 0;
  for (int iter = 0; iter < 60; ++iter) {
    uint64_t off = targets[rng() % targets.size()];
    uint64_t word = img_.At<uint64_t>(off);
    switch (rng() % 3) {
      case 0: word ^= uint64_t{1} << (rng() % 64); break;
      case 1: word = rng(); break;
      default: word ^= uint64_t{0xFF} << (8 * (rng() % 8)); break;
    }
    DamageValue(off, word);
    test::ChildOutcome out = TryOpen();
    ASSERT_TRUE(out.exited) << "damage 0x" << std::hex << word << " at offset " << std::dec << off
                            << ": " << out.Describe();
    EXPECT_TRUE(out.code == kOpenedFine || out.code == EUCLEAN || out.code == kNotTernFile)
        << "damage at offset " << off << ": " << strerrorname_np(out.code);
    (out.code == kOpenedFine ? opened : refused)++;
    Damage(0, img_.raw.data(), img_.raw.size());  // restore the whole image (a scrub may have run)
  }
  RecordProperty("opened", opened);
  RecordProperty("refused", refused);
  EXPECT_GT(refused, 15);
}

}  // namespace
}  // namespace tern
