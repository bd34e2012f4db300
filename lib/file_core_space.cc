// FileCore: space calls — fallocate (allocate, punch hole, zero range) and SEEK_DATA/SEEK_HOLE —
// and the change announcements for inotify watchers.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <vector>

#include "lib/file_core.h"
#include "lib/pool.h"
#include "pmem/persist.h"

namespace tern {

Status FileCore::UnmapBlocks(uint32_t first, uint32_t end) {
  OpGuard guard(this);
  TERN_TRY(guard.status());
  RecordPlace record{};
  bool has_record = false;
  SupersedeClaims superseded(this);
  // OCC loop as in Write: redone at the new tail when another commit got there first.
  for (;;) {
    TERN_ASSIGN_OR_RETURN(LogPos pos, Refresh());
    uint64_t size = table_.size();
    uint32_t stop = std::min(end, static_cast<uint32_t>(BlocksFor(size)));
    if (first >= stop) return Status::Ok();
    if (!has_record) {
      TERN_ASSIGN_OR_RETURN(record, ReserveRecord(static_cast<uint32_t>(pmem::ExtRecordBytes(1))));
      has_record = true;
    }
    const pmem::ExtRun hole[] = {{first, 0, stop - first, 0}};
    uint64_t entry = WriteRecord(record, pmem::ExtKind::kWrite, size, hole);
    TERN_TRY(EnsureSlot(pos));
    pmem::Drain();
    superseded.Update(first, stop);
    if (CommitAt(pos, entry)) {
      SettleRecord(record, true);
      superseded.Committed(pos);
      return Status::Ok();
    }
  }
}

Status FileCore::ZeroRange(uint64_t offset, uint64_t len) {
  // Whole blocks become holes (they read as zeros and free their space); the partial blocks at
  // either edge get zeros written through the ordinary write path.
  uint64_t end = offset + len;
  uint64_t first_full = BlocksFor(offset);
  uint64_t end_full = end / kBlockSize;
  static const std::vector<uint8_t> zeros(kBlockSize, 0);
  uint64_t at = 0;
  if (first_full >= end_full) {  // inside one block, or straddling one boundary without a full block
    for (uint64_t o = offset; o < end;) {
      uint64_t n = std::min(end, (o / kBlockSize + 1) * kBlockSize) - o;
      TERN_TRY(Write(zeros.data(), n, o, false, &at).status());
      o += n;
    }
    return Status::Ok();
  }
  if (offset < first_full * kBlockSize) {
    TERN_TRY(Write(zeros.data(), first_full * kBlockSize - offset, offset, false, &at).status());
  }
  TERN_TRY(UnmapBlocks(static_cast<uint32_t>(first_full), static_cast<uint32_t>(end_full)));
  if (end > end_full * kBlockSize) {
    TERN_TRY(Write(zeros.data(), end - end_full * kBlockSize, end_full * kBlockSize, false, &at).status());
  }
  return Status::Ok();
}

Status FileCore::Fallocate(int mode, uint64_t offset, uint64_t len) {
  if (!writable()) return Status::Error(EBADF, "file not open for writing");
  if (len == 0) return Status::Error(EINVAL, "fallocate of zero bytes");
  if (offset + len > kMaxFileSize || offset + len < offset) return Status::Error(EFBIG, "past the largest tern file");
  TERN_TRY(EnsureAllocatorReady());
  switch (mode) {
    case 0:
    case FALLOC_FL_KEEP_SIZE: {
      // Holes already read as zeros and blocks are allocated at write time, so reserving space only
      // means the size grows (mode 0). tmpfs-backed pools cannot promise space ahead anyway.
      if (mode == FALLOC_FL_KEEP_SIZE) return Status::Ok();
      TERN_ASSIGN_OR_RETURN(uint64_t size, Size());
      if (offset + len <= size) return Status::Ok();
      return Resize(offset + len, /*grow_only=*/true);
    }
    case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: {
      TERN_ASSIGN_OR_RETURN(uint64_t size, Size());
      if (offset >= size) return Status::Ok();
      return ZeroRange(offset, std::min(len, size - offset));
    }
    case FALLOC_FL_ZERO_RANGE:
    case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE: {
      TERN_ASSIGN_OR_RETURN(uint64_t size, Size());
      uint64_t zero_end = (mode & FALLOC_FL_KEEP_SIZE) ? std::min(offset + len, size) : offset + len;
      if (zero_end > size) TERN_TRY(Resize(zero_end, /*grow_only=*/true));
      if (offset >= zero_end) return Status::Ok();
      return ZeroRange(offset, zero_end - offset);
    }
    default:
      return Status::Error(EOPNOTSUPP, "fallocate mode not supported by tern");
  }
}

Result<uint64_t> FileCore::Seek(int whence, uint64_t offset) {
  OpGuard guard(this);
  TERN_TRY(guard.status());
  TERN_TRY(Refresh().status());
  uint64_t size = table_.size();
  if (offset >= size) return Status::Error(ENXIO, "offset at or past the end of the file");
  auto end = static_cast<uint32_t>(BlocksFor(size));
  for (auto v = static_cast<uint32_t>(offset / kBlockSize); v < end; ++v) {
    bool mapped = table_.Get(v) != 0;
    if (whence == SEEK_DATA && mapped) return std::max(offset, uint64_t{v} * kBlockSize);
    if (whence == SEEK_HOLE && !mapped) return std::max(offset, uint64_t{v} * kBlockSize);
  }
  if (whence == SEEK_DATA) return Status::Error(ENXIO, "no data past the offset");
  return size;  // the end of the file counts as a hole
}

namespace {
int64_t CoarseNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

bool FileCore::BackingUnlinked() const {
  struct stat st;
  return fstat(backing_->fd(), &st) == 0 && st.st_nlink == 0;
}

void FileCore::NoteModified() {
  int64_t now = CoarseNowNs();
  int64_t last = announced_ns_.load(std::memory_order_relaxed);
  if (now - last >= kAnnounceIntervalNs && announced_ns_.compare_exchange_strong(last, now)) {
    AnnounceChange();
    return;
  }
  // Inside the window (or another thread announces right now): one delayed announcement covers
  // every change until it runs.
  if (!announce_owed_.load(std::memory_order_relaxed) && !announce_owed_.exchange(true)) {
    auto due = std::chrono::steady_clock::now() + std::chrono::nanoseconds(kAnnounceIntervalNs);
    Pool::Default().ScheduleAt(shared_from_this(), Pool::Job::kAnnounceChange, due);
  }
}

void FileCore::AnnounceOwedChange() {
  if (!announce_owed_.exchange(false)) return;
  announced_ns_.store(CoarseNowNs(), std::memory_order_relaxed);
  AnnounceChange();
}

void FileCore::AnnounceChange() {
  // The kernel reports a successful fallocate as a modification (fsnotify_modify); KEEP_SIZE over
  // the meta block, which is always allocated, changes no byte and no size.
  int saved = errno;
  (void)fallocate(backing_->fd(), FALLOC_FL_KEEP_SIZE, 0, kBlockSize);
  errno = saved;
}

}  // namespace tern
