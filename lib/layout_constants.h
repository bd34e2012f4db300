// Sizes every on-media structure shares. See doc/format/file.md.
#pragma once

#include <cstdint>

namespace tern {

inline constexpr uint32_t kBlockSize = 4096;
inline constexpr uint32_t kBlockShift = 12;
inline constexpr uint32_t kCacheLine = 64;
inline constexpr uint64_t kBlocksPerGrowStep = (2u << 20) / kBlockSize;  // 512

// Largest block index an inline entry can hold (28 bits) and the largest file tern serves.
inline constexpr uint32_t kMaxBlocks = 1u << 28;  // 1 TiB of 4 KiB blocks
inline constexpr uint64_t kMaxFileSize = uint64_t{kMaxBlocks} * kBlockSize;

// Blocks needed to hold `bytes` bytes (rounded up).
constexpr uint64_t BlocksFor(uint64_t bytes) { return (bytes + kBlockSize - 1) / kBlockSize; }

}  // namespace tern
