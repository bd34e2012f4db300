#include "pmem/persist.h"

#include <dlfcn.h>
#include <libpmem.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "pmem/log.h"

namespace tern::pmem {
namespace {

#define TERN_STRINGIFY(x) #x
#define TERN_SONAME(major) "libpmem.so." TERN_STRINGIFY(major)
constexpr const char* kLibpmemSoname = TERN_SONAME(PMEM_MAJOR_VERSION);

// libpmem is loaded at the first persist, not with the program: its dependencies (libndctl,
// libdaxctl, libudev, libkmod, libcrypto, libzstd, liblzma) cost every process ~4.6 ms to load on
// this VM (first touches of their pages), and most programs the shim runs only read their files.
struct Libpmem {
  decltype(&pmem_flush) flush = nullptr;
  decltype(&pmem_drain) drain = nullptr;
  decltype(&pmem_memcpy) copy = nullptr;
  decltype(&pmem_memset) set = nullptr;
};

// What libpmem gives, through the kernel instead, if it cannot be loaded (a broken installation):
// msync writes a mapping's range back — the CPU caches too on DAX — and returns when it is durable.
// Much slower, never less safe.
void KernelFlush(const void* addr, size_t len) {
  static const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t first = reinterpret_cast<uintptr_t>(addr) & ~(page - 1);
  uintptr_t end = reinterpret_cast<uintptr_t>(addr) + len;
  (void)msync(reinterpret_cast<void*>(first), end - first, MS_SYNC);
}
void KernelDrain() { std::atomic_thread_fence(std::memory_order_seq_cst); }
void* KernelCopy(void* dst, const void* src, size_t len, unsigned) {
  std::memcpy(dst, src, len);
  KernelFlush(dst, len);
  return dst;
}
void* KernelSet(void* dst, int c, size_t len, unsigned) {
  std::memset(dst, c, len);
  KernelFlush(dst, len);
  return dst;
}

Libpmem Load() {
  const char* name = getenv("TERN_LIBPMEM");  // tests point it elsewhere to exercise the fallback
  if (name == nullptr || name[0] == '\0') name = kLibpmemSoname;
  void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  Libpmem found;
  if (lib != nullptr) {
    found.flush = reinterpret_cast<decltype(&pmem_flush)>(dlsym(lib, "pmem_flush"));
    found.drain = reinterpret_cast<decltype(&pmem_drain)>(dlsym(lib, "pmem_drain"));
    found.copy = reinterpret_cast<decltype(&pmem_memcpy)>(dlsym(lib, "pmem_memcpy"));
    found.set = reinterpret_cast<decltype(&pmem_memset)>(dlsym(lib, "pmem_memset"));
    if (found.flush && found.drain && found.copy && found.set) {
      TERN_LOG_DEBUG("pmem: %s loaded (flush and copy dispatch chosen by libpmem from CPUID)", name);
      return found;
    }
  }
  TERN_LOG_ERROR("pmem: cannot load %s (%s); persisting through msync instead, which is much slower",
                 name, lib == nullptr ? dlerror() : "a pmem_ function is missing");
  return {&KernelFlush, &KernelDrain, &KernelCopy, &KernelSet};
}

const Libpmem& Lib() {
  static const Libpmem lib = Load();
  return lib;
}

}  // namespace

void Init() { (void)Lib(); }

void Flush(const void* addr, size_t len) {
  if (len == 0) return;
  Lib().flush(addr, len);
  if constexpr (kBuildOptions.pmem_trace) trace::OnFlush(addr, len);
}

void Drain() {
  Lib().drain();
  if constexpr (kBuildOptions.pmem_trace) trace::OnFence();
}

void Persist(const void* addr, size_t len) {
  Flush(addr, len);
  Drain();
}

void CopyNoDrain(void* dst, const void* src, size_t len) {
  if (len == 0) return;
  Lib().copy(dst, src, len, PMEM_F_MEM_NODRAIN);
  if constexpr (kBuildOptions.pmem_trace) {
    trace::OnStore(dst, len);
    trace::OnFlush(dst, len);
  }
}

void CopyPersist(void* dst, const void* src, size_t len) {
  CopyNoDrain(dst, src, len);
  Drain();
}

void ZeroNoDrain(void* dst, size_t len) {
  if (len == 0) return;
  Lib().set(dst, 0, len, PMEM_F_MEM_NODRAIN);
  if constexpr (kBuildOptions.pmem_trace) {
    trace::OnStore(dst, len);
    trace::OnFlush(dst, len);
  }
}

}  // namespace tern::pmem
