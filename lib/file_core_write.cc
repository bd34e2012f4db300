// FileCore: the copy-on-write write path and truncate. Both follow one OCC shape: prepare new
// blocks privately, persist them, then CAS one commit entry into the log tail. A failed CAS means
// another commit took the tail first; the attempt is redone at the new tail, recopying only the
// partial blocks whose source a newer commit changed. No locks.
#include <algorithm>
#include <optional>

#include "lib/file_core.h"
#include "lib/test_hooks.h"
#include "pmem/persist.h"

namespace tern {

FileCore::ExtRuns FileCore::ToExtRuns(uint32_t first, std::span<const BlockRun> runs) {
  ExtRuns out;
  uint32_t v = first;
  for (const BlockRun& r : runs) {
    out.push_back({v, r.start.value(), r.count, 0});
    v += r.count;
  }
  return out;
}

// The private state of one write across its OCC attempts.
struct WriteTx {
  bool prepared = false;
  uint64_t offset = 0;
  uint32_t first = 0, end = 0;      // virtual blocks [first, end)
  FileCore::BlockRuns runs;         // new blocks for [first, end), in order
  uint8_t* head = nullptr;          // new block of `first` when the write starts inside it
  uint8_t* tail = nullptr;          // new block of `end - 1` when the write ends inside it
  uint32_t head_from = 0;           // bytes [0, head_from) of the head block come from the old one
  uint32_t tail_to = kBlockSize;    // bytes [tail_to, 4096) of the tail block come from the old one
  LogPos filled_at = 0;             // partial blocks hold the old bytes as of this position
  bool filled = false;              // FillPartials has run since the last PrepareWrite
  bool has_record = false;          // an extended record place is reserved
  // The write starts past the end, beyond the last block: that block's copy zeroed past the old
  // end (the tail rule), which this attempt's commit maps when gap_used.
  FileCore::EdgeCopy gap;
  bool gap_used = false;
};

void FileCore::FillFromCurrent(uint8_t* dst, uint32_t v, uint32_t from, uint32_t to, uint64_t size) {
  if (from >= to) return;
  uint64_t base = uint64_t{v} * kBlockSize;
  // Past the end the block's bytes are undefined (the tail rule): copy only what lies before it.
  uint32_t live = size <= base ? 0 : static_cast<uint32_t>(std::min<uint64_t>(size - base, kBlockSize));
  uint32_t copy_to = std::clamp(live, from, to);
  uint32_t l = table_.Get(v);
  const uint8_t* src = l == 0 ? nullptr : Resolve(LogicalBlock(l), 1);
  if (src == nullptr) copy_to = from;
  if (copy_to > from) pmem::CopyNoDrain(dst + from, src + from, copy_to - from);
  if (to > copy_to) pmem::ZeroNoDrain(dst + copy_to, to - copy_to);
}

Status FileCore::PrepareWrite(WriteTx& tx, const uint8_t* data, size_t n, uint64_t offset) {
  ReleaseRuns(tx.runs);
  tx.runs.clear();
  tx.prepared = false;
  tx.offset = offset;
  tx.first = static_cast<uint32_t>(offset / kBlockSize);
  tx.end = static_cast<uint32_t>(BlocksFor(offset + n));
  TERN_TRY(Allocate(tx.end - tx.first, &tx.runs));
  uint32_t v = tx.first;
  uint64_t write_end = offset + n;
  for (const BlockRun& r : tx.runs) {
    uint64_t lo = std::max(offset, uint64_t{v} * kBlockSize);
    uint64_t hi = std::min(write_end, uint64_t{v + r.count} * kBlockSize);
    auto* dst = const_cast<uint8_t*>(Resolve(r.start, r.count));
    pmem::CopyNoDrain(dst + (lo - uint64_t{v} * kBlockSize), data + (lo - offset), hi - lo);
    if (v == tx.first) tx.head = dst;
    if (v + r.count == tx.end) tx.tail = dst + uint64_t{r.count - 1} * kBlockSize;
    v += r.count;
  }
  tx.filled = false;
  tx.head_from = static_cast<uint32_t>(offset - uint64_t{tx.first} * kBlockSize);
  tx.tail_to = static_cast<uint32_t>(write_end - uint64_t{tx.end - 1} * kBlockSize);
  tx.prepared = true;
  return Status::Ok();
}

Status FileCore::FillPartials(WriteTx& tx, LogPos pos, uint64_t size) {
  bool head_partial = tx.head_from > 0;
  bool tail_partial = tx.tail_to < kBlockSize;
  if (!head_partial && !tail_partial) return Status::Ok();
  // Not filled since the blocks were prepared: fill from scratch; else only what changed since.
  bool fresh = !tx.filled;
  tx.filled = true;
  bool head_stale = fresh, tail_stale = fresh;
  if (!fresh && tx.filled_at < pos) {
    TERN_ASSIGN_OR_RETURN(VRange h, ChangedIn(tx.filled_at, pos, tx.first, tx.first + 1));
    TERN_ASSIGN_OR_RETURN(VRange t, ChangedIn(tx.filled_at, pos, tx.end - 1, tx.end));
    head_stale = !h.empty();
    tail_stale = !t.empty();
    if ((head_stale && head_partial) || (tail_stale && tail_partial)) {
      Counted().recopies.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (head_partial && head_stale) FillFromCurrent(tx.head, tx.first, 0, tx.head_from, size);
  if (tail_partial && tail_stale) FillFromCurrent(tx.tail, tx.end - 1, tx.tail_to, kBlockSize, size);
  tx.filled_at = pos;
  return Status::Ok();
}

Status FileCore::FillEdgeCopy(EdgeCopy& copy, LogPos pos, uint64_t edge) {
  uint32_t v = static_cast<uint32_t>(edge / kBlockSize);
  bool stale = copy.block.count == 0 || copy.edge != edge;
  if (copy.block.count == 0) {
    TERN_ASSIGN_OR_RETURN(copy.block, AllocateContiguous(1));
  }
  if (!stale && copy.filled_at < pos) {
    TERN_ASSIGN_OR_RETURN(VRange changed, ChangedIn(copy.filled_at, pos, v, v + 1));
    stale = !changed.empty();
  }
  if (stale) {
    FillFromCurrent(const_cast<uint8_t*>(Resolve(copy.block.start, 1)), v, 0, kBlockSize, edge);
    copy.edge = edge;
  }
  copy.filled_at = pos;
  return Status::Ok();
}

Result<size_t> FileCore::Write(const void* buf, size_t n, uint64_t offset, bool append,
                               uint64_t* written_at) {
  if (!writable()) return Status::Error(EBADF, "file not open for writing");
  TERN_TRY(EnsureAllocatorReady());
  auto* data = static_cast<const uint8_t*>(buf);
  OpGuard guard(this);
  TERN_TRY(guard.status());
  // Possibly at the end of the file, inside its last block: try writing that block's tail in
  // place (AppendInPlace decides at the log tail). The size the table shows is only a hint, and
  // may lack this thread's last commit, so any unaligned write at or past it tries; an overwrite
  // inside the file pays nothing.
  if (n > 0 && (append || (offset % kBlockSize != 0 && offset >= table_.size()))) {
    TERN_ASSIGN_OR_RETURN(bool done, AppendInPlace(data, n, append, offset, written_at));
    if (done) return n;
  }
  WriteTx tx;
  RecordPlace record{};
  SupersedeClaims superseded(this);
  Status failure = Status::Ok();
  // New bytes do not depend on the log position: with the offset known, copy and persist them
  // before reading the tail, so that the window in which another writer's commit can take the
  // tail (and force a retry) holds only the partial-block fill and the claims.
  if (!append && n > 0 && offset + n <= kMaxFileSize && offset + n > offset) {
    failure = PrepareWrite(tx, data, n, offset);
    if (!failure.ok()) {
      ReleaseRuns(tx.runs);
      return failure;
    }
    if (!test_hooks::SkipDataFence()) pmem::Drain();
  }
  // OCC loop. An attempt is invalidated when another commit takes the tail slot first; the next
  // attempt refreshes, recopies partial blocks whose source changed, and tries the new tail.
  for (;;) {
    LogPos pos;
    uint64_t size;
    // An overwrite inside the file needs the table current for its own blocks only: the commits
    // past it that concern neither those nor the size are looked at, not replayed (TailUntouched),
    // so that two writers do not take the replay mutex at every write to apply each other's.
    std::optional<LogPos> tail;
    if (!append && tx.prepared) {
      LogPos from = applied_.load();
      size = table_.size();
      if (offset + n <= size) tail = TailUntouched(from, size, tx.first, tx.end);
    }
    if (tail.has_value()) {
      pos = *tail;
    } else {
      auto refreshed = Refresh();
      if (!refreshed.ok()) {
        failure = refreshed.status();
        break;
      }
      pos = *refreshed;
      size = table_.size();
    }
    uint64_t off = append ? size : offset;
    if (n == 0) {
      *written_at = off;
      return size_t{0};
    }
    if (off + n > kMaxFileSize || off + n < off) {
      failure = Status::Error(EFBIG, "write past the largest tern file");
      break;
    }
    if (!tx.prepared || tx.offset != off) {
      failure = PrepareWrite(tx, data, n, off);
      if (!failure.ok()) break;
    }
    failure = FillPartials(tx, pos, size);
    if (!failure.ok()) break;
    auto last = static_cast<uint32_t>(size / kBlockSize);
    tx.gap_used = size % kBlockSize != 0 && last < tx.first && table_.Get(last) != 0;
    if (tx.gap_used) {
      failure = FillEdgeCopy(tx.gap, pos, size);
      if (!failure.ok()) break;
    }

    uint64_t write_end = off + n;
    uint32_t count = tx.end - tx.first;
    uint64_t entry = 0;
    if (!tx.gap_used && tx.runs.size() == 1 && pmem::FitsInline(VirtualBlock(tx.first), tx.runs[0].start, count)) {
      bool aligned_end = write_end % kBlockSize == 0;
      if (aligned_end || write_end <= size) {
        entry = pmem::EncodeInline({VirtualBlock(tx.first), tx.runs[0].start, count, aligned_end});
      }
    }
    if (entry == 0) {
      ExtRuns ext = ToExtRuns(tx.first, tx.runs);
      if (tx.gap_used) ext.push_front(pmem::ExtRun{tx.gap.vblock(), tx.gap.block.start.value(), 1, 0});
      auto bytes = static_cast<uint32_t>(pmem::ExtRecordBytes(static_cast<uint32_t>(ext.size())));
      if (!tx.has_record || record.capacity < bytes) {
        auto place = ReserveRecord(bytes);
        if (!place.ok()) {
          failure = place.status();
          break;
        }
        if (tx.has_record) SettleRecord(record, false);
        record = *place;
        tx.has_record = true;
      }
      entry = WriteRecord(record, pmem::ExtKind::kWrite, std::max(size, write_end), ext);
    }
    failure = EnsureSlot(pos);
    if (!failure.ok()) break;
    // Data and record are durable before the commit can be.
    if (!test_hooks::SkipDataFence()) pmem::Drain();
    superseded.Update(tx.gap_used ? tx.gap.vblock() : tx.first, tx.end);
    if (CommitAt(pos, entry)) {
      AdoptRuns(tx.runs);
      if (tx.gap.block.count > 0 && tx.gap_used) {
        alloc_->Adopt(tx.gap.block);
      } else if (tx.gap.block.count > 0) {
        alloc_->Release(tx.gap.block, slot_);
      }
      if (tx.has_record) SettleRecord(record, pmem::TagOf(entry) == pmem::EntryTag::kExtended);
      superseded.Committed(pos);
      MaybeScheduleCompaction(pos + 1);
      *written_at = off;
      return n;
    }
  }
  ReleaseRuns(tx.runs);  // never committed, so never visible
  if (tx.gap.block.count > 0) alloc_->Release(tx.gap.block, slot_);
  if (tx.has_record) SettleRecord(record, false);
  return failure;
}

Status FileCore::Truncate(uint64_t new_size) {
  if (!writable()) return Status::Error(EINVAL, "file not open for writing");
  return Resize(new_size, /*grow_only=*/false);
}

Status FileCore::Resize(uint64_t new_size, bool grow_only) {
  TERN_TRY(EnsureAllocatorReady());
  OpGuard guard(this);
  TERN_TRY(guard.status());
  if (new_size > kMaxFileSize) return Status::Error(EFBIG, "size past the largest tern file");
  RecordPlace record{};
  bool has_record = false;
  EdgeCopy partial;  // of the last block that keeps bytes, when the edge is inside it
  SupersedeClaims superseded(this);
  Status failure = Status::Ok();
  // OCC loop, as in Write: redone at the new tail when another commit got there first.
  for (;;) {
    auto refreshed = Refresh();
    if (!refreshed.ok()) {
      failure = refreshed.status();
      break;
    }
    LogPos pos = *refreshed;
    uint64_t size = table_.size();
    if (new_size == size || (grow_only && size > new_size)) break;
    auto keep = static_cast<uint32_t>(BlocksFor(new_size));
    // The last block that keeps bytes gets a copy zeroed past `edge`: when shrinking, so that the
    // cut-off bytes read as zeros if the file grows again; when growing, because bytes past the
    // old end are undefined (the tail rule).
    uint64_t edge = std::min(new_size, size);
    auto cut = static_cast<uint32_t>(edge / kBlockSize);
    uint32_t inner = static_cast<uint32_t>(edge % kBlockSize);
    std::vector<pmem::ExtRun> runs;
    if (inner != 0 && table_.Get(cut) != 0) {
      failure = FillEdgeCopy(partial, pos, edge);
      if (!failure.ok()) break;
      runs.push_back({cut, partial.block.start.value(), 1, 0});
    }
    if (!has_record) {
      auto place = ReserveRecord(static_cast<uint32_t>(pmem::ExtRecordBytes(1)));
      if (!place.ok()) {
        failure = place.status();
        break;
      }
      record = *place;
      has_record = true;
    }
    uint64_t entry = WriteRecord(record, pmem::ExtKind::kTruncate, new_size, runs);
    failure = EnsureSlot(pos);
    if (!failure.ok()) break;
    pmem::Drain();
    // The blocks past the new end, and the old last block when it is replaced by a partial copy.
    superseded.Update(runs.empty() ? keep : cut, std::max(keep, static_cast<uint32_t>(BlocksFor(size))));
    if (CommitAt(pos, entry)) {
      SettleRecord(record, true);
      if (partial.block.count > 0) {
        if (runs.empty()) {
          alloc_->Release(partial.block, slot_);
        } else {
          alloc_->Adopt(partial.block);
        }
      }
      superseded.Committed(pos);
      return Status::Ok();
    }
  }
  if (partial.block.count > 0) alloc_->Release(partial.block, slot_);
  if (has_record) SettleRecord(record, false);
  return failure;
}

}  // namespace tern
