// The checks a checkpoint record (checkpoint_format.h) must pass before anything reads its runs:
// one set of rules for the engine's open (FileCore::ReadCheckpoint) and for `tern info` / `tern
// fsck` (info.cc), so the tools call damaged exactly what an open refuses, with the same words.
//
// Both functions return nullptr when the record passes, else a short cause for an EUCLEAN error.
#pragma once

#include <cstdint>

#include "lib/checkpoint_format.h"

namespace tern {

// The header alone, as read from the first bytes of block `block` of a file of `file_blocks`
// blocks: its magic, and that the runs it announces fit in the file. Sets *span to the blocks the
// whole record fills.
const char* CheckpointHeaderDamage(const pmem::CheckpointHeader& h, uint64_t block, uint64_t file_blocks,
                                   uint64_t* span);

// The whole record at `record` (header, then h.nruns runs, contiguous), whose header passed the
// check above: checksum, the log position it names, and runs in vblock order, not overlapping,
// none empty or a hole, inside the file's blocks and the largest file. Sums the blocks the runs map
// into *mapped.
const char* CheckpointDamage(const uint8_t* record, uint64_t file_blocks, uint64_t* mapped);

}  // namespace tern
