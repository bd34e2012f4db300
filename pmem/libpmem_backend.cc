#include <dlfcn.h>
#include <libpmem.h>
#include <stdlib.h>

#include "pmem/log.h"
#include "pmem/persist_backend.h"

namespace tern::pmem {
namespace {

#define TERN_STRINGIFY(x) #x
#define TERN_SONAME(major) "libpmem.so." TERN_STRINGIFY(major)
constexpr const char* kLibpmemSoname = TERN_SONAME(PMEM_MAJOR_VERSION);

// Filled once by LoadLibpmemBackend, before the backend is published.
decltype(&pmem_flush) g_flush = nullptr;
decltype(&pmem_drain) g_drain = nullptr;
decltype(&pmem_memcpy) g_copy = nullptr;
decltype(&pmem_memset) g_set = nullptr;

void Write(uint8_t* dst, const uint8_t* src, size_t len) {
  if (src == nullptr) {
    g_set(dst, 0, len, PMEM_F_MEM_NODRAIN);
  } else {
    g_copy(dst, src, len, PMEM_F_MEM_NODRAIN);
  }
}

const PersistBackend kLibpmem = {"libpmem", [](const void* addr, size_t len) { g_flush(addr, len); },
                                 [] { g_drain(); }, &Write};

}  // namespace

const PersistBackend* LoadLibpmemBackend() {
  const char* name = getenv("TERN_LIBPMEM");
  if (name == nullptr || name[0] == '\0') name = kLibpmemSoname;
  void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  if (lib != nullptr) {
    g_flush = reinterpret_cast<decltype(&pmem_flush)>(dlsym(lib, "pmem_flush"));
    g_drain = reinterpret_cast<decltype(&pmem_drain)>(dlsym(lib, "pmem_drain"));
    g_copy = reinterpret_cast<decltype(&pmem_memcpy)>(dlsym(lib, "pmem_memcpy"));
    g_set = reinterpret_cast<decltype(&pmem_memset)>(dlsym(lib, "pmem_memset"));
    if (g_flush != nullptr && g_drain != nullptr && g_copy != nullptr && g_set != nullptr) {
      TERN_LOG_DEBUG("pmem: %s loaded: flushes and copies are libpmem's from now on", name);
      return &kLibpmem;
    }
  }
  TERN_LOG_ERROR("pmem: cannot load %s (%s); tern's own flushes and copies go on", name,
                 lib == nullptr ? dlerror() : "a pmem_ function is missing");
  return nullptr;
}

}  // namespace tern::pmem
