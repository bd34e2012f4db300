// FileCore: opens without write access to the file. A process that may only read a tern file (the
// file's mode gives it read permission only, or the root is mounted read-only) can take none of
// the backing file's locks that need a writable descriptor (the exclusive open lock, a slot lock),
// nor open the shared state, which has the file's owner and mode so that only those who may write
// the file can change its allocator. Such a process reads slotless:
//
// - Its block count comes from the backing file's size, in a private object: writers grow the
//   backing file before any commit names a new block, so the size seen after a commit covers it.
// - Data reads need no slot: the read path validates every copy against the log (a block is reused
//   only after a commit that superseded it, file_core_read.cc).
// - Log blocks are what a slot protects: GC frees what a new checkpoint made unreachable once the
//   operations of every slot have drained. The reader holds the slotless-reader lock instead, and
//   GC frees no log block while anybody holds it (RetireAndSweep). What GC cannot see is a first
//   writer's allocator build, which treats whatever lies before the checkpoint as free; so a
//   catch-up starts with a jump to a checkpoint that moved past this process, and a replay that
//   fails while the checkpoint moved (or the file grew) is tried again.
#include <sys/stat.h>

#include "lib/allocator.h"
#include "lib/atomic_max.h"
#include "lib/file_core.h"
#include "lib/open_lock.h"
#include "pmem/log.h"
#include "pmem/persist.h"

namespace tern {
namespace {

constexpr int kCatchUpAttempts = 64;  // each after the file grew or was compacted meanwhile

}  // namespace

Status FileCore::OpenWithoutWriteAccess(const struct stat& st) {
  TERN_ASSIGN_OR_RETURN(shared_, SharedState::CreatePrivate(std::min<uint64_t>(static_cast<uint64_t>(st.st_size) / kBlockSize, kMaxBlocks)));
  alloc_ = std::make_unique<BlockAllocator>(shared_.get());
  TERN_TRY(backing_->EnsureMapped(alloc_->num_blocks()));
  std::lock_guard lock(mu_);
  return CatchUpWithoutWriteAccessLocked();
}

Status FileCore::CatchUpWithoutWriteAccessLocked() {
  // The block count is looked at after the checkpoint pointer and before the log: writers grow the
  // backing file before they publish anything that names a new block.
  auto backing_blocks = [this]() -> Result<uint64_t> {
    struct stat st;
    if (fstat(backing_->fd(), &st) != 0) return Status::Error(errno, "fstat");
    uint64_t blocks = std::min<uint64_t>(static_cast<uint64_t>(st.st_size) / kBlockSize, kMaxBlocks);
    RaiseAtomic(shared_->header()->num_blocks, blocks);
    return blocks;
  };
  for (int attempt = 1;; ++attempt) {
    uint64_t checkpoint = pmem::Load64(&meta()->header.checkpoint);
    TERN_ASSIGN_OR_RETURN(uint64_t blocks, backing_blocks());
    quiet_damage_.store(attempt < kCatchUpAttempts);
    Status replayed = RefreshCheckpointLocked();
    if (replayed.ok()) replayed = ReplayLocked();
    quiet_damage_.store(false);
    if (replayed.ok() || attempt == kCatchUpAttempts) return replayed;
    // A commit naming a block the file grew to after the look, or a checkpoint that moved while
    // the log was read (what lay before it may be reused): look again. Anything else is damage.
    TERN_ASSIGN_OR_RETURN(uint64_t blocks_now, backing_blocks());
    if (pmem::Load64(&meta()->header.checkpoint) == checkpoint && blocks_now == blocks) {
      if (replayed.err() == EUCLEAN) TERN_LOG_ERROR("%s: damaged tern file: %s", path_.c_str(), replayed.context());
      return replayed;
    }
    TERN_LOG_DEBUG("%s: the file grew or was compacted while catching up without a slot (%s); again",
                   path_.c_str(), replayed.context());
  }
}

void FileCore::AfterForkWithoutWriteAccess(int fd) {
  Status replaced = backing_->ReplaceFdInChild(fd);
  if (replaced.ok()) replaced = HoldSlotlessReaderLock(fd);
  if (!replaced.ok()) {
    TERN_LOG_ERROR("%s: after fork: %s (errno %d); reads may see blocks GC reused", path_.c_str(),
                   replaced.context(), replaced.err());
  }
}

}  // namespace tern
