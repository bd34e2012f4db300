// The DRAM block table: virtual block -> logical block, plus the file size, as of a log position.
// Built by applying decoded commits in log order (idempotent: entries are absolute mappings).
//
// A large checkpoint is loaded lazily (LoadLazy): the table keeps the checkpoint's runs and copies
// each chunk of 4,096 blocks in when it is first read or changed, so an open costs what the
// checkpoint's validation costs, not a store per block of the file.
//
// Thread-safety: Apply/Load are called by one thread at a time (the owner serialises them); Get,
// size and mapped_count are lock-free and may run concurrently with them (readers then validate
// against the log). A Get inside a chunk not copied in yet copies it in under a mutex of the table.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "lib/atomic_array.h"
#include "lib/commit.h"
#include "lib/ext_record_format.h"
#include "lib/huge_buffer.h"
#include "lib/layout_constants.h"

namespace tern {

// A validated checkpoint's runs (in vblock order, not overlapping, none a hole), kept in DRAM:
// `runs` points into `bytes`, or into memory the creator keeps alive as long as this (tests).
struct CheckpointRuns {
  HugeBuffer bytes;
  const pmem::ExtRun* runs = nullptr;
  uint32_t nruns = 0;
};

class BlockTable {
 public:
  bool Init() { return map_.Init(); }
  // AtomicU32Array::Reserve for the cell of vblock.
  void Reserve(uint64_t vblock) { map_.Reserve(vblock); }

  uint32_t Get(uint32_t vblock) const {
    uint32_t l = map_.Get(vblock);
    if (l == AtomicU32Array::kPending) [[unlikely]] return CopyInAndGet(vblock);
    return l;
  }
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
  // The same as Load, but each chunk's entries are copied in from `ckpt` only when first read or
  // changed. `mapped` is the number of blocks the runs map. A table that was ever changed (an
  // opener's is not) is loaded at once, as Load. REQUIRES: serialised as Apply.
  void LoadLazy(std::shared_ptr<const CheckpointRuns> ckpt, uint64_t mapped, uint64_t size);
  // fork: no copy-in is half done in the child (the Pool's atfork handlers, via FileCore).
  void LockForFork() { copy_mu_.lock(); }
  void UnlockAfterFork() { copy_mu_.unlock(); }
  // Chunks LoadLazy left that are not copied in yet.
  uint32_t pending_chunks() const { return pending_chunks_.load(std::memory_order_acquire); }
  // The mapping as runs of consecutive blocks (holes left out). REQUIRES: serialised as Apply.
  std::vector<MapRun> Runs() const;
  // Calls fn(vblock, lblock) for every mapped block, in vblock order, copying every pending
  // chunk in first. REQUIRES: serialised as Apply.
  template <typename Fn>
  void ForEachMapped(Fn&& fn) const {
    CopyInAll();
    map_.ForEachNonZero(mapped_end_, fn, [](uint32_t) {});
  }
  // Calls fn(lblock, count) for every mapped block, in groups of consecutive logical blocks
  // (chunks not copied in yet are read from their checkpoint, not copied). Not in vblock order.
  // REQUIRES: serialised as Apply.
  template <typename Fn>
  void ForEachMappedRun(Fn&& fn) const {
    std::shared_ptr<const CheckpointRuns> ckpt = PendingRuns();
    map_.ForEachNonZero(
        mapped_end_, [&](uint32_t, uint32_t l) { fn(l, 1u); },
        [&](uint32_t chunk) {
          ForEachRunIn(*ckpt, chunk, [&](uint32_t, uint32_t l, uint32_t n) { fn(l, n); });
        });
  }

 private:
  // Maps v + i to l + i for i < count (to 0, a hole, when l is 0).
  void SetRun(uint32_t v, uint32_t count, uint32_t l);
  // Copies pending chunks in: the one holding vblock (then returns its entry), every one that
  // [v, v + count) touches, all of them.
  uint32_t CopyInAndGet(uint32_t vblock) const;
  void CopyInRangeLocked(uint32_t v, uint32_t count) const;
  void CopyInAll() const;
  // Copies chunk in if it is pending. REQUIRES: copy_mu_ held.
  void CopyInLocked(uint32_t chunk) const;
  std::shared_ptr<const CheckpointRuns> PendingRuns() const;
  // Calls fn(vblock, lblock, count) for each piece of ckpt's runs inside chunk, in vblock order.
  template <typename Fn>
  static void ForEachRunIn(const CheckpointRuns& ckpt, uint32_t chunk, Fn&& fn);

  mutable AtomicU32Array map_;
  // Held while chunks are copied in, and by the owner's changes while any chunk is pending (the
  // array's new nodes need a single writer).
  mutable std::mutex copy_mu_;
  mutable std::shared_ptr<const CheckpointRuns> pending_runs_;  // guarded by copy_mu_
  mutable std::atomic<uint32_t> pending_chunks_{0};
  // Read by every operation; written only when they change (block_table.cc).
  alignas(kCacheLine) std::atomic<uint64_t> size_{0};
  std::atomic<uint64_t> mapped_count_{0};
  uint32_t mapped_end_ = 0;
};

template <typename Fn>
void BlockTable::ForEachRunIn(const CheckpointRuns& ckpt, uint32_t chunk, Fn&& fn) {
  const uint64_t begin = uint64_t{chunk} << AtomicU32Array::kChunkBits;
  const uint64_t end = begin + AtomicU32Array::kChunkSize;
  const pmem::ExtRun* last = ckpt.runs + ckpt.nruns;
  // Runs are in order and do not overlap, so their ends are in order too.
  const pmem::ExtRun* r = std::partition_point(
      ckpt.runs, last, [&](const pmem::ExtRun& x) { return uint64_t{x.vblock} + x.nblocks <= begin; });
  for (; r != last && r->vblock < end; ++r) {
    uint64_t from = std::max<uint64_t>(r->vblock, begin);
    uint64_t to = std::min<uint64_t>(uint64_t{r->vblock} + r->nblocks, end);
    fn(static_cast<uint32_t>(from), static_cast<uint32_t>(r->lblock + (from - r->vblock)),
       static_cast<uint32_t>(to - from));
  }
}

}  // namespace tern
