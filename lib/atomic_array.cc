#include "lib/atomic_array.h"

#include <algorithm>

namespace tern {

AtomicU32Array::~AtomicU32Array() {
  for (auto& m : top_) {
    Mid* mid = m.load(std::memory_order_relaxed);
    if (mid == nullptr) continue;
    for (auto& c : mid->chunks) delete c.load(std::memory_order_relaxed);
    delete mid;
  }
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

std::atomic<uint32_t>* AtomicU32Array::CellFor(uint32_t index, uint32_t value) {
  std::atomic<Mid*>& top = top_[index >> (kChunkBits + kMidBits)];
  Mid* mid = top.load(std::memory_order_acquire);
  if (mid == nullptr) {
    if (value == 0) return nullptr;  // nothing mapped there: nothing to clear
    mid = new Mid();
    top.store(mid, std::memory_order_release);
  }
  std::atomic<Chunk*>& slot = mid->chunks[(index >> kChunkBits) & (kMidSize - 1)];
  Chunk* chunk = slot.load(std::memory_order_acquire);
  if (chunk == nullptr) {
    if (value == 0) return nullptr;
    chunk = new Chunk();
    slot.store(chunk, std::memory_order_release);
  }
  return &chunk->v[index & (kChunkSize - 1)];
}

}  // namespace tern
