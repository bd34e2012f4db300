// FileCore: pinning blocks for direct mappings. A pinned block is claimed by this process in the
// owner map exactly as a writer claims the block its commit supersedes (file_core.cc,
// SupersedeClaims), so every path that frees blocks — an overwrite, a truncate, GC's sweep —
// leaves it alone: whoever holds the claim frees it. The pin's end is that free.
#include "lib/file_core.h"

#include "lib/test_hooks.h"

namespace tern {

Result<FileCore::PinnedBlocks> FileCore::PinBlocks(uint32_t first, uint32_t end) {
  if (slot_ == kNoSlot) return Status::Error(ENOTSUP, "no process slot to pin blocks with");
  TERN_TRY(EnsureAllocatorReady());
  OpGuard guard(this);
  TERN_TRY(guard.status());
  TERN_TRY(Refresh().status());
  PinnedBlocks pinned;
  end = static_cast<uint32_t>(std::min<uint64_t>(end, table_.size() / kBlockSize));
  auto unclaim_all = [&] {
    for (auto [v, l] : pinned.blocks) alloc_->Unclaim(LogicalBlock(l));
  };
  for (uint32_t v = first; v < end; ++v) {
    uint32_t l = table_.Get(v);
    if (l == 0) continue;
    if (!alloc_->Claim(LogicalBlock(l), kLogOwner, slot_)) {
      unclaim_all();
      return Status::Error(EBUSY, "a block to pin is claimed already");
    }
    pinned.blocks.emplace_back(v, l);
  }
  // As a writer's claims (SupersedeClaims::Update): our table may have been behind, and a block
  // it mapped superseded, freed and reused elsewhere before the claim took it. Now that nobody
  // can free them, every block must still be where we looked.
  Result<LogPos> now = Refresh();
  bool moved = !now.ok();
  for (auto [v, l] : pinned.blocks) moved = moved || table_.Get(v) != l;
  if (moved) {
    unclaim_all();
    return now.ok() ? Status::Error(EBUSY, "a block to pin moved meanwhile") : now.status();
  }
  pinned.size = table_.size();
  return pinned;
}

void FileCore::UnpinBlocks(const std::vector<std::pair<uint32_t, uint32_t>>& blocks) {
  OpGuard guard(this);
  bool current = guard.status().ok() && Refresh().ok();
  test_hooks::after_unpin_refresh.Run();
  std::vector<uint32_t> superseded;
  for (auto [v, l] : blocks) {
    // Without a current table nothing can be proven superseded: back to the log, where GC's full
    // sweep finds it if it is not referenced (space, never data).
    if (!current || table_.Get(v) == l) {
      alloc_->Unclaim(LogicalBlock(l));
    } else {
      superseded.push_back(l);
    }
  }
  FreeOnceSupersedingIsDurable(superseded);
}

}  // namespace tern
