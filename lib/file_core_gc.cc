// FileCore: log compaction (GC), checkpoints, and the operation guard that makes freeing old log
// blocks safe while other threads and processes keep reading and writing.
//
// Compact() replays the log privately up to the tail P, writes the resulting mapping as a
// checkpoint record, and points the meta block at it with one CAS: from then on nothing before P
// needs to be read. Old log blocks and records are freed only once no operation can still be in
// them: GC raises the shared floor to P, flips the epoch, and waits until every live process's
// operations of the old parity have finished (OpGuard counts them). An operation that starts
// behind the floor first reloads this process's table from the checkpoint. Readers and writers
// never wait for GC; GC waits for them (bounded) or leaves the freeing to its next run.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "lib/atomic_max.h"
#include "lib/checkpoint_check.h"
#include "lib/checkpoint_format.h"
#include "lib/crc32c.h"
#include "lib/file_core.h"
#include "lib/huge_buffer.h"
#include "lib/open_lock.h"
#include "lib/pool.h"
#include "pmem/log.h"
#include "pmem/mapping.h"
#include "pmem/persist.h"

namespace tern {
uint32_t FileCore::ThreadOpCell() {
  static std::atomic<uint32_t> next{0};
  thread_local uint32_t cell = next.fetch_add(1) % kOpCellsPerSlot;
  return cell;
}

FileCore::OpGuard::OpGuard(FileCore* core) : core_(core) {
  if (core_->slot_ == kNoSlot) return;
  SharedHeader* h = core_->shared_->header();
  cell_ = &core_->shared_->cells(core_->slot_)[ThreadOpCell()];
  // Count ourselves under the current parity; if GC flipped it meanwhile, move to the new one, so
  // GC never misses an operation that may read below its new floor.
  for (;;) {
    uint64_t epoch = h->epoch.load();
    parity_ = static_cast<uint32_t>(epoch & 1);
    cell_->ops[parity_].fetch_add(1);
    if (h->epoch.load() == epoch) break;
    cell_->ops[parity_].fetch_sub(1);
  }
  if (core_->applied_.load() < h->floor.load()) {
    std::lock_guard lock(core_->mu_);
    status_ = core_->RefreshCheckpointLocked();
  }
}

FileCore::OpGuard::~OpGuard() {
  if (cell_ != nullptr) cell_->ops[parity_].fetch_sub(1, std::memory_order_release);
}

Result<FileCore::Checkpoint> FileCore::ReadCheckpoint(LogicalBlock block) {
  Checkpoint ck;
  uint64_t nblocks = alloc_->num_blocks();
  const uint8_t* p = block.value() < nblocks ? Resolve(block, 1) : nullptr;
  if (p == nullptr) return Damaged("checkpoint block index out of range");
  memcpy(&ck.header, p, sizeof(ck.header));
  uint64_t span = 0;
  if (const char* bad = CheckpointHeaderDamage(ck.header, block.value(), nblocks, &span)) return Damaged(bad);
  p = Resolve(block, static_cast<uint32_t>(span));
  if (p == nullptr) return Damaged("checkpoint runs past the end of the file");
  // A fragmented 1 GiB file's checkpoint is ~3.5 MiB. Read through the mapping, each of its pages
  // costs an opener a first-touch fault (~5 µs here, even after MADV_POPULATE); the kernel's copy
  // into huge pages costs a fraction of that. A small one is read in place.
  uint64_t bytes = span * kBlockSize;
  if (bytes >= Backing::kKernelCopyMin) {
    HugeBuffer copy = HugeBuffer::Map(bytes);
    if (copy.data() != nullptr && backing_->ReadThroughKernel(copy.data(), bytes, block.ToBytes())) {
      ck.copy = std::move(copy);
      p = ck.copy.data();
    }
  }
  if (p != ck.copy.data()) pmem::Prefault(const_cast<uint8_t*>(p), bytes, false);
  if (const char* bad = CheckpointDamage(p, nblocks, &ck.mapped)) return Damaged(bad);
  // Runs are used where they are, in the copy or in the mapping (a fragmented 1 GiB file has ~250,000).
  ck.runs = reinterpret_cast<const pmem::ExtRun*>(p + sizeof(ck.header));
  ck.blocks = {block, static_cast<uint32_t>(span)};
  return ck;
}

uint64_t FileCore::CheckpointPositionAt(LogicalBlock block) {
  const uint8_t* p = block.value() < alloc_->num_blocks() ? Resolve(block, 1) : nullptr;
  if (p == nullptr) return 0;
  return pmem::Load64(reinterpret_cast<const uint64_t*>(p + offsetof(pmem::CheckpointHeader, position)));
}

Status FileCore::RefreshCheckpointLocked() {
  uint64_t at = pmem::Load64(&meta()->header.checkpoint);
  if (at > UINT32_MAX) return Damaged("checkpoint pointer out of range");
  // The same block may hold a newer checkpoint: GC frees retired checkpoints, and a later one may
  // be written to the same place (ABA). Positions only grow, so block and position name it.
  if (at == ckpt_block_.load() && (at == 0 || CheckpointPositionAt(LogicalBlock(static_cast<uint32_t>(at))) == ckpt_pos_.load())) {
    return Status::Ok();
  }
  TERN_ASSIGN_OR_RETURN(Checkpoint ck, ReadCheckpoint(LogicalBlock(static_cast<uint32_t>(at))));
  const pmem::CheckpointHeader& h = ck.header;
  // The block holding the checkpoint position starts the chain this process needs from now on.
  // Resolve first: another process may have grown the file past what this one has mapped.
  if (Resolve(LogicalBlock(h.chain_block), 1) == nullptr) {
    return Damaged("checkpoint names a block that is not its log block");
  }
  const pmem::LogBlockTrailer& t = LogBlockAt(LogicalBlock(h.chain_block))->trailer;
  if (t.magic != pmem::kLogMagic || t.seq != h.chain_index + 1) {
    return Damaged("checkpoint names a block that is not its log block");
  }
  // Lock-free readers of the chain (SlotAddress, IsFree, ChangedIn) rely on this order: whoever
  // sees the longer chain sees the new first index, and whoever sees that sees the new position.
  ckpt_pos_.store(h.position);
  chain_first_.store(h.chain_index);
  chain_.Set(h.chain_index, h.chain_block);
  if (chain_len_.load() < h.chain_index + 1) chain_len_.store(h.chain_index + 1, std::memory_order_release);
  if (applied_.load() < h.position) {
    if (ck.copy.data() != nullptr) {
      // A large checkpoint, read into DRAM: an opener's table copies each chunk in when first used,
      // not all of it now (a fragmented 1 GiB file has ~250,000 runs; LoadLazy loads others now).
      auto runs = std::make_shared<CheckpointRuns>();
      runs->bytes = std::move(ck.copy);
      runs->runs = ck.runs;
      runs->nruns = h.nruns;
      table_.LoadLazy(std::move(runs), ck.mapped, h.size);
    } else {
      // Behind the checkpoint: jump to it. Only entries that differ change, so concurrent readers
      // never see a transient hole; they catch the changes by validating over [their position, P).
      table_.Load(ck.runs, h.nruns, h.size);
    }
    applied_.store(h.position);
  }
  RaiseAtomic(durable_, h.position);
  ckpt_span_.store(ck.blocks.count);
  ckpt_block_.store(at);
  return Status::Ok();
}

Result<CompactStats> FileCore::Compact(GcMode mode) {
  if (!writable()) return Status::Error(EBADF, "file not open for writing");
  if (slot_ == kNoSlot) return Status::Error(EIO, "no process slot: this process cannot compact");
  TERN_TRY(EnsureAllocatorReady());
  SharedHeader* h = shared_->header();
  // One compaction per file at a time: in this process by compact_mu_, across processes by the
  // gc_owner claim; a dead process's claim is taken over.
  if (compacting_.exchange(true)) return Status::Error(EBUSY, "this process is compacting this file");
  uint32_t expected = 0;
  bool claimed = h->gc_owner.compare_exchange_strong(expected, OwnerOf(slot_));
  if (!claimed) {
    uint32_t holder = SlotOfOwner(static_cast<BlockOwner>(expected));
    // Our own slot's claim was left by the process that had the slot before us and died
    // compacting (compacting_ says it is not ours).
    auto taken = holder == slot_ ? Result<bool>(true)
                 : holder >= kMaxSlots ? Result<bool>(false)
                                       : TryLockSlot(backing_->fd(), holder);
    if (taken.ok() && *taken) {  // the claimant died
      if (holder != slot_) UnlockSlot(backing_->fd(), holder);
      claimed = h->gc_owner.compare_exchange_strong(expected, OwnerOf(slot_));
    }
  }
  if (!claimed) {
    compacting_.store(false);
    return Status::Error(EBUSY, "another process is compacting this file");
  }
  BeginCompactionSeq();
  auto result = CompactLocked(mode);
  EndCompactionSeq();
  h->gc_owner.store(0);
  compacting_.store(false);
  return result;
}

Result<LogPos> FileCore::RefreshWithCheckpoint() {
  TERN_ASSIGN_OR_RETURN(LogPos position, Refresh());
  std::lock_guard lock(mu_);
  TERN_TRY(RefreshCheckpointLocked());
  return position;
}

uint64_t FileCore::LogLength() {
  {
    OpGuard guard(this);
    // On failure: the length as of the log and checkpoint this process knows.
    if (guard.status().ok()) (void)RefreshWithCheckpoint();
  }
  LogPos applied = applied_.load();
  LogPos from = ckpt_pos_.load();
  return applied > from ? applied - from : 0;
}

Result<CompactStats> FileCore::CompactLocked(GcMode mode) {
  CompactStats stats{};
  SharedHeader* h = shared_->header();
  LogPos position = 0;
  std::vector<uint32_t> retired;
  {
    OpGuard guard(this);
    TERN_TRY(guard.status());
    TERN_ASSIGN_OR_RETURN(position, RefreshWithCheckpoint());
    LogPos from = ckpt_pos_.load();
    stats.entries_before = position - from;
    stats.entries_after = stats.entries_before;
    if (position < pmem::kMetaSlots + pmem::kLogSlots || position - from < kMinCompactEntries) {
      position = 0;  // too short to be worth a checkpoint
    } else {
      TERN_TRY(WriteCheckpoint(position, &retired, &stats));
    }
  }
  TERN_TRY(RetireAndSweep(mode, position, retired, &stats));
  stats.log_blocks_after = chain_len_.load() - chain_first_.load();
  if (stats.checkpoint_runs > 0 || stats.drained) h->gc_runs.fetch_add(1);
  TERN_LOG_DEBUG("%s: compacted %llu log entries into a checkpoint of %u runs; freed %llu blocks",
                 path_.c_str(), static_cast<unsigned long long>(stats.entries_before),
                 stats.checkpoint_runs, static_cast<unsigned long long>(stats.blocks_freed));
  return stats;
}

Status FileCore::WriteCheckpoint(LogPos position, std::vector<uint32_t>* retired_out, CompactStats* out) {
  // REQUIRES: inside an OpGuard; this process holds the gc_owner claim.
  std::vector<uint32_t>& retired = *retired_out;
  CompactStats& stats = *out;
  LogPos from = ckpt_pos_.load();
  TERN_TRY(EnsureSlot(position));
  auto k = static_cast<uint32_t>((position - pmem::kMetaSlots) / pmem::kLogSlots);
  // What this checkpoint retires: the log blocks before k, and the previous checkpoint record.
  for (uint32_t i = chain_first_.load(); i < k; ++i) retired.push_back(chain_.Get(i));

  // Replay [from, position) into a private table, starting from the current checkpoint: no lock
  // is held meanwhile, so nobody waits for us.
  BlockTable replay;
  if (!replay.Init()) return Status::Error(ENOMEM, "compaction table");
  uint64_t prev = ckpt_block_.load();
  uint64_t generation = 1;
  if (prev != 0) {
    TERN_ASSIGN_OR_RETURN(Checkpoint ck, ReadCheckpoint(LogicalBlock(static_cast<uint32_t>(prev))));
    replay.Load(ck.runs, ck.header.nruns, ck.header.size);
    generation = ck.header.generation + 1;
    for (uint32_t i = 0; i < ck.blocks.count; ++i) retired.push_back(ck.blocks.start.value() + i);
  }
  for (LogPos pos = from; pos < position; ++pos) {
    uint64_t* slot = SlotAddress(pos);
    if (slot == nullptr) return Status::Error(EAGAIN, "a newer checkpoint appeared under compaction");
    auto c = DecodeCommit(pmem::Load64(slot), alloc_->num_blocks(), *this, false);
    if (!c.ok()) return Damaged(c.status().context());
    replay.Apply(*c);
  }
  std::vector<MapRun> runs = replay.Runs();
  std::vector<pmem::ExtRun> media;
  media.reserve(runs.size());
  for (const MapRun& r : runs) media.push_back({r.vblock.value(), r.lblock.value(), r.count, 0});

  pmem::CheckpointHeader ckh{pmem::kCheckpointMagic, 0, position, replay.size(), k,
                             chain_.Get(k), static_cast<uint32_t>(media.size()), 0, generation};
  uint32_t crc = Crc32c(&ckh, sizeof(ckh));
  ckh.crc = Crc32c(media.data(), media.size() * sizeof(pmem::ExtRun), crc);
  auto span = static_cast<uint32_t>(BlocksFor(pmem::CheckpointBytes(ckh.nruns)));
  TERN_ASSIGN_OR_RETURN(BlockRun blocks, AllocateContiguous(span));
  auto* dst = const_cast<uint8_t*>(Resolve(blocks.start, blocks.count));
  pmem::CopyNoDrain(dst, &ckh, sizeof(ckh));
  pmem::CopyNoDrain(dst + sizeof(ckh), media.data(), media.size() * sizeof(pmem::ExtRun));
  pmem::Drain();  // the record is durable before anything points at it
  uint64_t old = prev;
  if (!pmem::Cas64(&meta()->header.checkpoint, old, blocks.start.value())) {
    alloc_->Release(blocks, slot_);
    return Damaged("checkpoint pointer changed under a compaction");
  }
  pmem::Persist(&meta()->header.checkpoint, sizeof(uint64_t));
  NoteChangedHere();
  alloc_->Adopt(blocks);
  {
    std::lock_guard lock(mu_);
    TERN_TRY(RefreshCheckpointLocked());
  }
  stats.checkpoint_runs = ckh.nruns;
  stats.checkpoint_position = position;
  // Measured now: writers keep appending while GC waits for old operations below.
  TERN_ASSIGN_OR_RETURN(LogPos tail, Refresh());
  stats.entries_after = tail - position;
  return Status::Ok();
}

Status FileCore::RetireAndSweep(GcMode mode, LogPos position, const std::vector<uint32_t>& retired,
                                CompactStats* out) {
  CompactStats& stats = *out;
  SharedHeader* h = shared_->header();
  bool full = mode == GcMode::kFull || h->gc_runs.load() % kFullSweepEvery == kFullSweepEvery - 1 ||
              h->sweep_wanted.load() != 0;
  if (retired.empty() && !full) return Status::Ok();
  // Free what the checkpoint made unreachable, once nobody can be in it. The floor covers the
  // current checkpoint even when this run wrote none: a compactor that died may have published
  // one without raising the floor, and the full sweep frees what only entries below it referenced.
  h->floor.store(std::max({h->floor.load(), position, ckpt_pos_.load()}));
  // Grace period: every operation that began before the flip must end. Operations counted under
  // the parity new ones will use after the flip can only be stragglers of an earlier compaction
  // that gave up waiting or died; they go first, or the flip would mix them with new ones.
  auto epoch = h->epoch.load();
  stats.drained = WaitForOldOperations(static_cast<uint32_t>((epoch + 1) & 1));
  if (stats.drained) {
    h->epoch.fetch_add(1);
    stats.drained = WaitForOldOperations(static_cast<uint32_t>(epoch & 1));
  }
  if (stats.drained) {
    // A reader without write access has no slot to drain (file_core_readonly.cc): while one has
    // the file open, old log blocks stay, for the first full sweep after it.
    auto slotless = SlotlessReadersPresent(backing_->fd());
    if (!slotless.ok() || *slotless) {
      stats.drained = false;
      h->sweep_wanted.store(1);
    }
  }
  if (!stats.drained) return Status::Ok();  // what we retire stays log-owned: a later full sweep
  OpGuard guard(this);
  TERN_TRY(guard.status());
  // Nobody can be in the retired blocks any more, and the durable checkpoint no longer needs them.
  // A sweep may have freed a retired block already, and it may live again elsewhere: checked.
  // (A failed look leaves them log-owned, for a later full sweep.)
  if (auto freed = FreeIfUnreferenced(retired); freed.ok()) stats.blocks_freed += *freed;
  if (full) {
    // Also what no checkpoint retires: old records, arenas closed unused, leftovers of dead
    // processes and of compactions that did not drain. Safe only here, after the grace period.
    h->sweep_wanted.store(0);
    auto swept = SweepUnreferenced();
    if (!swept.ok()) {
      h->sweep_wanted.store(1);
      return swept.status();
    }
    stats.blocks_freed += *swept;
  }
  h->gc_freed_blocks.fetch_add(stats.blocks_freed);
  return Status::Ok();
}

bool FileCore::WaitForOldOperations(uint32_t parity) {
  // Polls every live process's counters of the old parity. Dead processes are skipped (their
  // counters are stale); a stuck live operation makes us give up: the next compaction frees it all.
  constexpr int kMaxPolls = 20000;  // ~2 s with the yields and sleeps below
  for (int poll = 0; poll < kMaxPolls; ++poll) {
    bool busy = false;
    for (uint32_t slot = 0, bound = shared_->slots_bound(); slot < bound && !busy; ++slot) {
      if (shared_->slots()[slot].state.load() != ProcessSlot::kUsed) continue;
      const OpCell* cells = shared_->cells(slot);
      for (uint32_t c = 0; c < kOpCellsPerSlot; ++c) {
        if (cells[c].ops[parity].load() != 0) {
          busy = true;
          break;
        }
      }
      if (busy && slot != slot_) {
        auto taken = TryLockSlot(backing_->fd(), slot);
        if (taken.ok() && *taken) {  // dead: its counters mean nothing
          UnlockSlot(backing_->fd(), slot);
          busy = false;
        }
      }
    }
    if (!busy) return true;
    if (poll < 100) {
      sched_yield();
    } else {
      usleep(100);
    }
  }
  TERN_LOG_INFO("%s: compaction left old log blocks for later: an operation did not finish", path_.c_str());
  return false;
}

void FileCore::MaybeScheduleCompaction(LogPos tail) {
  if (tail - ckpt_pos_.load(std::memory_order_relaxed) < kAutoCompactEntries) return;
  // Loaded first: once queued, later commits only read the flag (see Allocate's grow-ahead flag).
  if (compaction_scheduled_.load(std::memory_order_relaxed) || compaction_scheduled_.exchange(true)) return;
  Pool::Default().Schedule(shared_from_this(), Pool::Job::kCompact);
}

}  // namespace tern
