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
//   fails while the checkpoint moved is tried again from it.
#include <sys/stat.h>

#include "lib/allocator.h"
#include "lib/atomic_max.h"
#include "lib/file_core.h"
#include "lib/open_lock.h"
#include "pmem/log.h"
#include "pmem/persist.h"

namespace tern {
namespace {

constexpr int kCatchUpAttempts = 4;

}  // namespace

Status FileCore::OpenWithoutWriteAccess(const struct stat& st) {
  TERN_ASSIGN_OR_RETURN(shared_, SharedState::CreatePrivate(std::min<uint64_t>(static_cast<uint64_t>(st.st_size) / kBlockSize, kMaxBlocks)));
  alloc_ = std::make_unique<BlockAllocator>(shared_.get());
  TERN_TRY(backing_->EnsureMapped(alloc_->num_blocks()));
  std::lock_guard lock(mu_);
  return CatchUpWithoutWriteAccessLocked();
}

Status FileCore::CatchUpWithoutWriteAccessLocked() {
  struct stat st;
  if (fstat(backing_->fd(), &st) != 0) return Status::Error(errno, "fstat");
  RaiseAtomic(shared_->header()->num_blocks, std::min<uint64_t>(static_cast<uint64_t>(st.st_size) / kBlockSize, kMaxBlocks));
  for (int attempt = 1;; ++attempt) {
    uint64_t checkpoint = pmem::Load64(&meta()->header.checkpoint);
    Status replayed = RefreshCheckpointLocked();
    if (replayed.ok()) replayed = ReplayLocked();
    if (replayed.ok() || attempt == kCatchUpAttempts || pmem::Load64(&meta()->header.checkpoint) == checkpoint) {
      return replayed;
    }
    TERN_LOG_DEBUG("%s: the checkpoint moved while catching up without a slot (%s); again from it",
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
