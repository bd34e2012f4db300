// Sizes every on-media structure shares. See doc/format/file.md.
#pragma once

#include <cstdint>

namespace tern {

inline constexpr uint32_t kBlockSize = 4096;
inline constexpr uint32_t kBlockShift = 12;
inline constexpr uint32_t kCacheLine = 64;
inline constexpr uint64_t kBlocksPerGrowStep = (2u << 20) / kBlockSize;  // 512

// A new file's backing holds kFirstBlocks (64 KiB): most files are small, and every block of the
// backing is a zeroed tmpfs page from the start (fallocate), ~0.4 µs each here, 2 MiB of them for
// a 100-byte file before. The size doubles up to one grow step, then grows in whole steps.
inline constexpr uint64_t kFirstBlocks = 16;
static_assert(kBlocksPerGrowStep % kFirstBlocks == 0 && ((kBlocksPerGrowStep / kFirstBlocks) & (kBlocksPerGrowStep / kFirstBlocks - 1)) == 0,
              "doubling from kFirstBlocks reaches one grow step exactly");

// The smallest backing size (in blocks) at or above `nblocks` that the growth rule produces:
// kFirstBlocks doubled, or whole grow steps. A backing file of any other size is an interrupted
// format or grow, which the exclusive opener finishes.
constexpr uint64_t BackingBlocksFor(uint64_t nblocks) {
  if (nblocks > kBlocksPerGrowStep) return (nblocks + kBlocksPerGrowStep - 1) / kBlocksPerGrowStep * kBlocksPerGrowStep;
  uint64_t size = kFirstBlocks;
  while (size < nblocks) size *= 2;
  return size;
}

// Largest block index an inline entry can hold (28 bits) and the largest file tern serves.
inline constexpr uint32_t kMaxBlocks = 1u << 28;  // 1 TiB of 4 KiB blocks
inline constexpr uint64_t kMaxFileSize = uint64_t{kMaxBlocks} * kBlockSize;

// Blocks needed to hold `bytes` bytes (rounded up).
constexpr uint64_t BlocksFor(uint64_t bytes) { return (bytes + kBlockSize - 1) / kBlockSize; }

}  // namespace tern
