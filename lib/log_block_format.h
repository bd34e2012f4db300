// A log block: kLogSlots commit slots followed by a trailer linking the chain. The chain starts at
// MetaHeader::log_head; `seq` is 1 for the first log block and grows by one along the chain, which
// detects cycles and misplaced blocks. See doc/format/file.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "lib/layout_constants.h"

namespace tern::pmem {

inline constexpr uint32_t kLogMagic = 0x474F4C54;  // "TLOG"

struct LogBlockTrailer {
  uint32_t magic;     // kLogMagic
  uint32_t seq;       // position of this block in the chain, 1-based
  uint32_t next;      // LogicalBlock of the next log block; 0 = none yet. CAS'd from 0.
  uint32_t checksum;  // crc32c of {magic, seq} (fixed when the block is initialised)
};
static_assert(sizeof(LogBlockTrailer) == 16);

inline constexpr uint32_t kLogSlots = (kBlockSize - sizeof(LogBlockTrailer)) / sizeof(uint64_t);  // 510

struct LogBlock {
  uint64_t slots[kLogSlots];
  LogBlockTrailer trailer;
};
static_assert(sizeof(LogBlock) == kBlockSize && offsetof(LogBlock, trailer) == 4080);
static_assert(std::is_trivially_copyable_v<LogBlock> && std::is_standard_layout_v<LogBlock>);

}  // namespace tern::pmem
