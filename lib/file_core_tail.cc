// FileCore: appends that write the unused tail of the last block in place.
//
// A copy-on-write append that starts inside the last block copies that block's live bytes into a
// new one, so a stream of small appends (a log, a database's WAL, a table written a few KiB at a
// time) copies each block many times and takes two blocks for every one it keeps. The bytes past
// the end of the file are invisible, so an append can write them where they are and commit one
// entry that maps the block to itself (which makes every reader and writer that copied the block
// look again, as for any remap) and sets the new size. Two things keep that safe:
//  - an exclusive claim on the block (the allocator's owner CAS, as a superseding writer takes):
//    while one appender holds it no other appender writes there, and nobody frees or reuses the
//    block, even if another commit supersedes it meanwhile (then the appender frees it, as the
//    owner of a superseded claim);
//  - the tail rule (file_core.h): what an appender that loses leaves past the end is never read,
//    because every copy stops at the size and every growth replaces the block first.
#include <algorithm>

#include "lib/file_core.h"
#include "lib/test_hooks.h"
#include "pmem/persist.h"

namespace tern {

Result<bool> FileCore::AppendInPlace(const uint8_t* data, size_t n, bool append, uint64_t offset,
                                     uint64_t* written_at) {
  if (slot_ == kNoSlot) return false;
  SupersedeClaims tail(this);       // the claim on the last block
  BlockRuns runs;                   // new blocks past the last one, for the rest of the bytes
  RecordPlace record{};
  bool has_record = false;
  bool claimed = false;             // we hold the last block
  bool written = false;             // the bytes are in place and persisted
  uint64_t at = 0;                  // the end of the file the bytes were written at
  uint32_t v = 0, block = 0;        // the last block and where it lives
  LogPos seen = 0;                  // the log position the block was last judged unchanged at
  Status failure = Status::Ok();
  bool committed = false;
  for (;;) {
    auto refreshed = Refresh();
    if (!refreshed.ok()) {
      failure = refreshed.status();
      break;
    }
    LogPos pos = *refreshed;
    uint64_t size = table_.size();
    if (!claimed) {
      uint64_t off = append ? size : offset;
      if (off != size || size % kBlockSize == 0 || off + n > kMaxFileSize || off + n < off) break;
      v = static_cast<uint32_t>(size / kBlockSize);
      block = table_.Get(v);
      if (block == 0) break;  // the last block is a hole
      tail.Update(v, v + 1);
      if (!tail.Holds(v, block)) break;  // another writer has it, or it moved
      claimed = true;
      at = size;
      seen = pos;
      continue;  // now that nobody else writes or frees the block, look at the end again
    }
    // Another commit since `seen` that moved the end or touched the block makes the tail not ours
    // to write (before the copy), or the bytes in place worthless (after it): give up, and the
    // caller copies on write at the new end.
    if (size != at) break;
    if (seen < pos) {
      auto changed = ChangedIn(seen, pos, v, v + 1);
      if (!changed.ok()) {
        failure = changed.status();
        break;
      }
      if (!changed->empty()) break;
      seen = pos;
    }
    if (!written) {
      auto in_block = static_cast<uint32_t>(at % kBlockSize);
      size_t here = std::min<size_t>(n, kBlockSize - in_block);
      auto* dst = const_cast<uint8_t*>(Resolve(LogicalBlock(block), 1));
      if (dst == nullptr) break;
      pmem::CopyNoDrain(dst + in_block, data, here);
      if (n > here) {
        failure = Allocate(BlocksFor(at + n) - (v + 1), &runs);
        if (!failure.ok()) break;
        size_t done = here;
        for (const BlockRun& r : runs) {
          size_t take = std::min<size_t>(n - done, uint64_t{r.count} * kBlockSize);
          pmem::CopyNoDrain(const_cast<uint8_t*>(Resolve(r.start, r.count)), data + done, take);
          done += take;
        }
      }
      written = true;
      test_hooks::after_in_place_copy.Run();
    }
    ExtRuns ext = ToExtRuns(v + 1, runs);
    ext.push_front(pmem::ExtRun{v, block, 1, 0});
    auto bytes = static_cast<uint32_t>(pmem::ExtRecordBytes(static_cast<uint32_t>(ext.size())));
    if (!has_record) {
      auto place = ReserveRecord(bytes);
      if (!place.ok()) {
        failure = place.status();
        break;
      }
      record = *place;
      has_record = true;
    }
    uint64_t entry = WriteRecord(record, pmem::ExtKind::kWrite, at + n, ext);
    failure = EnsureSlot(pos);
    if (!failure.ok()) break;
    // Data and record are durable before the commit can be.
    if (!test_hooks::SkipDataFence()) pmem::Drain();
    if (CommitAt(pos, entry)) {
      AdoptRuns(runs);
      runs.clear();
      SettleRecord(record, true);
      has_record = false;
      MaybeScheduleCompaction(pos + 1);
      *written_at = at;
      committed = true;
      break;
    }
  }
  ReleaseRuns(runs);  // never committed, so never visible
  if (has_record) SettleRecord(record, false);
  // The claim goes back to the log, or, when a commit superseded the block meanwhile, the block
  // is freed (its superseder could not: we held it). Judged on a current table.
  if (claimed) (void)Refresh();
  tail.Abandon();
  if (!failure.ok()) return failure;
  return committed;
}

}  // namespace tern
