// Block allocator over the shared free-block bitmap (one bit per logical block, 1 = in use) and the
// owner map (shared_state.h). Lock-free: a block is claimed by a CAS on its owner entry, then its
// bit is set; a run of free bits inside one 64-bit word is taken in one pass. The bitmap and owner
// map live in the shared state, so every process with the file open allocates from the same pool.
//
// Invariant it serves (DESIGN §4): a block is freed only by the writer whose commit superseded it
// (or by a sweep after that writer died), so a freed block may be reused at once; readers catch
// reuse by validating against the log.
// Thread-safe and process-safe. `me` is always the caller's slot.
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
  explicit BlockAllocator(SharedState* state)
      : header_(state->header()), words_(state->bitmap()), owners_(state->owners()) {}

  // Claims up to `want` contiguous free blocks below num_blocks for slot `me`. Returns a run with
  // count 0 when no block is free (the caller grows the file and asks again).
  BlockRun TryAllocate(uint32_t want, uint32_t me);
  // Returns blocks `me` claimed and never committed (nobody else can reach them).
  void Release(BlockRun run, uint32_t me);
  // Hands committed blocks to the log: from now on their superseder frees them.
  void Adopt(BlockRun run);
  // Frees blocks a commit superseded, each only if it is still log-owned: a sweep may have freed
  // it already. REQUIRES: the superseding commit is in the log.
  void FreeSuperseded(BlockRun run, uint32_t me);
  // Frees one in-use block if its owner is still `expected`. Returns true if `me` freed it.
  bool FreeIfOwner(LogicalBlock b, BlockOwner expected, uint32_t me);
  // Finishes what a dead slot left half done on block b (owner `seen`): a claim without its bit,
  // or a free that did not finish. Returns true if it changed anything.
  bool FinishDead(LogicalBlock b, BlockOwner seen, uint32_t me);
  // Sets the owner of a referenced block whose claimer died after committing it.
  bool AdoptIfOwner(LogicalBlock b, BlockOwner expected);

  BlockOwner OwnerOf(LogicalBlock b) const { return owners_[b.value()].load(std::memory_order_acquire); }
  bool IsUsed(LogicalBlock b) const {
    return (words_[b.value() / 64].load(std::memory_order_acquire) >> (b.value() % 64)) & 1;
  }
  // Marks blocks in use and log-owned without checking (rebuild from the log at first open).
  void MarkUsed(BlockRun run);
  // Number of blocks in use below num_blocks (tests, stat).
  uint64_t CountUsed() const;
  uint64_t num_blocks() const { return header_->num_blocks.load(); }

 private:
  void ClearBits(BlockRun run);
  void SetBits(BlockRun run);

  SharedHeader* header_;
  std::atomic<uint64_t>* words_;
  std::atomic<BlockOwner>* owners_;
};

}  // namespace tern
