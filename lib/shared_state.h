// The per-file shared-memory object: state that every process with the file open shares and that
// can always be rebuilt from the file itself — the free-block bitmap, the backing file's block
// count, live counters. It lives in DRAM (a file in TERN_SHM_DIR, default /dev/shm), never on PM, so
// allocation needs no flush. It exists while somebody has the file open: the first opener (who
// holds the open lock exclusively, see open_lock.h) builds it from the log; the last closer removes
// its name (and may keep the object for its next first open: shared_state_spares.h). A large file's
// object outlives the last close, "at rest" (RestStamp, file_core_rest.cc), for the next first
// opener to adopt when the file has not changed since.
//
// Every process that maps a published object holds the object's own open lock (open_lock.h, on
// the object's descriptor) shared, so a process killed as the file's last opener leaves an object
// whose lock is free: SweepOrphans removes those. A first opener that publishes a fresh object
// replaces a stale one by rename, and Attach refuses an object a sweep unlinked under it.
//
// Thread-safety: all fields are atomics shared across processes.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "lib/layout_constants.h"
#include "lib/status.h"

namespace tern {

inline constexpr uint64_t kSharedMagic = 0x5348535445524E31ull;
inline constexpr uint32_t kSharedVersion = 9;  // 9: gc_seq and arena_tail

// What a large file's log looked like when its last process closed it and left the object
// published ("at rest", file_core_rest.cc). The next first opener adopts the object instead of
// rebuilding it only if the file still looks exactly so: same checkpoint, the entry before `tail`
// unchanged, the slot at `tail` still empty, the same backing size. Plain fields: only a process
// holding the file's open lock exclusively reads or writes them.
struct RestStamp {
  uint64_t state;            // kAtRest, or 0
  uint64_t ckpt_block;       // the meta block's checkpoint pointer (0 = none)
  uint64_t ckpt_position;    // and that checkpoint's position and generation
  uint64_t ckpt_generation;
  uint64_t tail;             // first free log position
  uint64_t last_entry;       // the commit word at tail - 1 (0 when tail is the checkpoint's position)
  uint32_t tail_block;       // log block holding slot `tail`: 0 = the meta block, kUnlinked = none yet
  uint32_t last_block;       // log block holding slot tail - 1 (0 = the meta block)
  uint64_t backing_bytes;    // the backing file's size
};
inline constexpr uint64_t kAtRest = 0x5453455254534552ull;  // "RESTREST"
inline constexpr uint32_t kUnlinked = UINT32_MAX;
static_assert(sizeof(RestStamp) == 64);

struct SharedCounters {
  std::atomic<uint64_t> commits;
  std::atomic<uint64_t> conflicts;   // failed commit CAS (OCC retries)
  std::atomic<uint64_t> recopies;    // partial blocks recopied after a conflict
  std::atomic<uint64_t> read_retries;
};

// SharedHeader::alloc_state: the bitmap and owner map are built from the log by the first process
// that needs them (a writer, GC, a pin; FileCore::EnsureAllocatorReady), not at the first open, so
// opening a file to read it never pays for them. While a builder holds the backing file's build
// lock it is kAllocBuilding; seeing that with the lock free means a builder died half-way.
inline constexpr uint32_t kAllocUnbuilt = 0;
inline constexpr uint32_t kAllocBuilding = 1;
inline constexpr uint32_t kAllocReady = 2;

// Grouped by who writes what how often: a line that one core writes is taken away from every other
// core that reads it (~230 ns a transfer on this VM), so what every operation reads (floor, epoch,
// num_blocks) shares no line with what some operation writes (the allocation hint).
struct SharedHeader {
  uint64_t magic;
  uint32_t version;
  std::atomic<uint32_t> alloc_state;  // kAllocUnbuilt, kAllocBuilding or kAllocReady
  std::atomic<uint64_t> num_blocks;  // blocks in the backing file; grows only
  std::atomic<uint64_t> slot_hint;   // where the next slot search starts
  std::atomic<uint64_t> reclaimed_blocks;  // blocks returned from dead processes
  std::atomic<uint64_t> reclaimed_slots;
  std::atomic<uint32_t> slots_high;  // slots ever used: every slot index is below it
  // Log compaction (file_core_gc.cc). `floor`: no operation may read log positions below it (a
  // process behind it reloads from the checkpoint). `epoch`: its parity says which op counters new
  // operations use; GC flips it and waits for the old parity to drain before freeing old log blocks.
  std::atomic<uint32_t> gc_owner;    // OwnerOf(slot) of the process compacting, 0 = none
  alignas(kCacheLine) std::atomic<uint64_t> floor;
  std::atomic<uint64_t> epoch;
  std::atomic<uint64_t> gc_runs;
  std::atomic<uint64_t> gc_freed_blocks;
  // Set by a sweep after dead processes: what they left that the log owns but no longer
  // references waits for GC's full sweep (only GC's grace period makes freeing it safe).
  std::atomic<uint32_t> sweep_wanted;
  // Record-arena hand-over (file_core_arena.cc). `gc_seq` is odd while a compaction runs (only
  // a compaction frees a log-owned arena block) and changes with each one. `arena_tail` is an
  // ArenaTail token: the room left in a log-owned arena block, for the next writer that needs
  // an arena, so that processes appending a line each do not take a 4 KiB block each.
  std::atomic<uint64_t> gc_seq;
  std::atomic<uint64_t> arena_tail;
  alignas(kCacheLine) std::atomic<uint64_t> alloc_hint;  // bitmap word where the next allocation scan starts
  // Counts of processes without a slot (read-only opens); the rest count in their op cells.
  alignas(kCacheLine) SharedCounters counters;
  alignas(kCacheLine) RestStamp rest;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(sizeof(SharedHeader) <= kBlockSize);

// SharedHeader::arena_tail: bytes [used, 4096) of log-owned block `block` are free for records
// (nothing references them), as long as gc_seq still equals `gc_seq` (only its low 27 bits are
// kept; a compaction clears the token). 0 = no token.
struct ArenaTail {
  uint32_t block;   // 1 .. kMaxBlocks-1
  uint32_t used;    // multiple of 8, below kBlockSize
  uint64_t gc_seq;  // even
};
inline constexpr uint64_t kArenaTailSeqBits = 27;
inline constexpr uint64_t EncodeArenaTail(ArenaTail t) {
  return uint64_t{t.block} | uint64_t{t.used / 8} << 28 | (t.gc_seq & ((uint64_t{1} << kArenaTailSeqBits) - 1)) << 37;
}
inline constexpr ArenaTail DecodeArenaTail(uint64_t token) {
  return {static_cast<uint32_t>(token & ((1u << 28) - 1)), static_cast<uint32_t>((token >> 28) & 0x1FF) * 8,
          token >> 37};
}
inline constexpr bool SameArenaSeq(uint64_t token_seq, uint64_t gc_seq) {
  return token_seq == (gc_seq & ((uint64_t{1} << kArenaTailSeqBits) - 1));
}
static_assert(kMaxBlocks <= (1u << 28) && kBlockSize / 8 <= 0x200);

// One per process that has the file open (per FileCore). The process holds an OFD lock on the
// slot's lock byte (open_lock.h) while it is alive, so a slot whose state is kUsed but whose lock
// is free belongs to a dead process.
struct ProcessSlot {
  enum : uint32_t { kFree = 0, kUsed = 1 };
  std::atomic<uint32_t> state;
  std::atomic<uint32_t> pid;       // for `tern stat`
  uint8_t reserved[56];
};
static_assert(sizeof(ProcessSlot) == 64);

inline constexpr uint32_t kMaxSlots = 4096;  // processes with one file open at once

// Counters of operations in progress, by epoch parity. Each process has kOpCellsPerSlot of them;
// its threads spread over them, so threads rarely share a cache line.
struct OpCell {
  std::atomic<uint32_t> ops[2];
  // The file's counters as this cell's threads counted them, on the line they write anyway (the
  // file's total sums every cell: FileCore::Counters). Never reset, so totals only grow.
  SharedCounters counters;
  uint8_t reserved[24];
};
static_assert(sizeof(OpCell) == 64 && offsetof(OpCell, counters) == 8);
inline constexpr uint32_t kOpCellsPerSlot = 16;
// Owner map: who is responsible for an allocated block. Every state a process can leave behind
// names it, so a dead process's half-done step is always found and finished by a sweep.
//   kFreeBlock          free (its bitmap bit is clear)
//   OwnerOf(slot)       the process in `slot` claimed it: allocated, not committed (yet)
//   FreeingBy(slot)     the process in `slot` is freeing it
//   kLogOwner           the log references it (or did): whoever supersedes it frees it
// Allocation claims the owner (CAS kFreeBlock -> OwnerOf(me)) before setting the bit; freeing
// claims it (CAS -> FreeingBy(me)) before clearing the bit and storing kFreeBlock. So exactly one
// party frees a block, even when a writer and a sweep race for it.
using BlockOwner = uint16_t;
inline constexpr BlockOwner kFreeBlock = 0;
inline constexpr BlockOwner kLogOwner = UINT16_MAX;
inline constexpr BlockOwner OwnerOf(uint32_t slot) { return static_cast<BlockOwner>(slot + 1); }
inline constexpr BlockOwner FreeingBy(uint32_t slot) { return static_cast<BlockOwner>(kMaxSlots + 1 + slot); }
inline constexpr bool IsSlotOwner(BlockOwner o) { return o >= 1 && o <= kMaxSlots; }
inline constexpr bool IsFreeingOwner(BlockOwner o) { return o > kMaxSlots && o <= 2 * kMaxSlots; }
inline constexpr uint32_t SlotOfOwner(BlockOwner o) { return IsSlotOwner(o) ? o - 1u : o - kMaxSlots - 1u; }
static_assert(2 * kMaxSlots < kLogOwner);

class SharedState {
 public:
  static constexpr uint64_t kBitmapWords = kMaxBlocks / 64;
  // Layout: header block | slots | bitmap | owner map. The object is sparse: only what a file uses
  // is ever touched.
  static constexpr uint64_t kSlotsOffset = kBlockSize;
  static constexpr uint64_t kCellsOffset = kSlotsOffset + uint64_t{kMaxSlots} * sizeof(ProcessSlot);
  static constexpr uint64_t kBitmapOffset = kCellsOffset + uint64_t{kMaxSlots} * kOpCellsPerSlot * sizeof(OpCell);
  static constexpr uint64_t kOwnersOffset = kBitmapOffset + kBitmapWords * sizeof(uint64_t);
  static constexpr uint64_t kObjectSize = kOwnersOffset + uint64_t{kMaxBlocks} * sizeof(BlockOwner);

  // The object's path for a data file (dev, ino, format nonce).
  static std::string NameFor(const struct stat& st, uint64_t nonce);

  // Builds a fresh, empty object (num_blocks set, bitmap all free) that is not yet visible to
  // others. Owner and mode follow `like` (the data file's stat) minus execute bits.
  static Result<std::unique_ptr<SharedState>> CreateUnpublished(const struct stat& like,
                                                                uint64_t num_blocks);
  // An object in this process's own memory, never published: a process without write access to
  // the file, or one reading it slotless by choice (lib/pool.h), reads it with one
  // (file_core_readonly.cc). Only its header page is used; a few go back to a pool when
  // destroyed, for the next ones.
  static Result<std::unique_ptr<SharedState>> CreatePrivate(uint64_t num_blocks);
  // Makes an object built by CreateUnpublished visible at `path`, replacing any stale one.
  Status Publish(const std::string& path);
  // Maps an existing object and takes its lock shared. ENOENT if there is none (or a sweep removed
  // it meanwhile).
  static Result<std::unique_ptr<SharedState>> Attach(const std::string& path);
  static void Remove(const std::string& path);
  // How many times this process failed to make, grow or open an object for want of room or right:
  // its directory full, missing or not writable, or an object it may not open (made when its file
  // had another owner or mode). An open for reading that fails while this moves reads without one.
  static uint64_t Failures();

  // Removes, in `dir`, the objects no process maps (their lock is free): those of files whose last
  // opener was killed, objects at rest for longer than kRestSeconds, and names a killed publisher
  // or sweeper left half-way. Returns how many.
  // Safe against openers and publishers running meanwhile (shared_state_sweep.cc says how).
  static Result<uint64_t> SweepOrphans(const std::string& dir);
  // SweepOrphans, unless one of this user's processes swept `dir` less than `interval_s` seconds ago
  // (a marker file's time says so). Costs one stat when not due. True when it was due (the caller
  // may sweep its own kinds of litter in `dir` then too).
  static bool SweepOrphansIfDue(const std::string& dir, int interval_s = 60);
  // Name prefixes in a shared-state directory: published objects, and objects a sweep set aside.
  static constexpr const char* kPublishedPrefix = ".tern.";
  static constexpr const char* kAsidePrefix = ".tern-swept-state.";
  // SweepOrphansIfDue's marker (one empty file per user, kept).
  static constexpr const char* kSweepMarkerPrefix = ".tern-state-sweep.";
  // How long a sweep leaves an object at rest (RestStamp) alone after its file's last close.
  static constexpr int kRestSeconds = 900;
  // True if both map the same object (the same inode of /dev/shm).
  bool SameObjectAs(const SharedState& other) const;

  // Reuse of an object a closed file left (shared_state_spares.h). A spare is named `path` (its
  // owner unlinks it at destruction unless it was published or disowned). ResetFor zeroes what
  // the last file used and makes it what CreateUnpublished makes for a file like `like`.
  void SetSparePath(std::string path) { spare_path_ = std::move(path); }
  const std::string& spare_path() const { return spare_path_; }
  void Disown() { spare_path_.clear(); }
  Status ResetFor(const struct stat& like, uint64_t num_blocks);
  // Blocks whose bitmap and owner-map pages are mapped here already: the last file's, after
  // ResetFor; 0 for a created object.
  uint64_t resident_blocks() const { return resident_blocks_; }

  // The object is sparse, and a page of it first touched when its directory (a tmpfs) is full
  // would be a SIGBUS, so every page is allocated before anyone may touch it: the header when the
  // object is made, the bitmap and owner-map pages of blocks [have, want) before num_blocks grows
  // to `want` (BackBlocks), the pages of slots [from, end) and their op cells before slots_high
  // passes `from` (BackSlots). Pages holding what lies below `have` or `from` are allocated
  // already. ENOSPC when the directory is full.
  Status BackBlocks(uint64_t have, uint64_t want);
  Status BackSlots(uint32_t from, uint32_t end);
  // Every slot ever taken is below this: scans of the slots stop here (a read of a page never
  // backed would allocate it, or fault).
  uint32_t slots_bound() const { return std::min(header()->slots_high.load(), kMaxSlots); }
  // True when this process forked while the object was mapped here: a child may use it too.
  bool MappedAcrossFork() const;
  // Pool's fork handlers call it in the parent and the child.
  static void NoteFork();
  // The fork just made left the child nothing that uses this object (Pool leaves a lingering
  // file's engine to the parent): MappedAcrossFork stays as it was. Parent only, before any use.
  void NoteChildLeavesItAlone() { forks_at_map_ = ForkCount(); }
  static uint64_t ForkCount();
  int fd() const { return fd_; }

  SharedState(int fd, void* base);
  ~SharedState();
  SharedState(const SharedState&) = delete;
  SharedState& operator=(const SharedState&) = delete;

  SharedHeader* header() const { return static_cast<SharedHeader*>(base_); }
  std::atomic<uint64_t>* bitmap() const {
    return reinterpret_cast<std::atomic<uint64_t>*>(static_cast<char*>(base_) + kBitmapOffset);
  }
  OpCell* cells(uint32_t slot) const {
    return reinterpret_cast<OpCell*>(static_cast<char*>(base_) + kCellsOffset) + uint64_t{slot} * kOpCellsPerSlot;
  }
  ProcessSlot* slots() const {
    return reinterpret_cast<ProcessSlot*>(static_cast<char*>(base_) + kSlotsOffset);
  }
  std::atomic<BlockOwner>* owners() const {
    return reinterpret_cast<std::atomic<BlockOwner>*>(static_cast<char*>(base_) + kOwnersOffset);
  }

 private:
  // Gives the object the owner and mode of the data file `like` (skipped when it has them).
  Status TakeOwnerAndMode(const struct stat& like);
  // The header of a fresh object for a file of `num_blocks` blocks (the rest of it zero).
  void InitHeader(uint64_t num_blocks);
  // Allocates the pages that hold bytes [from, to) of the object, but the one holding byte from-1.
  Status BackRange(uint64_t from, uint64_t to);

  int fd_;
  void* base_;
  uid_t uid_ = static_cast<uid_t>(-1);  // what TakeOwnerAndMode last set
  gid_t gid_ = static_cast<gid_t>(-1);
  mode_t mode_ = 0;
  uint64_t forks_at_map_;    // NoteFork's count when mapped
  uint64_t resident_blocks_ = 0;
  uint32_t resident_slots_ = 0;  // slots (with their op cells) whose pages are backed: BackSlots skips them
  std::string spare_path_;   // non-empty while this is a kept spare under that name
};

// TERN_SHM_DIR or /dev/shm.
const char* SharedStateDir();

}  // namespace tern
