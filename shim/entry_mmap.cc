// Entry points: mmap of tern files, and munmap/mremap, which end the pins of direct mappings.
//
// Read-only and private mappings show the file's own blocks: each run of whole blocks is mapped
// from the backing file where it lies, with no copy, and pinned (FileCore::PinBlocks, map_pins.h)
// so that no later write, truncate or GC reuses those blocks until munmap. The rest — the last
// partial block (whose bytes past the end an in-place append may change), holes, and whatever
// could not be pinned (a block a writer is superseding right now) — is an anonymous private copy
// of the file's bytes at mmap time. Either way the view is the file as of the mmap: a MAP_SHARED
// mapping is not coherent with later writes (fine for files nobody rewrites while mapped, such as
// LevelDB's tables). TERN_DIRECT_MMAP=0 copies everything. Shared mappings of a descriptor open
// for writing, writable or not, are refused with ENODEV and one log line: tern never returns a
// mapping whose stores would be lost, nor one that would not show what its owner writes.
#include <sys/mman.h>

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>

#include "lib/pool.h"
#include "pmem/log.h"
#include "pmem/mapping.h"
#include "shim/common.h"
#include "shim/env.h"
#include "shim/fd_table.h"
#include "shim/map_pins.h"
#include "shim/ops.h"
#include "shim/real_libc.h"

using namespace tern::shim;
using tern::FileCore;
using tern::kBlockSize;
using tern::Pool;

extern "C" {
void* TernMmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) noexcept TERN_EXPORT_AS("mmap");
void* TernMmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) noexcept TERN_EXPORT_AS("mmap64");
int TernMunmap(void* addr, size_t len) noexcept TERN_EXPORT_AS("munmap");
void* TernMremap(void* old_addr, size_t old_len, size_t new_len, int flags, ...) noexcept TERN_EXPORT_AS("mremap");
}

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

void* MapFailed(int err) {
  errno = err;
  return MAP_FAILED;
}

bool DirectMappingsEnabled() {
  static const bool enabled = [] {
    const char* v = EnvGet("TERN_DIRECT_MMAP");
    return v == nullptr || strcmp(v, "0") != 0;
  }();
  return enabled;
}

// More runs than this and the mapping is copied: each run is a kernel mapping of its own, and the
// kernel allows a process ~65,000 of them.
constexpr size_t kMaxDirectRuns = 64;

// Maps the pinnable whole blocks of file bytes [off, off + n) from the backing file over the
// anonymous mapping at p (which shows the file from `off` on) and pins them. Returns how many
// leading bytes of the mapping now show the file (whole blocks; holes among them are the
// anonymous zeros already there); 0 when nothing was mapped, and then nothing is pinned.
size_t MapDirect(Desc* d, int fd, char* p, size_t len, int prot, int flags, off_t off, size_t n) {
  auto first = static_cast<uint32_t>(off / kBlockSize);
  auto end = static_cast<uint32_t>((static_cast<uint64_t>(off) + n) / kBlockSize);
  if (end <= first) return 0;
  auto file = EnsureFile(d, fd);
  if (!file.ok()) return 0;
  std::shared_ptr<FileCore> core = (*file)->core().shared_from_this();
  auto pinned = [&] {
    EngineScope engine;
    // A file read slotless (a first read-only open, lib/pool.h) pins through an attached open.
    if (!core->attached()) {
      if (auto attached = Pool::Default().AttachedFor(*core); attached.ok()) core = std::move(*attached);
    }
    return core->PinBlocks(first, end);
  }();
  if (!pinned.ok()) {
    TERN_LOG_DEBUG("shim: %s: mmap copies the file (%s)", d->path.c_str(), pinned.status().context());
    return 0;
  }
  auto& blocks = pinned->blocks;
  end = static_cast<uint32_t>(std::min<uint64_t>(end, pinned->size / kBlockSize));
  auto unpin = [&] {
    EngineScope engine;
    core->UnpinBlocks(blocks);
  };
  // Block i continues the run of block i - 1: next in the file and next in the backing file.
  auto continues = [&](size_t i) {
    return blocks[i].first == blocks[i - 1].first + 1 && blocks[i].second == blocks[i - 1].second + 1;
  };
  if (blocks.empty()) return 0;
  size_t runs = 1;
  for (size_t i = 1; i < blocks.size(); ++i) runs += continues(i) ? 0u : 1u;
  if (runs > kMaxDirectRuns) {
    unpin();
    return 0;
  }
  bool is_private = (flags & MAP_TYPE) == MAP_PRIVATE;
  // Populated: the pages are in memory already, and one call maps them all where a fault per
  // 16 pages would cost ~2 µs each here. Not a private writable mapping: that would copy them all.
  bool populate = !is_private || (prot & PROT_WRITE) == 0;
  int kernel_flags = MAP_FIXED | (is_private ? MAP_PRIVATE : MAP_SHARED) | (populate ? MAP_POPULATE : 0) |
                     (flags & (MAP_NORESERVE | MAP_POPULATE | MAP_LOCKED));
  // A shared mapping of a descriptor open for writing could be made writable later (mprotect),
  // and its stores would land in the file's blocks behind the engine: map a read-only one, so
  // the kernel refuses that as it would for a file opened read-only.
  int map_fd = core->backing_fd();
  int own_fd = -1;
  if (!is_private && core->writable()) {
    own_fd = Real().open(ProcFdPath(map_fd).c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (own_fd < 0) {
      unpin();
      return 0;
    }
    map_fd = own_fd;
  }
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i + 1;
    while (j < blocks.size() && continues(j)) ++j;
    char* at = p + uint64_t{blocks[i].first - first} * kBlockSize;
    void* got = Real().mmap(at, (j - i) * kBlockSize, prot, kernel_flags, map_fd,
                            static_cast<off_t>(uint64_t{blocks[i].second} * kBlockSize));
    if (got == MAP_FAILED) {
      int err = errno;
      if (own_fd >= 0) Real().close(own_fd);
      // Put anonymous memory back where the backing file went, for the copy.
      void* back = Real().mmap(p, len, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      unpin();
      TERN_LOG_DEBUG("shim: %s: mmap of the backing file failed (errno %d); the mapping is a copy", d->path.c_str(), err);
      return back == MAP_FAILED ? SIZE_MAX : 0;
    }
    i = j;
  }
  if (own_fd >= 0) Real().close(own_fd);  // the mappings hold the file
  RememberPinnedMapping(p, len, std::move(core), std::move(blocks));
  return uint64_t{end - first} * kBlockSize;
}

void* MapTern(Desc* d, int fd, void* addr, size_t len, int prot, int flags, off_t off) {
  if (len == 0 || (off & 4095) != 0 || off < 0) return MapFailed(EINVAL);
  int type = flags & MAP_TYPE;
  if (type != MAP_SHARED && type != MAP_PRIVATE && type != MAP_SHARED_VALIDATE) return MapFailed(EINVAL);
  if (d->access() == O_WRONLY) return MapFailed(EACCES);
  if (type != MAP_PRIVATE && (prot & PROT_WRITE)) {
    if (d->access() != O_RDWR) return MapFailed(EACCES);
    TERN_LOG_WARN("shim: %s: shared writable mmap of a tern file is not supported (ENODEV)", d->path.c_str());
    return MapFailed(ENODEV);
  }
  if (type != MAP_PRIVATE && d->access() == O_RDWR) {
    // A read-only shared mapping of a descriptor open for writing is how programs read back what
    // they write with write() (SQLite with mmap_size, LMDB): the mapping must follow the writes,
    // and tern's shows the file as at mmap time. Refused as a writable one is: SQLite then reads
    // with read(); a program that cannot do without fails loudly instead of reading stale bytes.
    TERN_LOG_WARN("shim: %s: shared mmap of a tern file open for writing is not supported (ENODEV)", d->path.c_str());
    return MapFailed(ENODEV);
  }
  off_t size = DescSize(d, fd);
  if (size < 0) return MAP_FAILED;
  constexpr int kKept = MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_NORESERVE | MAP_POPULATE | MAP_LOCKED;
  void* p = Real().mmap(addr, len, PROT_READ | PROT_WRITE, (flags & kKept) | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return p;
  if (flags & MAP_FIXED) NoteUnmapped(p, len);  // whatever was there is gone
  if (off < size) {
    size_t n = static_cast<size_t>(std::min<off_t>(static_cast<off_t>(len), size - off));
    // Executable mappings stay copies: the backing filesystem may be mounted noexec.
    size_t direct = DirectMappingsEnabled() && (prot & PROT_EXEC) == 0
                        ? MapDirect(d, fd, static_cast<char*>(p), len, prot, flags, off, n) : 0;
    if (direct == SIZE_MAX) {  // the range could not be made anonymous again
      Real().munmap(p, len);
      return MapFailed(ENOMEM);
    }
    size_t done = std::min(direct, n);
    if (done < n) {
      // The copy below writes every page up to the file size, and on this VM the first touch of
      // a fresh 4 KiB page costs ~5 µs even when populated: a 2 MiB LevelDB table cost ~2.5 ms to
      // map. Transparent huge pages (where the system allows them for madvised memory) make that
      // one fault per 2 MiB, populated here in one call (~0.15 ms for 2 MiB); elsewhere the
      // populate alone still beats a fault per page. Both are advice: failure leaves plain faults.
      char* rest = static_cast<char*>(p) + done;
      size_t rest_len = len - done;
      if (rest_len >= kHugePage) (void)madvise(rest, rest_len, MADV_HUGEPAGE);
      tern::pmem::Prefault(rest, rest_len, true);
    }
    while (done < n) {
      ssize_t r = DescPread(d, fd, static_cast<char*>(p) + done, n - done, off + static_cast<off_t>(done));
      if (r <= 0) {
        int err = r < 0 ? errno : EIO;
        TernMunmap(p, len);
        return MapFailed(err);
      }
      done += static_cast<size_t>(r);
    }
  }
  if (prot != (PROT_READ | PROT_WRITE) && mprotect(p, len, prot) != 0) {
    int err = errno;
    TernMunmap(p, len);
    return MapFailed(err);
  }
  return p;
}

}  // namespace

void* TernMmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) noexcept {
  TERN_ENTRY_TRY
  if ((flags & MAP_ANONYMOUS) == 0 && fd >= 0) {
    DescRef d(fd);
    if (d) return MapTern(d.get(), fd, addr, len, prot, flags, off);
  }
  void* p = Real().mmap(addr, len, prot, flags, fd, off);
  if (p != MAP_FAILED && (flags & MAP_FIXED) && AnyPinnedMappings()) NoteUnmapped(p, len);  // replaced
  return p;
  TERN_ENTRY_CATCH(MAP_FAILED)
}

void* TernMmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) noexcept {
  return TernMmap(addr, len, prot, flags, fd, off);
}

int TernMunmap(void* addr, size_t len) noexcept {
  int r = Real().munmap(addr, len);
  if (r == 0 && AnyPinnedMappings()) {
    TERN_ENTRY_TRY
    NoteUnmapped(addr, len);
    TERN_ENTRY_CATCH(0)
  }
  return r;
}

void* TernMremap(void* old_addr, size_t old_len, size_t new_len, int flags, ...) noexcept {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  if (AnyPinnedMappings()) {
    TERN_ENTRY_TRY
    NoteRemapped(old_addr, old_len);
    TERN_ENTRY_CATCH(MAP_FAILED)
  }
  void* r = Real().mremap(old_addr, old_len, new_len, flags, new_addr);
  if (r != MAP_FAILED && (flags & MREMAP_FIXED) && AnyPinnedMappings()) {
    TERN_ENTRY_TRY
    NoteUnmapped(new_addr, new_len);  // what was there is gone
    TERN_ENTRY_CATCH(r)
  }
  return r;
}
