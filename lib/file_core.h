// FileCore: the engine of one tern file in one process — the mapped backing file, the DRAM block
// table rebuilt by replaying the commit log, the shared allocator, and the lock-free read and
// copy-on-write paths (DESIGN §3–§4). Files (lib/file.h) are handles onto a FileCore; the Pool
// shares one FileCore among the opens of one file in a process.
//
// Thread-safety: every public method may be called from many threads at once. Reads and writes do
// not lock: writers commit with one CAS on the log tail; readers validate against the log after
// copying. `mu_` serialises only replay (bringing the DRAM table up to the log tail) and chain growth.
//
// The invariant that makes lock-free reads safe: a block is freed only by the writer whose commit
// superseded it. Every path that frees blocks (overwrite, truncate) obeys it; readers catch reuse
// because the superseding commit overlaps what they copied.
//
// The tail rule: the bytes of the last block past the end of the file are undefined. An append at
// the end writes into them in place (file_core_tail.cc), and one that loses its commit, or dies,
// leaves its bytes there. So every copy of a block's current content stops at the size (zeros
// past it), and every growth that would expose them (truncate up, a write that starts past the
// end) first replaces that block with a copy zeroed past the old end.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "lib/allocator.h"
#include "lib/atomic_array.h"
#include "lib/backing.h"
#include "lib/block_table.h"
#include "lib/checkpoint_format.h"
#include "lib/commit.h"
#include "lib/file.h"
#include "lib/grow_ahead_asks.h"
#include "lib/huge_buffer.h"
#include "lib/kept_table.h"
#include "lib/log_block_format.h"
#include "lib/meta_block_format.h"
#include "lib/shared_state.h"
#include "lib/small_vector.h"
#include "lib/spin_then_block_mutex.h"
#include "lib/status.h"

namespace tern {

struct WriteTx;  // file_core_write.cc

struct ProcessInfo {
  uint32_t slot;
  uint32_t pid;
};

class FileCore : public BlockResolver, public std::enable_shared_from_this<FileCore> {
 public:
  // A write's new block runs, and the runs of its extended record: inline for the few a write
  // has, so that a write allocates nothing (small_vector.h).
  using BlockRuns = SmallVector<BlockRun, 4>;
  using ExtRuns = SmallVector<pmem::ExtRun, 5>;

  // Opens the backing file at `path`: formats it when it is new (empty and writable), replays its
  // log, and attaches to (or, as the only opener, creates) its shared state. Flags as File::Open;
  // O_TRUNC and O_APPEND are the caller's business. Errors as File::Open. `slotless`: whether a
  // read-only open reads without the shared state even where it may write the file
  // (file_core_readonly.cc): never; only when the file is open nowhere else (Pool's first reads:
  // a writer elsewhere would find its GC held back by such a reader for as long as it reads); or
  // always (when the shared-state directory fails).
  enum class Slotless { kNever, kIfOpenNowhereElse, kAlways };
  static Result<std::shared_ptr<FileCore>> Open(const std::string& path, int flags, mode_t mode,
                                                Slotless slotless = Slotless::kNever);
  // Open's steps once the backing file is open, as `backing` (`st` its stat): lock, format or
  // check, attach or create the shared state, replay. Pool::OpenCore calls it directly with a
  // Backing this process kept (BackingCache::TakeUnchanged) or a spare it placed at `path`
  // (BackingCache::PlaceSpare), having checked that `path` names it and that this process may
  // read and write it. `table`, when not null, is what this process knew of the file at its last
  // close (kept_table.h); it is used if the file still has the same format nonce.
  // `locked_exclusive`: the caller holds the file's open lock exclusively on backing's descriptor
  // already (a placed spare), and the open goes on from there.
  static Result<std::shared_ptr<FileCore>> OpenWith(const std::string& path, int flags,
                                                    std::unique_ptr<Backing> backing, struct stat st,
                                                    std::unique_ptr<KeptTable> table,
                                                    bool locked_exclusive = false);
  // Makes, before any write needs them, the table's and the log chain's nodes where the next
  // writes land (the end of the file, the next log block) and room for the deferred frees of many
  // overwrites, so that an ordinary write allocates nothing (a write may come from a signal handler
  // that interrupted malloc: AtomicU32Array::Reserve, small_vector.h). Pool::OpenCore calls it for
  // every open that may write. Idempotent.
  void ReserveForWrites();
  static constexpr size_t kPendingFreesRoom = 1024;  // over all op cells' lists
  ~FileCore() override;
  FileCore(const FileCore&) = delete;
  FileCore& operator=(const FileCore&) = delete;

  // An empty file's meta block (a new nonce, no log): what a new file starts with, and what makes a
  // recycled backing file empty (BackingCache).
  static void MakeEmptyMeta(pmem::MetaBlock* block);
  // Writes MakeEmptyMeta's block at the start of fd, not yet synced.
  static Status WriteEmptyMeta(int fd);
  // Before `path` is unlinked: if it names a tern file large enough for its shared state to rest
  // between opens (file_core_rest.cc), with no other name and nobody holding it open, removes that
  // object now rather than leaving it to a sweep 15 minutes on. Anything else: does nothing.
  static void DropRestingState(const std::string& path);
  static void DropRestingState(const std::string& path, const struct stat& st);  // st: its lstat

  Result<size_t> Read(void* buf, size_t n, uint64_t offset);
  // Writes at offset, or at EOF (atomically, inside the commit) when `append`; *written_at receives
  // the offset used. Volatile until Fsync.
  Result<size_t> Write(const void* buf, size_t n, uint64_t offset, bool append, uint64_t* written_at);
  Status Truncate(uint64_t size);
  // fallocate(2) modes 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE[|KEEP_SIZE]; others EOPNOTSUPP.
  // Allocation reserves nothing ahead (blocks come at write time); it only grows the size.
  Status Fallocate(int mode, uint64_t offset, uint64_t len);
  // lseek SEEK_DATA / SEEK_HOLE at block granularity (a hole is an unmapped block). ENXIO at or
  // past EOF, or for SEEK_DATA with no data after offset.
  Result<uint64_t> Seek(int whence, uint64_t offset);
  Status Fsync();
  Result<uint64_t> Size();
  Status Stat(struct stat* st);

  bool writable() const { return backing_->writable(); }
  // True when this process is attached to the file as a writer is: it holds a slot in the shared
  // state, and its close releases every lock it took explicitly (Pool's lingering needs that).
  bool attached() const { return shared_ != nullptr && slot_ != kNoSlot && backing_->writable(); }
  // True when the backing file has no name left (deleted, or renamed over): only open descriptions
  // keep its space.
  bool BackingUnlinked() const;
  // Pool, in a fork's parent: the child left this file alone (see Pool's lingering), so its shared
  // state may still be kept for reuse after the last close here.
  void NoteChildLeftItAlone();
  const std::string& path() const { return path_; }
  dev_t dev() const { return dev_; }
  ino_t ino() const { return ino_; }
  // The file's counters: every process's op cells summed (each thread counts in its own).
  FileCounters Counters() const;
  // Compacts the log into a checkpoint and frees what it made unreachable, without stopping
  // readers or writers (file_core_gc.cc). EBUSY when another process is compacting this file.
  // kFull (what users and tools ask for) also sweeps every allocated block the log no longer
  // references — what dead processes and abandoned claims left — even when the log is too short
  // to checkpoint. kAuto (the background compaction) sweeps only now and then, or when a
  // dead process's leftovers are waiting.
  enum class GcMode { kAuto, kFull };
  Result<CompactStats> Compact(GcMode mode = GcMode::kFull);
  // Background work for the Pool's thread: grows the file ahead of the allocator when free space
  // runs low, and touches the new pages a little ahead of the writers so that they take no
  // first-touch fault (file_core_grow.cc).
  void GrowAhead();
  // File::NoteModified; AnnounceOwedChange is the Pool's delayed job for it (file_core_space.cc).
  void NoteModified();
  void AnnounceOwedChange();
  // Log entries an opener would replay now: past the newest checkpoint, which another process
  // may have written since this one last looked (adopted first).
  uint64_t LogLength();
  // Takes the slots of dead processes back and hands what they left to GC's next full sweep (see
  // Compact); returns how many dead slots it found.
  Result<uint64_t> ReclaimDeadSlots();
  // The live processes with the file open (slots whose process exited are left out).
  std::vector<ProcessInfo> AttachedProcesses() const;
  // Live figures for `tern stat`, shared by every process with the file open.
  struct Stats {
    FileCounters counters;
    uint64_t gc_runs, gc_freed_blocks, reclaimed_blocks, reclaimed_slots;
    uint64_t log_entries;            // an opener would replay these
    uint64_t blocks_total, blocks_in_use;
  };
  Stats GetStats();

  // fork support (called by the Pool's pthread_atfork handlers).
  void LockForFork();
  void UnlockAfterFork();
  void AfterForkInChild();
  // Blocks in use according to the shared allocator (built first if no process has built it),
  // and blocks reachable from the log (tests: no leak).
  uint64_t BlocksInUse() {
    (void)EnsureAllocatorReady();
    return alloc_->CountUsed();
  }
  // Chunks of 4,096 blocks of this process's table still waiting in a checkpoint (block_table.h).
  uint32_t PendingTableChunks() const { return table_.pending_chunks(); }
  // Blocks in use that the log does not reference, with their owners (debugging, tests).
  Result<std::vector<std::pair<uint32_t, uint16_t>>> UnreferencedInUse();
  Result<uint64_t> BlocksReachable();

  // Pinning, for mappings that show the file's blocks themselves (file_core_pin.cc; the shim's
  // mmap maps the backing file where they lie).
  struct PinnedBlocks {
    uint64_t size = 0;  // the file's size when they were pinned
    std::vector<std::pair<uint32_t, uint32_t>> blocks;  // (vblock, lblock), ascending; holes left out
  };
  // Pins the blocks that hold the whole virtual blocks in [first, end) now — those below the
  // file's last partial block — so that none of them is freed or reused until UnpinBlocks, even
  // when a commit supersedes it (it stays claimed by this process, and its superseder leaves it
  // to the claimer). What a pinned block shows never changes: writes are copy-on-write, and
  // in-place appends touch only the last partial block. EBUSY when one of them is claimed
  // already (a writer superseding it, another pin): the caller copies instead. ENOTSUP without a
  // process slot. The pin belongs to this process: a forked child must not unpin it.
  Result<PinnedBlocks> PinBlocks(uint32_t first, uint32_t end);
  // Ends a pin: blocks still in place go back to the log; superseded ones are freed once the
  // superseding commit is durable.
  void UnpinBlocks(const std::vector<std::pair<uint32_t, uint32_t>>& blocks);
  // The backing file's descriptor, for mapping pinned blocks (valid while this FileCore lives).
  int backing_fd() const { return backing_->fd(); }
  // A descriptor of this file opened O_PATH (nothing can be read or written through it), opened
  // at the first call and closed with this FileCore; -1 with errno when it cannot be opened. What
  // the shim duplicates for a program that opens a file open here again: a dup instead of an open.
  int PathDescriptor();
  // FileCores alive in this process (open files, lingering ones, a forked child's inherited ones).
  static uint64_t LiveCount() { return live_count_.load(std::memory_order_relaxed); }

  // BlockResolver: address of `count` mapped blocks starting at `block`, mapping more if needed.
  const uint8_t* Resolve(LogicalBlock block, uint32_t count) override;

 private:
  // At this process's last close: the table and log position to keep with the Backing.
  std::unique_ptr<KeptTable> KeepTable();
  // Starts from a kept table instead of the checkpoint. REQUIRES: nobody else uses this core yet.
  void AdoptKeptTable(const KeptTable& kept);
  FileCore(std::string path, std::unique_ptr<Backing> backing) : path_(std::move(path)), backing_(std::move(backing)) {
    live_count_.fetch_add(1, std::memory_order_relaxed);
  }

  // --- open & recovery (file_core_open.cc) ---
  Status Format();
  Status Recover(bool exclusive, const struct stat& st);
  // Builds the shared bitmap and owner map from the log unless some process did already (see
  // kAllocReady). Every path that allocates, claims or frees blocks comes through here first.
  Status EnsureAllocatorReady();
  Status BuildAllocator();
  Status ScrubTail();

  // --- opens without write access to the file (file_core_readonly.cc) ---
  // A process that may only read the file (its mode, a read-only mount) can take none of the
  // locks that need a writable descriptor, nor write the shared state (it has the file's owner and
  // mode). It reads slotless, with a private object for the block count, and holds the
  // slotless-reader lock (open_lock.h) so that GC frees no log block under it.
  Status OpenWithoutWriteAccess(const struct stat& st);
  // Refresh's catch-up for such a reader: the block count from the backing file, a checkpoint
  // jump when the log moved on past this process, then replay. REQUIRES: mu_ held.
  Status CatchUpWithoutWriteAccessLocked();
  // AfterForkInChild for such a reader: its own description of the backing file and reader lock.
  void AfterForkWithoutWriteAccess(int fd);

  // --- the shared state at rest between opens (file_core_rest.cc) ---
  static constexpr uint64_t kRestMinBlocks = uint64_t{1} << 15;  // 128 MiB of backing
  // At a close that may be the last: what the log looks like now. REQUIRES: mu_ held.
  bool StampLocked(RestStamp* stamp);
  bool MayRest() const;
  // At the last close: leaves shared_ published, at rest with `stamp`.
  void LeaveAtRest(const RestStamp& stamp);
  // At a first open: the object the last close left at rest, if the file still matches its stamp.
  std::unique_ptr<SharedState> TakeRestingState(const struct stat& st);
  bool MatchesStamp(const RestStamp& stamp, const struct stat& st) const;
  // The slot for `pos` in log block `block` (0: the meta block), if that block is the log's block
  // for pos; else nullptr.
  const uint64_t* RestSlot(uint32_t block, LogPos pos, uint64_t nblocks) const;

  // --- compaction (file_core_gc.cc) ---
  static constexpr uint64_t kMinCompactEntries = pmem::kLogSlots;
  static constexpr uint64_t kAutoCompactEntries = 64 * pmem::kLogSlots;
  static constexpr uint64_t kFullSweepEvery = 8;  // compactions; the others free only what they retire
  // Brackets every operation: counts it for GC's grace period, and first catches this process up
  // to the checkpoint when it lags behind GC's floor. status() reports a failed catch-up.
  class OpGuard {
   public:
    explicit OpGuard(FileCore* core);
    ~OpGuard();
    OpGuard(const OpGuard&) = delete;
    OpGuard& operator=(const OpGuard&) = delete;
    Status status() const { return status_; }

   private:
    FileCore* core_;
    OpCell* cell_ = nullptr;
    uint32_t parity_ = 0;
    Status status_;
  };
  // A validated checkpoint. `runs` points into the mapping: valid while the checkpoint cannot be
  // retired (the caller is inside an OpGuard or is the compacting thread).
  struct Checkpoint {
    pmem::CheckpointHeader header;
    const pmem::ExtRun* runs = nullptr;  // in the mapping, or in `copy`
    uint64_t mapped = 0;                 // blocks the runs map
    BlockRun blocks;
    HugeBuffer copy;  // a large checkpoint's bytes, read through the kernel
  };
  Result<Checkpoint> ReadCheckpoint(LogicalBlock block);
  // The log position of the checkpoint at `block`, unvalidated (0 if it is out of range).
  uint64_t CheckpointPositionAt(LogicalBlock block);
  // Adopts the newest checkpoint (and jumps the table to it when behind). REQUIRES: mu_ held.
  Status RefreshCheckpointLocked();
  // Refresh, then RefreshCheckpointLocked; returns the log tail Refresh reached. REQUIRES: inside
  // an OpGuard, mu_ not held.
  Result<LogPos> RefreshWithCheckpoint();
  Result<CompactStats> CompactLocked(GcMode mode);
  // Writes a checkpoint of the log up to `position` and publishes it; appends what it retires
  // (older log blocks, the previous checkpoint) to *retired. REQUIRES: inside an OpGuard.
  Status WriteCheckpoint(LogPos position, std::vector<uint32_t>* retired, CompactStats* stats);
  // GC's grace period, then frees the retired blocks, and sweeps fully when `mode` or the shared
  // state asks for it.
  Status RetireAndSweep(GcMode mode, LogPos position, const std::vector<uint32_t>& retired,
                        CompactStats* stats);
  // After fork: makes shared_ the object published under shared_name_ (see AfterForkInChild).
  void AdoptPublishedSharedState();
  bool WaitForOldOperations(uint32_t parity);
  void MaybeScheduleCompaction(LogPos tail);

  // --- process slots (file_core_slots.cc) ---
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  // Takes a free slot; *was_dirty tells that its previous process died (the caller sweeps).
  Status AcquireSlot(bool* was_dirty);
  void ReleaseSlot();
  // Gives every block dead processes (slots in dead_slots, whose locks we hold) left marked to
  // the log, for GC's full sweep; finishes their half-done claims and frees.
  Status HandDeadLeftoversToLog(const std::vector<uint32_t>& dead_slots);
  // GC's full sweep: frees log-owned blocks the log no longer references; returns how many.
  // REQUIRES: inside an OpGuard, right after GC's grace period.
  Result<uint64_t> SweepUnreferenced();
  // Frees those of `candidates` that are log-owned and the log does not reference (claim, then a
  // second look); returns how many. REQUIRES: as SweepUnreferenced.
  Result<uint64_t> FreeIfUnreferenced(const std::vector<uint32_t>& candidates);
  // ReferencedNow, with the log slots judged flushed: what it does not reference may be freed.
  Status ReferencedDurably(std::vector<uint64_t>* bits);
  struct ArenaReach;
  // Bitmap of the blocks the log references now; with `reach`, also where the newest arena
  // record is (BuildAllocator). REQUIRES: mu_ held.
  Status CollectReferenced(std::vector<uint64_t>* bits, ArenaReach* reach = nullptr);
  // Refresh, then CollectReferenced. REQUIRES: inside an OpGuard, mu_ not held.
  Status ReferencedNow(std::vector<uint64_t>* bits);

  // --- log & replay (file_core.cc) ---
  pmem::MetaBlock* meta() const { return reinterpret_cast<pmem::MetaBlock*>(backing_->BlockAddress(LogicalBlock(0))); }
  pmem::LogBlock* LogBlockAt(LogicalBlock b) const { return reinterpret_cast<pmem::LogBlock*>(backing_->BlockAddress(b)); }
  // The media word that links log block k into the chain: the meta block's log_head for k = 0,
  // else block k-1's trailer.next. REQUIRES: k <= chain_len_.
  uint32_t* LinkTo(uint32_t k) const {
    return k == 0 ? &meta()->header.log_head : &LogBlockAt(LogicalBlock(chain_.Get(k - 1)))->trailer.next;
  }
  // Slot of log position pos, or nullptr when its log block is not in this process's chain yet.
  uint64_t* SlotAddress(LogPos pos) const;
  // Brings the table up to the log tail; returns the tail (first free position).
  Result<LogPos> Refresh();
  // True when no commit exists at pos yet (lock-free).
  bool IsFree(LogPos pos) const;
  Status ReplayLocked();                       // REQUIRES: mu_ held
  Result<bool> FollowLinkLocked();             // REQUIRES: mu_ held
  Status Damaged(const char* cause) const;
  // Makes sure the log block holding pos exists (links a new one if needed).
  Status EnsureSlot(LogPos pos);
  // The commit point: CASes `entry` into the free slot at pos and counts a commit or a conflict.
  // False when another commit took the slot first, or a checkpoint jump overtook pos (the slot is
  // gone from this process's chain): the caller refreshes and retries at the new tail.
  bool CommitAt(LogPos pos, uint64_t entry);
  // Union of virtual blocks in [first, end) that commits in [from, to) remapped; {0,0} if none.
  struct VRange { uint32_t lo = 0, hi = 0; bool empty() const { return lo >= hi; } };
  Result<VRange> ChangedIn(LogPos from, LogPos to, uint32_t first, uint32_t end);
  // A look past the table, without the replay mutex: the first free position at or after
  // `from` when the commits in between (at most kMaxUnappliedLook) neither change the size from
  // `size` nor map any block of [first, end), so the table serves those blocks as of that
  // position; nullopt otherwise (and for anything unusual: a checkpoint jump, a log block not
  // followed yet, an entry that does not decode), when the caller refreshes instead. Reads and
  // overwrites inside the file use it: with two threads on a file, each commit would otherwise
  // have the other thread's next operation take the mutex and replay it (file_core_read.cc).
  std::optional<LogPos> TailUntouched(LogPos from, uint64_t size, uint32_t first, uint32_t end);
  static constexpr int kMaxUnappliedLook = 2;

  // --- durability-ordered freeing (file_core.cc) ---
  // Flushes every commit slot up to the tail; then frees deferred blocks whose superseding commit
  // is now durable. The tail is probed (ProbeTail), not replayed to: an fsync needs every commit
  // made so far on media, not in this process's table, and a replay takes the replay mutex and
  // writes the table, both shared with every other thread writing the file.
  // kNo (fsync): frees this thread's deferred frees (OwnPending), not when another thread of its
  // op cell is freeing them right now; a thread that deferred none frees every list not in use.
  // kYes (close, out of space, too many pending): every list, waiting for each.
  enum class FreeWait { kNo, kYes };
  Status FlushLog(FreeWait wait = FreeWait::kYes);
  // The first free log position, found by reading the slots from applied_ on without applying
  // them (a Refresh when the tail lies past the log blocks this process has followed).
  Result<LogPos> ProbeTail();
  // Flushes the slots of [durable_, tail) and raises durable_ to tail. No lock: slots of committed
  // positions never change, and flushing a line twice is harmless (callers that need the tail
  // fixed hold mu_). REQUIRES: every slot below tail holds a commit.
  void FlushCommitSlots(LogPos tail);
  // Where this thread counts commits, conflicts, recopies and read retries: its op cell, so that
  // counting moves no cache line between threads; the shared header without a slot.
  SharedCounters& Counted();
  // This thread's op cell index (0 .. kOpCellsPerSlot-1), fixed for the thread's life.
  static uint32_t ThreadOpCell();
  void FreeDurable(FreeWait wait);
  // Frees blocks this process claimed that a commit now in the table superseded, once that
  // commit is durable (the table is at least as new as the commit). REQUIRES: mu_ not held.
  void FreeOnceSupersedingIsDurable(std::span<const uint32_t> claimed);
  struct PendingFree {
    LogPos durable_after;  // free once durable_ reaches it
    uint32_t lblock;       // claimed by this process
  };
  static constexpr size_t kMaxPendingFrees = 4096;  // then a write flushes the log itself
  // Deferred frees, one list per op cell (ThreadOpCell): every write adds to one and every fsync
  // frees from one, so threads writing the same file do not pass a lock and a list between them
  // at each operation. Each thread frees its own at fsync; close, a full allocator, a long list
  // and a syncing thread that writes nothing free them all.
  struct alignas(kCacheLine) PendingShard {
    SpinThenBlockMutex mu;
    std::vector<PendingFree> list;  // guarded by mu
    // list.size(), stored under mu: a syncing thread passes empty lists without taking their lock.
    std::atomic<uint32_t> size{0};
    void NoteSize() { size.store(static_cast<uint32_t>(list.size()), std::memory_order_relaxed); }
  };
  PendingShard& OwnPending() { return pending_[ThreadOpCell()]; }
  bool AnyPending() const;  // by the lists' sizes, without their locks

  // --- space (file_core_grow.cc) ---
  // kAmortised doubles a small file and grows a big one by at least an eighth (appends); kExact
  // by what is asked (a contiguous run for a record or checkpoint). Either way to the next size
  // the growth rule allows (BackingBlocksFor).
  // `seen_blocks`: the block count the caller found no room in; when the file has grown past it
  // since, Grow returns at once and the caller tries the new space.
  enum class GrowStep { kAmortised, kExact };
  Status Grow(uint64_t min_blocks, GrowStep how, uint64_t seen_blocks);
  // After ENOSPC: gives back the space of what this process keeps for reuse (BackingCache's spares,
  // SharedStateSpares). True if it kept anything.
  static bool ReleaseSpaceKeptForReuse();
  // Grows the backing file and maps the new blocks without publishing them; returns the new block
  // count. REQUIRES: grow_mu_ held.
  Result<uint64_t> ExtendBacking(uint64_t min_blocks, GrowStep how);
  // Raises the shared block count to `want` once the shared state has room for the blocks' marks
  // (SharedState::BackBlocks: ENOSPC when its directory is full).
  Status PublishBlocks(uint64_t want);
  static uint64_t AmortisedStep(uint64_t have);
  // How close to the end of the backing file an allocation may come before the Pool's thread is
  // asked to grow it; 0 for a small file, which is never grown ahead.
  static uint64_t GrowAheadDistance(uint64_t have);
  static constexpr uint64_t kGrowAheadFromBlocks = 64;  // 256 KiB
  static constexpr uint64_t kGrowAheadBlocks = 256;  // at least this much free space ahead (2 MiB steps)
  // GrowAhead's two halves: a step added at the end when writers near it asked for one, and the
  // published blocks touched up to where they asked (grow_ahead_asks.h).
  void GrowStepAhead();
  void TouchAhead();
  Status Allocate(uint64_t nblocks, BlockRuns* runs);
  Result<BlockRun> AllocateContiguous(uint32_t nblocks);
  // Ownership transitions of allocated blocks (allocator.h): our uncommitted blocks go back to the
  // pool; committed ones are handed to the log.
  void ReleaseRuns(std::span<const BlockRun> runs);
  void AdoptRuns(std::span<const BlockRun> runs);

  // The blocks a commit in progress will supersede, claimed before its CAS so that nobody else
  // frees (or reuses) them meanwhile; freed by the committer once the commit is in the log.
  class SupersedeClaims {
   public:
    explicit SupersedeClaims(FileCore* core) : core_(core) {}
    ~SupersedeClaims() { Abandon(); }
    SupersedeClaims(const SupersedeClaims&) = delete;
    SupersedeClaims& operator=(const SupersedeClaims&) = delete;
    // After a Refresh: frees claimed blocks another commit superseded meanwhile, gives back those
    // outside [first, end), and claims the blocks mapped there now. A block somebody else has
    // claimed is theirs to free.
    void Update(uint32_t first, uint32_t end);
    // The commit at `pos` is in the log: its claimed blocks are freed once it is durable (a power
    // failure could otherwise bring back a log that maps them after they were reused).
    void Committed(LogPos pos);
    // No commit: frees what others superseded, gives the rest back to the log.
    void Abandon();
    // True when this holds the claim on lblock l at vblock v.
    bool Holds(uint32_t v, uint32_t l) const {
      return std::find(held_.begin(), held_.end(), std::make_pair(v, l)) != held_.end();
    }

   private:
    FileCore* core_;
    SmallVector<std::pair<uint32_t, uint32_t>, 8> held_;  // (vblock, lblock), ascending vblock
  };
  // Where an extended record goes: inside the shared arena block, or in `dedicated` blocks of its
  // own (records larger than a block), which the writer adopts on commit or releases.
  struct RecordPlace { LogicalBlock block; uint32_t offset; uint32_t capacity; uint32_t dedicated; };
  void SettleRecord(const RecordPlace& place, bool committed);
  Result<RecordPlace> ReserveRecord(uint32_t bytes);
  // The record-arena hand-over (file_core_arena.cc). TakeArenaTail makes the handed-over room
  // this process's arena when `bytes` fit in it; CloseArena settles the last arena at close and
  // hands its room over. REQUIRE: arena_mu_ held.
  bool TakeArenaTail(uint32_t bytes);
  void CloseArena();
  // What the allocator's build learns from the log for the hand-over: the block of the newest
  // record that shares an arena, and how far every referenced record reaches into its block.
  struct ArenaReach {
    uint32_t newest = 0;
    std::vector<std::pair<uint32_t, uint32_t>> ends;  // (block, end offset)
    void Note(uint32_t block, uint32_t end);
    uint64_t Token(uint64_t gc_seq) const;  // an ArenaTail token, or 0
  };
  // A compaction brackets its run with these (SharedHeader::gc_seq).
  void BeginCompactionSeq();
  void EndCompactionSeq();
  // Writes an extended record and flushes it (unfenced); returns its commit entry.
  uint64_t WriteRecord(const RecordPlace& place, pmem::ExtKind kind, uint64_t new_size,
                       std::span<const pmem::ExtRun> runs);
  // Writes bytes [from, to) of virtual block v's current content into the new block dst (zeros for
  // a hole, and past `size`, the file's size as of the same table state), flushed, unfenced.
  void FillFromCurrent(uint8_t* dst, uint32_t v, uint32_t from, uint32_t to, uint64_t size);
  // A new block holding the current content of the block that contains byte `edge`, zeroed from
  // `edge` on: what a truncate commits for its last partial block, and what a write that starts
  // past the end commits for the old last block (the tail rule). Kept across OCC attempts.
  struct EdgeCopy {
    BlockRun block;        // allocated, or count 0
    uint64_t edge = 0;     // the offset it is zeroed from (its virtual block is edge / 4096)
    LogPos filled_at = 0;  // its content is current as of this log position
    uint32_t vblock() const { return static_cast<uint32_t>(edge / kBlockSize); }
  };
  // Makes `copy` current for `edge` at log position pos: allocates its block once, and refills it
  // when the edge moved or a commit since the last fill changed that virtual block.
  Status FillEdgeCopy(EdgeCopy& copy, LogPos pos, uint64_t edge);
  // Extended-record runs for `runs` laid out from virtual block `first` on.
  static ExtRuns ToExtRuns(uint32_t first, std::span<const BlockRun> runs);

  // --- write path (file_core_write.cc, file_core_space.cc) ---
  friend struct WriteTx;  // one write's state across attempts; holds an EdgeCopy
  // Sets the size (grow_only: only if that grows it, as of the commit point).
  Status Resize(uint64_t new_size, bool grow_only);
  Status UnmapBlocks(uint32_t first, uint32_t end);
  Status ZeroRange(uint64_t offset, uint64_t len);
  Status PrepareWrite(WriteTx& tx, const uint8_t* data, size_t n, uint64_t offset);
  Status FillPartials(WriteTx& tx, LogPos pos, uint64_t size);
  // An append (or a write at exactly the end) that starts inside the last block: writes that
  // block's unused tail in place under an exclusive claim on it, new blocks only past it, and
  // commits one entry that remaps the block to itself and sets the size (file_core_tail.cc).
  // Returns false, having changed nothing visible, when it cannot (the end is block-aligned or a
  // hole, another writer holds the block, or a commit changed the end meanwhile): the caller
  // takes the copy-on-write path. REQUIRES: inside an OpGuard.
  Result<bool> AppendInPlace(const uint8_t* data, size_t n, bool append, uint64_t offset,
                             uint64_t* written_at);

  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::unique_ptr<Backing> backing_;
  std::atomic<int> path_fd_{-1};  // PathDescriptor's
  static inline std::atomic<uint64_t> live_count_{0};
  std::unique_ptr<SharedState> shared_;
  std::string shared_name_;
  std::unique_ptr<BlockAllocator> alloc_;

  // Members written on every operation of some thread (the replay mutex, applied_, durable_, the
  // deferred frees) each get a cache line of their own: sharing one with the read-mostly members
  // every operation reads would move that line between cores at each write (~230 ns a transfer
  // on this VM), which is what made two writer threads slower than one.
  alignas(kCacheLine) SpinThenBlockMutex mu_;  // replay and chain growth
  alignas(kCacheLine) BlockTable table_;       // the file as of applied_
  AtomicU32Array chain_;                // k -> lblock of the k-th log block
  // Replay position. seq_cst: readers order it against table_.size() (file_core_read.cc).
  alignas(kCacheLine) std::atomic<uint64_t> applied_{0};
  alignas(kCacheLine) std::atomic<uint64_t> durable_{0};  // log positions below it are flushed
  alignas(kCacheLine) std::atomic<uint32_t> chain_len_{0};  // release after chain_.Set; acquire in SlotAddress
  // The checkpoint this process knows of: positions before ckpt_pos_ and chain blocks before
  // chain_first_ are never read again.
  std::atomic<uint64_t> ckpt_pos_{0};
  std::atomic<uint64_t> ckpt_block_{0};
  std::atomic<uint32_t> ckpt_span_{0};  // blocks the checkpoint at ckpt_block_ fills
  std::atomic<uint32_t> chain_first_{0};
 public:
  std::atomic<bool> compaction_scheduled_{false};  // the Pool's thread has it queued
  GrowAheadAsks grow_ahead_;  // its writers' asks of the Pool's thread (grow_ahead_asks.h)
  std::atomic<bool> announce_owed_{false};  // a change waits for the Pool's delayed announcement
 private:
  static constexpr int64_t kAnnounceIntervalNs = 10'000'000;
  std::atomic<int64_t> announced_ns_{INT64_MIN / 2};  // CLOCK_MONOTONIC_COARSE of the last one
  void AnnounceChange();

  uint32_t slot_ = kNoSlot;
  // Set while a slotless catch-up tries again on damage that a concurrent grow or compaction may
  // explain (file_core_readonly.cc): Damaged does not log then.
  std::atomic<bool> quiet_damage_{false};
  std::array<PendingShard, kOpCellsPerSlot> pending_;
  alignas(kCacheLine) std::mutex grow_mu_;
  std::atomic<bool> compacting_{false};  // one compaction at a time in this process
  // This process committed to the log or wrote a checkpoint: its close has commits to flush and
  // frees to settle. A process that only read has neither.
  std::atomic<bool> changed_here_{false};
  void NoteChangedHere() {
    if (!changed_here_.load(std::memory_order_relaxed)) changed_here_.store(true, std::memory_order_relaxed);
  }
  std::mutex arena_mu_;
  std::mutex build_mu_;  // EnsureAllocatorReady
  LogicalBlock arena_block_;            // guarded by arena_mu_: block for small extended records
  uint32_t arena_used_ = kBlockSize;    // guarded by arena_mu_
  bool arena_has_commit_ = false;       // guarded by arena_mu_: the log references a record in arena_block_
};

}  // namespace tern
