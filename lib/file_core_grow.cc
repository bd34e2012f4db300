// FileCore: allocating blocks and growing the backing file. A writer takes free blocks from the
// shared allocator and grows the file when there are none; from 256 KiB on, the Pool's thread
// grows it ahead of the writers and touches the new pages just ahead of them (a first touch costs
// microseconds a page on this kind of machine), asked for by the writers as they come near.
#include <algorithm>

#include "lib/atomic_max.h"
#include "lib/backing_cache.h"
#include "lib/file_core.h"
#include "lib/pool.h"
#include "lib/shared_state_spares.h"
#include "lib/test_hooks.h"
#include "pmem/mapping.h"

namespace tern {

uint64_t FileCore::AmortisedStep(uint64_t have) {
  if (have < kBlocksPerGrowStep) return have;  // a small file doubles
  return std::max<uint64_t>(kBlocksPerGrowStep, have / 8);  // big files grow by an eighth
}

uint64_t FileCore::GrowAheadDistance(uint64_t have) {
  // A file under 256 KiB is never grown ahead: its writer grows it when it runs out, which is cheap
  // at that size, and most such files stop soon (a create of a small file would wake the Pool's
  // thread for nothing). From there on a writer is likely streaming, and the Pool's thread takes
  // the growth and the first touches off it (LevelDB's compaction thread writing a new table,
  // YCSB load: 5-15 % faster than growing those files on the writer up to 2 MiB).
  if (have < kGrowAheadFromBlocks) return 0;
  // Doubling: a quarter of it ahead, so that a file that stops (most do) has not doubled for
  // nothing; the Pool's thread grows a doubling step in a fraction of the time the writer takes
  // to fill that quarter.
  if (have < kBlocksPerGrowStep) return have / 4;
  // Half a step: the Pool's thread must finish growing and mapping a step before the writer has
  // used up what is left, and a step is bigger (and slower to prepare) the bigger the file.
  return std::max(kGrowAheadBlocks, AmortisedStep(have) / 2);
}

Result<uint64_t> FileCore::ExtendBacking(uint64_t min_blocks, GrowStep how) {
  // REQUIRES: grow_mu_ held.
  uint64_t have = alloc_->num_blocks();
  uint64_t step = how == GrowStep::kAmortised ? AmortisedStep(have) : 1;
  uint64_t want = BackingBlocksFor(have + std::max(min_blocks, step));
  if (want > kMaxBlocks) {
    want = kMaxBlocks;
    if (want < have + min_blocks) return Status::Error(EFBIG, "backing file at its size limit");
  }
  int rc = pmem::GrowFile(backing_->fd(), have * kBlockSize, want * kBlockSize);
  if (rc != 0) return Status::Error(-rc, "grow backing file");
  TERN_TRY(backing_->EnsureMapped(want));
  return want;
}

Status FileCore::PublishBlocks(uint64_t want) {
  // Another process may have grown meanwhile; num_blocks only ever moves up.
  TERN_TRY(shared_->BackBlocks(shared_->header()->num_blocks.load(), want));
  RaiseAtomic(shared_->header()->num_blocks, want);
  return Status::Ok();
}

Status FileCore::Grow(uint64_t min_blocks, GrowStep how, uint64_t seen_blocks) {
  std::lock_guard lock(grow_mu_);
  // Grown while this writer waited for the lock (the Pool's thread growing ahead, another writer):
  // that space first. Growing again would double the file past what it needs.
  if (alloc_->num_blocks() > seen_blocks) return Status::Ok();
  auto grow = [&]() -> Status {
    TERN_ASSIGN_OR_RETURN(uint64_t want, ExtendBacking(min_blocks, how));
    TERN_TRY(PublishBlocks(want));
    return backing_->EnsureMapped(alloc_->num_blocks());
  };
  Status grown = grow();
  // A full filesystem: the deleted files this process keeps for its next creates, and the shared
  // state of closed files it keeps, hold space that a kernel filesystem would have given back.
  if (grown.err() == ENOSPC && ReleaseSpaceKeptForReuse()) grown = grow();
  return grown;
}

bool FileCore::ReleaseSpaceKeptForReuse() {
  bool backings = BackingCache::Default().ReleaseSpares();
  bool states = SharedStateSpares::Default().ReleaseSpares();
  return backings || states;
}

void FileCore::GrowAhead() {
  test_hooks::at_grow_ahead.Run();
  if (!writable() || slot_ == kNoSlot || !alloc_->ready()) return;  // (scheduled by an allocation)
  if (grow_ahead_.grow_wanted.load(std::memory_order_relaxed) && grow_ahead_.grow_wanted.exchange(false)) GrowStepAhead();
  TouchAhead();
}

void FileCore::GrowStepAhead() {
  uint64_t have = alloc_->num_blocks();
  if (have - alloc_->CountUsed() >= GrowAheadDistance(have)) {  // freed space, or another grower came first
    grow_ahead_.enough_at.store(have, std::memory_order_relaxed);
    return;
  }
  std::lock_guard lock(grow_mu_);
  if (alloc_->num_blocks() != have) return;  // a writer grew meanwhile, and touches what it grew
  auto extended = ExtendBacking(1, GrowStep::kAmortised);
  if (!extended.ok()) return;  // the writer will meet the error itself
  test_hooks::while_growing_ahead.Run();
  // Published untouched: the writers are still a quarter of the backing or half a step away, and
  // TouchAhead keeps just ahead of them. Touching the whole step here cost a file that stops soon
  // after (a LevelDB table just past 2 MiB) up to a step of first touches that nobody used.
  if (grow_ahead_.touched_to.load(std::memory_order_relaxed) == GrowAheadAsks::kNothingToTouch) {
    grow_ahead_.touched_to.store(have, std::memory_order_relaxed);
  }
  (void)PublishBlocks(*extended);  // failed: the writer that needs the blocks meets the error itself
}

void FileCore::TouchAhead() {
  uint64_t from = grow_ahead_.touched_to.load(std::memory_order_relaxed);
  uint64_t to = std::min(grow_ahead_.touch_wanted_to.load(std::memory_order_relaxed), alloc_->num_blocks());
  if (from == GrowAheadAsks::kNothingToTouch || from >= to) return;
  // A writer may take these blocks while they are touched: the touch is a locked add of zero,
  // which loses no store of theirs.
  const uint8_t* p = Resolve(LogicalBlock(static_cast<uint32_t>(from)), static_cast<uint32_t>(to - from));
  if (p != nullptr) pmem::TouchForWrite(const_cast<uint8_t*>(p), (to - from) * kBlockSize);
  grow_ahead_.touched_to.store(to, std::memory_order_relaxed);  // (this thread alone writes it)
}

Status FileCore::Allocate(uint64_t nblocks, BlockRuns* runs) {
  if (slot_ == kNoSlot) return Status::Error(EIO, "no process slot: this process cannot allocate");
  if (!alloc_->ready()) return Status::Error(EIO, "allocating before the block allocator was built");
  uint64_t left = nblocks;
  // Adjacent runs merge, so a write that gets contiguous space commits one run.
  auto add = [&](BlockRun r) {
    if (!runs->empty() && runs->back().end() == r.start) {
      runs->back().count += r.count;
    } else {
      runs->push_back(r);
    }
    left -= r.count;
  };
  while (left > 0) {
    uint64_t seen_blocks = alloc_->num_blocks();
    BlockRun r = alloc_->TryAllocate(static_cast<uint32_t>(std::min<uint64_t>(left, UINT32_MAX)), slot_);
    if (r.count == 0) {
      // Out of space: take back our own deferred frees, then finish dead processes' half-done
      // allocations, before growing the file.
      if (AnyPending()) {
        TERN_TRY(FlushLog());
        r = alloc_->TryAllocate(static_cast<uint32_t>(std::min<uint64_t>(left, UINT32_MAX)), slot_);
        if (r.count > 0) {
          add(r);
          continue;
        }
      }
      auto reclaimed = ReclaimDeadSlots();
      if (reclaimed.ok() && *reclaimed > 0) continue;
      Status st = Grow(left, GrowStep::kAmortised, seen_blocks);
      if (!st.ok()) {
        ReleaseRuns(*runs);
        runs->clear();
        return st;
      }
      continue;
    }
    add(r);
  }
  const BlockRun& last = runs->back();
  if (Resolve(last.start, last.count) == nullptr) return Status::Error(EIO, "map allocated blocks");
  // Near the end of the file: have the Pool's thread grow the next step; near the end of what it
  // touched of a step it grew: have it touch the next few blocks.
  uint64_t nblocks_now = alloc_->num_blocks();
  if (grow_ahead_.AskAfterAllocation(last.end().value(), nblocks_now, GrowAheadDistance(nblocks_now))) {
    Pool::Default().Schedule(shared_from_this(), Pool::Job::kGrowAhead);
  }
  return Status::Ok();
}

Result<BlockRun> FileCore::AllocateContiguous(uint32_t nblocks) {
  if (slot_ == kNoSlot) return Status::Error(EIO, "no process slot: this process cannot allocate");
  if (!alloc_->ready()) return Status::Error(EIO, "allocating before the block allocator was built");
  for (;;) {
    uint64_t seen_blocks = alloc_->num_blocks();
    BlockRun got = alloc_->TryAllocateContiguous(nblocks, slot_);
    if (got.count == nblocks) {
      if (Resolve(got.start, got.count) == nullptr) return Status::Error(EIO, "map allocated blocks");
      return got;
    }
    // Fresh space at the end is contiguous. Only what is asked for: a fragmented file would
    // otherwise grow by an amortising step at every checkpoint.
    TERN_TRY(Grow(nblocks, GrowStep::kExact, seen_blocks));
  }
}

void FileCore::ReleaseRuns(std::span<const BlockRun> runs) {
  for (const BlockRun& r : runs) alloc_->Release(r, slot_);
}

void FileCore::AdoptRuns(std::span<const BlockRun> runs) {
  for (const BlockRun& r : runs) alloc_->Adopt(r);
}

}  // namespace tern
