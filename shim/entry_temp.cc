// Entry points: mkstemp and friends. glibc creates the file with an internal open the shim cannot
// see, so a temporary file in a tern directory (sed -i, sort's and editors' temp files, renamed over
// the original afterwards) would be a plain kernel file. Under the root the shim makes the name and
// opens it itself, with the same O_CREAT|O_EXCL|O_RDWR, mode 0600 contract.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <sys/random.h>

#include <string>

#include "shim/common.h"
#include "shim/paths.h"
#include "shim/shim.h"

using namespace tern::shim;

extern "C" {
int TernMkstemp(char* tmpl) noexcept TERN_EXPORT_AS("mkstemp");
int TernMkstemp64(char* tmpl) noexcept TERN_EXPORT_AS("mkstemp64");
int TernMkostemp(char* tmpl, int flags) noexcept TERN_EXPORT_AS("mkostemp");
int TernMkostemp64(char* tmpl, int flags) noexcept TERN_EXPORT_AS("mkostemp64");
int TernMkstemps(char* tmpl, int suffixlen) noexcept TERN_EXPORT_AS("mkstemps");
int TernMkstemps64(char* tmpl, int suffixlen) noexcept TERN_EXPORT_AS("mkstemps64");
int TernMkostemps(char* tmpl, int suffixlen, int flags) noexcept TERN_EXPORT_AS("mkostemps");
int TernMkostemps64(char* tmpl, int suffixlen, int flags) noexcept TERN_EXPORT_AS("mkostemps64");
}

namespace {

using RealMkostemps = int (*)(char*, int, int);

RealMkostemps RealFn() {
  static auto fn = reinterpret_cast<RealMkostemps>(dlsym(RTLD_NEXT, "mkostemps"));
  return fn;
}

int Mkostemps(char* tmpl, int suffixlen, int flags) {
  std::string abs;
  if (!ShimReady() || InEngine() || tmpl == nullptr || !TernCandidate(AT_FDCWD, tmpl, &abs)) {
    RealMkostemps real = RealFn();
    return real != nullptr ? real(tmpl, suffixlen, flags) : Fail(ENOSYS);
  }
  size_t len = strlen(tmpl);
  if (suffixlen < 0 || len < 6 + static_cast<size_t>(suffixlen)) return Fail(EINVAL);
  char* x = tmpl + len - static_cast<size_t>(suffixlen) - 6;
  if (memcmp(x, "XXXXXX", 6) != 0) return Fail(EINVAL);
  static const char kLetters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  int keep = flags & ~(O_ACCMODE | O_CREAT | O_EXCL);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    unsigned char rnd[6];
    if (getrandom(rnd, sizeof(rnd), 0) != static_cast<ssize_t>(sizeof(rnd))) return Fail(EIO);
    for (int i = 0; i < 6; ++i) x[i] = kLetters[rnd[i] % (sizeof(kLetters) - 1)];
    int fd = ShimOpen(AT_FDCWD, tmpl, O_RDWR | O_CREAT | O_EXCL | keep, 0600);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  memcpy(x, "XXXXXX", 6);
  return Fail(EEXIST);
}

}  // namespace

int TernMkstemp(char* tmpl) noexcept {
  TERN_ENTRY_TRY
  return Mkostemps(tmpl, 0, 0);
  TERN_ENTRY_CATCH(-1)
}
int TernMkstemp64(char* tmpl) noexcept { return TernMkstemp(tmpl); }

int TernMkostemp(char* tmpl, int flags) noexcept {
  TERN_ENTRY_TRY
  return Mkostemps(tmpl, 0, flags);
  TERN_ENTRY_CATCH(-1)
}
int TernMkostemp64(char* tmpl, int flags) noexcept { return TernMkostemp(tmpl, flags); }

int TernMkstemps(char* tmpl, int suffixlen) noexcept {
  TERN_ENTRY_TRY
  return Mkostemps(tmpl, suffixlen, 0);
  TERN_ENTRY_CATCH(-1)
}
int TernMkstemps64(char* tmpl, int suffixlen) noexcept { return TernMkstemps(tmpl, suffixlen); }

int TernMkostemps(char* tmpl, int suffixlen, int flags) noexcept {
  TERN_ENTRY_TRY
  return Mkostemps(tmpl, suffixlen, flags);
  TERN_ENTRY_CATCH(-1)
}
int TernMkostemps64(char* tmpl, int suffixlen, int flags) noexcept { return TernMkostemps(tmpl, suffixlen, flags); }
