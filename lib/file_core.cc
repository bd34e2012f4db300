// FileCore: log addressing, replay into the DRAM block table, records and the log's chain,
// supersede claims and deferred frees, fsync, size and counters. Allocating blocks and growing the
// backing file: file_core_grow.cc.
#include "lib/file_core.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "lib/atomic_max.h"
#include "lib/crc32c.h"
#include "lib/test_hooks.h"
#include "pmem/log.h"
#include "pmem/mapping.h"
#include "pmem/persist.h"

namespace tern {

Status FileCore::Damaged(const char* cause) const {
  if (!quiet_damage_.load(std::memory_order_relaxed)) TERN_LOG_ERROR("%s: damaged tern file: %s", path_.c_str(), cause);
  return Status::Error(EUCLEAN, cause);
}

const uint8_t* FileCore::Resolve(LogicalBlock block, uint32_t count) {
  uint64_t end = uint64_t{block.value()} + count;
  if (end > backing_->mapped_blocks()) {
    if (end > alloc_->num_blocks()) return nullptr;
    if (!backing_->EnsureMapped(alloc_->num_blocks()).ok()) return nullptr;
  }
  return backing_->BlockAddress(block);
}

uint64_t* FileCore::SlotAddress(LogPos pos) const {
  if (pos < pmem::kMetaSlots) return &meta()->slots[pos];
  uint64_t k = (pos - pmem::kMetaSlots) / pmem::kLogSlots;
  if (k >= chain_len_.load(std::memory_order_acquire)) return nullptr;
  // Blocks before the checkpoint's may be retired, or were never followed (the table jumped).
  if (k < chain_first_.load()) return nullptr;
  pmem::LogBlock* b = LogBlockAt(LogicalBlock(chain_.Get(static_cast<uint32_t>(k))));
  return &b->slots[(pos - pmem::kMetaSlots) % pmem::kLogSlots];
}

bool FileCore::IsFree(LogPos pos) const {
  uint64_t* slot = SlotAddress(pos);
  if (slot != nullptr) return pmem::Load64(slot) == 0;
  // A position the table has jumped past (to a checkpoint) is taken.
  if (pos < ckpt_pos_.load()) return false;
  // pos opens a log block this process has not followed yet: free unless the block is linked.
  auto k = static_cast<uint32_t>((pos - pmem::kMetaSlots) / pmem::kLogSlots);
  return pmem::Load32(LinkTo(k)) == 0;
}

Result<LogPos> FileCore::Refresh() {
  LogPos pos = applied_.load();
  if (IsFree(pos)) return pos;
  std::lock_guard lock(mu_);
  TERN_TRY(backing_->writable() ? ReplayLocked() : CatchUpWithoutWriteAccessLocked());
  return applied_.load();
}

Result<bool> FileCore::FollowLinkLocked() {
  uint32_t k = chain_len_.load(std::memory_order_relaxed);
  uint32_t next = pmem::Load32(LinkTo(k));
  if (next == 0) return false;
  if (Resolve(LogicalBlock(next), 1) == nullptr) return Damaged("log block index out of range");
  const pmem::LogBlockTrailer& t = LogBlockAt(LogicalBlock(next))->trailer;
  if (t.magic != pmem::kLogMagic) return Damaged("log block has a bad magic");
  if (t.seq != k + 1) return Damaged("cycle or misplaced block in the log chain");
  uint32_t fixed[2] = {t.magic, t.seq};
  if (t.checksum != Crc32c(fixed, sizeof(fixed))) return Damaged("log block checksum mismatch");
  chain_.Set(k, next);
  chain_len_.store(k + 1, std::memory_order_release);
  return true;
}

Status FileCore::ReplayLocked() {
  for (;;) {
    LogPos pos = applied_.load();
    uint64_t* slot = SlotAddress(pos);
    if (slot == nullptr) {
      TERN_ASSIGN_OR_RETURN(bool linked, FollowLinkLocked());
      if (!linked) return Status::Ok();
      continue;
    }
    uint64_t entry = pmem::Load64(slot);
    if (entry == 0) return Status::Ok();
    auto commit = DecodeCommit(entry, alloc_->num_blocks(), *this, /*verify_crc=*/true);
    if (!commit.ok()) return Damaged(commit.status().context());
    table_.Apply(*commit);
    test_hooks::after_replay_apply.Run();
    applied_.store(pos + 1);
  }
}

Result<FileCore::VRange> FileCore::ChangedIn(LogPos from, LogPos to, uint32_t first, uint32_t end) {
  VRange out{UINT32_MAX, 0};
  auto note = [&](uint32_t lo, uint32_t hi) {
    lo = std::max(lo, first);
    hi = std::min(hi, end);
    if (lo < hi) {
      out.lo = std::min(out.lo, lo);
      out.hi = std::max(out.hi, hi);
    }
  };
  // The table jumped to a checkpoint since `from` (another thread caught up behind GC's floor),
  // before or during this scan: this process never followed the log blocks in between, so
  // anything may have changed.
  const VRange everything = first < end ? VRange{first, end} : VRange{};
  if (from < ckpt_pos_.load()) return everything;
  for (LogPos pos = from; pos < to; ++pos) {
    uint64_t* slot = SlotAddress(pos);
    if (slot == nullptr) return everything;
    auto c = DecodeCommit(pmem::Load64(slot), alloc_->num_blocks(), *this, /*verify_crc=*/false);
    if (!c.ok()) return Damaged(c.status().context());
    if (c->unmap_beyond) note(static_cast<uint32_t>(BlocksFor(c->size)), UINT32_MAX);
    c->ForEachRun([&](const MapRun& r) { note(r.vblock.value(), r.vblock.value() + r.count); });
  }
  if (out.lo >= out.hi) return VRange{};
  return out;
}

bool FileCore::CommitAt(LogPos pos, uint64_t entry) {
  uint64_t expected = 0;
  uint64_t* slot = SlotAddress(pos);
  bool won = slot != nullptr && pmem::Cas64(slot, expected, entry);
  if (won) NoteChangedHere();
  SharedCounters& counted = Counted();
  (won ? counted.commits : counted.conflicts).fetch_add(1, std::memory_order_relaxed);
  return won;
}

Status FileCore::EnsureSlot(LogPos pos) {
  if (SlotAddress(pos) != nullptr) return Status::Ok();
  std::lock_guard lock(mu_);
  for (;;) {
    if (SlotAddress(pos) != nullptr) return Status::Ok();
    // The table jumped past pos meanwhile: the caller's CAS finds no slot and retries at the tail.
    if (pos < ckpt_pos_.load()) return Status::Ok();
    TERN_ASSIGN_OR_RETURN(bool linked, FollowLinkLocked());
    if (linked) continue;
    uint32_t k = chain_len_.load(std::memory_order_relaxed);
    // A fresh log block is zeroed and its trailer persisted before it is linked, so a linked block
    // never shows stale entries.
    TERN_ASSIGN_OR_RETURN(BlockRun run, AllocateContiguous(1));
    auto* block = reinterpret_cast<pmem::LogBlock*>(const_cast<uint8_t*>(Resolve(run.start, 1)));
    pmem::ZeroNoDrain(block->slots, sizeof(block->slots));
    pmem::LogBlockTrailer t{pmem::kLogMagic, k + 1, 0, 0};
    uint32_t fixed[2] = {t.magic, t.seq};
    t.checksum = Crc32c(fixed, sizeof(fixed));
    pmem::CopyNoDrain(&block->trailer, &t, sizeof(t));
    pmem::Drain();
    uint32_t* link = LinkTo(k);
    uint32_t expected = 0;
    if (pmem::Cas32(link, expected, run.start.value())) {
      // Flushed now (rare): a lost link would hide every entry in the new block.
      pmem::Persist(link, sizeof(*link));
      alloc_->Adopt(run);
    } else {
      alloc_->Release(run, slot_);  // another process linked first; ours was never visible
    }
  }
}

uint64_t FileCore::WriteRecord(const RecordPlace& place, pmem::ExtKind kind, uint64_t new_size,
                               std::span<const pmem::ExtRun> runs) {
  pmem::ExtRecordHeader h{pmem::kExtMagic, static_cast<uint8_t>(kind), 0, 0,
                          static_cast<uint32_t>(runs.size()), 0, new_size};
  uint32_t crc = Crc32c(&h, sizeof(h));
  h.crc = Crc32c(runs.data(), runs.size() * sizeof(pmem::ExtRun), crc);
  auto* dst = const_cast<uint8_t*>(Resolve(place.block, 1)) + place.offset;
  pmem::CopyNoDrain(dst, &h, sizeof(h));
  pmem::CopyNoDrain(dst + sizeof(h), runs.data(), runs.size() * sizeof(pmem::ExtRun));
  return pmem::EncodeExtended({place.block, place.offset});
}

void FileCore::SupersedeClaims::Update(uint32_t first, uint32_t end) {
  BlockAllocator& alloc = *core_->alloc_;
  SmallVector<std::pair<uint32_t, uint32_t>, 8> kept;
  SmallVector<uint32_t, 8> superseded_by_others;
  for (auto [v, l] : held_) {
    if (core_->table_.Get(v) != l) {
      superseded_by_others.push_back(l);  // a commit in the log superseded it
    } else if (v >= first && v < end) {
      kept.emplace_back(v, l);
    } else {
      alloc.Unclaim(LogicalBlock(l));
    }
  }
  held_.clear();
  core_->FreeOnceSupersedingIsDurable(superseded_by_others);
  // held_ is rebuilt in vblock order: the claims kept from the last attempt, and fresh ones.
  bool claimed_fresh = false;
  auto it = kept.begin();
  for (uint32_t v = first; v < end; ++v) {
    while (it != kept.end() && it->first < v) ++it;
    if (it != kept.end() && it->first == v) {
      held_.push_back(*it);
      continue;
    }
    uint32_t l = core_->table_.Get(v);
    if (l != 0 && alloc.Claim(LogicalBlock(l), kLogOwner, core_->slot_)) {
      held_.emplace_back(v, l);
      claimed_fresh = true;
    }
  }
  if (!claimed_fresh) return;
  // Our table may be behind the log: the block it maps at v may have been superseded by another
  // process, freed and reused elsewhere (log-owned again, in a new life) before our claim took it
  // (ABA). Now that nobody else can free it, look again: a block no longer mapped at v is given
  // back, never freed as superseded. (One merely superseded since our first look stays log-owned
  // and unreferenced until a sweep collects it: space, never data.) Claims kept from the last
  // attempt were looked at then and stay as they are.
  LogPos from = core_->applied_.load();
  bool refreshed = core_->TailUntouched(from, core_->table_.size(), first, end).has_value() || core_->Refresh().ok();
  size_t out = 0;
  bool unclaimed = false;
  it = kept.begin();
  for (auto [v, l] : held_) {
    while (it != kept.end() && it->first < v) ++it;
    bool was_kept = it != kept.end() && it->first == v;
    if (was_kept || (refreshed && core_->table_.Get(v) == l)) {
      held_[out++] = {v, l};
    } else {
      alloc.Unclaim(LogicalBlock(l));
      unclaimed = true;
    }
  }
  held_.resize(out);
  // A block given back here may be one nobody frees: have the next compaction sweep.
  if (unclaimed) core_->shared_->header()->sweep_wanted.store(1);
}

void FileCore::FreeOnceSupersedingIsDurable(std::span<const uint32_t> claimed) {
  if (claimed.empty()) return;
  // The superseding commit lies below applied_, but only once the replay that applied it to the
  // table has finished (a replay applies an entry, then advances applied_), so read applied_
  // under the replay lock. Read without it, a block could be freed one commit early and reused
  // before the commit superseding it reaches media.
  LogPos seen;
  {
    std::lock_guard replay(mu_);
    seen = applied_.load();
  }
  PendingShard& own = OwnPending();
  std::lock_guard lock(own.mu);
  for (uint32_t l : claimed) own.list.push_back({seen, l});
  own.NoteSize();
}

bool FileCore::AnyPending() const {
  return std::any_of(pending_.begin(), pending_.end(),
                     [](const PendingShard& shard) { return shard.size.load(std::memory_order_relaxed) != 0; });
}

void FileCore::SupersedeClaims::Committed(LogPos pos) {
  size_t pending = 0;
  {
    PendingShard& own = core_->OwnPending();
    std::lock_guard lock(own.mu);
    for (auto [v, l] : held_) own.list.push_back({pos + 1, l});
    own.NoteSize();
    pending = own.list.size();
  }
  held_.clear();
  // Bounded: a process that never fsyncs still gets its space back.
  if (pending > kMaxPendingFrees) (void)core_->FlushLog();
}

void FileCore::SupersedeClaims::Abandon() {
  Update(0, 0);
}

Result<LogPos> FileCore::ProbeTail() {
  for (LogPos pos = applied_.load();; ++pos) {
    const uint64_t* slot = SlotAddress(pos);
    if (slot == nullptr) return Refresh();  // past the log blocks this process has followed
    if (pmem::Load64(slot) == 0) return pos;
  }
}

void FileCore::FlushCommitSlots(LogPos tail) {
  LogPos pos = durable_.load();
  // Flush the slots of every commit not yet flushed, one contiguous range per log block.
  while (pos < tail) {
    // Positions before the checkpoint are durable in it (and their blocks may be gone).
    pos = std::max(pos, ckpt_pos_.load());
    if (pos >= tail) break;
    uint64_t* slot = SlotAddress(pos);
    if (slot == nullptr) {  // a newer checkpoint came meanwhile: the next pass starts after it
      if (pos < ckpt_pos_.load()) continue;
      tail = pos;  // cannot happen at or after the checkpoint below applied_; never claim past it
      break;
    }
    LogPos block_end = pos < pmem::kMetaSlots
                           ? pmem::kMetaSlots
                           : pos + pmem::kLogSlots - (pos - pmem::kMetaSlots) % pmem::kLogSlots;
    LogPos until = std::min(tail, block_end);
    pmem::Flush(slot, (until - pos) * sizeof(uint64_t));
    pos = until;
  }
  pmem::Drain();
  RaiseAtomic(durable_, tail);
}

void FileCore::FreeDurable(FreeWait wait) {
  LogPos durable = durable_.load();
  // Freed under the shard's lock (a bit clear and a store each): no list to gather them into.
  auto free_durable = [&](PendingShard& shard) {
    std::vector<PendingFree>& list = shard.list;
    auto keep = std::partition(list.begin(), list.end(), [&](const PendingFree& p) { return p.durable_after > durable; });
    for (auto it = keep; it != list.end(); ++it) alloc_->FreeClaimed(LogicalBlock(it->lblock));
    list.erase(keep, list.end());
    shard.NoteSize();
  };
  if (wait == FreeWait::kNo) {
    // An fsync frees what its own thread deferred, and only helps along: when another thread of
    // the same op cell is freeing, it frees what this one would.
    PendingShard& own = OwnPending();
    std::unique_lock lock(own.mu, std::try_to_lock);
    if (!lock.owns_lock()) return;
    if (!own.list.empty()) {
      free_durable(own);
      return;
    }
  }
  // Close, a full allocator, a long list; or an fsync of a thread that defers nothing itself (a
  // program's syncing thread), which frees what the writing threads deferred, passing busy lists.
  for (PendingShard& shard : pending_) {
    std::unique_lock lock(shard.mu, std::defer_lock);
    if (wait == FreeWait::kYes) {
      lock.lock();
    } else if (shard.size.load(std::memory_order_relaxed) == 0 || !lock.try_lock()) {
      continue;  // (a thread that appends defers nothing: its every fsync comes here)
    }
    free_durable(shard);
  }
}

Status FileCore::FlushLog(FreeWait wait) {
  TERN_ASSIGN_OR_RETURN(LogPos tail, ProbeTail());
  test_hooks::after_flush_refresh.Run();
  FlushCommitSlots(tail);
  FreeDurable(wait);
  return Status::Ok();
}

Status FileCore::Fsync() {
  OpGuard guard(this);
  TERN_TRY(guard.status());
  return FlushLog(FreeWait::kNo);
}

Result<uint64_t> FileCore::Size() {
  OpGuard guard(this);
  TERN_TRY(guard.status());
  TERN_TRY(Refresh().status());
  return table_.size();
}

Status FileCore::Stat(struct stat* st) {
  OpGuard guard(this);
  TERN_TRY(guard.status());
  TERN_TRY(Refresh().status());
  if (fstat(backing_->fd(), st) != 0) return Status::Error(errno, "fstat");
  st->st_size = static_cast<off_t>(table_.size());
  st->st_blocks = static_cast<blkcnt_t>(table_.mapped_count() * (kBlockSize / 512));
  st->st_blksize = kBlockSize;
  return Status::Ok();
}

SharedCounters& FileCore::Counted() {
  if (slot_ == kNoSlot) return shared_->header()->counters;
  return shared_->cells(slot_)[ThreadOpCell()].counters;
}

FileCounters FileCore::Counters() const {
  FileCounters total{};
  auto add = [&](const SharedCounters& c) {
    total.commits += c.commits.load(std::memory_order_relaxed);
    total.conflicts += c.conflicts.load(std::memory_order_relaxed);
    total.recopies += c.recopies.load(std::memory_order_relaxed);
    total.read_retries += c.read_retries.load(std::memory_order_relaxed);
  };
  add(shared_->header()->counters);
  for (uint32_t slot = 0, bound = shared_->slots_bound(); slot < bound; ++slot) {
    const OpCell* cells = shared_->cells(slot);
    for (uint32_t c = 0; c < kOpCellsPerSlot; ++c) add(cells[c].counters);
  }
  return total;
}

Status FileCore::ReferencedNow(std::vector<uint64_t>* bits) {
  TERN_TRY(Refresh().status());
  std::lock_guard lock(mu_);
  return CollectReferenced(bits);
}

Result<uint64_t> FileCore::BlocksReachable() {
  OpGuard guard(this);
  TERN_TRY(guard.status());
  std::vector<uint64_t> referenced;
  TERN_TRY(ReferencedNow(&referenced));
  uint64_t n = 0;
  for (uint64_t w : referenced) n += static_cast<uint64_t>(std::popcount(w));
  return n;
}

}  // namespace tern
