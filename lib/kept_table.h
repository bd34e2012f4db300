// KeptTable: what a process that closes a file knows of the file's log — the block table as of a
// log position, the log blocks from the checkpoint on, and which checkpoint — kept with the file's
// Backing (backing_cache.h) so that the process's next open of the same, unchanged inode starts
// from there instead of replaying the log from its checkpoint again.
//
// Why it is sound: log positions only grow and log blocks are only appended after the checkpoint's
// block, so a reopen with it is what an attached process that sat idle since then does at its next
// operation (FileCore::RefreshCheckpointLocked jumps to a newer checkpoint when GC made one
// meanwhile, ReplayLocked continues from the position). A file formatted again has a new nonce.
#pragma once

#include <cstdint>
#include <vector>

#include "lib/commit.h"
#include "lib/ext_record_format.h"

namespace tern {

struct KeptTable {
  uint64_t nonce = 0;                 // the file's format nonce (meta header)
  LogPos applied = 0;                 // the table is the file as of this log position
  uint64_t size = 0;
  std::vector<pmem::ExtRun> runs;     // the table's mapped runs, in vblock order
  uint32_t chain_first = 0;           // chain[i] is the (chain_first + i)-th log block
  std::vector<uint32_t> chain;
  uint64_t ckpt_pos = 0, ckpt_block = 0;
  uint32_t ckpt_span = 0;
};

}  // namespace tern
