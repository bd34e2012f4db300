#include "pmem/mapping.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mman.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "pmem/log.h"
#include "pmem/persist.h"
#include "pmem/trace.h"

namespace tern::pmem {
namespace {
constexpr uint64_t kAlign = 2ull << 20;
}

int ReserveAddressSpace(uint64_t length, void** out) {
  constexpr int kFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  // Recent kernels align large anonymous mappings to 2 MiB themselves; then no trimming is needed
  // (each munmap costs tens of microseconds on a paravirtualised guest).
  void* raw = mmap(nullptr, length, PROT_NONE, kFlags, -1, 0);
  if (raw == MAP_FAILED) return -errno;
  if (reinterpret_cast<uintptr_t>(raw) % kAlign == 0) {
    *out = raw;
    return 0;
  }
  munmap(raw, length);
  // Otherwise over-reserve by one alignment unit, then trim.
  uint64_t padded = length + kAlign;
  raw = mmap(nullptr, padded, PROT_NONE, kFlags, -1, 0);
  if (raw == MAP_FAILED) return -errno;
  auto start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + kAlign - 1) & ~(kAlign - 1);
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t end = start + padded;
  if (end > aligned + length) munmap(reinterpret_cast<void*>(aligned + length), end - aligned - length);
  *out = reinterpret_cast<void*>(aligned);
  return 0;
}

void ReleaseAddressSpace(void* base, uint64_t length) {
  trace::UnregisterRange(base, length);
  munmap(base, length);
}

void ReleaseAddressSpaces(std::span<AddressRange> ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const AddressRange& a, const AddressRange& b) { return a.base < b.base; });
  for (size_t i = 0; i < ranges.size();) {
    uint8_t* start = ranges[i].base;
    uint8_t* end = start;
    for (; i < ranges.size() && ranges[i].base == end; ++i) {
      trace::UnregisterRange(ranges[i].base, ranges[i].length);
      end += ranges[i].length;
    }
    munmap(start, static_cast<size_t>(end - start));
  }
}

bool ResetAddressRange(uint8_t* base, uint64_t length) {
  if (length == 0) return true;
  trace::UnregisterRange(base, length);
  constexpr int kFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED;
  return mmap(base, length, PROT_NONE, kFlags, -1, 0) != MAP_FAILED;
}

namespace {

// Filesystems (st_dev + 1; 0 is a free entry) that refused MAP_SYNC. A few: a process's files
// live on one or two.
std::atomic<uint64_t> g_no_map_sync[4];

bool RefusedMapSync(uint64_t dev) {
  if (dev == 0) return false;
  for (const auto& entry : g_no_map_sync) {
    if (entry.load(std::memory_order_relaxed) == dev + 1) return true;
  }
  return false;
}

void NoteRefusedMapSync(uint64_t dev) {
  if (dev == 0) return;
  for (auto& entry : g_no_map_sync) {
    uint64_t free = 0;
    if (entry.compare_exchange_strong(free, dev + 1) || free == dev + 1) return;
  }
}

}  // namespace

int MapFileRange(void* at, uint64_t length, int fd, uint64_t offset, bool writable, bool populate,
                 uint32_t trace_region, uint64_t dev, bool* is_dax) {
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  int fill = populate ? MAP_POPULATE : 0;
  void* p = MAP_FAILED;
  *is_dax = false;
  bool try_sync = writable && !RefusedMapSync(dev);
  if (try_sync) {
    p = mmap(at, length, prot, MAP_SHARED_VALIDATE | MAP_SYNC | MAP_FIXED | fill, fd,
             static_cast<off_t>(offset));
    if (p != MAP_FAILED) {
      *is_dax = true;
      UseLibpmem();  // real persistent memory: PMDK's flush rules from now on
    }
  }
  if (p == MAP_FAILED) {
    if (try_sync && errno != EOPNOTSUPP && errno != EINVAL) return -errno;
    p = mmap(at, length, prot, MAP_SHARED | MAP_FIXED | fill, fd, static_cast<off_t>(offset));
    if (p == MAP_FAILED) return -errno;
    if (try_sync) NoteRefusedMapSync(dev);  // (the same mapping without MAP_SYNC was fine)
  }
  trace::RegisterRegion(trace_region, p, length, offset);
  return 0;
}

int GrowFile(int fd, uint64_t old_length, uint64_t new_length) {
  if (new_length <= old_length) return 0;
  if (fallocate(fd, 0, static_cast<off_t>(old_length), static_cast<off_t>(new_length - old_length)) != 0) {
    return -errno;
  }
  // The new size must survive a power failure before blocks in it are committed (on a DAX
  // filesystem the size is filesystem metadata; on tmpfs this costs a syscall).
  if (fdatasync(fd) != 0) return -errno;
  return 0;
}

void TouchForWrite(void* addr, uint64_t len) {
  constexpr uint64_t kPage = 4096;
  auto* p = static_cast<uint8_t*>(addr);
  for (uint64_t off = 0; off < len; off += kPage) {
    // A locked add of zero is a write access that cannot lose a concurrent store to the same word.
    __atomic_fetch_add(reinterpret_cast<uint64_t*>(p + off), 0, __ATOMIC_RELAXED);
  }
}

void Prefault(void* addr, uint64_t len, bool for_write) {
  constexpr uintptr_t kPage = 4096;
  if (len == 0) return;
  uintptr_t start = reinterpret_cast<uintptr_t>(addr) & ~(kPage - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(addr) + len + kPage - 1) & ~(kPage - 1);
  if (end - start <= kPage) return;  // one page: the touch that follows costs the same fault, without a call
#ifdef MADV_POPULATE_READ
  // Failure only means the pages fault one by one later, as without this call.
  (void)madvise(reinterpret_cast<void*>(start), end - start, for_write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
#else
  (void)start;
  (void)end;
  (void)for_write;
#endif
}

}  // namespace tern::pmem
