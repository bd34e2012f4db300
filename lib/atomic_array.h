// A growable array of atomic 32-bit values that readers may index without locks while it grows:
// a directory of fixed-size chunks whose addresses never move. Chunks are created on first Set.
//
// Thread-safety: Get is lock-free and may run concurrently with Set. Set of an index whose chunk
// does not exist yet must be serialised by the caller (tern sets only under FileCore's replay mutex
// or with chunk creation done by one thread); Set of existing chunks is lock-free.
// Memory: the directory is calloc'd (untouched pages cost nothing); each chunk is 16 KiB.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace tern {

class AtomicU32Array {
 public:
  static constexpr uint32_t kChunkBits = 12;
  static constexpr uint32_t kChunkSize = 1u << kChunkBits;
  static constexpr uint32_t kDirSize = 1u << 16;  // 2^28 indices in all

  AtomicU32Array() = default;
  AtomicU32Array(const AtomicU32Array&) = delete;
  AtomicU32Array& operator=(const AtomicU32Array&) = delete;
  ~AtomicU32Array() {
    if (dir_ == nullptr) return;
    for (uint32_t i = 0; i < kDirSize; ++i) delete[] dir_[i].load(std::memory_order_relaxed);
    free(dir_);
  }

  // Acquire: pairs with the release in Set, so what was stored before Set is visible.
  uint32_t Get(uint32_t index) const {
    auto* dir = dir_;
    if (dir == nullptr) return 0;
    std::atomic<uint32_t>* chunk = dir[index >> kChunkBits].load(std::memory_order_acquire);
    if (chunk == nullptr) return 0;
    return chunk[index & (kChunkSize - 1)].load(std::memory_order_acquire);
  }

  // Stores value at index and returns the previous value (acq_rel).
  // REQUIRES: Init() succeeded.
  uint32_t Set(uint32_t index, uint32_t value) {
    std::atomic<uint32_t>* chunk = dir_[index >> kChunkBits].load(std::memory_order_acquire);
    if (chunk == nullptr) {
      chunk = new std::atomic<uint32_t>[kChunkSize]();
      dir_[index >> kChunkBits].store(chunk, std::memory_order_release);
    }
    return chunk[index & (kChunkSize - 1)].exchange(value, std::memory_order_acq_rel);
  }

  // Allocates the directory. Returns false when memory is short.
  bool Init() {
    dir_ = static_cast<std::atomic<std::atomic<uint32_t>*>*>(
        calloc(kDirSize, sizeof(std::atomic<std::atomic<uint32_t>*>)));
    return dir_ != nullptr;
  }

 private:
  std::atomic<std::atomic<uint32_t>*>* dir_ = nullptr;
};

}  // namespace tern
