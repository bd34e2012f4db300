#include "lib/atomic_array.h"

#include <algorithm>
#include <new>
#include <utility>

namespace tern {

AtomicU32Array::~AtomicU32Array() {
  for (auto& m : top_) {
    Mid* mid = m.load(std::memory_order_relaxed);
    if (mid == nullptr) continue;
    for (auto& c : mid->chunks) {
      Chunk* chunk = c.load(std::memory_order_relaxed);
      if (chunk != pending_chunk_.load(std::memory_order_relaxed) && !InSlab(chunk)) delete chunk;
    }
    delete mid;
  }
}

AtomicU32Array::Chunk* AtomicU32Array::MakePendingChunk() {
  static Chunk* const pending = [] {
    auto* chunk = new Chunk();
    for (auto& cell : chunk->v) cell.store(kPending, std::memory_order_relaxed);
    pending_chunk_.store(chunk, std::memory_order_release);
    return chunk;
  }();
  return pending;
}

std::atomic<AtomicU32Array::Chunk*>& AtomicU32Array::SlotOf(uint32_t chunk) {
  std::atomic<Mid*>& top = top_[chunk >> kMidBits];
  Mid* mid = top.load(std::memory_order_acquire);
  if (mid == nullptr) {
    mid = new Mid();
    top.store(mid, std::memory_order_release);
  }
  return mid->chunks[chunk & (kMidSize - 1)];
}

void AtomicU32Array::MarkPending(uint32_t chunk) {
  SlotOf(chunk).store(MakePendingChunk(), std::memory_order_release);
}

AtomicU32Array::Chunk* AtomicU32Array::NewChunk() {
  if (heap_chunks_ < kHeapChunks) {
    ++heap_chunks_;
    return new Chunk();
  }
  if (slabs_.empty() || slab_used_ == kSlabChunks) {
    HugeBuffer slab = HugeBuffer::Map(HugeBuffer::kHugePage);
    if (slab.data() == nullptr) return new Chunk();
    slabs_.push_back(std::move(slab));
    slab_used_ = 0;
  }
  return new (slabs_.back().data() + uint64_t{slab_used_++} * sizeof(Chunk)) Chunk();
}

bool AtomicU32Array::InSlab(const Chunk* chunk) const {
  auto p = reinterpret_cast<uintptr_t>(chunk);
  for (const HugeBuffer& slab : slabs_) {
    auto base = reinterpret_cast<uintptr_t>(slab.data());
    if (p >= base && p < base + slab.size()) return true;
  }
  return false;
}

uint32_t AtomicU32Array::Set(uint32_t index, uint32_t value) {
  std::atomic<uint32_t>* cell = CellFor(index, value);
  return cell == nullptr ? 0 : cell->exchange(value, std::memory_order_acq_rel);
}

int64_t AtomicU32Array::StoreRun(uint32_t begin, uint32_t count, uint32_t first) {
  int64_t delta = 0;
  for (uint32_t i = 0; i < count;) {
    uint32_t index = begin + i;
    uint32_t in_chunk = std::min(count - i, kChunkSize - (index & (kChunkSize - 1)));
    // Consecutive cells of one chunk are contiguous; where no chunk exists and first is 0, every
    // value there is 0 already.
    std::atomic<uint32_t>* cells = CellFor(index, first);
    for (uint32_t k = 0; cells != nullptr && k < in_chunk; ++k) {
      uint32_t value = first == 0 ? 0 : first + i + k;
      uint32_t old = cells[k].load(std::memory_order_relaxed);
      if (old == value) continue;
      cells[k].store(value, std::memory_order_release);
      delta += static_cast<int64_t>(old == 0) - static_cast<int64_t>(value == 0);
    }
    i += in_chunk;
  }
  return delta;
}

void AtomicU32Array::FillRun(uint32_t begin, uint32_t count, uint32_t first, FillCursor& cursor) {
  for (uint32_t i = 0; i < count;) {
    uint32_t index = begin + i;
    uint32_t in_chunk = std::min(count - i, kChunkSize - (index & (kChunkSize - 1)));
    if (index >> kChunkBits != cursor.chunk_index) {
      cursor.chunk_index = index >> kChunkBits;
      cursor.cells = CellFor(index & ~(kChunkSize - 1), first);
    }
    std::atomic<uint32_t>* cells = cursor.cells + (index & (kChunkSize - 1));
    for (uint32_t k = 0; k < in_chunk; ++k) cells[k].store(first + i + k, std::memory_order_release);
    i += in_chunk;
  }
}

void AtomicU32Array::Reserve(uint64_t index) {
  if (index >= kCapacity) return;  // a file that ends at 1 TiB: nothing is written past it
  std::atomic<Chunk*>& slot = SlotOf(static_cast<uint32_t>(index >> kChunkBits));
  if (slot.load(std::memory_order_acquire) == nullptr) slot.store(NewChunk(), std::memory_order_release);
}

std::atomic<uint32_t>* AtomicU32Array::CellFor(uint32_t index, uint32_t value) {
  if (value == 0 && top_[index >> (kChunkBits + kMidBits)].load(std::memory_order_acquire) == nullptr) {
    return nullptr;  // nothing mapped there: nothing to clear
  }
  std::atomic<Chunk*>& slot = SlotOf(index >> kChunkBits);
  Chunk* chunk = slot.load(std::memory_order_acquire);
  if (chunk == nullptr) {
    if (value == 0) return nullptr;
    chunk = NewChunk();
    slot.store(chunk, std::memory_order_release);
  }
  return &chunk->v[index & (kChunkSize - 1)];
}

}  // namespace tern
