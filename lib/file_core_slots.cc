// FileCore: process slots, what dead processes leave behind, the full sweep, and fork.
//
// Every process with the file open owns one slot in the shared state, guarded by an OFD lock on
// the slot's byte of the backing file. Blocks carry an owner (allocator.h / shared_state.h). When a
// process dies its lock vanishes; whoever next takes its slot, or runs out of space, hands what the
// dead process left marked to the log, and GC's full sweep frees what the log does not reference
// (file_core_gc.cc): only after GC's grace period is no lagging operation still reading it.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "lib/atomic_max.h"
#include "lib/file_core.h"
#include "lib/open_lock.h"
#include "lib/process_id.h"
#include "pmem/log.h"
#include "pmem/persist.h"

namespace tern {

Status FileCore::CollectReferenced(std::vector<uint64_t>* bits, ArenaReach* reach) {
  // REQUIRES: mu_ held.
  uint64_t nblocks = alloc_->num_blocks();
  bits->assign(nblocks / 64 + 1, 0);
  // A word at a time: a fragmented 1 GiB file's first open marks ~250,000 runs.
  uint64_t* words = bits->data();
  auto mark = [&](uint32_t b, uint32_t n) {
    if (n == 1 && b < nblocks) {  // most runs of a file written by random overwrites
      words[b / 64] |= uint64_t{1} << (b % 64);
      return;
    }
    uint64_t end = std::min<uint64_t>(uint64_t{b} + n, nblocks);
    for (uint64_t x = b; x < end;) {
      uint64_t in_word = std::min<uint64_t>(64 - x % 64, end - x);
      words[x / 64] |= (in_word == 64 ? ~uint64_t{0} : (uint64_t{1} << in_word) - 1) << (x % 64);
      x += in_word;
    }
  };
  TERN_TRY(RefreshCheckpointLocked());
  mark(0, 1);
  uint64_t ck = ckpt_block_.load();
  if (ck != 0) mark(static_cast<uint32_t>(ck), ckpt_span_.load());  // validated by the refresh
  uint32_t chain_len = chain_len_.load();
  for (uint32_t k = chain_first_.load(); k < chain_len; ++k) mark(chain_.Get(k), 1);
  // A block linked after the last one we followed (its slots still empty) is part of the log too.
  if (uint32_t next = pmem::Load32(LinkTo(chain_len)); next != 0) mark(next, 1);
  for (LogPos pos = ckpt_pos_.load(); pos < applied_.load(); ++pos) {
    uint64_t* slot = SlotAddress(pos);
    if (slot == nullptr) return Damaged("log position below the chain it was replayed from");
    auto c = DecodeCommit(pmem::Load64(slot), nblocks, *this, false);
    if (!c.ok()) return c.status();
    if (c->record.count > 0) mark(c->record.start.value(), c->record.count);
    if (reach != nullptr && c->record.count == 1) {
      auto at = pmem::DecodeExtended(pmem::Load64(slot));  // (an extended entry: it has a record)
      auto bytes = static_cast<uint32_t>((pmem::ExtRecordBytes(c->nruns) + 7) & ~uint64_t{7});
      if (at.has_value()) reach->Note(c->record.start.value(), at->offset + bytes);
    }
  }
  table_.ForEachMappedRun(mark);
  return Status::Ok();
}

Status FileCore::HandDeadLeftoversToLog(const std::vector<uint32_t>& dead_slots) {
  // What dead processes left: allocations never committed, records and log or checkpoint blocks
  // committed but never adopted, blocks claimed for freeing and never freed. Some of it the log
  // references, and some of it lagging operations may still read (a record of an entry just
  // compacted away), so nothing is freed here: it all goes to the log, and GC's full sweep frees
  // what the log no longer references, after its grace period. Only half-done claims and frees
  // (bit clear) are finished now. The caller holds the dead slots' locks: nobody else touches
  // blocks with their marks.
  // Before the allocator is built nobody allocated: a dead slot marked nothing (a dead builder's
  // half-done marks are the next builder's to clear).
  if (!alloc_->ready()) return Status::Ok();
  std::vector<uint8_t> dead(kMaxSlots, 0);
  for (uint32_t slot : dead_slots) dead[slot] = 1;
  uint64_t finished = 0, handed = 0;
  uint64_t nblocks = alloc_->num_blocks();
  for (uint64_t b = 1; b < nblocks; ++b) {
    LogicalBlock block(static_cast<uint32_t>(b));
    BlockOwner owner = alloc_->OwnerOf(block);
    if (!(IsSlotOwner(owner) || IsFreeingOwner(owner)) || dead[SlotOfOwner(owner)] == 0) continue;
    if (!alloc_->IsUsed(block)) {
      if (alloc_->VoidDeadClaim(block, owner)) ++finished;
    } else if (alloc_->HandToLog(block, owner)) {
      ++handed;
    }
  }
  SharedHeader* h = shared_->header();
  h->reclaimed_blocks.fetch_add(finished);
  if (handed > 0) h->sweep_wanted.store(1);
  TERN_LOG_INFO("%s: %zu dead process(es) left %llu blocks to GC's next full sweep, finished %llu",
                path_.c_str(), dead_slots.size(), static_cast<unsigned long long>(handed),
                static_cast<unsigned long long>(finished));
  return Status::Ok();
}

namespace {
bool Marked(const std::vector<uint64_t>& bits, uint64_t b) {
  return b / 64 < bits.size() && ((bits[b / 64] >> (b % 64)) & 1);
}
}  // namespace

Status FileCore::ReferencedDurably(std::vector<uint64_t>* bits) {
  // The log state judged must be durable before anything it no longer references is freed: a
  // power failure would otherwise bring back a log that maps a reused block.
  TERN_TRY(Refresh().status());
  std::lock_guard lock(mu_);
  TERN_TRY(CollectReferenced(bits));
  FlushCommitSlots(applied_.load());  // under mu_: exactly the state judged
  return Status::Ok();
}

Result<uint64_t> FileCore::FreeIfUnreferenced(const std::vector<uint32_t>& candidates) {
  // Claim first, then a second look at the log: a block freed and reused meanwhile (ABA) is given
  // back, never freed under its new owner.
  std::vector<uint32_t> claimed;
  for (uint32_t b : candidates) {
    if (alloc_->Claim(LogicalBlock(b), kLogOwner, slot_)) claimed.push_back(b);
  }
  if (claimed.empty()) return uint64_t{0};
  std::vector<uint64_t> referenced;
  Status looked = ReferencedDurably(&referenced);
  uint64_t freed = 0;
  for (uint32_t b : claimed) {
    if (!looked.ok() || Marked(referenced, b)) {
      alloc_->Unclaim(LogicalBlock(b));  // still (or again) referenced
    } else {
      alloc_->FreeClaimed(LogicalBlock(b));
      ++freed;
    }
  }
  TERN_TRY(looked);
  return freed;
}

Result<uint64_t> FileCore::SweepUnreferenced() {
  // GC's full sweep: frees every log-owned block the log no longer references — old records,
  // arenas closed unused, what dead processes left, what compactions that did not drain retired.
  // REQUIRES: GC's grace period has passed since the floor reached the current checkpoint, so no
  // operation reads below it.
  std::vector<uint64_t> first_look;
  TERN_TRY(ReferencedDurably(&first_look));
  uint64_t nblocks = std::min<uint64_t>(alloc_->num_blocks(), first_look.size() * 64);
  std::vector<uint32_t> candidates;
  for (uint64_t b = 1; b < nblocks; ++b) {
    LogicalBlock block(static_cast<uint32_t>(b));
    if (!Marked(first_look, b) && alloc_->OwnerOf(block) == kLogOwner && alloc_->IsUsed(block)) {
      candidates.push_back(block.value());
    }
  }
  TERN_ASSIGN_OR_RETURN(uint64_t freed, FreeIfUnreferenced(candidates));
  shared_->header()->reclaimed_blocks.fetch_add(freed);
  return freed;
}

Status FileCore::AcquireSlot(bool* was_dirty) {
  *was_dirty = false;
  uint64_t start = shared_->header()->slot_hint.load() % kMaxSlots;
  for (uint32_t i = 0; i < kMaxSlots; ++i) {
    auto slot = static_cast<uint32_t>((start + i) % kMaxSlots);
    TERN_ASSIGN_OR_RETURN(bool taken, TryLockSlot(backing_->fd(), slot));
    if (!taken) continue;  // a live process holds it
    if (uint32_t bound = shared_->slots_bound(); slot >= bound) {
      if (Status backed = shared_->BackSlots(bound, slot + 1); !backed.ok()) {
        UnlockSlot(backing_->fd(), slot);
        return backed;
      }
    }
    ProcessSlot& s = shared_->slots()[slot];
    *was_dirty = s.state.load() == ProcessSlot::kUsed;  // its process died: the caller sweeps
    if (*was_dirty) {
      // Its operations died with it; counts left behind would make every GC wait in vain for
      // them to finish (a dead slot is skipped, a live one is not).
      OpCell* cells = shared_->cells(slot);
      for (uint32_t c = 0; c < kOpCellsPerSlot; ++c) {
        cells[c].ops[0].store(0);
        cells[c].ops[1].store(0);
      }
    }
    s.pid.store(ThisProcessId());
    s.state.store(ProcessSlot::kUsed);
    RaiseAtomic(shared_->header()->slots_high, slot + 1);
    shared_->header()->slot_hint.store(slot + 1);
    slot_ = slot;
    return Status::Ok();
  }
  return Status::Error(EMFILE, "too many processes have this file open");
}

void FileCore::ReleaseSlot() {
  if (slot_ == kNoSlot) return;
  shared_->slots()[slot_].state.store(ProcessSlot::kFree);
  UnlockSlot(backing_->fd(), slot_);
  slot_ = kNoSlot;
}

Result<uint64_t> FileCore::ReclaimDeadSlots() {
  OpGuard guard(this);
  TERN_TRY(guard.status());
  // A dead slot is one marked used whose lock we can take. We keep the locks of the dead slots
  // we found until the sweep is done, so nobody reuses them meanwhile.
  std::vector<uint32_t> dead;
  for (uint32_t slot = 0, bound = shared_->slots_bound(); slot < bound; ++slot) {
    if (slot == slot_ || shared_->slots()[slot].state.load() != ProcessSlot::kUsed) continue;
    auto taken = TryLockSlot(backing_->fd(), slot);
    if (!taken.ok() || !*taken) continue;  // alive (or cannot tell: leave it)
    if (shared_->slots()[slot].state.load() == ProcessSlot::kUsed) {
      dead.push_back(slot);
    } else {
      UnlockSlot(backing_->fd(), slot);
    }
  }
  Status st = dead.empty() ? Status::Ok() : HandDeadLeftoversToLog(dead);
  for (uint32_t slot : dead) {
    if (st.ok()) {
      shared_->slots()[slot].state.store(ProcessSlot::kFree);
      shared_->header()->reclaimed_slots.fetch_add(1);
    }
    UnlockSlot(backing_->fd(), slot);
  }
  TERN_TRY(st);
  return static_cast<uint64_t>(dead.size());
}

std::vector<ProcessInfo> FileCore::AttachedProcesses() const {
  std::vector<ProcessInfo> out;
  for (uint32_t slot = 0, bound = shared_->slots_bound(); slot < bound; ++slot) {
    const ProcessSlot& s = shared_->slots()[slot];
    if (s.state.load() != ProcessSlot::kUsed) continue;
    // A process that exited without closing (a shell's child that inherited the fd) leaves its
    // slot marked until somebody takes it over: alive only while its lock is held.
    if (slot != slot_) {
      auto free = TryLockSlot(backing_->fd(), slot);
      if (free.ok() && *free) {
        UnlockSlot(backing_->fd(), slot);
        continue;
      }
    }
    out.push_back({slot, s.pid.load()});
  }
  return out;
}

FileCore::Stats FileCore::GetStats() {
  // Blocks in use are only known once the allocator is built (a file only read so far is not).
  Status built = EnsureAllocatorReady();
  if (!built.ok()) TERN_LOG_INFO("%s: blocks in use unknown: %s", path_.c_str(), built.context());
  const SharedHeader* h = shared_->header();
  return {Counters(),           h->gc_runs.load(),      h->gc_freed_blocks.load(),
          h->reclaimed_blocks.load(), h->reclaimed_slots.load(), LogLength(),
          alloc_->num_blocks(), alloc_->CountUsed()};
}

void FileCore::LockForFork() {
  build_mu_.lock();  // first: a builder holds it while it takes mu_
  mu_.lock();
  grow_mu_.lock();
  arena_mu_.lock();
  for (PendingShard& shard : pending_) shard.mu.lock();
  table_.LockForFork();
}

void FileCore::UnlockAfterFork() {
  table_.UnlockAfterFork();
  for (PendingShard& shard : pending_) shard.mu.unlock();
  arena_mu_.unlock();
  grow_mu_.unlock();
  mu_.unlock();
  build_mu_.unlock();
}

void FileCore::AdoptPublishedSharedState() {
  // Such a parent also took the shared state's name away, and a third process may since have
  // published a fresh one. Only this thread exists in the child yet, so switching is safe.
  auto published = SharedState::Attach(shared_name_);
  if (published.ok()) {
    if (!(*published)->SameObjectAs(*shared_)) {
      shared_ = std::move(published).value();
      alloc_ = std::make_unique<BlockAllocator>(shared_.get());
    }
    return;
  }
  if (published.status().err() != ENOENT) return;  // damaged: the next opener rebuilds it
  Status st = shared_->Publish(shared_name_);
  if (!st.ok()) TERN_LOG_WARN("%s: after fork, cannot republish shared state: %s", path_.c_str(), st.context());
}

void FileCore::NoteChildLeftItAlone() {
  if (shared_ != nullptr) shared_->NoteChildLeavesItAlone();
}

void FileCore::AfterForkInChild() {
  // The child shares the parent's open file description, and with it the parent's open lock and
  // slot lock. It needs its own: a fresh open of the same inode, its own slot, and its own record
  // arena (the parent keeps filling the one it has). Deferred frees are the parent's to finish.
  arena_used_ = kBlockSize;
  arena_block_ = LogicalBlock(0);
  arena_has_commit_ = false;
  for (PendingShard& shard : pending_) {
    shard.list.clear();
    shard.NoteSize();
  }
  compacting_.store(false);  // a compaction running in the parent did not come along
  slot_ = kNoSlot;
  int fd = backing_->OpenAgain((backing_->writable() ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    TERN_LOG_ERROR("%s: after fork, cannot reopen the backing file (errno %d); this process's "
                   "allocations are not reclaimable if it dies", path_.c_str(), errno);
    return;
  }
  // Drop every hold on the parent's description before locking our own: a parent closing this file
  // during the fork may hold its open lock exclusively ("last close"), and our copy would pin that
  // lock forever; a dead parent's slot lock too.
  if (!backing_->writable()) {
    AfterForkWithoutWriteAccess(fd);
    return;
  }
  Status remapped = backing_->ReplaceFdInChild(fd);
  if (!remapped.ok()) {
    TERN_LOG_ERROR("%s: %s (errno %d)", path_.c_str(), remapped.context(), remapped.err());
    return;
  }
  if (!LockShared(fd).ok()) {
    TERN_LOG_ERROR("%s: after fork, cannot lock the backing file (errno %d)", path_.c_str(), errno);
    return;
  }
  AdoptPublishedSharedState();
  bool dirty = false;
  Status st = AcquireSlot(&dirty);
  if (st.ok() && dirty) {
    OpGuard guard(this);
    st = guard.status().ok() ? HandDeadLeftoversToLog({slot_}) : guard.status();
  }
  if (!st.ok()) {
    TERN_LOG_ERROR("%s: after fork, no process slot: %s", path_.c_str(), st.context());
  }
}

}  // namespace tern

namespace tern {
Result<std::vector<std::pair<uint32_t, uint16_t>>> FileCore::UnreferencedInUse() {
  OpGuard guard(this);
  TERN_TRY(guard.status());
  std::vector<uint64_t> referenced;
  TERN_TRY(ReferencedNow(&referenced));
  std::vector<std::pair<uint32_t, uint16_t>> out;
  for (uint64_t b = 0; b < alloc_->num_blocks(); ++b) {
    LogicalBlock block(static_cast<uint32_t>(b));
    if (alloc_->IsUsed(block) && !((referenced[b / 64] >> (b % 64)) & 1)) {
      out.emplace_back(block.value(), alloc_->OwnerOf(block));
    }
  }
  return out;
}
}  // namespace tern
