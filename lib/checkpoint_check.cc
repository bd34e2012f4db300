#include "lib/checkpoint_check.h"

#include <algorithm>
#include <cstring>

#include "lib/crc32c.h"
#include "lib/layout_constants.h"
#include "lib/log_block_format.h"
#include "lib/meta_block_format.h"

namespace tern {
namespace {

// One pass without a branch per run, which the compiler can vectorise: a fragmented 1 GiB file
// has ~250,000 runs, checked at every open.
bool RunsAreValid(const pmem::ExtRun* runs, uint32_t nruns, uint64_t file_blocks, uint64_t* mapped) {
  const auto limit = static_cast<uint32_t>(std::min<uint64_t>(file_blocks, kMaxBlocks));
  // Each term alone keeps the sums below from wrapping: all values stay below 2^29.
  auto bad_run = [limit](const pmem::ExtRun& r, uint32_t prev_end) {
    return static_cast<uint32_t>(r.reserved != 0) | static_cast<uint32_t>(r.nblocks - 1 >= kMaxBlocks) |
           static_cast<uint32_t>(r.vblock > kMaxBlocks) | static_cast<uint32_t>(r.vblock + r.nblocks > kMaxBlocks) |
           static_cast<uint32_t>(r.lblock - 1 >= limit) | static_cast<uint32_t>(r.nblocks > limit - r.lblock) |
           static_cast<uint32_t>(r.vblock < prev_end);
  };
  *mapped = 0;
  if (nruns == 0) return true;
  uint32_t bad = bad_run(runs[0], 0);
  uint64_t sum = runs[0].nblocks;
  for (uint32_t i = 1; i < nruns; ++i) {
    bad |= bad_run(runs[i], runs[i - 1].vblock + runs[i - 1].nblocks);
    sum += runs[i].nblocks;
  }
  *mapped = sum;
  return bad == 0;
}

}  // namespace

const char* CheckpointHeaderDamage(const pmem::CheckpointHeader& h, uint64_t block, uint64_t file_blocks,
                                   uint64_t* span) {
  if (h.magic != pmem::kCheckpointMagic || h.reserved != 0) return "checkpoint has a bad magic";
  *span = BlocksFor(pmem::CheckpointBytes(h.nruns));
  if (h.nruns > kMaxBlocks || block + *span > file_blocks) return "checkpoint runs past the end of the file";
  return nullptr;
}

const char* CheckpointDamage(const uint8_t* record, uint64_t file_blocks, uint64_t* mapped) {
  pmem::CheckpointHeader h;
  memcpy(&h, record, sizeof(h));
  pmem::CheckpointHeader zeroed = h;
  zeroed.crc = 0;
  uint32_t crc = Crc32c(&zeroed, sizeof(zeroed));
  crc = Crc32c(record + sizeof(h), uint64_t{h.nruns} * sizeof(pmem::ExtRun), crc);
  if (crc != h.crc) return "checkpoint checksum mismatch";
  if (h.position < pmem::kMetaSlots || h.size > kMaxFileSize ||
      h.chain_index != (h.position - pmem::kMetaSlots) / pmem::kLogSlots || h.chain_block >= file_blocks ||
      h.chain_block == 0) {
    return "checkpoint names an impossible log position";
  }
  // The runs follow the 48-byte header, so they are 16-byte records at an 8-byte-aligned address.
  const auto* runs = reinterpret_cast<const pmem::ExtRun*>(record + sizeof(h));
  if (RunsAreValid(runs, h.nruns, file_blocks, mapped)) return nullptr;
  for (uint32_t i = 1; i < h.nruns; ++i) {  // which check failed
    if (runs[i].vblock < uint64_t{runs[i - 1].vblock} + runs[i - 1].nblocks) return "checkpoint runs out of order";
  }
  return "checkpoint maps a block index out of range";
}

}  // namespace tern
