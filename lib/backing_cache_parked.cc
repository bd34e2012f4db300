// BackingCache: what becomes of the Backings the closed list pushes out (backing_cache.h,
// "parked" and "recycled address space"): parked with their descriptors closed, then, a batch at a
// time, their address space emptied for new Backings or unmapped.
#include <algorithm>

#include "lib/backing_cache.h"
#include "pmem/mapping.h"

namespace tern {

bool BackingCache::WantsRelease() {
  if (!has_evicted_.load(std::memory_order_relaxed)) return false;
  std::lock_guard lock(mu_);
  if (evicted_.size() < kReleaseBatch || release_asked_) return false;
  release_asked_ = true;
  return true;
}

void BackingCache::ReleaseEvicted() {
  std::vector<std::unique_ptr<Backing>> evicted;
  {
    std::lock_guard lock(mu_);
    evicted.swap(evicted_);
    has_evicted_.store(false, std::memory_order_relaxed);
    release_asked_ = false;
  }
  for (auto& backing : evicted) backing->CloseDescriptor();  // outside the lock: system calls
  std::vector<std::unique_ptr<Backing>> unmapped;  // past the bounds
  {
    std::lock_guard lock(mu_);
    for (auto& backing : evicted) {
      parked_bytes_ += backing->mapped_blocks() * kBlockSize;
      parked_.push_back(std::move(backing));
    }
    // Past a bound, a batch goes: its reservations are recycled, and the rest, mostly made one
    // after the other, go in few munmaps (RecycleParked).
    if (parked_.size() > kMaxParked || parked_bytes_ > kMaxParkedBytes) {
      while (!parked_.empty() && (parked_.size() > kMaxParked - kParkedBatch || parked_bytes_ > kMaxParkedBytes - kParkedBatchBytes)) {
        parked_bytes_ -= parked_.front()->mapped_blocks() * kBlockSize;
        unmapped.push_back(std::move(parked_.front()));
        parked_.pop_front();
      }
    }
  }
  RecycleParked(unmapped);
}

void BackingCache::RecycleParked(std::vector<std::unique_ptr<Backing>>& parked) {
  size_t room;
  {
    std::lock_guard lock(mu_);
    room = kMaxRecycled - std::min(kMaxRecycled, recycled_.size());
  }
  std::vector<pmem::AddressRange> released, recycled;
  for (auto& backing : parked) {
    uint64_t mapped = backing->mapped_blocks() * kBlockSize;
    size_t before = released.size();
    backing->TakeReservations(&released);
    // One reservation (the file never outgrew it), large enough for a writer's first: only the
    // part its file was mapped into is emptied, one mmap each (they are not adjacent).
    if (released.size() != before + 1 || recycled.size() >= room) continue;
    pmem::AddressRange r = released.back();
    if (r.length >= Backing::kFirstReservation && pmem::ResetAddressRange(r.base, mapped)) {
      released.pop_back();
      recycled.push_back(r);
    }
  }
  parked.clear();
  pmem::ReleaseAddressSpaces(released);
  std::lock_guard lock(mu_);
  recycled_.insert(recycled_.end(), recycled.begin(), recycled.end());
}

void BackingCache::LendRecycled(Backing& backing) {
  if (!backing.writable()) return;
  pmem::AddressRange range;
  {
    std::lock_guard lock(mu_);
    if (recycled_.empty()) return;
    range = recycled_.back();
    recycled_.pop_back();
    ++recycled_lent_;
  }
  backing.AdoptReservation(range);
}

void BackingCache::TakeParkedLocked(std::vector<std::unique_ptr<Backing>>* out) {
  for (auto& backing : parked_) out->push_back(std::move(backing));
  parked_.clear();
  parked_bytes_ = 0;
}

}  // namespace tern
