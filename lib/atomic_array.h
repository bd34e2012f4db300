// A growable array of atomic 32-bit values that readers may index without locks while it grows:
// three levels (256 x 256 x 4096 = 2^28 indices) whose nodes never move once published. Nodes
// are allocated on first Set, so a small file costs one 2 KiB middle node and one 16 KiB chunk —
// no large zeroed allocation, which page faults make expensive on this kind of VM. Past
// kHeapChunks chunks (a file mapping more than ~128 MiB), chunks come from 2 MiB slabs backed by
// transparent huge pages: an opener loading a large file's mapping then pays one fault per 2 MiB
// instead of ~5 µs per fresh 4 KiB page, for at most one partly used slab of memory.
//
// A chunk may also be *pending*: its values live elsewhere (a checkpoint not yet loaded, see
// BlockTable) and every Get there returns kPending until the owner publishes the chunk's values.
//
// Thread-safety: Get is lock-free and may run concurrently with Set. Set of an index whose nodes
// do not exist yet must be serialised by the caller (tern sets only under FileCore's replay mutex,
// or from one thread); Set of existing nodes is lock-free. The pending-chunk calls are serialised
// like Set of new nodes.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "lib/huge_buffer.h"

namespace tern {

class AtomicU32Array {
 public:
  static constexpr uint32_t kChunkBits = 12;
  static constexpr uint32_t kMidBits = 8;
  static constexpr uint32_t kTopSize = 256;
  static constexpr uint64_t kCapacity = uint64_t{kTopSize} << (kChunkBits + kMidBits);  // indices
  static constexpr uint32_t kChunkSize = 1u << kChunkBits;
  // What Get returns inside a pending chunk (never a stored value: callers store block numbers).
  static constexpr uint32_t kPending = UINT32_MAX;

  AtomicU32Array() = default;
  AtomicU32Array(const AtomicU32Array&) = delete;
  AtomicU32Array& operator=(const AtomicU32Array&) = delete;
  ~AtomicU32Array();

  // Acquire: pairs with the release in Set, so what was stored before Set is visible.
  uint32_t Get(uint32_t index) const {
    Mid* mid = top_[index >> (kChunkBits + kMidBits)].load(std::memory_order_acquire);
    if (mid == nullptr) return 0;
    Chunk* chunk = mid->chunks[(index >> kChunkBits) & (kMidSize - 1)].load(std::memory_order_acquire);
    if (chunk == nullptr) return 0;
    return chunk->v[index & (kChunkSize - 1)].load(std::memory_order_acquire);
  }

  // Stores value at index and returns the previous value (acq_rel). Storing 0 where no node exists
  // allocates nothing (the value there is 0 already).
  uint32_t Set(uint32_t index, uint32_t value);
  // Stores first + i at index begin + i for every i < count (0 everywhere when first is 0), skipping
  // cells that hold it already, with one node lookup per chunk instead of per index (an opener loads
  // a whole file's mapping this way). Returns the number of cells that went from 0 to non-zero minus
  // those that went to 0. REQUIRES: as Set.
  int64_t StoreRun(uint32_t begin, uint32_t count, uint32_t first);
  // StoreRun into cells known to hold 0 (a table being loaded from scratch), without reading them
  // first. The cursor carries the last chunk from one call to the next (a load's runs mostly share
  // chunks; chunks never move). first != 0. REQUIRES: as Set; every cell of the run is 0.
  struct FillCursor {
    uint32_t chunk_index = UINT32_MAX;
    std::atomic<uint32_t>* cells = nullptr;  // cell 0 of that chunk
  };
  void FillRun(uint32_t begin, uint32_t count, uint32_t first, FillCursor& cursor);

  // True while no node has been allocated (nothing was ever set).
  bool Untouched() const {
    for (const auto& t : top_) {
      if (t.load(std::memory_order_relaxed) != nullptr) return false;
    }
    return true;
  }
  // Pending chunks. `chunk` is an index >> kChunkBits. MarkPending REQUIRES: the chunk has no
  // node (it was never set: a reader may still hold a node's address). Publish makes a pending
  // chunk's values visible at once: `fill` gets the chunk's zeroed cells (cell 0 = index
  // chunk << kChunkBits) before any reader can see them.
  void MarkPending(uint32_t chunk);
  bool IsPending(uint32_t chunk) const {
    Chunk* at = ChunkAt(chunk);
    return at != nullptr && at == pending_chunk_.load(std::memory_order_acquire);
  }
  template <typename Fill>
  void Publish(uint32_t chunk, Fill&& fill) {
    Chunk* fresh = NewChunk();
    fill(fresh->v);
    SlotOf(chunk).store(fresh, std::memory_order_release);
  }

  // Calls fn(index, value) for every non-zero value with index < end, in index order, skipping
  // nodes never allocated (a sparse file costs what it maps, not its highest index), and
  // pending(chunk) for each pending chunk instead of its cells.
  // REQUIRES: serialised with Set of new nodes.
  template <typename Fn, typename OnPending>
  void ForEachNonZero(uint32_t end, Fn&& fn, OnPending&& pending) const {
    const Chunk* pending_chunk = pending_chunk_.load(std::memory_order_acquire);
    for (uint32_t t = 0; t < kTopSize; ++t) {
      Mid* mid = top_[t].load(std::memory_order_acquire);
      if (mid == nullptr) continue;
      for (uint32_t m = 0; m < kMidSize; ++m) {
        Chunk* chunk = mid->chunks[m].load(std::memory_order_acquire);
        if (chunk == nullptr) continue;
        uint32_t base = (t << (kChunkBits + kMidBits)) | (m << kChunkBits);
        if (base >= end) return;
        if (chunk == pending_chunk) {
          pending(base >> kChunkBits);
          continue;
        }
        for (uint32_t i = 0; i < kChunkSize && base + i < end; ++i) {
          uint32_t v = chunk->v[i].load(std::memory_order_acquire);
          if (v != 0) fn(base + i, v);
        }
      }
    }
  }

  // Kept for symmetry with callers that check allocation up front; the array needs no set-up.
  bool Init() { return true; }
  // Makes the node that holds index exist (its cells 0, which reads as nothing stored) unless
  // its chunk is pending or index is past the array's reach (kCapacity), so that a later Set there
  // allocates nothing: a write may come from a signal handler that interrupted malloc
  // (small_vector.h). REQUIRES: as Set.
  void Reserve(uint64_t index);

  // Chunks taken from the heap before slabs are used.
  static constexpr uint32_t kHeapChunks = 8;

 private:
  // The cell of index, allocating its nodes unless value is 0 (then nullptr where none exist).
  std::atomic<uint32_t>* CellFor(uint32_t index, uint32_t value);

  static constexpr uint32_t kMidSize = 1u << kMidBits;
  struct Chunk {
    std::atomic<uint32_t> v[kChunkSize];
  };
  struct Mid {
    std::atomic<Chunk*> chunks[kMidSize];
  };
  static constexpr uint32_t kSlabChunks = HugeBuffer::kHugePage / sizeof(Chunk);

  // The shared stand-in of every pending chunk: all kPending, never written after it is made. Made
  // by the process's first MarkPending (16 KiB filled: four page faults here, which a process that
  // only compares against it must not pay); null until then, when no chunk is pending.
  static Chunk* MakePendingChunk();
  static inline std::atomic<Chunk*> pending_chunk_{nullptr};
  Chunk* ChunkAt(uint32_t chunk) const {
    Mid* mid = top_[chunk >> kMidBits].load(std::memory_order_acquire);
    return mid == nullptr ? nullptr : mid->chunks[chunk & (kMidSize - 1)].load(std::memory_order_acquire);
  }
  // The slot of `chunk`, allocating its middle node. REQUIRES: as Set of new nodes.
  std::atomic<Chunk*>& SlotOf(uint32_t chunk);
  // A zeroed chunk: from the heap for the first kHeapChunks, then carved from the newest slab (or
  // from the heap again when no slab can be mapped).
  Chunk* NewChunk();
  bool InSlab(const Chunk* chunk) const;

  std::atomic<Mid*> top_[kTopSize] = {};
  uint32_t heap_chunks_ = 0;
  std::vector<HugeBuffer> slabs_;  // unmapped whole with the array
  uint32_t slab_used_ = 0;         // chunks carved from slabs_.back()
};

}  // namespace tern
