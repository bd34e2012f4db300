#include "fuzz/structure_mutator.h"

#include <cstddef>
#include <cstring>
#include <vector>

#include "lib/crc32c.h"
#include "lib/entry_format.h"
#include "lib/ext_record_format.h"
#include "lib/log_block_format.h"
#include "lib/meta_block_format.h"

namespace tern::fuzz {
namespace {

using Rng = std::mt19937_64;

template <typename T>
T Get(const Block& b, size_t off) {
  T v;
  memcpy(&v, b.data() + off, sizeof(T));
  return v;
}
template <typename T>
void Put(Block& b, size_t off, T v) {
  memcpy(b.data() + off, &v, sizeof(T));
}

uint64_t Pick(Rng& rng, uint64_t n) { return n == 0 ? 0 : rng() % n; }
bool Chance(Rng& rng, unsigned percent) { return Pick(rng, 100) < percent; }

// Block indices that matter: 0, the last block of the image, one past it, existing chunks, 2^28-ish.
uint32_t InterestingBlock(const std::map<uint32_t, Block>& blocks, Rng& rng) {
  uint32_t n = ImageBlocks(blocks);
  switch (Pick(rng, 7)) {
    case 0: return 0;
    case 1: return n - 1;
    case 2: return n;
    case 3: return (1u << 28) - 1;
    case 4: return static_cast<uint32_t>(rng());
    default: {
      auto it = std::next(blocks.begin(), static_cast<long>(Pick(rng, blocks.size())));
      return it->first;
    }
  }
}

// Virtual blocks near 2^28 are legal but make the engine walk its whole table at open (slow: see
// fuzz/README.md), so they are picked rarely, to keep executions per second up.
uint32_t InterestingVBlock(Rng& rng) {
  switch (Pick(rng, 20)) {
    case 0: return (1u << 28) - 1;
    case 1: return (1u << 28) - 63;
    case 2:
    case 3: return 0;
    default: return static_cast<uint32_t>(Pick(rng, 64));
  }
}

bool IsLogBlock(const Block& b) {
  return Get<uint32_t>(b, offsetof(pmem::LogBlock, trailer)) == pmem::kLogMagic;
}

void SealMeta(Block& b) {
  pmem::MetaHeader h;
  memcpy(&h, b.data(), sizeof(h));
  Put<uint32_t>(b, offsetof(pmem::MetaHeader, checksum), pmem::MetaChecksum(h));
}

void SealLog(Block& b) {
  uint32_t fixed[2] = {Get<uint32_t>(b, 4080), Get<uint32_t>(b, 4084)};
  Put<uint32_t>(b, 4092, Crc32c(fixed, sizeof(fixed)));
}

// Offsets of extended records (by magic) inside a block, 8-byte aligned.
std::vector<size_t> RecordsIn(const Block& b) {
  std::vector<size_t> out;
  for (size_t off = 0; off + sizeof(pmem::ExtRecordHeader) <= kBlockSize; off += 8) {
    if (Get<uint16_t>(b, off) == pmem::kExtMagic && b[off + 2] >= 1 && b[off + 2] <= 2) out.push_back(off);
  }
  return out;
}

void SealRecord(Block& b, size_t off) {
  pmem::ExtRecordHeader h;
  memcpy(&h, b.data() + off, sizeof(h));
  uint64_t runs_bytes = uint64_t{h.nruns} * sizeof(pmem::ExtRun);
  if (off + sizeof(h) + runs_bytes > kBlockSize) return;  // spans blocks: leave the crc stale
  h.crc = 0;
  uint32_t crc = Crc32c(&h, sizeof(h));
  crc = Crc32c(b.data() + off + sizeof(h), runs_bytes, crc);
  Put<uint32_t>(b, off + offsetof(pmem::ExtRecordHeader, crc), crc);
}

// Slots of the log: (block, byte offset) pairs.
std::vector<std::pair<uint32_t, size_t>> Slots(const std::map<uint32_t, Block>& blocks) {
  std::vector<std::pair<uint32_t, size_t>> out;
  for (const auto& [index, b] : blocks) {
    if (index == 0) {
      for (size_t i = 0; i < pmem::kMetaSlots; ++i) out.push_back({0, offsetof(pmem::MetaBlock, slots) + i * 8});
    } else if (IsLogBlock(b)) {
      for (size_t i = 0; i < pmem::kLogSlots; ++i) out.push_back({index, i * 8});
    }
  }
  return out;
}

uint64_t InterestingEntry(const std::map<uint32_t, Block>& blocks, Rng& rng) {
  switch (Pick(rng, 6)) {
    case 0: return 0;
    case 1: return rng();
    case 2: {  // an inline entry, raw fields (may be out of range)
      uint64_t tag = Chance(rng, 50) ? 1 : 2;
      uint64_t count = Pick(rng, 64);
      return tag | (count << 2) | (uint64_t{InterestingVBlock(rng)} << 8) |
             (uint64_t{InterestingBlock(blocks, rng)} << 36);
    }
    case 3: {  // an extended pointer at a real record, or anywhere
      for (int tries = 0; tries < 8; ++tries) {
        auto it = std::next(blocks.begin(), static_cast<long>(Pick(rng, blocks.size())));
        std::vector<size_t> recs = RecordsIn(it->second);
        if (!recs.empty()) return pmem::EncodeExtended({LogicalBlock(it->first), static_cast<uint32_t>(recs[Pick(rng, recs.size())])});
      }
      return 3 | (Pick(rng, 512) << 2) | (uint64_t{InterestingBlock(blocks, rng)} << 32);
    }
    case 4: return 3 | (uint64_t{1} << 11) | (uint64_t{1} << 32);  // reserved bits set
    default: return 1 | (uint64_t{1} << 2) | (uint64_t{1} << 36);  // maps block 0 → 1
  }
}

void MutateMeta(std::map<uint32_t, Block>& blocks, Rng& rng) {
  Block& b = blocks[0];
  if (b.size() != kBlockSize) b = FreshMetaBlock();
  switch (Pick(rng, 6)) {
    case 0: Put<uint32_t>(b, offsetof(pmem::MetaHeader, format_version), static_cast<uint32_t>(Pick(rng, 3))); break;
    case 1: Put<uint32_t>(b, offsetof(pmem::MetaHeader, flags), 1u << Pick(rng, 32)); break;
    case 2: Put<uint32_t>(b, offsetof(pmem::MetaHeader, log_head), InterestingBlock(blocks, rng)); break;
    case 3: b[offsetof(pmem::MetaHeader, reserved) + Pick(rng, 32)] ^= 1; break;
    case 4: Put<uint64_t>(b, offsetof(pmem::MetaHeader, nonce), rng()); break;
    default: b[Pick(rng, 64)] ^= static_cast<uint8_t>(1u << Pick(rng, 8)); break;
  }
  if (Chance(rng, 70)) SealMeta(b);
}

void MutateSlot(std::map<uint32_t, Block>& blocks, Rng& rng) {
  auto slots = Slots(blocks);
  if (slots.empty()) return;
  // Favour the live part of the log: the first slots of each block.
  auto [index, off] = slots[Chance(rng, 70) ? Pick(rng, std::min<size_t>(slots.size(), 16)) : Pick(rng, slots.size())];
  Block& b = blocks[index];
  switch (Pick(rng, 4)) {
    case 0: Put<uint64_t>(b, off, Get<uint64_t>(b, off) ^ (uint64_t{1} << Pick(rng, 64))); break;
    case 1: {  // copy another slot's entry here
      auto [i2, o2] = slots[Pick(rng, slots.size())];
      Put<uint64_t>(b, off, Get<uint64_t>(blocks[i2], o2));
      break;
    }
    default: Put<uint64_t>(b, off, InterestingEntry(blocks, rng)); break;
  }
}

void MutateLogBlock(std::map<uint32_t, Block>& blocks, Rng& rng) {
  std::vector<uint32_t> logs;
  for (const auto& [index, b] : blocks) {
    if (index != 0 && IsLogBlock(b)) logs.push_back(index);
  }
  if (logs.empty() || Chance(rng, 20)) {  // add a fresh log block somewhere, maybe linked
    uint32_t at = 1 + static_cast<uint32_t>(Pick(rng, ImageBlocks(blocks) - 1));
    Block b(kBlockSize, 0);
    Put<uint32_t>(b, 4080, pmem::kLogMagic);
    Put<uint32_t>(b, 4084, static_cast<uint32_t>(1 + logs.size()));
    SealLog(b);
    blocks[at] = b;
    if (Chance(rng, 50)) {
      if (logs.empty()) {
        Put<uint32_t>(blocks[0], offsetof(pmem::MetaHeader, log_head), at);
      } else {
        Put<uint32_t>(blocks[logs.back()], 4088, at);
      }
    }
    return;
  }
  Block& b = blocks[logs[Pick(rng, logs.size())]];
  switch (Pick(rng, 4)) {
    case 0: Put<uint32_t>(b, 4084, Get<uint32_t>(b, 4084) + static_cast<uint32_t>(Pick(rng, 3)) - 1); break;
    case 1: Put<uint32_t>(b, 4088, InterestingBlock(blocks, rng)); break;
    case 2: Put<uint32_t>(b, 4080, pmem::kLogMagic ^ 1); break;
    default: Put<uint32_t>(b, 4092, static_cast<uint32_t>(rng())); break;
  }
  if (Chance(rng, 70)) SealLog(b);
}

void MutateRecord(std::map<uint32_t, Block>& blocks, Rng& rng) {
  std::vector<std::pair<uint32_t, size_t>> recs;
  for (const auto& [index, b] : blocks) {
    for (size_t off : RecordsIn(b)) recs.push_back({index, off});
  }
  if (recs.empty()) return MutateSlot(blocks, rng);
  auto [index, off] = recs[Pick(rng, recs.size())];
  Block& b = blocks[index];
  pmem::ExtRecordHeader h;
  memcpy(&h, b.data() + off, sizeof(h));
  size_t run0 = off + sizeof(h);
  size_t run = run0 + (h.nruns > 0 ? Pick(rng, std::min<uint32_t>(h.nruns, 8)) : 0) * sizeof(pmem::ExtRun);
  bool run_fits = run + sizeof(pmem::ExtRun) <= kBlockSize;
  switch (Pick(rng, 8)) {
    case 0: h.nruns = static_cast<uint32_t>(Chance(rng, 50) ? Pick(rng, 3) : (Chance(rng, 50) ? h.nruns + 1 : rng())); break;
    case 1: h.kind = static_cast<uint8_t>(Pick(rng, 4)); break;
    case 2: {
      const uint64_t sizes[] = {0, 1, 4095, 4096, kMaxFileSize, kMaxFileSize + 1, UINT64_MAX, rng() % (1 << 24)};
      h.new_size = sizes[Pick(rng, 8)];
      break;
    }
    case 3: h.reserved0 = 1; break;
    case 4: if (run_fits) Put<uint32_t>(b, run + offsetof(pmem::ExtRun, vblock), InterestingVBlock(rng)); break;
    case 5: if (run_fits) Put<uint32_t>(b, run + offsetof(pmem::ExtRun, lblock), InterestingBlock(blocks, rng)); break;
    case 6: {
      const uint32_t counts[] = {0, 1, 63, 64, 1u << 20, 1u << 28, UINT32_MAX};
      if (run_fits) Put<uint32_t>(b, run + offsetof(pmem::ExtRun, nblocks), counts[Pick(rng, 7)]);
      break;
    }
    default: if (run_fits) Put<uint32_t>(b, run + offsetof(pmem::ExtRun, reserved), 1); break;
  }
  uint32_t crc_before = h.crc;
  memcpy(b.data() + off, &h, sizeof(h));
  Put<uint32_t>(b, off + offsetof(pmem::ExtRecordHeader, crc), crc_before);
  if (Chance(rng, 80)) SealRecord(b, off);
}

void MutateChunks(std::map<uint32_t, Block>& blocks, Rng& rng) {
  auto it = std::next(blocks.begin(), static_cast<long>(Pick(rng, blocks.size())));
  if (Chance(rng, 50) && it->first != 0) {
    blocks.erase(it);  // a block lost: reads as zeros
  } else {
    blocks[static_cast<uint32_t>(Pick(rng, ImageBlocks(blocks) + 1))] = it->second;  // misplaced copy
  }
}

}  // namespace

Block FreshMetaBlock() {
  Block b(kBlockSize, 0);
  Put<uint64_t>(b, offsetof(pmem::MetaHeader, magic), pmem::kMetaMagic);
  Put<uint32_t>(b, offsetof(pmem::MetaHeader, format_version), pmem::kFormatVersion);
  Put<uint64_t>(b, offsetof(pmem::MetaHeader, nonce), 0x7465726E66757A7Aull);
  SealMeta(b);
  return b;
}

void MutateStructure(std::map<uint32_t, Block>& blocks, std::mt19937_64& rng) {
  if (blocks.count(0) == 0) blocks[0] = FreshMetaBlock();
  switch (Pick(rng, 10)) {
    case 0: MutateMeta(blocks, rng); break;
    case 1:
    case 2: MutateLogBlock(blocks, rng); break;
    case 3:
    case 4:
    case 5: MutateRecord(blocks, rng); break;
    case 6: MutateChunks(blocks, rng); break;
    default: MutateSlot(blocks, rng); break;
  }
}

}  // namespace tern::fuzz
