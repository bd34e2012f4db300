// FileCore: open, format, recovery after a crash, and close.
//
// The first opener of a file (the one that gets the open lock exclusively, see open_lock.h) formats
// a new file, replays the log, scrubs the tail and creates the shared state (its allocator is built
// from the log later, by the first process that allocates); later openers wait for it, then attach
// to the shared state and replay. The last closer removes the shared state's name
// (keeping the object for reuse when it can: shared_state_spares.h), or, for a large file, leaves it
// at rest for the next first opener (file_core_rest.cc).
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "lib/backing_cache.h"
#include "lib/crc32c.h"
#include "lib/file_core.h"
#include "lib/format_nonce.h"
#include "lib/open_lock.h"
#include "lib/shared_state_spares.h"
#include "lib/test_hooks.h"
#include "pmem/log.h"
#include "pmem/mapping.h"
#include "pmem/persist.h"

namespace tern {
namespace {

constexpr int kMaxOpenAttempts = 100;
constexpr int kSpinAttempts = 8;  // then each attempt waits a little (a preempted sweeper)

// kNotTernFile when the bytes are not a tern file at all; EUCLEAN when they are a damaged one.
Status CheckHeader(const pmem::MetaHeader& h, const std::string& path) {
  if (h.magic != pmem::kMetaMagic) return Status::Error(kNotTernFile, "not a tern file");
  const char* cause = nullptr;
  if (h.format_version != pmem::kFormatVersion) {
    cause = "unknown format version";
  } else if (h.checksum != pmem::MetaChecksum(h)) {
    cause = "meta block checksum mismatch";
  } else if (h.flags != 0) {
    cause = "meta block has unknown flags";
  }
  if (cause == nullptr) return Status::Ok();
  TERN_LOG_ERROR("%s: damaged tern file: %s (version %u)", path.c_str(), cause, h.format_version);
  return Status::Error(EUCLEAN, cause);
}

// Reads and checks the header through the kernel, so a foreign file is never mapped or changed.
Status ReadHeader(int fd, const struct stat& st, const std::string& path, pmem::MetaHeader* h) {
  if (st.st_size < kBlockSize || st.st_size % kBlockSize != 0) {
    return Status::Error(kNotTernFile, "not a tern file");
  }
  if (pread(fd, h, sizeof(*h), 0) != static_cast<ssize_t>(sizeof(*h))) {
    return Status::Error(errno == 0 ? EIO : errno, "read meta block");
  }
  return CheckHeader(*h, path);
}

// The header under the open lock: out of the mapping when the Backing was kept mapped (the same
// bytes, without a system call), else read as above.
Status ReadHeaderLocked(const Backing& backing, const struct stat& st, const std::string& path, pmem::MetaHeader* h) {
  if (st.st_size >= kBlockSize && st.st_size % kBlockSize == 0 && backing.mapped_blocks() > 0) {
    memcpy(h, backing.BlockAddress(LogicalBlock(0)), sizeof(*h));
    return CheckHeader(*h, path);
  }
  return ReadHeader(backing.fd(), st, path, h);
}

}  // namespace

Result<std::shared_ptr<FileCore>> FileCore::Open(const std::string& path, int flags, mode_t mode, Slotless slotless) {
  int access = flags & O_ACCMODE;
  if (access == O_ACCMODE) return Status::Error(EINVAL, "bad access mode");
  int extra = O_CLOEXEC | (flags & (O_CREAT | O_EXCL | O_NOFOLLOW));
  // Copy-on-write reads old blocks, so the backing file is opened read-write when allowed.
  bool writable = slotless == Slotless::kNever || access != O_RDONLY;
  int fd = writable ? open(path.c_str(), O_RDWR | extra, mode) : -1;
  if (fd < 0 && access == O_RDONLY && (!writable || errno == EACCES || errno == EROFS || errno == ETXTBSY)) {
    writable = false;
    fd = open(path.c_str(), O_RDONLY | extra, mode);
  }
  if (fd < 0) return Status::Error(errno, "open");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Status::Error(err, "fstat");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return Status::Error(S_ISDIR(st.st_mode) ? EISDIR : kNotTernFile, "not a regular file");
  }
  if (!writable && slotless == Slotless::kIfOpenNowhereElse) {
    auto elsewhere = OpenedElsewhere(fd);
    if (!elsewhere.ok() || *elsewhere) {
      close(fd);
      return Open(path, flags, mode, Slotless::kNever);
    }
  }
  // A Backing this process kept from an earlier open of the same inode comes with its pages mapped
  // (and was a tern file then: the header is checked under the open lock below, as for any file).
  std::unique_ptr<Backing> backing = BackingCache::Default().Take(st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size), writable);
  pmem::MetaHeader header{};
  if (backing == nullptr && st.st_size != 0) {
    Status s = ReadHeader(fd, st, path, &header);
    if (!s.ok()) {
      close(fd);
      return s;
    }
  } else if (backing == nullptr && (!writable || access == O_RDONLY)) {
    // Formatting is a change; a read-only open never makes one. The empty file reads as empty
    // through the kernel just as well.
    close(fd);
    return Status::Error(kNotTernFile, "empty file opened read-only");
  }
  if (backing != nullptr) {
    close(fd);
  } else {
    backing = std::make_unique<Backing>(fd, writable, static_cast<uint32_t>(st.st_ino), st.st_dev);
    BackingCache::Default().LendRecycled(*backing);
  }
  return OpenWith(path, flags, std::move(backing), st, nullptr);
}

Result<std::shared_ptr<FileCore>> FileCore::OpenWith(const std::string& path, int flags,
                                                     std::unique_ptr<Backing> backing, struct stat st,
                                                     std::unique_ptr<KeptTable> table, bool locked_exclusive) {
  int access = flags & O_ACCMODE;
  int fd = backing->fd();
  pmem::MetaHeader header{};
  std::shared_ptr<FileCore> core(new FileCore(path, std::move(backing)));
  if (access == O_RDONLY && core->backing_->mapped_blocks() == 0) core->backing_->ExpectReadsOnly();
  core->dev_ = st.st_dev;
  core->ino_ = st.st_ino;
  if (!core->table_.Init() || !core->chain_.Init()) return Status::Error(ENOMEM, "block table");

  // Without write access, only the shared locks can be had (file_core_readonly.cc).
  bool may_write = core->backing_->writable();
  if (!may_write) TERN_TRY(HoldSlotlessReaderLock(fd));
  for (int attempt = 0; attempt < kMaxOpenAttempts; ++attempt) {
    bool exclusive = attempt == 0 && locked_exclusive && may_write;
    if (may_write && !exclusive) {
      TERN_ASSIGN_OR_RETURN(exclusive, TryLockExclusive(fd));
    }
    if (!exclusive) TERN_TRY(LockShared(fd));
    // The path must still name the inode we hold: one look by path is also the inode's fresh
    // attributes (size) when it does.
    int rc = (flags & O_NOFOLLOW) ? lstat(path.c_str(), &st) : stat(path.c_str(), &st);
    if (rc != 0 || st.st_dev != core->dev_ || st.st_ino != core->ino_) {
      // Unlinked (a process may recycle a deleted file's backing for a new file: BackingCache) or
      // replaced after our open(2): this open comes after that change, so it starts over.
      Unlock(fd);
      return Status::Error(ESTALE, "file replaced while opening");
    }
    if (st.st_size == 0) {
      if (access == O_RDONLY) return Status::Error(kNotTernFile, "empty file opened read-only");
      if (!exclusive) {  // a creator is formatting it right now; look again
        Unlock(fd);
        continue;
      }
      TERN_TRY(core->Format());
      if (fstat(fd, &st) != 0) return Status::Error(errno, "fstat");
    }
    TERN_TRY(ReadHeaderLocked(*core->backing_, st, path, &header));
    core->shared_name_ = SharedState::NameFor(st, header.nonce);
    if (table != nullptr && table->nonce == header.nonce) core->AdoptKeptTable(*table);
    table.reset();
    if (!may_write) {
      // The shared lock was only a wait for a first opener's recovery: this reader is in nobody's
      // shared state, so a writer coming later must still find the file unopened.
      Unlock(fd);
      TERN_TRY(core->OpenWithoutWriteAccess(st));
      return core;
    }
    if (exclusive) {
      TERN_TRY(core->Recover(true, st));
      TERN_TRY(LockShared(fd));  // downgrade: others may come in now
      return core;
    }
    auto shared = SharedState::Attach(core->shared_name_);
    if (!shared.ok() && shared.status().err() == ENOENT) {
      // The last opener closed and removed it between our lock and here, or a sweep has the name
      // set aside for a moment (shared_state_sweep.cc): start over, and let the sweeper run.
      Unlock(fd);
      if (attempt >= kSpinAttempts) usleep(200);
      continue;
    }
    if (!shared.ok()) return shared.status();
    core->shared_ = std::move(*shared);
    core->alloc_ = std::make_unique<BlockAllocator>(core->shared_.get());
    // The shared block count may only be what the backing file really has. Growth runs fallocate
    // before it publishes the count, so the count is read first: a grower elsewhere between the two
    // looks then only makes the file larger than the count (read the other way round, a live file
    // growing at that moment was refused as damaged).
    uint64_t shared_blocks = core->alloc_->num_blocks();
    test_hooks::between_attach_size_looks.Run();
    if (fstat(fd, &st) != 0) return Status::Error(errno, "fstat");
    if (shared_blocks > kMaxBlocks || shared_blocks * kBlockSize > static_cast<uint64_t>(st.st_size)) {
      TERN_LOG_ERROR("%s: shared state names %llu blocks, the file has %lld bytes", path.c_str(),
                     static_cast<unsigned long long>(shared_blocks), static_cast<long long>(st.st_size));
      return Status::Error(EUCLEAN, "shared state disagrees with the backing file");
    }
    TERN_TRY(core->Recover(false, st));
    return core;
  }
  return Status::Error(EAGAIN, "file kept changing while opening");
}

std::unique_ptr<KeptTable> FileCore::KeepTable() {
  auto kept = std::make_unique<KeptTable>();
  std::lock_guard lock(mu_);
  kept->nonce = meta()->header.nonce;
  kept->applied = applied_.load();
  kept->size = table_.size();
  for (const MapRun& r : table_.Runs()) kept->runs.push_back({r.vblock.value(), r.lblock.value(), r.count, 0});
  kept->chain_first = chain_first_.load();
  for (uint32_t k = kept->chain_first; k < chain_len_.load(); ++k) kept->chain.push_back(chain_.Get(k));
  kept->ckpt_pos = ckpt_pos_.load();
  kept->ckpt_block = ckpt_block_.load();
  kept->ckpt_span = ckpt_span_.load();
  return kept;
}

void FileCore::AdoptKeptTable(const KeptTable& kept) {
  table_.Load(kept.runs.data(), static_cast<uint32_t>(kept.runs.size()), kept.size);
  for (size_t i = 0; i < kept.chain.size(); ++i) chain_.Set(kept.chain_first + static_cast<uint32_t>(i), kept.chain[i]);
  chain_first_.store(kept.chain_first);
  chain_len_.store(kept.chain_first + static_cast<uint32_t>(kept.chain.size()), std::memory_order_release);
  ckpt_pos_.store(kept.ckpt_pos);
  ckpt_span_.store(kept.ckpt_span);
  ckpt_block_.store(kept.ckpt_block);
  applied_.store(kept.applied);
  durable_.store(kept.applied);  // the close that kept it flushed the log up to there
}

Status FileCore::Format() {
  // The meta block goes in with one pwrite before the file grows: a crash leaves either an empty
  // file or a 4 KiB file with a valid header (grown at the next open), never an unmarked container.
  int fd = backing_->fd();
  TERN_TRY(WriteEmptyMeta(fd));
  int rc = pmem::GrowFile(fd, kBlockSize, kFirstBlocks * kBlockSize);
  if (rc != 0) return Status::Error(-rc, "format");
  if (fdatasync(fd) != 0) return Status::Error(errno, "format");
  return Status::Ok();
}

void FileCore::MakeEmptyMeta(pmem::MetaBlock* block) {
  *block = pmem::MetaBlock{};
  block->header.magic = pmem::kMetaMagic;
  block->header.format_version = pmem::kFormatVersion;
  block->header.nonce = NewFormatNonce();
  block->header.checksum = pmem::MetaChecksum(block->header);
}

Status FileCore::WriteEmptyMeta(int fd) {
  pmem::MetaBlock block;
  MakeEmptyMeta(&block);
  if (pwrite(fd, &block, sizeof(block), 0) != static_cast<ssize_t>(sizeof(block))) {
    return Status::Error(errno == 0 ? ENOSPC : errno, "format");
  }
  return Status::Ok();
}

Status FileCore::Recover(bool exclusive, const struct stat& st) {
  auto nblocks = static_cast<uint64_t>(st.st_size) / kBlockSize;
  bool adopted = false;  // the object the last close left at rest (file_core_rest.cc)
  if (exclusive) {
    shared_ = TakeRestingState(st);
    adopted = shared_ != nullptr;
    if (!adopted) {
      // An object this process kept from a file it closed has its pages mapped already.
      std::string dir = shared_name_.substr(0, shared_name_.rfind('/'));
      shared_ = SharedStateSpares::Default().Take(dir, st, nblocks);
    }
    if (shared_ == nullptr) {
      TERN_ASSIGN_OR_RETURN(shared_, SharedState::CreateUnpublished(st, nblocks));
    }
    alloc_ = std::make_unique<BlockAllocator>(shared_.get());
  }
  TERN_TRY(backing_->EnsureMapped(alloc_->num_blocks()));
  // The slot comes before replay: replay runs as an operation, which GC must be able to count.
  bool dirty = false;
  TERN_TRY(AcquireSlot(&dirty));
  {
    OpGuard guard(this);
    TERN_TRY(guard.status());
    {
      std::lock_guard lock(mu_);
      TERN_TRY(RefreshCheckpointLocked());
      TERN_TRY(ReplayLocked());
    }
    if (dirty) TERN_TRY(HandDeadLeftoversToLog({slot_}));  // the slot's last process died
  }
  if (!exclusive) return Status::Ok();
  // Only a file that replayed cleanly is changed: a refused open leaves the bytes as they were.
  if (backing_->writable()) {
    TERN_TRY(ScrubTail());
    uint64_t grown = BackingBlocksFor(nblocks);
    if (grown != nblocks) {  // finish a format or grow that crashed half-way
      int rc = pmem::GrowFile(backing_->fd(), nblocks * kBlockSize, grown * kBlockSize);
      if (rc != 0) return Status::Error(-rc, "grow backing file");
      TERN_TRY(shared_->BackBlocks(shared_->header()->num_blocks.load(), grown));
      shared_->header()->num_blocks.store(grown);
      TERN_TRY(backing_->EnsureMapped(grown));
    }
  }
  if (adopted) return Status::Ok();  // published already, and current
  // The allocator is built from the log when first needed (EnsureAllocatorReady): a reader never
  // needs it. An empty log (a new file, or a recycled backing) is built now, while the object is
  // ours alone (no build lock): it costs next to nothing, and a creator writes next.
  if (applied_.load() == 0) TERN_TRY(BuildAllocator());
  return shared_->Publish(shared_name_);
}

void FileCore::ReserveForWrites() {
  {
    std::lock_guard lock(mu_);
    table_.Reserve(table_.size() / kBlockSize);
    chain_.Reserve(chain_len_.load());
  }
  for (PendingShard& shard : pending_) {
    std::lock_guard lock(shard.mu);
    shard.list.reserve(kPendingFreesRoom / kOpCellsPerSlot);
  }
}

Status FileCore::ScrubTail() {
  // After a power failure, a slot past the first free one may have reached media while an earlier
  // one did not. Such an entry was never acknowledged by fsync (fsync flushes every slot up to the
  // tail), and must not come back to life when new commits fill the gap: zero it, and unlink any
  // later log block. Only the exclusive opener does this, so no writer can race it.
  LogPos tail = applied_.load();
  uint64_t* slots;
  uint64_t first, count;
  uint32_t* link;
  if (tail < pmem::kMetaSlots) {
    slots = meta()->slots;
    first = tail;
    count = pmem::kMetaSlots;
    link = &meta()->header.log_head;
  } else {
    uint64_t k = (tail - pmem::kMetaSlots) / pmem::kLogSlots;
    if (k >= chain_len_.load()) return Status::Ok();  // tail opens an unlinked block: nothing past it
    pmem::LogBlock* b = LogBlockAt(LogicalBlock(chain_.Get(static_cast<uint32_t>(k))));
    slots = b->slots;
    first = (tail - pmem::kMetaSlots) % pmem::kLogSlots;
    count = pmem::kLogSlots;
    link = &b->trailer.next;
  }
  uint64_t dropped = 0;
  for (uint64_t i = first; i < count; ++i) {
    if (slots[i] != 0) {
      pmem::Store64(&slots[i], 0);
      pmem::Flush(&slots[i], sizeof(uint64_t));
      ++dropped;
    }
  }
  bool unlinked = *link != 0;
  if (unlinked) {
    pmem::Store32(link, 0);
    pmem::Flush(link, sizeof(*link));
  }
  if (dropped > 0 || unlinked) {
    pmem::Drain();
    TERN_LOG_WARN("%s: recovery dropped %llu unacknowledged commit entries%s after the log tail",
                  path_.c_str(), static_cast<unsigned long long>(dropped),
                  unlinked ? " and the log blocks linked" : "");
  }
  return Status::Ok();
}

Status FileCore::EnsureAllocatorReady() {
  if (alloc_->ready()) return Status::Ok();
  // A process that may not write the backing file cannot take the build lock; it never allocates.
  if (!backing_->writable()) return Status::Error(EACCES, "block allocator not built, and this process may not build it");
  std::lock_guard build(build_mu_);  // the lock below is this process's: its threads take turns
  TERN_TRY(LockBuild(backing_->fd()));
  Status st = alloc_->ready() ? Status::Ok() : BuildAllocator();
  UnlockBuild(backing_->fd());
  return st;
}

Status FileCore::BuildAllocator() {
  // REQUIRES: the build lock, or an object nobody else sees yet (unpublished, in Recover). Nothing
  // has been allocated since the object was made (allocation waits for the ready state), so the
  // log cannot change meanwhile: what it references is in use, and blocks allocated but never
  // committed before a crash are simply not marked — free again.
  alloc_->BeginBuild();
  OpGuard guard(this);
  TERN_TRY(guard.status());
  TERN_TRY(Refresh().status());
  std::vector<uint64_t> used;
  ArenaReach reach;
  {
    std::lock_guard lock(mu_);
    TERN_TRY(CollectReferenced(&used, &reach));
  }
  // A reused object (shared_state_spares.h) has the pages of its last file's blocks mapped already.
  alloc_->MarkUsedBitmap(used, shared_->resident_blocks());
  // No process has an arena yet: the room after the newest records is free for the next one.
  SharedHeader* h = shared_->header();
  h->arena_tail.store(reach.Token(h->gc_seq.load()));
  alloc_->EndBuild();
  return Status::Ok();
}

int FileCore::PathDescriptor() {
  int fd = path_fd_.load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  int opened = backing_->OpenAgain(O_PATH | O_CLOEXEC);  // no check needed: the same inode
  if (opened < 0) return -1;
  int expected = -1;
  if (path_fd_.compare_exchange_strong(expected, opened)) return opened;
  close(opened);  // another thread's came first
  return expected;
}

FileCore::~FileCore() {
  live_count_.fetch_sub(1, std::memory_order_relaxed);
  if (int fd = path_fd_.load(); fd >= 0) close(fd);
  // The Pool's delayed announcement can no longer reach this file: make it now.
  if (announce_owed_.exchange(false)) AnnounceChange();
  bool flushed = false;
  bool stamped = false;
  RestStamp stamp{};
  if (shared_ != nullptr && slot_ != kNoSlot && backing_->writable()) {
    // Deferred frees wait for durability; closing settles them. As an operation: this process may
    // lag behind GC's floor, and the log blocks it would replay from may be gone. A process that
    // changed nothing only catches up (the rest stamp and the kept table describe the log as is).
    OpGuard guard(this);
    Status st = guard.status();
    if (st.ok()) st = changed_here_.load() ? FlushLog() : Refresh().status();
    if (!st.ok()) TERN_LOG_WARN("%s: at close: %s", path_.c_str(), st.context());
    flushed = st.ok();
    if (flushed && MayRest()) {
      std::lock_guard lock(mu_);
      stamped = StampLocked(&stamp);
    }
  }
  // What this process knows of the log goes with the Backing, if that is kept (BackingCache).
  std::unique_ptr<KeptTable> kept_table;
  if (flushed && BackingCache::Default().WouldKeep(*backing_)) kept_table = KeepTable();
  bool opened = shared_ != nullptr;  // (Keep below may take shared_)
  if (opened) {
    {
      std::lock_guard lock(arena_mu_);
      CloseArena();
    }
    ReleaseSlot();
    Result<bool> last = backing_->writable() ? TryLockExclusive(backing_->fd()) : Result<bool>(false);
    // Nobody else has the file open: a large file's object rests under its name; any other's name
    // goes, and the object is kept for reuse or unmapped.
    if (last.ok() && *last) {
      if (stamped) {
        LeaveAtRest(stamp);
      } else if (!SharedStateSpares::Default().Keep(shared_, shared_name_)) {
        SharedState::Remove(shared_name_);
      }
    }
  }
  alloc_.reset();
  shared_.reset();
  if (opened) {
    BackingCache::Default().Put(dev_, ino_, std::move(backing_), std::move(kept_table));  // drops the open lock; kept or closed
  } else {
    backing_.reset();  // closes the fd, which drops the open lock
  }
}

}  // namespace tern
