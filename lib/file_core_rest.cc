// FileCore: a large file's shared state rests between opens.
//
// Building a file's allocator (shared_state.h) from the log, which the first write after a first
// open does (FileCore::EnsureAllocatorReady), marks every block the log references and touches a
// page of the owner map per 2,048 blocks: ~1.5 ms for a 1 GiB file here, more than an open. So the
// last process to close a large file leaves the object published, "at rest", with a stamp of what
// the log looked like (RestStamp), and the next first opener adopts it (built, if it was) when the
// file still looks exactly so. The log only grows between compactions,
// so "same checkpoint, the entry before the stamped tail unchanged, the slot at the tail still
// empty, same backing size" means no commit, compaction, repair or growth happened since: the
// object is the one a rebuild would make (up to blocks a rebuild would find free; GC's full sweep
// returns those). Anything else — another TERN_SHM_DIR, `tern fsck --repair`, a file restored
// underneath — fails a check, and the opener rebuilds as it would without a resting object.
//
// A resting object holds no lock, so a sweep would take it for a dead process's object; sweeps
// spare it while it is younger than SharedState::kRestSeconds (its mtime is set when it rests).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "lib/checkpoint_format.h"
#include "lib/file_core.h"
#include "lib/meta_block_format.h"
#include "lib/open_lock.h"
#include "pmem/log.h"
#include "pmem/persist.h"

namespace tern {

const uint64_t* FileCore::RestSlot(uint32_t block, LogPos pos, uint64_t nblocks) const {
  if (pos < pmem::kMetaSlots) return block == 0 ? &meta()->slots[pos] : nullptr;
  uint64_t k = (pos - pmem::kMetaSlots) / pmem::kLogSlots;
  if (block == 0 || block == kUnlinked || block >= nblocks) return nullptr;
  const pmem::LogBlock* b = LogBlockAt(LogicalBlock(block));
  if (b->trailer.magic != pmem::kLogMagic || b->trailer.seq != k + 1) return nullptr;
  return &b->slots[(pos - pmem::kMetaSlots) % pmem::kLogSlots];
}

bool FileCore::StampLocked(RestStamp* r) {
  if (!RefreshCheckpointLocked().ok() || !ReplayLocked().ok()) return false;
  *r = RestStamp{};
  r->ckpt_block = ckpt_block_.load();
  if (r->ckpt_block != 0) {
    const uint8_t* p = Resolve(LogicalBlock(static_cast<uint32_t>(r->ckpt_block)), 1);
    if (p == nullptr) return false;
    pmem::CheckpointHeader h;
    memcpy(&h, p, sizeof(h));
    r->ckpt_position = h.position;
    r->ckpt_generation = h.generation;
  }
  LogPos tail = applied_.load();
  r->tail = tail;
  auto block_of = [this](LogPos pos) {
    return pos < pmem::kMetaSlots ? 0u : chain_.Get(static_cast<uint32_t>((pos - pmem::kMetaSlots) / pmem::kLogSlots));
  };
  if (tail > r->ckpt_position) {
    const uint64_t* last = SlotAddress(tail - 1);
    if (last == nullptr) return false;
    r->last_entry = pmem::Load64(last);
    r->last_block = block_of(tail - 1);
    if (r->last_entry == 0) return false;
  }
  if (const uint64_t* slot = SlotAddress(tail); slot != nullptr) {
    if (pmem::Load64(slot) != 0) return false;
    r->tail_block = block_of(tail);
  } else {
    // tail opens a log block this process has not followed: linked (empty) or not linked yet.
    if (tail < pmem::kMetaSlots || (tail - pmem::kMetaSlots) % pmem::kLogSlots != 0 || tail <= r->ckpt_position) return false;
    uint32_t next = pmem::Load32(LinkTo(static_cast<uint32_t>((tail - pmem::kMetaSlots) / pmem::kLogSlots)));
    r->tail_block = next == 0 ? kUnlinked : next;
    if (next != 0 && RestSlot(next, tail, alloc_->num_blocks()) == nullptr) return false;
  }
  struct stat st;
  // A file deleted while open is gone at its last close: nothing would ever adopt its object.
  if (fstat(backing_->fd(), &st) != 0 || st.st_nlink == 0) return false;
  r->backing_bytes = static_cast<uint64_t>(st.st_size);
  r->state = kAtRest;
  return true;
}

bool FileCore::MatchesStamp(const RestStamp& r, const struct stat& st) const {
  auto nblocks = static_cast<uint64_t>(st.st_size) / kBlockSize;
  if (r.state != kAtRest || r.backing_bytes != static_cast<uint64_t>(st.st_size)) return false;
  if (pmem::Load64(&meta()->header.checkpoint) != r.ckpt_block) return false;
  if (r.ckpt_block != 0) {
    if (r.ckpt_block >= nblocks) return false;
    pmem::CheckpointHeader h;
    memcpy(&h, backing_->BlockAddress(LogicalBlock(static_cast<uint32_t>(r.ckpt_block))), sizeof(h));
    if (h.magic != pmem::kCheckpointMagic || h.position != r.ckpt_position || h.generation != r.ckpt_generation) {
      return false;
    }
  }
  if (r.tail > r.ckpt_position) {
    const uint64_t* last = RestSlot(r.last_block, r.tail - 1, nblocks);
    if (last == nullptr || r.last_entry == 0 || pmem::Load64(last) != r.last_entry) return false;
  }
  if (r.tail_block == kUnlinked) {
    // The link out of the block holding tail - 1 (checked above) is still empty.
    if (r.tail <= r.ckpt_position) return false;
    const uint32_t* link = r.last_block == 0 ? &meta()->header.log_head : &LogBlockAt(LogicalBlock(r.last_block))->trailer.next;
    return pmem::Load32(link) == 0;
  }
  const uint64_t* slot = RestSlot(r.tail_block, r.tail, nblocks);
  return slot != nullptr && pmem::Load64(slot) == 0;
}

bool FileCore::MayRest() const {
  return alloc_->num_blocks() >= kRestMinBlocks && !shared_->MappedAcrossFork() && shared_->spare_path().empty();
}

void FileCore::LeaveAtRest(const RestStamp& stamp) {
  // REQUIRES: the file's open lock held exclusively (nobody else maps the object).
  shared_->header()->rest = stamp;
  (void)futimens(shared_->fd(), nullptr);  // the sweep's clock (see above)
}

void FileCore::DropRestingState(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) DropRestingState(path, st);
}

void FileCore::DropRestingState(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || static_cast<uint64_t>(st.st_size) < kRestMinBlocks * kBlockSize) {
    return;
  }
  int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  // Exclusive: nobody has the file open, so its object (if any) rests or was left by the dead.
  auto alone = TryLockExclusive(fd);
  struct stat opened;
  pmem::MetaHeader h{};
  if (alone.ok() && *alone && fstat(fd, &opened) == 0 && opened.st_ino == st.st_ino && opened.st_dev == st.st_dev &&
      pread(fd, &h, sizeof(h), 0) == static_cast<ssize_t>(sizeof(h)) && h.magic == pmem::kMetaMagic) {
    SharedState::Remove(SharedState::NameFor(opened, h.nonce));
  }
  close(fd);  // and with it the lock
}

std::unique_ptr<SharedState> FileCore::TakeRestingState(const struct stat& st) {
  // REQUIRES: the file's open lock held exclusively.
  auto nblocks = static_cast<uint64_t>(st.st_size) / kBlockSize;
  if (nblocks < kRestMinBlocks) return nullptr;
  auto state = SharedState::Attach(shared_name_);
  if (!state.ok()) return nullptr;  // none (the usual case), or one of another version: rebuilt
  RestStamp& stamp = (*state)->header()->rest;
  if (stamp.state != kAtRest || (*state)->header()->num_blocks.load() > nblocks ||
      !backing_->EnsureMapped(nblocks).ok() || !MatchesStamp(stamp, st)) {
    TERN_LOG_DEBUG("%s: the shared state left at the last close is out of date; rebuilding it", path_.c_str());
    return nullptr;
  }
  stamp.state = 0;  // in use again
  return std::move(*state);
}

}  // namespace tern
