// FileCore: where extended records go. Records up to a block share an arena block; the rest get
// blocks of their own.
//
// An arena block stays this process's until it is full or the file is closed, then the log owns
// it (its records are referenced until a compaction checkpoints past them). Each process would
// thus take a block of its own, and a process that appends one line and exits (`echo x >> log`)
// would leave 4 KiB per line. So the room left in the last arena is handed over through the
// shared state (SharedHeader::arena_tail): the closer publishes it, and the allocator's build,
// which finds no process alive, publishes the room after the newest record the log references.
// The next writer that needs an arena takes it.
//
// Why taking it is safe: bytes past the token's `used` are referenced by no record (the closer
// wrote nothing there; the builder saw every live record), and only a compaction frees a
// log-owned arena block. The taker claims the block (nobody frees a claimed block), then checks
// that no compaction began since the token was made (gc_seq): a block freed and reused before the
// claim is given back untouched.
#include <algorithm>
#include <utility>
#include <vector>

#include "lib/file_core.h"

namespace tern {
namespace {

// Room worth handing over: a record of one run is 40 bytes.
constexpr uint32_t kMinHandedRoom = 64;

}  // namespace

Result<FileCore::RecordPlace> FileCore::ReserveRecord(uint32_t bytes) {
  bytes = (bytes + 7) & ~7u;
  if (bytes > kBlockSize) {
    TERN_ASSIGN_OR_RETURN(BlockRun run, AllocateContiguous(static_cast<uint32_t>(BlocksFor(bytes))));
    return RecordPlace{run.start, 0, run.count * kBlockSize, run.count};
  }
  std::lock_guard lock(arena_mu_);
  if (arena_used_ + bytes > kBlockSize) {
    // The full block goes to the log, as the close hands over the last one: left claimed by this
    // process, it would never be freed once the entries its records serve are compacted away.
    LogicalBlock full = arena_block_;
    if (!TakeArenaTail(bytes)) {
      TERN_ASSIGN_OR_RETURN(BlockRun run, AllocateContiguous(1));
      arena_block_ = run.start;
      arena_used_ = 0;
      arena_has_commit_ = false;
    }
    if (full.value() != 0) alloc_->Adopt({full, 1});
  }
  RecordPlace place{arena_block_, arena_used_, bytes, 0};
  arena_used_ += bytes;
  return place;
}

void FileCore::SettleRecord(const RecordPlace& place, bool committed) {
  // Arena blocks stay ours until close (other records may still go into them); the close asks
  // whether the log references the last one.
  if (place.dedicated == 0) {
    if (!committed) return;
    std::lock_guard lock(arena_mu_);
    if (place.block == arena_block_) arena_has_commit_ = true;  // (an older arena went to the log)
    return;
  }
  BlockRun run{place.block, place.dedicated};
  if (committed) {
    alloc_->Adopt(run);
  } else {
    alloc_->Release(run, slot_);
  }
}

bool FileCore::TakeArenaTail(uint32_t bytes) {
  // REQUIRES: arena_mu_ held.
  SharedHeader* h = shared_->header();
  uint64_t token = h->arena_tail.load();
  if (token == 0) return false;
  ArenaTail tail = DecodeArenaTail(token);
  if (tail.used + bytes > kBlockSize) return false;  // left for a smaller record
  if (!h->arena_tail.compare_exchange_strong(token, 0)) return false;
  // The token lives outside the file, but a damaged object must not make us write elsewhere.
  if (tail.block == 0 || tail.block >= alloc_->num_blocks()) return false;
  LogicalBlock block(tail.block);
  if (!alloc_->Claim(block, kLogOwner, slot_)) return false;  // freed meanwhile, or being freed
  if (!SameArenaSeq(tail.gc_seq, h->gc_seq.load())) {
    alloc_->Unclaim(block);  // a compaction began: the block may have been freed and reused
    return false;
  }
  // Our claim keeps every compaction from freeing it; the close (or the next switch) hands it
  // back to the log, which references the records it already holds.
  arena_block_ = block;
  arena_used_ = tail.used;
  arena_has_commit_ = true;
  return true;
}

void FileCore::CloseArena() {
  // REQUIRES: arena_mu_ held; no operation of this process in progress.
  if (arena_block_.value() == 0) return;
  if (!arena_has_commit_) {
    // Nothing references it (a write whose retry needed no record): free at once, not left for
    // GC's next full sweep.
    alloc_->Release({arena_block_, 1}, slot_);
    return;
  }
  SharedHeader* h = shared_->header();
  uint64_t seq = h->gc_seq.load();  // before the log owns the block: a compaction may free it after
  alloc_->Adopt({arena_block_, 1});
  if (seq % 2 != 0 || arena_used_ + kMinHandedRoom > kBlockSize) return;
  uint64_t token = EncodeArenaTail({arena_block_.value(), arena_used_, seq});
  uint64_t empty = 0;
  if (!h->arena_tail.compare_exchange_strong(empty, token)) return;  // another's room is waiting
  // A compaction that began meanwhile cleared the tokens before ours: take ours back. (A taker
  // that got it first sees the new gc_seq too.)
  if (h->gc_seq.load() != seq) h->arena_tail.compare_exchange_strong(token, 0);
}

void FileCore::ArenaReach::Note(uint32_t block, uint32_t end) {
  newest = block;
  ends.emplace_back(block, end);
}

uint64_t FileCore::ArenaReach::Token(uint64_t gc_seq) const {
  if (newest == 0 || gc_seq % 2 != 0) return 0;
  uint32_t used = 0;
  for (const auto& [block, end] : ends) {
    if (block == newest) used = std::max(used, end);
  }
  if (used + kMinHandedRoom > kBlockSize) return 0;
  return EncodeArenaTail({newest, used, gc_seq});
}

void FileCore::BeginCompactionSeq() {
  // REQUIRES: the gc_owner claim. Odd from here until EndCompactionSeq (a compactor that died
  // left it odd: it still changes). Tokens made before can no longer be taken.
  SharedHeader* h = shared_->header();
  h->gc_seq.fetch_add(h->gc_seq.load() % 2 == 0 ? 1 : 2);
  h->arena_tail.store(0);
}

void FileCore::EndCompactionSeq() { shared_->header()->gc_seq.fetch_add(1); }

}  // namespace tern
