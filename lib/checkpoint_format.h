// A checkpoint record: the whole mapping and size of the file as of log position `position`, written
// by log compaction (GC). Entries before `position` need never be read again: an opener loads the
// checkpoint and replays from `position`, whose log block is `chain_block` (index `chain_index` in
// the chain). MetaHeader::checkpoint points at the newest one. The record starts at a block boundary
// and fills ceil(CheckpointBytes(nruns) / 4096) contiguous blocks. See doc/format/file.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "lib/ext_record_format.h"

namespace tern::pmem {

inline constexpr uint32_t kCheckpointMagic = 0x54504B43;  // "CKPT"

struct CheckpointHeader {
  uint32_t magic;        // kCheckpointMagic
  uint32_t crc;          // crc32c of header (crc zeroed) and runs
  uint64_t position;     // log position the checkpoint stands for (>= the meta block's slots)
  uint64_t size;         // file size at that position
  uint32_t chain_index;  // index in the log-block chain of the block holding `position`
  uint32_t chain_block;  // that block's LogicalBlock
  uint32_t nruns;        // ExtRun entries that follow (lblock never 0: holes are left out)
  uint32_t reserved;     // 0
  uint64_t generation;   // 1 for the first checkpoint of a file, then +1 each
};
static_assert(sizeof(CheckpointHeader) == 48);
static_assert(offsetof(CheckpointHeader, position) == 8 && offsetof(CheckpointHeader, chain_index) == 24);
static_assert(offsetof(CheckpointHeader, nruns) == 32 && offsetof(CheckpointHeader, generation) == 40);
static_assert(std::is_trivially_copyable_v<CheckpointHeader> && std::is_standard_layout_v<CheckpointHeader>);

inline constexpr uint64_t CheckpointBytes(uint32_t nruns) {
  return sizeof(CheckpointHeader) + uint64_t{nruns} * sizeof(ExtRun);
}

}  // namespace tern::pmem
