#include "lib/allocator.h"

#include <bit>

namespace tern {
namespace {

uint64_t MaskOf(uint32_t pos, uint32_t len) {
  uint64_t bits = len >= 64 ? ~uint64_t{0} : (uint64_t{1} << len) - 1;
  return bits << pos;
}

// Visits the words covering [start, start+count), with the bit mask of that word's part.
template <typename Fn>
void ForEachWord(BlockRun run, Fn&& fn) {
  uint32_t b = run.start.value();
  uint32_t left = run.count;
  while (left > 0) {
    uint32_t pos = b % 64;
    uint32_t len = std::min<uint32_t>(left, 64 - pos);
    fn(b / 64, MaskOf(pos, len));
    b += len;
    left -= len;
  }
}

}  // namespace

BlockRun BlockAllocator::TryAllocate(uint32_t want) {
  uint64_t nblocks = header_->num_blocks.load();
  uint64_t nwords = (nblocks + 63) / 64;
  if (nwords == 0 || want == 0) return {};
  uint64_t start = header_->alloc_hint.load(std::memory_order_relaxed) % nwords;
  for (uint64_t i = 0; i < nwords; ++i) {
    uint64_t w = (start + i) % nwords;
    // Bits past the end of the file count as used.
    uint64_t beyond = (w == nwords - 1 && nblocks % 64 != 0) ? ~MaskOf(0, nblocks % 64) : 0;
    uint64_t bits = words_[w].load(std::memory_order_relaxed);
    // CAS loop on one word: fails only when another allocator changed this word; then re-read it.
    for (;;) {
      uint64_t free_bits = ~(bits | beyond);
      if (free_bits == 0) break;
      auto pos = static_cast<uint32_t>(std::countr_zero(free_bits));
      uint64_t shifted = free_bits >> pos;
      auto run = shifted == ~uint64_t{0} ? 64 - pos : static_cast<uint32_t>(std::countr_one(shifted));
      uint32_t len = std::min(run, want);
      if (words_[w].compare_exchange_weak(bits, bits | MaskOf(pos, len), std::memory_order_acq_rel)) {
        // A whole-word grab moves the hint on, so big writes find fresh contiguous words.
        header_->alloc_hint.store(pos + len == 64 ? w + 1 : w, std::memory_order_relaxed);
        return {LogicalBlock(static_cast<uint32_t>(w * 64 + pos)), len};
      }
    }
  }
  return {};
}

void BlockAllocator::Free(BlockRun run) {
  ForEachWord(run, [&](uint64_t w, uint64_t mask) {
    words_[w].fetch_and(~mask, std::memory_order_acq_rel);
  });
}

void BlockAllocator::MarkUsed(BlockRun run) {
  ForEachWord(run, [&](uint64_t w, uint64_t mask) {
    words_[w].fetch_or(mask, std::memory_order_acq_rel);
  });
}

uint64_t BlockAllocator::CountUsed() const {
  uint64_t nblocks = header_->num_blocks.load();
  uint64_t used = 0;
  for (uint64_t w = 0; w < (nblocks + 63) / 64; ++w) {
    uint64_t bits = words_[w].load(std::memory_order_relaxed);
    if (w == nblocks / 64) bits &= MaskOf(0, static_cast<uint32_t>(nblocks % 64));
    used += static_cast<uint64_t>(std::popcount(bits));
  }
  return used;
}

}  // namespace tern
