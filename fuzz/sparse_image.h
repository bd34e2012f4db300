// The input format of the structure-aware fuzz target: a tern backing file written sparsely, as a
// sequence of chunks {uint32 block index (little-endian), 4096 bytes}. The file is as many 2 MiB
// steps as cover the highest block (at most kMaxImageBlocks); blocks without a chunk are zero.
// Seeds in fuzz/corpus/image/ are real tern files in this form, so they stay a few KiB each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lib/layout_constants.h"

namespace tern::fuzz {

inline constexpr size_t kChunkBytes = 4 + kBlockSize;
inline constexpr uint32_t kMaxImageBlocks = 4 * 512;  // 8 MiB

using Block = std::vector<uint8_t>;  // kBlockSize bytes

// Parses chunks (a trailing partial chunk is ignored; block indices are taken modulo
// kMaxImageBlocks; a later chunk for the same block wins).
std::map<uint32_t, Block> ParseChunks(const uint8_t* data, size_t size);
std::vector<uint8_t> SerializeChunks(const std::map<uint32_t, Block>& blocks);
// Blocks in the backing file: whole 2 MiB steps covering every chunk.
uint32_t ImageBlocks(const std::map<uint32_t, Block>& blocks);
// Writes the backing file.
void WriteImage(const std::string& path, const std::map<uint32_t, Block>& blocks);

}  // namespace tern::fuzz
