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
#include <vector>

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
  // Claims exactly `want` contiguous free blocks (the run may span bitmap words) for slot `me`, or
  // returns a run with count 0 when no free run is that long. Shorter free runs are left alone.
  BlockRun TryAllocateContiguous(uint32_t want, uint32_t me);
  // Returns blocks `me` claimed and never committed (nobody else can reach them).
  void Release(BlockRun run, uint32_t me);
  // Hands committed blocks to the log: from now on their superseder frees them.
  void Adopt(BlockRun run);
  // Claims an in-use block for freeing: CAS expected -> FreeingBy(me). While claimed nobody else
  // frees or reuses it, so the claimer can check at leisure whether the log still references it.
  bool Claim(LogicalBlock b, BlockOwner expected, uint32_t me);
  // Frees a block `me` claimed. REQUIRES: no commit in the log references it any more.
  void FreeClaimed(LogicalBlock b);
  // Gives a claimed block back to the log (it is still referenced).
  void Unclaim(LogicalBlock b) { owners_[b.value()].store(kLogOwner); }
  // Hands an in-use block marked by a dead slot (`dead`) to the log. False if the mark changed.
  bool HandToLog(LogicalBlock b, BlockOwner dead) { return owners_[b.value()].compare_exchange_strong(dead, kLogOwner); }
  // A dead slot's mark on a block whose bit is clear (an allocation claim it never finished, or a
  // free that cleared the bit but not the owner) is void. Returns true if it was.
  bool VoidDeadClaim(LogicalBlock b, BlockOwner dead);

  BlockOwner OwnerOf(LogicalBlock b) const { return owners_[b.value()].load(std::memory_order_acquire); }
  bool IsUsed(LogicalBlock b) const {
    return (words_[b.value() / 64].load(std::memory_order_acquire) >> (b.value() % 64)) & 1;
  }
  // Marks blocks in use and log-owned without checking (the build from the log at first need).
  void MarkUsed(BlockRun run);
  // The same for every block whose bit is set in `used` (one bit per block, as the bitmap).
  // Blocks below `resident_blocks` have their bitmap and owner-map pages mapped already; when the
  // used ones reach past it, the pages are mapped in one call first (a fresh object's are not).
  // REQUIRES: the build lock (FileCore::EnsureAllocatorReady): nobody allocates before the ready state.
  void MarkUsedBitmap(const std::vector<uint64_t>& used, uint64_t resident_blocks);
  // Number of blocks in use below num_blocks (tests, stat).
  uint64_t CountUsed() const;
  uint64_t num_blocks() const { return header_->num_blocks.load(); }

  // Whether the bitmap and owner map describe the log (SharedHeader::alloc_state). Nothing may be
  // allocated, claimed or freed before; FileCore::EnsureAllocatorReady builds them.
  bool ready() const { return header_->alloc_state.load(std::memory_order_acquire) == kAllocReady; }
  // For the builder, holding the build lock: starts a build (zeroing what a dead builder left
  // half-marked), and ends it, making everything it marked visible with the ready state.
  void BeginBuild();
  void EndBuild() { header_->alloc_state.store(kAllocReady, std::memory_order_release); }

 private:
  void ClearBits(BlockRun run);
  void SetBits(BlockRun run);
  // Claims the owners of [first, first + count) for `me`, all or none. Returns count, or the index
  // of the first block somebody else holds (and then claims nothing).
  uint32_t ClaimOwners(uint32_t first, uint32_t count, uint32_t me);
  void StoreHint(uint64_t word);
  // Bitmap word w with the bits past the end of the file set (they count as used).
  uint64_t WordWithTail(uint64_t w, uint64_t nblocks) const;

  SharedHeader* header_;
  std::atomic<uint64_t>* words_;
  std::atomic<BlockOwner>* owners_;
};

}  // namespace tern
