// Block 0 of every tern file: identification, the head of the log-block chain, and the first
// kMetaSlots commit slots. See doc/format/file.md. Little-endian (x86-64 only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "lib/crc32c.h"
#include "lib/layout_constants.h"

namespace tern::pmem {

inline constexpr uint64_t kMetaMagic = 0x3153454C4946524Eull;  // "NRFILES1" little-endian
inline constexpr uint32_t kFormatVersion = 1;

struct MetaHeader {          // first cache line of block 0
  uint64_t magic;            // kMetaMagic
  uint32_t format_version;   // refused at open if unknown
  uint32_t checksum;         // crc32c of this line with checksum, log_head and checkpoint zeroed
  uint32_t log_head;         // LogicalBlock of the first log block; 0 = inline slots only. CAS'd.
  uint32_t flags;            // none defined in version 1; must be 0
  uint64_t nonce;            // random at format; names the shared-state object
  uint64_t checkpoint;       // LogicalBlock of the newest checkpoint record (0 = none). CAS'd by GC.
  uint8_t reserved[24];
};
static_assert(sizeof(MetaHeader) == 64);
static_assert(offsetof(MetaHeader, format_version) == 8 && offsetof(MetaHeader, checksum) == 12);
static_assert(offsetof(MetaHeader, log_head) == 16 && offsetof(MetaHeader, nonce) == 24);
static_assert(offsetof(MetaHeader, checkpoint) == 32);
static_assert(std::is_trivially_copyable_v<MetaHeader> && std::is_standard_layout_v<MetaHeader>);

// The header checksum: crc32c of the line with checksum, log_head and checkpoint zeroed (the last
// two change after format, by CAS).
inline uint32_t MetaChecksum(MetaHeader h) {
  h.checksum = 0;
  h.log_head = 0;
  h.checkpoint = 0;
  return Crc32c(&h, sizeof(h));
}

inline constexpr uint32_t kMetaSlots = (kBlockSize - sizeof(MetaHeader)) / sizeof(uint64_t);  // 504

struct MetaBlock {
  MetaHeader header;
  uint64_t slots[kMetaSlots];  // commit entries, see entry_format.h; all-zero = free
};
static_assert(sizeof(MetaBlock) == kBlockSize && offsetof(MetaBlock, slots) == 64);
static_assert(alignof(MetaBlock) == 8);
static_assert(std::is_trivially_copyable_v<MetaBlock> && std::is_standard_layout_v<MetaBlock>);

}  // namespace tern::pmem
