// Entry point: mmap of tern files.
//
// Read-only and private mappings get an anonymous private mapping filled with the file's logical
// bytes at mmap time: a correct view that no later block reuse can disturb (nothing in it belongs to
// the engine). A MAP_SHARED mapping is a snapshot too — fine for files nobody rewrites while they
// are mapped (LevelDB's tables), not coherent with later writes. Shared writable mappings are
// refused with ENODEV and one log line: tern never returns a mapping whose stores would be lost.
#include <sys/mman.h>

#include <algorithm>

#include "pmem/log.h"
#include "pmem/mapping.h"
#include "shim/common.h"
#include "shim/fd_table.h"
#include "shim/ops.h"
#include "shim/real_libc.h"

using namespace tern::shim;

extern "C" {
void* TernMmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) noexcept TERN_EXPORT_AS("mmap");
void* TernMmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) noexcept TERN_EXPORT_AS("mmap64");
}

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

void* MapFailed(int err) {
  errno = err;
  return MAP_FAILED;
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
  off_t size = DescSize(d, fd);
  if (size < 0) return MAP_FAILED;
  constexpr int kKept = MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_NORESERVE | MAP_POPULATE | MAP_LOCKED;
  void* p = Real().mmap(addr, len, PROT_READ | PROT_WRITE, (flags & kKept) | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return p;
  if (off < size) {
    // The copy below writes every page up to the file size, and on this VM the first touch of a
    // fresh 4 KiB page costs ~5 µs even when populated: a 2 MiB LevelDB table cost ~2.5 ms to map.
    // Transparent huge pages (where the system allows them for madvised memory) make that one
    // fault per 2 MiB, populated here in one call (~0.15 ms for 2 MiB); elsewhere the populate
    // alone still beats a fault per page. Both are advice: failure leaves plain faults.
    if (len >= kHugePage) (void)madvise(p, len, MADV_HUGEPAGE);
    tern::pmem::Prefault(p, len, true);
    size_t n = static_cast<size_t>(std::min<off_t>(static_cast<off_t>(len), size - off));
    size_t done = 0;
    while (done < n) {
      ssize_t r = DescPread(d, fd, static_cast<char*>(p) + done, n - done, off + static_cast<off_t>(done));
      if (r <= 0) {
        int err = r < 0 ? errno : EIO;
        munmap(p, len);
        return MapFailed(err);
      }
      done += static_cast<size_t>(r);
    }
  }
  if (prot != (PROT_READ | PROT_WRITE) && mprotect(p, len, prot) != 0) {
    int err = errno;
    munmap(p, len);
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
  return Real().mmap(addr, len, prot, flags, fd, off);
  TERN_ENTRY_CATCH(MAP_FAILED)
}

void* TernMmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) noexcept {
  return TernMmap(addr, len, prot, flags, fd, off);
}
