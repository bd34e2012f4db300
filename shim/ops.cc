#include "shim/ops.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <vector>

#include "lib/info.h"
#include "lib/pool.h"
#include "pmem/log.h"
#include "shim/paths.h"
#include "shim/real_libc.h"
#include "shim/shim.h"

namespace tern::shim {
namespace {

// stat of a tern file nobody here has open reads its log with pread, as `tern info` does
// (lib/info.h), when its backing file is at most this large: opening it would run the open and
// close protocols (the open lock, the shared state's publication and removal: ~40 µs, a dozen
// system calls) where this is an open, an fstat, a pread or a few, and a close. A larger file's
// log and table are what the engine's checkpoint and lazy table are for: it is opened. So is a file
// whose log runs on past a few log blocks (thousands of entries, each replayed: the engine keeps a
// closed file's table for its next open, and compaction shortens the log).
constexpr off_t kPeekMaxBackingBytes = off_t{8} << 20;
constexpr uint32_t kPeekMaxLogBlocks = 4;

// The logical size and blocks of the tern file at `abs` into *st, which the kernel's stat of that
// name filled: true when it read them (the name still names that inode, and its log reads whole;
// a log that reads as damaged may be one that a writer elsewhere compacted meanwhile, so the
// caller then asks the engine).
bool PeekLogicalStat(const std::string& abs, bool follow, struct stat* st) {
  const RealLibc& real = Real();
  int flags = O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW);
  // O_NOATIME: the kernel's stat reads nothing. Only the owner (or CAP_FOWNER) may ask for it.
  int fd = real.openat(AT_FDCWD, abs.c_str(), flags | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = real.openat(AT_FDCWD, abs.c_str(), flags);
  if (fd < 0) return false;
  // Open for a moment only: left where the kernel put it (moving it would cost two system calls),
  // but marked, so that the program's close or dup2 of that number leaves it alone meanwhile.
  MarkInternalFd(fd);
  auto info = InspectOpenFile(fd, abs, kPeekMaxLogBlocks);
  UnmarkInternalFd(fd);
  real.close(fd);
  if (!info.ok() || info->dev != st->st_dev || info->ino != st->st_ino || !info->header_problem.empty() ||
      info->damage.has_value() || info->walk_cut) {
    return false;
  }
  st->st_size = static_cast<off_t>(info->size);
  st->st_blocks = static_cast<blkcnt_t>(info->data_blocks() * (kBlockSize / 512));
  st->st_blksize = kBlockSize;
  return true;
}

// Copy emulation moves at most this much per call; callers loop, as they must with the kernel.
constexpr size_t kCopyChunk = size_t{1} << 20;
constexpr size_t kCopyPerCall = size_t{64} << 20;

bool CanRead(Desc* d) { return d->access() != O_WRONLY; }
bool CanWrite(Desc* d) { return d->access() != O_RDONLY; }

// Engine calls run inside an EngineScope so whatever libc they reach goes to the kernel.
template <typename Fn>
auto Engine(Fn&& fn) {
  EngineScope engine;
  return fn();
}

ssize_t SyncIfAsked(Desc* d, File* f, ssize_t n, int rwf) {
  if ((d->flags() & O_DSYNC) == 0 && (rwf & (RWF_DSYNC | RWF_SYNC)) == 0) return n;
  Status s = Engine([&] { return f->Fsync(); });
  return s.ok() ? n : FailWith(s);
}

// After a change through d: mtime is due (TouchIfDirty), and inotify watchers hear of it.
void Written(Desc* d, File* f) {
  d->dirty.store(true, std::memory_order_relaxed);
  Engine([&] { f->NoteModified(); });
}

// Writes at the shared offset (or at EOF for O_APPEND / RWF_APPEND) and advances it.
// REQUIRES: the slot lock held.
ssize_t WriteLocked(Desc* d, File* f, const void* buf, size_t n, bool append, uint64_t off) {
  if (append) {
    auto at = Engine([&] { return f->Append(buf, n); });
    if (!at.ok()) return FailWith(at.status());
    d->Slot()->offset.store(*at + n);
  } else {
    auto r = Engine([&] { return f->Pwrite(buf, n, off); });
    if (!r.ok()) return FailWith(r.status());
    d->Slot()->offset.store(off + *r);
  }
  Written(d, f);
  return static_cast<ssize_t>(n);
}

size_t IovTotal(const struct iovec* iov, int iovcnt, bool* ok) {
  size_t total = 0;
  *ok = iovcnt >= 0 && iovcnt <= IOV_MAX;
  for (int i = 0; *ok && i < iovcnt; ++i) {
    if (iov[i].iov_len > static_cast<size_t>(std::numeric_limits<ssize_t>::max()) - total) *ok = false;
    total += iov[i].iov_len;
  }
  return total;
}


}  // namespace

ssize_t DescRead(Desc* d, int fd, void* buf, size_t n) {
  if (!CanRead(d)) return Fail(EBADF);
  auto f = EnsureFile(d, fd);
  if (!f.ok()) return FailWith(f.status());
  n = std::min(n, kMaxRw);
  DescSlotGuard guard(d);
  uint64_t off = d->Slot()->offset.load();
  auto r = Engine([&] { return (*f)->Pread(buf, n, off); });
  if (!r.ok()) return FailWith(r.status());
  d->Slot()->offset.store(off + *r);
  return static_cast<ssize_t>(*r);
}

ssize_t DescPread(Desc* d, int fd, void* buf, size_t n, off_t off) {
  if (!CanRead(d)) return Fail(EBADF);
  if (off < 0) return Fail(EINVAL);
  auto f = EnsureFile(d, fd);
  if (!f.ok()) return FailWith(f.status());
  n = std::min(n, kMaxRw);
  auto r = Engine([&] { return (*f)->Pread(buf, n, static_cast<uint64_t>(off)); });
  if (!r.ok()) return FailWith(r.status());
  return static_cast<ssize_t>(*r);
}

ssize_t DescWrite(Desc* d, int fd, const void* buf, size_t n) {
  if (!CanWrite(d)) return Fail(EBADF);
  auto f = EnsureFile(d, fd);
  if (!f.ok()) return FailWith(f.status());
  n = std::min(n, kMaxRw);
  if (n == 0) return 0;
  ssize_t r;
  {
    DescSlotGuard guard(d);
    bool append = (d->flags() & O_APPEND) != 0;
    r = WriteLocked(d, *f, buf, n, append, d->Slot()->offset.load());
  }
  return r < 0 ? r : SyncIfAsked(d, *f, r, 0);
}

ssize_t DescPwrite(Desc* d, int fd, const void* buf, size_t n, off_t off) {
  if (!CanWrite(d)) return Fail(EBADF);
  if (off < 0) return Fail(EINVAL);
  auto f = EnsureFile(d, fd);
  if (!f.ok()) return FailWith(f.status());
  n = std::min(n, kMaxRw);
  if (n == 0) return 0;
  // Linux appends a pwrite on an O_APPEND descriptor at EOF, whatever the offset (pwrite(2) BUGS).
  if (d->flags() & O_APPEND) {
    auto at = Engine([&] { return (*f)->Append(buf, n); });
    if (!at.ok()) return FailWith(at.status());
  } else {
    auto r = Engine([&] { return (*f)->Pwrite(buf, n, static_cast<uint64_t>(off)); });
    if (!r.ok()) return FailWith(r.status());
  }
  Written(d, *f);
  return SyncIfAsked(d, *f, static_cast<ssize_t>(n), 0);
}

ssize_t DescReadv(Desc* d, int fd, const struct iovec* iov, int iovcnt, off_t off) {
  bool ok;
  size_t total = std::min(IovTotal(iov, iovcnt, &ok), kMaxRw);
  if (!ok) return Fail(EINVAL);
  if (iovcnt == 1) {
    return off < 0 ? DescRead(d, fd, iov[0].iov_base, iov[0].iov_len)
                   : DescPread(d, fd, iov[0].iov_base, iov[0].iov_len, off);
  }
  std::unique_ptr<char[]> buf(new char[total == 0 ? 1 : total]);
  ssize_t n = off < 0 ? DescRead(d, fd, buf.get(), total) : DescPread(d, fd, buf.get(), total, off);
  if (n <= 0) return n;
  size_t done = 0;
  for (int i = 0; i < iovcnt && done < static_cast<size_t>(n); ++i) {
    size_t c = std::min(iov[i].iov_len, static_cast<size_t>(n) - done);
    memcpy(iov[i].iov_base, buf.get() + done, c);
    done += c;
  }
  return n;
}

ssize_t DescWritev(Desc* d, int fd, const struct iovec* iov, int iovcnt, off_t off, int rwf) {
  bool ok;
  size_t total = std::min(IovTotal(iov, iovcnt, &ok), kMaxRw);
  if (!ok) return Fail(EINVAL);
  if (!CanWrite(d)) return Fail(EBADF);
  auto f = EnsureFile(d, fd);
  if (!f.ok()) return FailWith(f.status());
  if (total == 0) return 0;
  const void* data = iov[0].iov_base;
  std::unique_ptr<char[]> gathered;
  if (iovcnt > 1 && iov[0].iov_len < total) {
    gathered.reset(new char[total]);
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < total; ++i) {
      size_t c = std::min(iov[i].iov_len, total - done);
      memcpy(gathered.get() + done, iov[i].iov_base, c);
      done += c;
    }
    data = gathered.get();
  }
  bool append = (d->flags() & O_APPEND) != 0 || (rwf & RWF_APPEND) != 0;
  ssize_t r;
  if (off < 0) {
    DescSlotGuard guard(d);
    r = WriteLocked(d, *f, data, total, append, d->Slot()->offset.load());
  } else if (append) {
    auto at = Engine([&] { return (*f)->Append(data, total); });
    r = at.ok() ? static_cast<ssize_t>(total) : FailWith(at.status());
    if (at.ok()) Written(d, *f);
  } else {
    auto w = Engine([&] { return (*f)->Pwrite(data, total, static_cast<uint64_t>(off)); });
    r = w.ok() ? static_cast<ssize_t>(*w) : FailWith(w.status());
    if (w.ok()) Written(d, *f);
  }
  return r < 0 ? r : SyncIfAsked(d, *f, r, rwf);
}

off_t DescSize(Desc* d, int fd) {
  auto f = EnsureFile(d, fd);
  if (!f.ok()) return FailWith(f.status());
  auto size = Engine([&] { return (*f)->Size(); });
  if (!size.ok()) return FailWith(size.status());
  return static_cast<off_t>(*size);
}

off_t DescLseek(Desc* d, int fd, off_t off, int whence) {
  if (whence == SEEK_SET) {
    if (off < 0) return Fail(EINVAL);
    DescSlotGuard guard(d);  // not in the middle of a read or write on the same description
    guard.slot()->offset.store(static_cast<uint64_t>(off));
    return off;
  }
  if (whence == SEEK_CUR && off == 0) return static_cast<off_t>(d->Slot()->offset.load());
  off_t base = 0;
  if (whence == SEEK_END || whence == SEEK_DATA || whence == SEEK_HOLE) {
    base = DescSize(d, fd);
    if (base < 0) return -1;
  } else if (whence != SEEK_CUR) {
    return Fail(EINVAL);
  }
  DescSlotGuard guard(d);
  OfdSlot* slot = guard.slot();
  if (whence == SEEK_DATA || whence == SEEK_HOLE) {
    // Holes are unmapped blocks; the end of the file counts as a hole.
    if (off < 0 || off >= base) return Fail(ENXIO);
    auto f = EnsureFile(d, fd);
    if (!f.ok()) return FailWith(f.status());
    auto at = (*f)->Seek(whence, static_cast<uint64_t>(off));
    if (!at.ok()) return FailWith(at.status());
    slot->offset.store(*at);
    return static_cast<off_t>(*at);
  }
  if (whence == SEEK_CUR) base = static_cast<off_t>(slot->offset.load());
  off_t result;
  if (__builtin_add_overflow(base, off, &result)) return Fail(EOVERFLOW);
  if (result < 0) return Fail(EINVAL);
  slot->offset.store(static_cast<uint64_t>(result));
  return result;
}

void TouchIfDirty(Desc* d, int fd) {
  if (!d->dirty.exchange(false, std::memory_order_relaxed)) return;
  int saved = errno;
  Real().utimensat(AT_FDCWD, ProcFdPath(fd).c_str(), nullptr, 0);
  errno = saved;
}

int DescFstat(Desc* d, int fd, struct stat* st) {
  if (st == nullptr) return Fail(EFAULT);
  auto f = EnsureFile(d, fd);
  if (!f.ok()) return FailWith(f.status());
  TouchIfDirty(d, fd);
  Status s = Engine([&] { return (*f)->Stat(st); });
  return s.ok() ? 0 : FailWith(s);
}

int DescTruncate(Desc* d, int fd, off_t len) {
  if (len < 0) return Fail(EINVAL);
  if (!CanWrite(d)) return Fail(EINVAL);
  auto f = EnsureFile(d, fd);
  if (!f.ok()) return FailWith(f.status());
  Status s = Engine([&] { return (*f)->Truncate(static_cast<uint64_t>(len)); });
  if (!s.ok()) return FailWith(s);
  Written(d, *f);
  return 0;
}

int DescFsync(Desc* d, int fd) {
  auto f = EnsureFile(d, fd);
  if (!f.ok()) return FailWith(f.status());
  Status s = Engine([&] { return (*f)->Fsync(); });
  return s.ok() ? 0 : FailWith(s);
}

int FsyncWrittenTernFiles() {
  int result = 0;
  int first_errno = 0;
  ForEachTernFd([&](int fd, Desc* d) {
    if (CanWrite(d) && DescFsync(d, fd) != 0 && result == 0) {
      result = -1;
      first_errno = errno;
    }
  });
  if (result != 0) errno = first_errno;
  return result;
}

int DescFallocate(Desc* d, int fd, int mode, off_t off, off_t len) {
  if (off < 0 || len <= 0) return Fail(EINVAL);
  if (!CanWrite(d)) return Fail(EBADF);
  uint64_t end;
  if (__builtin_add_overflow(static_cast<uint64_t>(off), static_cast<uint64_t>(len), &end)) return Fail(EFBIG);
  auto f = EnsureFile(d, fd);
  if (!f.ok()) return FailWith(f.status());
  off_t size_now = DescSize(d, fd);
  if (size_now < 0) return -1;
  auto size = static_cast<uint64_t>(size_now);
  bool keep_size = (mode & FALLOC_FL_KEEP_SIZE) != 0;
  int op = mode & ~FALLOC_FL_KEEP_SIZE;
  if (op == FALLOC_FL_PUNCH_HOLE && !keep_size) return Fail(EOPNOTSUPP);  // as the kernel
  if (op == FALLOC_FL_PUNCH_HOLE || op == FALLOC_FL_ZERO_RANGE) {
    // The engine unmaps whole blocks (they read as zeros and free their space) and zeroes the
    // partial blocks at the edges; it also grows the size for ZERO_RANGE without KEEP_SIZE.
    Status st = (*f)->Fallocate(mode, static_cast<uint64_t>(off), static_cast<uint64_t>(len));
    if (!st.ok()) return FailWith(st);
    Written(d, *f);
    return 0;
  }
  if (op != 0) return Fail(EOPNOTSUPP);
  // Copy-on-write cannot reserve space for later overwrites, so mode 0 means the size only (as on
  // other copy-on-write filesystems); KEEP_SIZE alone changes nothing.
  if (!keep_size && end > size) return DescTruncate(d, fd, static_cast<off_t>(end));
  return 0;
}

ssize_t RoutedRead(int fd, void* buf, size_t n) {
  DescRef d(fd);
  return d ? DescRead(d.get(), fd, buf, n) : Real().read(fd, buf, n);
}

ssize_t RoutedWrite(int fd, const void* buf, size_t n) {
  DescRef d(fd);
  return d ? DescWrite(d.get(), fd, buf, n) : Real().write(fd, buf, n);
}

ssize_t RoutedPread(int fd, void* buf, size_t n, off_t off) {
  DescRef d(fd);
  return d ? DescPread(d.get(), fd, buf, n, off) : Real().pread(fd, buf, n, off);
}

ssize_t RoutedPwrite(int fd, const void* buf, size_t n, off_t off) {
  DescRef d(fd);
  return d ? DescPwrite(d.get(), fd, buf, n, off) : Real().pwrite(fd, buf, n, off);
}

off_t RoutedLseek(int fd, off_t off, int whence) {
  DescRef d(fd);
  return d ? DescLseek(d.get(), fd, off, whence) : Real().lseek(fd, off, whence);
}

ssize_t WriteAll(int fd, const char* buf, size_t n, off_t* off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = off != nullptr ? RoutedPwrite(fd, buf + done, n - done, *off)
                               : RoutedWrite(fd, buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return done > 0 ? static_cast<ssize_t>(done) : -1;
    done += static_cast<size_t>(r);
    if (off != nullptr) *off += r;
  }
  return static_cast<ssize_t>(done);
}

ssize_t CopyThrough(int in, off_t* off_in, int out, off_t* off_out, size_t len) {
  len = std::min(len, kCopyPerCall);
  std::unique_ptr<char[]> buf(new char[std::min(len, kCopyChunk) + 1]);
  size_t total = 0;
  while (total < len) {
    size_t want = std::min(len - total, kCopyChunk);
    ssize_t got = off_in != nullptr ? RoutedPread(in, buf.get(), want, *off_in) : RoutedRead(in, buf.get(), want);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return total > 0 ? static_cast<ssize_t>(total) : -1;
    if (got == 0) break;
    ssize_t put = WriteAll(out, buf.get(), static_cast<size_t>(got), off_out);
    if (put < 0) {
      if (off_in == nullptr) RoutedLseek(in, -got, SEEK_CUR);  // give back what was not written
      return total > 0 ? static_cast<ssize_t>(total) : -1;
    }
    if (off_in != nullptr) *off_in += put;
    total += static_cast<size_t>(put);
    if (put < got) {
      if (off_in == nullptr) RoutedLseek(in, put - got, SEEK_CUR);
      break;
    }
  }
  return static_cast<ssize_t>(total);
}

void PatchPathStat(int dirfd, const char* path, bool follow, struct stat* st) {
  if (!ShapedLikeTernFile(*st)) return;
  std::string abs;
  if (!TernCandidate(dirfd, path, &abs)) {
    // /dev/stdin or /dev/fd/N of a tern fd: the kernel described the backing file it follows to.
    char resolved[PATH_MAX];
    if (!follow || !NamesTernFd(path) || realpath(path, resolved) == nullptr || !TernCandidate(AT_FDCWD, resolved, &abs)) {
      return;
    }
  }
  int saved = errno;
  EngineScope engine;
  if (st->st_size <= kPeekMaxBackingBytes && !Pool::Default().IsOpenHere(st->st_dev, st->st_ino) &&
      PeekLogicalStat(abs, follow, st)) {
    errno = saved;
    return;
  }
  auto f = File::Open(abs, O_RDONLY | (follow ? 0 : O_NOFOLLOW));
  struct stat logical;
  if (f.ok() && (*f)->Stat(&logical).ok() && logical.st_ino == st->st_ino) {
    st->st_size = logical.st_size;
    st->st_blocks = logical.st_blocks;
    st->st_blksize = logical.st_blksize;
  }
  errno = saved;
}

}  // namespace tern::shim
