// libFuzzer target: valid tern images mutated at structure boundaries. The input is a sparse image
// (sparse_image.h); the custom mutator below edits what a damaged or hostile file would differ in —
// meta header fields, commit entries, log-block trailers, extended records and their runs — with
// boundary values (0, the last block, one past it, 2^28, …), usually re-sealing the checksum so the
// checks behind it are reached; otherwise libFuzzer's byte mutations on one block. The contract
// checked is fuzz_common.h's. Seeds: fuzz/corpus/image/.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "fuzz/sparse_image.h"
#include "fuzz/structure_mutator.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto blocks = tern::fuzz::ParseChunks(data, size);
  if (blocks.empty()) return 0;
  const std::string& path = tern::fuzz::ScratchFile();
  tern::fuzz::WriteImage(path, blocks);
  tern::fuzz::CheckBackingFile(path);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  auto blocks = tern::fuzz::ParseChunks(data, size);
  std::mt19937_64 rng(seed);
  if (blocks.empty() || rng() % 5 == 0) {
    // Byte-level mutation of one block, libFuzzer's own.
    if (blocks.empty()) blocks[0] = tern::fuzz::FreshMetaBlock();
    auto it = std::next(blocks.begin(), static_cast<long>(rng() % blocks.size()));
    LLVMFuzzerMutate(it->second.data(), it->second.size(), it->second.size());
  } else {
    tern::fuzz::MutateStructure(blocks, rng);
  }
  std::vector<uint8_t> out = tern::fuzz::SerializeChunks(blocks);
  while (out.size() > max_size && blocks.size() > 1) {
    blocks.erase(std::prev(blocks.end()));
    out = tern::fuzz::SerializeChunks(blocks);
  }
  if (out.size() > max_size) return size;  // cannot fit even one block: leave the input as it was
  memcpy(data, out.data(), out.size());
  return out.size();
}
