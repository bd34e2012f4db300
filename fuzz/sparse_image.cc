#include "fuzz/sparse_image.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace tern::fuzz {

std::map<uint32_t, Block> ParseChunks(const uint8_t* data, size_t size) {
  std::map<uint32_t, Block> blocks;
  for (size_t at = 0; at + kChunkBytes <= size; at += kChunkBytes) {
    uint32_t index;
    memcpy(&index, data + at, 4);
    blocks[index % kMaxImageBlocks] = Block(data + at + 4, data + at + kChunkBytes);
  }
  return blocks;
}

std::vector<uint8_t> SerializeChunks(const std::map<uint32_t, Block>& blocks) {
  std::vector<uint8_t> out;
  out.reserve(blocks.size() * kChunkBytes);
  for (const auto& [index, block] : blocks) {
    uint8_t head[4];
    memcpy(head, &index, 4);
    out.insert(out.end(), head, head + 4);
    out.insert(out.end(), block.begin(), block.end());
  }
  return out;
}

uint32_t ImageBlocks(const std::map<uint32_t, Block>& blocks) {
  uint32_t top = blocks.empty() ? 0 : blocks.rbegin()->first;
  return (top / static_cast<uint32_t>(kBlocksPerGrowStep) + 1) * static_cast<uint32_t>(kBlocksPerGrowStep);
}

void WriteImage(const std::string& path, const std::map<uint32_t, Block>& blocks) {
  unlink(path.c_str());
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) abort();
  if (ftruncate(fd, static_cast<off_t>(uint64_t{ImageBlocks(blocks)} * kBlockSize)) != 0) abort();
  for (const auto& [index, block] : blocks) {
    if (pwrite(fd, block.data(), kBlockSize, static_cast<off_t>(uint64_t{index} * kBlockSize)) !=
        static_cast<ssize_t>(kBlockSize)) {
      abort();
    }
  }
  close(fd);
}

}  // namespace tern::fuzz
