#include "lib/block_table.h"

#include <algorithm>

namespace tern {

void BlockTable::SetRun(uint32_t v, uint32_t count, uint32_t l) {
  // Writers are serialised (header), so the entries and the count change under nobody else: plain
  // stores, no locked instructions (this runs for every block of every commit and of every load).
  // Stores only what changes: readers of other threads load these lines on every operation, and
  // a store, even of the same value, takes the line away from them.
  int64_t delta;
  if (pending_chunks_.load(std::memory_order_acquire) == 0) {
    delta = map_.StoreRun(v, count, l);
  } else {
    std::lock_guard lock(copy_mu_);
    CopyInRangeLocked(v, count);
    delta = map_.StoreRun(v, count, l);
  }
  if (delta != 0) {
    mapped_count_.store(static_cast<uint64_t>(static_cast<int64_t>(mapped_count_.load(std::memory_order_relaxed)) + delta),
                        std::memory_order_relaxed);
  }
}

void BlockTable::Apply(const Commit& c) {
  if (c.unmap_beyond) {
    auto keep = static_cast<uint32_t>(BlocksFor(c.size));
    if (keep < mapped_end_) SetRun(keep, mapped_end_ - keep, 0);
    mapped_end_ = std::min(mapped_end_, keep);
  }
  c.ForEachRun([&](const MapRun& r) {
    SetRun(r.vblock.value(), r.count, r.lblock == kNoBlock ? 0 : r.lblock.value());
    if (r.lblock != kNoBlock && r.vblock.value() + r.count > mapped_end_) mapped_end_ = r.vblock.value() + r.count;
  });
  switch (c.size_rule) {
    case Commit::SizeRule::kExtendToEnd: {
      uint64_t end = (c.inline_run.vblock + BlockCount{c.inline_run.count}).ToBytes();
      if (end > size_.load()) size_.store(end);
      break;
    }
    case Commit::SizeRule::kKeep:
      break;
    case Commit::SizeRule::kSet:
      if (size_.load() != c.size) size_.store(c.size);
      break;
  }
}

void BlockTable::Load(const pmem::ExtRun* runs, uint32_t nruns, uint64_t size) {
  if (mapped_end_ == 0) {
    // Nothing mapped yet (an opener): every cell is 0, so runs are stored without comparing.
    AtomicU32Array::FillCursor cursor;
    uint64_t mapped = 0;
    for (uint32_t i = 0; i < nruns; ++i) {
      map_.FillRun(runs[i].vblock, runs[i].nblocks, runs[i].lblock, cursor);
      mapped += runs[i].nblocks;
    }
    mapped_count_.store(mapped, std::memory_order_relaxed);
    mapped_end_ = nruns == 0 ? 0 : runs[nruns - 1].vblock + runs[nruns - 1].nblocks;
    size_.store(size);
    return;
  }
  // One pass in vblock order, no scratch copy (an opener loads a whole fragmented file this way).
  // Gaps are cleared only below the old mapped end: past it everything is 0 already.
  uint32_t old_end = mapped_end_;
  uint32_t v = 0;
  auto clear_to = [&](uint32_t end) {
    if (v < std::min(end, old_end)) SetRun(v, std::min(end, old_end) - v, 0);
    v = end;
  };
  for (uint32_t i = 0; i < nruns; ++i) {
    const pmem::ExtRun& r = runs[i];
    clear_to(r.vblock);
    SetRun(r.vblock, r.nblocks, r.lblock);
    v = r.vblock + r.nblocks;
  }
  uint32_t end = v;
  clear_to(std::max(old_end, v));
  mapped_end_ = end;
  size_.store(size);
}

void BlockTable::LoadLazy(std::shared_ptr<const CheckpointRuns> ckpt, uint64_t mapped, uint64_t size) {
  const pmem::ExtRun* runs = ckpt->runs;
  uint32_t nruns = ckpt->nruns;
  // Pending chunks take slots that must be empty: concurrent readers may still hold a chunk's
  // address, so none is ever replaced.
  if (!map_.Untouched()) {
    Load(runs, nruns, size);
    return;
  }
  std::lock_guard lock(copy_mu_);
  // Every chunk some run touches is pending; the others stay unallocated holes.
  constexpr uint32_t kBits = AtomicU32Array::kChunkBits;
  uint32_t pending = 0;
  int64_t last_marked = -1;
  for (uint32_t i = 0; i < nruns;) {
    const pmem::ExtRun& r = runs[i];
    auto hi = static_cast<uint32_t>((uint64_t{r.vblock} + r.nblocks - 1) >> kBits);
    for (int64_t c = std::max<int64_t>(r.vblock >> kBits, last_marked + 1); c <= hi; ++c, ++pending) {
      map_.MarkPending(static_cast<uint32_t>(c));
    }
    last_marked = std::max<int64_t>(last_marked, hi);
    // The runs up to the end of the last marked chunk add nothing: skip them.
    uint64_t next = static_cast<uint64_t>(last_marked + 1) << kBits;
    i = static_cast<uint32_t>(std::partition_point(runs + i + 1, runs + nruns,
                                                   [&](const pmem::ExtRun& x) { return uint64_t{x.vblock} + x.nblocks <= next; }) -
                              runs);
  }
  mapped_end_ = nruns == 0 ? 0 : runs[nruns - 1].vblock + runs[nruns - 1].nblocks;
  mapped_count_.store(mapped, std::memory_order_relaxed);
  pending_runs_ = pending == 0 ? nullptr : std::move(ckpt);
  pending_chunks_.store(pending, std::memory_order_release);
  size_.store(size);
}

uint32_t BlockTable::CopyInAndGet(uint32_t vblock) const {
  std::lock_guard lock(copy_mu_);
  CopyInLocked(vblock >> AtomicU32Array::kChunkBits);
  return map_.Get(vblock);
}

void BlockTable::CopyInRangeLocked(uint32_t v, uint32_t count) const {
  if (count == 0) return;
  uint32_t last = static_cast<uint32_t>((uint64_t{v} + count - 1) >> AtomicU32Array::kChunkBits);
  for (uint32_t c = v >> AtomicU32Array::kChunkBits; c <= last; ++c) CopyInLocked(c);
}

void BlockTable::CopyInAll() const {
  if (pending_chunks_.load(std::memory_order_acquire) == 0) return;
  std::lock_guard lock(copy_mu_);
  CopyInRangeLocked(0, mapped_end_);
}

void BlockTable::CopyInLocked(uint32_t chunk) const {
  if (!map_.IsPending(chunk)) return;
  // LoadLazy marks only chunks that some run touches: a pending chunk is never empty.
  const CheckpointRuns& ckpt = *pending_runs_;
  map_.Publish(chunk, [&](std::atomic<uint32_t>* cells) {
    const uint32_t base = chunk << AtomicU32Array::kChunkBits;
    ForEachRunIn(ckpt, chunk, [&](uint32_t v, uint32_t l, uint32_t n) {
      for (uint32_t k = 0; k < n; ++k) cells[v - base + k].store(l + k, std::memory_order_relaxed);
    });
  });
  // The last chunk copied in lets the checkpoint's runs go.
  if (pending_chunks_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_runs_.reset();
}

std::shared_ptr<const CheckpointRuns> BlockTable::PendingRuns() const {
  std::lock_guard lock(copy_mu_);
  return pending_runs_;
}

std::vector<MapRun> BlockTable::Runs() const {
  std::vector<MapRun> runs;
  ForEachMapped([&](uint32_t v, uint32_t l) {
    if (!runs.empty()) {
      MapRun& last = runs.back();
      if (last.vblock.value() + last.count == v && last.lblock.value() + last.count == l) {
        ++last.count;
        return;
      }
    }
    runs.push_back({VirtualBlock(v), LogicalBlock(l), 1});
  });
  return runs;
}

}  // namespace tern
