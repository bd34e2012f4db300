// stdio over tern files: fopen/fdopen/freopen give fopencookie streams whose I/O goes through the
// shim's routing, and stdin/stdout/stderr are swapped to such streams while fds 0–2 name tern files
// (a shell's `echo x > f`: glibc writes stdout's buffer with an internal write the shim cannot see).
//
// A cookie stream's fileno() is its fd (glibc marks cookie streams -2; nothing in glibc's cookie
// path reads the number, so tern sets it for programs that call fileno()).
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <unordered_set>

#include "pmem/log.h"
#include "shim/common.h"
#include "shim/fd_table.h"
#include "shim/ops.h"
#include "shim/paths.h"
#include "shim/real_libc.h"
#include "shim/shim.h"

namespace tern::shim {
namespace {

// glibc sizes a file stream's buffer by st_blksize (4 KiB on tmpfs and for tern files); a cookie
// stream would get BUFSIZ (8 KiB). The same size keeps read-ahead, and so the fd offset a program
// sees after fread, what it is on the kernel.
constexpr size_t kStreamBuffer = 4096;

struct Cookie {
  int fd;
  int std_index;  // 0–2 for the standard streams' cookies, else -1
  FILE* fp;
  char buffer[kStreamBuffer];
};

FILE* g_orig_std[3];
FILE* g_std_cookie[3];

std::mutex& CookieMu() {
  static auto* mu = new std::mutex();
  return *mu;
}
std::unordered_set<FILE*>& Cookies() {
  static auto* set = new std::unordered_set<FILE*>();
  return *set;
}

ssize_t CookieRead(void* c, char* buf, size_t n) {
  return RoutedRead(static_cast<Cookie*>(c)->fd, buf, n);
}

ssize_t CookieWrite(void* c, const char* buf, size_t n) {
  return WriteAll(static_cast<Cookie*>(c)->fd, buf, n, nullptr);
}

int CookieSeek(void* c, off64_t* pos, int whence) {
  off_t r = RoutedLseek(static_cast<Cookie*>(c)->fd, *pos, whence);
  if (r < 0) return -1;
  *pos = r;
  return 0;
}

int CookieClose(void* c) {
  auto* cookie = static_cast<Cookie*>(c);
  int fd = cookie->fd;
  if (cookie->std_index >= 0) g_std_cookie[cookie->std_index] = nullptr;
  {
    HeldLockGuard lock(CookieMu());
    Cookies().erase(cookie->fp);
  }
  delete cookie;
  return RoutedClose(fd);
}

FILE* MakeCookieFile(int fd, const char* mode, int std_index) {
  auto* cookie = new Cookie{fd, std_index, nullptr, {}};
  cookie_io_functions_t io = {CookieRead, CookieWrite, CookieSeek, CookieClose};
  FILE* fp = fopencookie(cookie, mode, io);
  if (fp == nullptr) {
    delete cookie;
    return nullptr;
  }
  fp->_fileno = fd;
  cookie->fp = fp;
  setvbuf(fp, cookie->buffer, std_index == 2 ? _IONBF : _IOFBF, kStreamBuffer);
  HeldLockGuard lock(CookieMu());
  Cookies().insert(fp);
  return fp;
}

bool IsCookie(FILE* fp) {
  HeldLockGuard lock(CookieMu());
  return Cookies().count(fp) != 0;
}

FILE** StdVar(int i) { return i == 0 ? &stdin : i == 1 ? &stdout : &stderr; }

int StdIndexOf(FILE* fp) {
  for (int i = 0; i < 3; ++i) {
    if (fp == g_orig_std[i] || (fp != nullptr && fp == g_std_cookie[i])) return i;
  }
  return -1;
}

// fopen mode → open flags, and the mode string fopencookie understands.
bool ParseMode(const char* mode, int* flags, std::string* cookie_mode) {
  if (mode == nullptr) return false;
  int f;
  switch (mode[0]) {
    case 'r': f = O_RDONLY; break;
    case 'w': f = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': f = O_WRONLY | O_CREAT | O_APPEND; break;
    default: return false;
  }
  bool plus = false;
  for (const char* p = mode + 1; *p != '\0' && *p != ','; ++p) {
    if (*p == '+') plus = true;
    if (*p == 'x') f |= O_EXCL;
    if (*p == 'e') f |= O_CLOEXEC;
  }
  if (plus) f = (f & ~O_ACCMODE) | O_RDWR;
  *flags = f;
  *cookie_mode = std::string(1, mode[0]) + (plus ? "+" : "");
  return true;
}

FILE* OpenStream(const char* path, const char* mode) {
  int flags;
  std::string cmode;
  if (!ParseMode(mode, &flags, &cmode)) {
    errno = EINVAL;
    return nullptr;
  }
  int fd = ShimOpen(AT_FDCWD, path, flags, 0666);
  if (fd < 0) return nullptr;
  if (!IsTernFd(fd)) {
    FILE* fp = Real().fdopen(fd, mode);
    if (fp == nullptr) {
      int err = errno;
      Real().close(fd);
      errno = err;
    }
    return fp;
  }
  FILE* fp = MakeCookieFile(fd, cmode.c_str(), -1);
  if (fp == nullptr) {
    RoutedClose(fd);
    errno = ENOMEM;
  }
  return fp;
}

}  // namespace

void StdioPrepareFork() { CookieMu().lock(); }
void StdioAfterFork() { CookieMu().unlock(); }

void CaptureStdStreams() {
  g_orig_std[0] = stdin;
  g_orig_std[1] = stdout;
  g_orig_std[2] = stderr;
}

void SyncStdStream(int i) {
  if (i < 0 || i > 2 || g_orig_std[i] == nullptr) return;
  FILE** var = StdVar(i);
  if (IsTernFd(i)) {
    if (g_std_cookie[i] != nullptr && *var == g_std_cookie[i]) return;
    if (*var != g_orig_std[i]) return;  // the program installed a stream of its own: leave it
    if (i > 0) fflush(g_orig_std[i]);
    if (g_std_cookie[i] == nullptr) {
      FILE* fp = MakeCookieFile(i, i == 0 ? "r" : "w", i);
      if (fp == nullptr) {
        TERN_LOG_WARN("shim: no stream for fd %d (errno %d); stdio on it fails with EBADF", i, errno);
        return;
      }
      g_std_cookie[i] = fp;
    }
    *var = g_std_cookie[i];
  } else if (g_std_cookie[i] != nullptr && *var == g_std_cookie[i]) {
    fflush(*var);
    *var = g_orig_std[i];
  }
}

}  // namespace tern::shim

using namespace tern::shim;

extern "C" FILE* TernFopen(const char* path, const char* mode) noexcept TERN_EXPORT_AS("fopen");
extern "C" FILE* TernFopen64(const char* path, const char* mode) noexcept TERN_EXPORT_AS("fopen64");
extern "C" FILE* TernFdopen(int fd, const char* mode) noexcept TERN_EXPORT_AS("fdopen");
extern "C" FILE* TernFreopen(const char* path, const char* mode, FILE* stream) noexcept TERN_EXPORT_AS("freopen");
extern "C" FILE* TernFreopen64(const char* path, const char* mode, FILE* stream) noexcept TERN_EXPORT_AS("freopen64");

FILE* TernFopen(const char* path, const char* mode) noexcept {
  TERN_ENTRY_TRY
  std::string abs;
  if (!ShimReady() || InEngine() || (!TernCandidate(AT_FDCWD, path, &abs) && !NamesTernFd(path))) {
    return Real().fopen(path, mode);
  }
  return OpenStream(path, mode);
  TERN_ENTRY_CATCH(nullptr)
}

FILE* TernFopen64(const char* path, const char* mode) noexcept { return TernFopen(path, mode); }

FILE* TernFdopen(int fd, const char* mode) noexcept {
  TERN_ENTRY_TRY
  DescRef d(fd);
  if (!d) return Real().fdopen(fd, mode);
  int flags;
  std::string cmode;
  if (!ParseMode(mode, &flags, &cmode)) {
    errno = EINVAL;
    return nullptr;
  }
  int want = flags & O_ACCMODE;
  int have = d->access();
  if ((want == O_RDWR && have != O_RDWR) || (want == O_RDONLY && have == O_WRONLY) ||
      (want == O_WRONLY && have == O_RDONLY)) {
    errno = EINVAL;
    return nullptr;
  }
  if (flags & O_APPEND) {  // as glibc's fdopen does with F_SETFL
    DescSlotGuard guard(d.get());
    guard.slot()->flags.fetch_or(O_APPEND);
  }
  return MakeCookieFile(fd, cmode.c_str(), -1);
  TERN_ENTRY_CATCH(nullptr)
}

FILE* TernFreopen(const char* path, const char* mode, FILE* stream) noexcept {
  TERN_ENTRY_TRY
  if (!ShimReady() || InEngine()) return Real().freopen(path, mode, stream);
  std::string abs;
  bool tern_path = path != nullptr && (TernCandidate(AT_FDCWD, path, &abs) || NamesTernFd(path));
  bool cookie = IsCookie(stream);
  if (!tern_path && !cookie) return Real().freopen(path, mode, stream);
  int std_index = StdIndexOf(stream);
  if (std_index >= 0) {
    // The standard streams stay where programs look for them (stdin/stdout/stderr): the new file
    // goes onto fd 0–2 and the variable follows it.
    if (path == nullptr) return stream;
    int flags;
    std::string cmode;
    if (!ParseMode(mode, &flags, &cmode)) {
      errno = EINVAL;
      return nullptr;
    }
    fflush(stream);
    int fd = ShimOpen(AT_FDCWD, path, flags, 0666);
    if (fd < 0) return nullptr;
    if (fd != std_index) {
      if (ShimDup2(fd, std_index) < 0) {
        int err = errno;
        RoutedClose(fd);
        errno = err;
        return nullptr;
      }
      RoutedClose(fd);
    }
    SyncStdStream(std_index);
    return *StdVar(std_index);
  }
  if (path == nullptr) {
    errno = EINVAL;  // changing the mode of a tern stream in place is not supported
    return nullptr;
  }
  fclose(stream);
  return tern_path ? OpenStream(path, mode) : Real().fopen(path, mode);
  TERN_ENTRY_CATCH(nullptr)
}

FILE* TernFreopen64(const char* path, const char* mode, FILE* stream) noexcept {
  return TernFreopen(path, mode, stream);
}
