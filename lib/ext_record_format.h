// Extended records: the variable-length commit records that inline entries cannot express (writes
// that leave the size unaligned past EOF, writes of many runs or of more than 63 blocks, truncate,
// hole punching). A record starts 8-byte aligned inside a block and may continue into the blocks
// that follow it (it is allocated contiguously). See doc/format/file.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "lib/layout_constants.h"

namespace tern::pmem {

inline constexpr uint16_t kExtMagic = 0x5845;  // "EX"

enum class ExtKind : uint8_t {
  kWrite = 1,     // apply runs, then size = new_size
  kTruncate = 2,  // unmap every block at or past ceil(new_size / 4096), apply runs, size = new_size
};

struct ExtRecordHeader {
  uint16_t magic;     // kExtMagic
  uint8_t kind;       // ExtKind
  uint8_t reserved0;  // 0
  uint32_t crc;       // crc32c of header (crc zeroed) and runs
  uint32_t nruns;     // number of ExtRun that follow
  uint32_t reserved1; // 0
  uint64_t new_size;  // file size in bytes after this record
};
static_assert(sizeof(ExtRecordHeader) == 24);
static_assert(offsetof(ExtRecordHeader, crc) == 4 && offsetof(ExtRecordHeader, nruns) == 8);
static_assert(offsetof(ExtRecordHeader, new_size) == 16);
static_assert(std::is_trivially_copyable_v<ExtRecordHeader> && std::is_standard_layout_v<ExtRecordHeader>);

// Maps [vblock, vblock+nblocks) to [lblock, lblock+nblocks); lblock 0 unmaps (a hole).
struct ExtRun {
  uint32_t vblock;
  uint32_t lblock;
  uint32_t nblocks;
  uint32_t reserved;  // 0
};
static_assert(sizeof(ExtRun) == 16 && offsetof(ExtRun, nblocks) == 8);
static_assert(std::is_trivially_copyable_v<ExtRun> && std::is_standard_layout_v<ExtRun>);

inline constexpr uint64_t ExtRecordBytes(uint32_t nruns) {
  return sizeof(ExtRecordHeader) + uint64_t{nruns} * sizeof(ExtRun);
}

}  // namespace tern::pmem
