// The DRAM block table: virtual block -> logical block, plus the file size, as of a log position.
// Built by applying decoded commits in log order (idempotent: entries are absolute mappings).
//
// Thread-safety: Apply/Load are called by one thread at a time (the owner serialises them); Get,
// size and mapped_count are lock-free and may run concurrently with them (readers then validate
// against the log).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "lib/atomic_array.h"
#include "lib/commit.h"
#include "lib/ext_record_format.h"
#include "lib/layout_constants.h"

namespace tern {

class BlockTable {
 public:
  bool Init() { return map_.Init(); }

  uint32_t Get(uint32_t vblock) const { return map_.Get(vblock); }
  // seq_cst: readers order their size load against the log position they read (file_core_read.cc).
  uint64_t size() const { return size_.load(); }
  uint64_t mapped_count() const { return mapped_count_.load(std::memory_order_relaxed); }
  // No block at or past it is mapped. REQUIRES: the caller serialises with Apply.
  uint32_t mapped_end() const { return mapped_end_; }

  // Applies one commit. REQUIRES: serialised with other Apply/Load calls.
  void Apply(const Commit& c);
  // Makes the table equal to `runs` + `size` (a checkpoint), changing only entries that differ, so
  // a concurrent reader never sees a transient hole. REQUIRES: serialised as Apply.
  // `runs` are a checkpoint's, in vblock order, not overlapping.
  void Load(const pmem::ExtRun* runs, uint32_t nruns, uint64_t size);
  // The mapping as runs of consecutive blocks (holes left out). REQUIRES: serialised as Apply.
  std::vector<MapRun> Runs() const;
  // Calls fn(vblock, lblock) for every mapped block, in vblock order. REQUIRES: serialised as Apply.
  template <typename Fn>
  void ForEachMapped(Fn&& fn) const {
    map_.ForEachNonZero(mapped_end_, fn);
  }

 private:
  // Maps v + i to l + i for i < count (to 0, a hole, when l is 0).
  void SetRun(uint32_t v, uint32_t count, uint32_t l);

  AtomicU32Array map_;
  // Read by every operation; written only when they change (block_table.cc).
  alignas(kCacheLine) std::atomic<uint64_t> size_{0};
  std::atomic<uint64_t> mapped_count_{0};
  uint32_t mapped_end_ = 0;
};

}  // namespace tern
