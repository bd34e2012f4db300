// Block allocator over the shared free-block bitmap (one bit per logical block, 1 = in use).
// Lock-free: a run of free bits inside one 64-bit word is taken with one CAS. The bitmap lives in
// the shared state object, so every process with the file open allocates from the same pool.
//
// Invariant it serves (DESIGN §4): a block is freed only by the writer whose commit superseded it,
// so a freed block may be reused at once; readers catch reuse by validating against the log.
// Thread-safe and process-safe.
#pragma once

#include <atomic>
#include <cstdint>

#include "lib/index.h"
#include "lib/shared_state.h"

namespace tern {

struct BlockRun {
  LogicalBlock start;
  uint32_t count = 0;
  LogicalBlock end() const { return start + BlockCount{count}; }
};

class BlockAllocator {
 public:
  // `state` must outlive the allocator.
  explicit BlockAllocator(SharedState* state) : header_(state->header()), words_(state->bitmap()) {}

  // Takes up to `want` contiguous free blocks below num_blocks. Returns a run with count 0 when no
  // block is free (the caller grows the file and asks again).
  BlockRun TryAllocate(uint32_t want);
  // Returns blocks to the pool. REQUIRES: they were allocated and nobody can reach them through a
  // commit newer than the one that superseded them.
  void Free(BlockRun run);
  // Marks blocks in use without checking (rebuild from the log at first open).
  void MarkUsed(BlockRun run);
  // Number of blocks in use below num_blocks (tests, stat).
  uint64_t CountUsed() const;
  uint64_t num_blocks() const { return header_->num_blocks.load(); }

 private:
  SharedHeader* header_;
  std::atomic<uint64_t>* words_;
};

}  // namespace tern
