// The 8-byte commit entry and its codec. See doc/format/file.md.
//
//   bits 0-1  tag: 0 = free slot (the whole word is 0), 1 = inline/extend, 2 = inline/keep-size,
//             3 = pointer to an extended record
//   inline:   bits 2-7 block count (1..63), bits 8-35 first virtual block, bits 36-63 first logical
//             block. Maps [vblock, vblock+count) to [lblock, lblock+count). "extend" sets
//             size = max(size, (vblock+count)*4096); "keep-size" leaves the size as it is.
//   extended: bits 2-10 offset of the record within its block in 8-byte units, bits 11-31 zero,
//             bits 32-63 logical block holding the record.
// Entries are absolute: replaying them in log order is idempotent and the last one wins.
#pragma once

#include <cstdint>
#include <optional>

#include "lib/index.h"

namespace tern::pmem {

enum class EntryTag : uint32_t { kFree = 0, kInlineExtend = 1, kInlineKeepSize = 2, kExtended = 3 };

inline constexpr uint32_t kMaxInlineBlocks = 63;
inline constexpr uint32_t kInlineIndexBits = 28;

struct InlineEntry {
  VirtualBlock vblock;
  LogicalBlock lblock;
  uint32_t count;   // 1..63
  bool extend;      // size = max(size, end of mapping) when true
};

struct ExtendedPointer {
  LogicalBlock block;
  uint32_t offset;  // byte offset within the block, multiple of 8
};

inline EntryTag TagOf(uint64_t entry) { return static_cast<EntryTag>(entry & 3u); }

inline bool FitsInline(VirtualBlock v, LogicalBlock l, uint32_t count) {
  constexpr uint64_t kLimit = uint64_t{1} << kInlineIndexBits;
  return count >= 1 && count <= kMaxInlineBlocks && uint64_t{v.value()} + count <= kLimit &&
         uint64_t{l.value()} + count <= kLimit && l != kNoBlock;
}

// REQUIRES: FitsInline(e.vblock, e.lblock, e.count).
inline uint64_t EncodeInline(const InlineEntry& e) {
  uint64_t tag = e.extend ? 1u : 2u;
  return tag | (uint64_t{e.count} << 2) | (uint64_t{e.vblock.value()} << 8) |
         (uint64_t{e.lblock.value()} << 36);
}

// Returns nothing if the word is not a well-formed inline entry.
inline std::optional<InlineEntry> DecodeInline(uint64_t entry) {
  EntryTag tag = TagOf(entry);
  if (tag != EntryTag::kInlineExtend && tag != EntryTag::kInlineKeepSize) return std::nullopt;
  auto count = static_cast<uint32_t>((entry >> 2) & 0x3F);
  auto v = static_cast<uint32_t>((entry >> 8) & 0x0FFFFFFF);
  auto l = static_cast<uint32_t>(entry >> 36);
  if (count == 0 || l == 0) return std::nullopt;
  return InlineEntry{VirtualBlock(v), LogicalBlock(l), count, tag == EntryTag::kInlineExtend};
}

// REQUIRES: offset % 8 == 0 && offset < kBlockSize.
inline uint64_t EncodeExtended(ExtendedPointer p) {
  return 3u | (uint64_t{p.offset / 8} << 2) | (uint64_t{p.block.value()} << 32);
}

inline std::optional<ExtendedPointer> DecodeExtended(uint64_t entry) {
  if (TagOf(entry) != EntryTag::kExtended) return std::nullopt;
  if (((entry >> 11) & 0x1FFFFF) != 0) return std::nullopt;
  auto block = static_cast<uint32_t>(entry >> 32);
  if (block == 0) return std::nullopt;
  return ExtendedPointer{LogicalBlock(block), static_cast<uint32_t>(((entry >> 2) & 0x1FF) * 8)};
}

}  // namespace tern::pmem
