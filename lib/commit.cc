#include "lib/commit.h"

#include <cstring>

#include "lib/crc32c.h"

namespace tern {

Result<Commit> DecodeCommit(uint64_t entry, uint64_t num_blocks, BlockResolver& blocks, bool verify_crc) {
  Commit c;
  switch (pmem::TagOf(entry)) {
    case pmem::EntryTag::kFree:
      return Status::Error(EUCLEAN, "malformed commit entry");
    case pmem::EntryTag::kInlineExtend:
    case pmem::EntryTag::kInlineKeepSize: {
      auto e = pmem::DecodeInline(entry);
      if (!e) return Status::Error(EUCLEAN, "malformed inline commit entry");
      if (uint64_t{e->vblock.value()} + e->count > kMaxBlocks) {
        return Status::Error(EUCLEAN, "commit entry maps past the largest file");
      }
      if (uint64_t{e->lblock.value()} + e->count > num_blocks) {
        return Status::Error(EUCLEAN, "commit entry maps a block index out of range");
      }
      c.inline_run = MapRun{e->vblock, e->lblock, e->count};
      c.size_rule = e->extend ? Commit::SizeRule::kExtendToEnd : Commit::SizeRule::kKeep;
      return c;
    }
    case pmem::EntryTag::kExtended:
      break;
  }
  auto p = pmem::DecodeExtended(entry);
  if (!p) return Status::Error(EUCLEAN, "malformed extended commit entry");
  if (p->block.value() >= num_blocks) {
    return Status::Error(EUCLEAN, "extended record block index out of range");
  }
  const uint8_t* first = blocks.Resolve(p->block, 1);
  if (first == nullptr) return Status::Error(EUCLEAN, "extended record block index out of range");
  if (p->offset + sizeof(pmem::ExtRecordHeader) > kBlockSize) {
    // A header may not straddle blocks: the next block need not exist.
    return Status::Error(EUCLEAN, "extended record header crosses its block");
  }
  pmem::ExtRecordHeader h;
  memcpy(&h, first + p->offset, sizeof(h));
  if (h.magic != pmem::kExtMagic || h.reserved0 != 0 || h.reserved1 != 0) {
    return Status::Error(EUCLEAN, "extended record has a bad magic");
  }
  if (h.kind != static_cast<uint8_t>(pmem::ExtKind::kWrite) &&
      h.kind != static_cast<uint8_t>(pmem::ExtKind::kTruncate)) {
    return Status::Error(EUCLEAN, "extended record of unknown kind");
  }
  uint64_t bytes = p->offset + pmem::ExtRecordBytes(h.nruns);
  uint64_t span = BlocksFor(bytes);
  if (h.nruns > kMaxBlocks || p->block.value() + span > num_blocks) {
    return Status::Error(EUCLEAN, "extended record runs past the end of the file");
  }
  const uint8_t* record = blocks.Resolve(p->block, static_cast<uint32_t>(span));
  if (record == nullptr) return Status::Error(EUCLEAN, "extended record runs past the end of the file");
  record += p->offset;
  if (h.new_size > kMaxFileSize) return Status::Error(EUCLEAN, "extended record sets an impossible size");
  if (verify_crc) {
    pmem::ExtRecordHeader zeroed = h;
    zeroed.crc = 0;
    uint32_t crc = Crc32c(&zeroed, sizeof(zeroed));
    crc = Crc32c(record + sizeof(h), h.nruns * sizeof(pmem::ExtRun), crc);
    if (crc != h.crc) return Status::Error(EUCLEAN, "extended record checksum mismatch");
  }
  c.runs = reinterpret_cast<const pmem::ExtRun*>(record + sizeof(h));
  c.nruns = h.nruns;
  c.size = h.new_size;
  c.size_rule = Commit::SizeRule::kSet;
  c.unmap_beyond = h.kind == static_cast<uint8_t>(pmem::ExtKind::kTruncate);
  c.record = BlockRun{p->block, static_cast<uint32_t>(span)};
  for (uint32_t i = 0; i < c.nruns; ++i) {
    const pmem::ExtRun& r = c.runs[i];
    if (r.reserved != 0 || r.nblocks == 0 || uint64_t{r.vblock} + r.nblocks > kMaxBlocks ||
        (r.lblock != 0 && uint64_t{r.lblock} + r.nblocks > num_blocks)) {
      return Status::Error(EUCLEAN, "extended record maps a block index out of range");
    }
  }
  return c;
}

}  // namespace tern
