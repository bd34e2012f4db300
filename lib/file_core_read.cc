// FileCore: the lock-free read path. Copy from the blocks the table maps, then validate against
// the log: commits that landed after the copy started and remapped copied blocks force a recopy of
// those blocks only; a size change restarts the read. No locks, no pins: a block can be reused only
// after a commit that superseded it, and that commit is what validation finds. Commits this
// process has not applied to its table yet are looked at, not replayed, when they concern neither
// the blocks read nor the size (TailUntouched).
#include <algorithm>
#include <cstring>
#include <optional>

#include "lib/file_core.h"
#include "pmem/persist.h"

namespace tern {
namespace {

// Copies the part of [offset, offset+len) that lies in virtual blocks [vlo, vhi) into out
// (out corresponds to offset). Consecutive blocks that are consecutive on media go in one copy:
// copy(dst, l, count, skip, n) copies n bytes from `skip` bytes into the run of `count` blocks at
// logical block l.
template <typename Lookup, typename Copy>
void CopyRange(uint8_t* out, uint64_t offset, uint64_t len, uint32_t vlo, uint32_t vhi,
               Lookup&& lookup, Copy&& copy) {
  uint64_t begin = std::max(offset, uint64_t{vlo} * kBlockSize);
  uint64_t end = std::min(offset + len, uint64_t{vhi} * kBlockSize);
  while (begin < end) {
    auto v = static_cast<uint32_t>(begin / kBlockSize);
    uint32_t l = lookup(v);
    // Extend the piece while the next block continues the same media run (or the same hole).
    uint64_t piece_end = std::min(end, (uint64_t{v} + 1) * kBlockSize);
    uint32_t next_l = l;
    while (piece_end < end) {
      uint32_t nv = static_cast<uint32_t>(piece_end / kBlockSize);
      uint32_t nl = lookup(nv);
      bool continues = (l == 0) ? nl == 0 : nl == next_l + 1;
      if (!continues) break;
      next_l = nl;
      piece_end = std::min(end, (uint64_t{nv} + 1) * kBlockSize);
    }
    uint64_t n = piece_end - begin;
    if (l == 0 || !copy(out + (begin - offset), l, next_l - l + 1, begin - uint64_t{v} * kBlockSize, n)) {
      memset(out + (begin - offset), 0, n);
    }
    begin = piece_end;
  }
}

}  // namespace

Result<size_t> FileCore::Read(void* buf, size_t n, uint64_t offset) {
  auto* out = static_cast<uint8_t*>(buf);
  auto lookup = [this](uint32_t v) { return table_.Get(v); };
  // False only for a block this process cannot map (then the piece reads as zeros, as before, and
  // validation sees the commit that made it reachable).
  auto copy = [this](uint8_t* dst, uint32_t l, uint32_t count, uint64_t skip, uint64_t bytes) {
    if (bytes >= Backing::kKernelCopyMin && backing_->ReadThroughKernel(dst, bytes, LogicalBlock(l).ToBytes() + skip)) {
      return true;
    }
    const uint8_t* src = Resolve(LogicalBlock(l), count);
    if (src == nullptr) return false;
    pmem::CopyFromMedia(dst, src + skip, bytes);
    return true;
  };
  OpGuard guard(this);
  TERN_TRY(guard.status());
  // Each pass reads the file as of one log position; a pass is abandoned when the size changed.
  for (;;) {
    // The table as it stands when no commit past it concerns this read (TailUntouched: no mutex,
    // no replay), else brought up to the tail first.
    LogPos pos = applied_.load();
    uint64_t size = table_.size();
    auto blocks_of = [&](uint64_t file_size) {
      if (n == 0 || offset >= file_size) return VRange{};
      uint64_t last = offset + std::min<uint64_t>(n, file_size - offset) - 1;
      return VRange{static_cast<uint32_t>(offset / kBlockSize), static_cast<uint32_t>(last / kBlockSize + 1)};
    };
    VRange range = blocks_of(size);
    if (std::optional<LogPos> tail = TailUntouched(pos, size, range.lo, range.hi)) {
      pos = *tail;
    } else {
      TERN_ASSIGN_OR_RETURN(pos, Refresh());
      size = table_.size();
      range = blocks_of(size);
    }
    if (range.empty()) return size_t{0};
    uint64_t len = std::min<uint64_t>(n, size - offset);
    uint32_t first = range.lo, end = range.hi;
    CopyRange(out, offset, len, first, end, lookup, copy);
    // Validation: the copy is the file as of `pos` unless a later commit remapped a copied block.
    bool size_changed = false;
    while (!IsFree(pos)) {
      if (std::optional<LogPos> later = TailUntouched(pos, size, first, end)) {
        pos = *later;
        continue;
      }
      TERN_ASSIGN_OR_RETURN(LogPos now, Refresh());
      if (table_.size() != size) {
        size_changed = true;
        break;
      }
      TERN_ASSIGN_OR_RETURN(VRange changed, ChangedIn(pos, now, first, end));
      if (!changed.empty()) {
        Counted().read_retries.fetch_add(1, std::memory_order_relaxed);
        CopyRange(out, offset, len, changed.lo, changed.hi, lookup, copy);
      }
      pos = now;
    }
    if (!size_changed) return static_cast<size_t>(len);
    Counted().read_retries.fetch_add(1, std::memory_order_relaxed);
  }
}

std::optional<LogPos> FileCore::TailUntouched(LogPos from, uint64_t size, uint32_t first, uint32_t end) {
  // A checkpoint jump past `from`: the log blocks in between were never followed here.
  if (from < ckpt_pos_.load()) return std::nullopt;
  for (LogPos pos = from; pos < from + kMaxUnappliedLook; ++pos) {
    const uint64_t* slot = SlotAddress(pos);
    if (slot == nullptr) return std::nullopt;
    uint64_t entry = pmem::Load64(slot);
    if (entry == 0) return pos;
    // The record's checksum is the replay's to check (once); its runs are immutable once committed.
    auto c = DecodeCommit(entry, alloc_->num_blocks(), *this, /*verify_crc=*/false);
    if (!c.ok() || c->unmap_beyond) return std::nullopt;
    if (c->size_rule == Commit::SizeRule::kSet && c->size != size) return std::nullopt;
    if (c->size_rule == Commit::SizeRule::kExtendToEnd &&
        (c->inline_run.vblock + BlockCount{c->inline_run.count}).ToBytes() > size) {
      return std::nullopt;
    }
    bool touches = false;
    c->ForEachRun([&](const MapRun& r) { touches |= r.vblock.value() < end && r.vblock.value() + r.count > first; });
    if (touches) return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace tern
