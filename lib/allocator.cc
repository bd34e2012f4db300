#include "lib/allocator.h"

#include <algorithm>
#include <bit>

#include "pmem/mapping.h"

namespace tern {
namespace {

uint64_t MaskOf(uint32_t pos, uint32_t len) {
  uint64_t bits = len >= 64 ? ~uint64_t{0} : (uint64_t{1} << len) - 1;
  return bits << pos;
}

// Visits the words covering the run, with the bit mask of that word's part.
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

BlockRun BlockAllocator::TryAllocate(uint32_t want, uint32_t me) {
  uint64_t nblocks = header_->num_blocks.load();
  uint64_t nwords = (nblocks + 63) / 64;
  if (nwords == 0 || want == 0) return {};
  uint64_t start = header_->alloc_hint.load(std::memory_order_relaxed) % nwords;
  for (uint64_t i = 0; i < nwords; ++i) {
    uint64_t w = (start + i) % nwords;
    uint64_t skip = 0;  // blocks we found claimed by somebody else count as used
    for (;;) {
      uint64_t free_bits = ~(WordWithTail(w, nblocks) | skip);
      if (free_bits == 0) break;
      auto pos = static_cast<uint32_t>(std::countr_zero(free_bits));
      uint64_t shifted = free_bits >> pos;
      auto run = shifted == ~uint64_t{0} ? 64 - pos : static_cast<uint32_t>(std::countr_one(shifted));
      uint32_t len = std::min(run, want);
      auto first = static_cast<uint32_t>(w * 64 + pos);
      // Claim owners first: a claimed block is ours even before its bit is set.
      uint32_t claimed = 0;
      while (claimed < len) {
        BlockOwner expected = kFreeBlock;
        if (!owners_[first + claimed].compare_exchange_strong(expected, tern::OwnerOf(me))) break;
        ++claimed;
      }
      if (claimed == 0) {
        skip |= MaskOf(pos, 1);  // being claimed by another allocator, or a dead one's leftover
        continue;
      }
      SetBits({LogicalBlock(first), claimed});
      StoreHint(pos + claimed == 64 ? w + 1 : w);
      return {LogicalBlock(first), claimed};
    }
  }
  return {};
}

BlockRun BlockAllocator::TryAllocateContiguous(uint32_t want, uint32_t me) {
  uint64_t nblocks = header_->num_blocks.load();
  uint64_t nwords = (nblocks + 63) / 64;
  if (nwords == 0 || want == 0) return {};
  uint64_t start = header_->alloc_hint.load(std::memory_order_relaxed) % nwords;
  // One pass over the words from the hint, wrapping once; a run never wraps past the end.
  uint64_t run_start = 0, run_len = 0;
  for (uint64_t i = 0; i < nwords; ++i) {
    uint64_t w = (start + i) % nwords;
    if (w == 0) run_len = 0;
    uint64_t free_bits = ~WordWithTail(w, nblocks);
    uint32_t bit = 0;
    while (bit < 64) {
      uint64_t rest = free_bits >> bit;
      if ((rest & 1) == 0) {
        run_len = 0;
        bit += rest == 0 ? 64 - bit : static_cast<uint32_t>(std::countr_zero(rest));
        continue;
      }
      auto ones = static_cast<uint32_t>(std::countr_one(rest));
      uint64_t here = w * 64 + bit;
      if (run_len == 0 || run_start + run_len != here) {
        run_start = here;
        run_len = 0;
      }
      run_len += ones;
      bit += ones;
      while (run_len >= want) {
        auto first = static_cast<uint32_t>(run_start);
        uint32_t claimed = ClaimOwners(first, want, me);
        if (claimed == want) {
          SetBits({LogicalBlock(first), want});
          StoreHint((first + want) / 64);
          return {LogicalBlock(first), want};
        }
        // Block first + claimed is being claimed by somebody else: the run restarts after it.
        run_start += claimed + 1;
        run_len -= claimed + 1;
      }
    }
  }
  return {};
}

void BlockAllocator::StoreHint(uint64_t word) {
  // Only a change is stored: every allocation of every process reads the hint's line.
  if (header_->alloc_hint.load(std::memory_order_relaxed) != word) header_->alloc_hint.store(word, std::memory_order_relaxed);
}

uint32_t BlockAllocator::ClaimOwners(uint32_t first, uint32_t count, uint32_t me) {
  for (uint32_t i = 0; i < count; ++i) {
    BlockOwner expected = kFreeBlock;
    if (!owners_[first + i].compare_exchange_strong(expected, tern::OwnerOf(me))) {
      // Our claims on [first, first + i) never had their bits set: dropping them frees them again.
      for (uint32_t j = 0; j < i; ++j) owners_[first + j].store(kFreeBlock);
      return i;
    }
  }
  return count;
}

uint64_t BlockAllocator::WordWithTail(uint64_t w, uint64_t nblocks) const {
  uint64_t bits = words_[w].load(std::memory_order_acquire);
  bool last = w == (nblocks + 63) / 64 - 1 && nblocks % 64 != 0;
  return last ? bits | ~MaskOf(0, static_cast<uint32_t>(nblocks % 64)) : bits;
}

void BlockAllocator::SetBits(BlockRun run) {
  ForEachWord(run, [&](uint64_t w, uint64_t mask) { words_[w].fetch_or(mask, std::memory_order_acq_rel); });
}

void BlockAllocator::ClearBits(BlockRun run) {
  ForEachWord(run, [&](uint64_t w, uint64_t mask) { words_[w].fetch_and(~mask, std::memory_order_acq_rel); });
}

void BlockAllocator::Release(BlockRun run, uint32_t me) {
  for (uint32_t i = 0; i < run.count; ++i) owners_[run.start.value() + i].store(FreeingBy(me));
  ClearBits(run);
  for (uint32_t i = 0; i < run.count; ++i) owners_[run.start.value() + i].store(kFreeBlock);
}

void BlockAllocator::Adopt(BlockRun run) {
  for (uint32_t i = 0; i < run.count; ++i) owners_[run.start.value() + i].store(kLogOwner);
}

bool BlockAllocator::Claim(LogicalBlock b, BlockOwner expected, uint32_t me) {
  return owners_[b.value()].compare_exchange_strong(expected, FreeingBy(me));
}

void BlockAllocator::FreeClaimed(LogicalBlock b) {
  ClearBits({b, 1});
  owners_[b.value()].store(kFreeBlock);
}

bool BlockAllocator::VoidDeadClaim(LogicalBlock b, BlockOwner dead) {
  return !IsUsed(b) && owners_[b.value()].compare_exchange_strong(dead, kFreeBlock);
}

void BlockAllocator::MarkUsed(BlockRun run) {
  Adopt(run);
  SetBits(run);
}

void BlockAllocator::MarkUsedBitmap(const std::vector<uint64_t>& used, uint64_t resident_blocks) {
  uint64_t nblocks = header_->num_blocks.load();
  uint64_t nwords = std::min<uint64_t>((nblocks + 63) / 64, used.size());
  uint64_t used_words = nwords;
  while (used_words > 0 && used[used_words - 1] == 0) --used_words;
  if (used_words * 64 > resident_blocks) {
    // Fresh pages of the shared object: each touch below would be a first touch; one call maps them all.
    pmem::Prefault(words_, used_words * sizeof(words_[0]), true);
    pmem::Prefault(owners_, used_words * 64 * sizeof(owners_[0]), true);
  }
  for (uint64_t w = 0; w < nwords; ++w) {
    uint64_t bits = used[w];
    if (w == nblocks / 64) bits &= MaskOf(0, static_cast<uint32_t>(nblocks % 64));
    words_[w].store(words_[w].load(std::memory_order_relaxed) | bits, std::memory_order_relaxed);
    for (; bits != 0; bits &= bits - 1) {
      owners_[w * 64 + static_cast<uint64_t>(std::countr_zero(bits))].store(kLogOwner, std::memory_order_relaxed);
    }
  }
}

void BlockAllocator::BeginBuild() {
  if (header_->alloc_state.load() == kAllocBuilding) {
    // A builder died with its marks half-done: nothing else marked anything (allocation waits for
    // the ready state), so all of it goes.
    uint64_t nwords = (header_->num_blocks.load() + 63) / 64;
    for (uint64_t w = 0; w < nwords; ++w) words_[w].store(0, std::memory_order_relaxed);
    for (uint64_t b = 0; b < nwords * 64; ++b) owners_[b].store(kFreeBlock, std::memory_order_relaxed);
  }
  header_->alloc_state.store(kAllocBuilding);
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
