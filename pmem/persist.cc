#include "pmem/persist.h"

#include <libpmem.h>

#include <cstring>

#include "pmem/log.h"

namespace tern::pmem {

void Init() {
  static const bool once = [] {
    // libpmem picks clwb/clflushopt/clflush and the non-temporal memcpy variant at load time from
    // CPUID; PMEM_NO_CLWB / PMEM_NO_MOVNT force weaker paths for tests.
    TERN_LOG_DEBUG("pmem: libpmem %s ready (flush dispatch chosen by libpmem at load)",
             pmem_check_version(PMEM_MAJOR_VERSION, PMEM_MINOR_VERSION) == nullptr ? "ok" : "MISMATCH");
    return true;
  }();
  (void)once;
}

void Flush(const void* addr, size_t len) {
  if (len == 0) return;
  pmem_flush(addr, len);
  if constexpr (kBuildOptions.pmem_trace) trace::OnFlush(addr, len);
}

void Drain() {
  pmem_drain();
  if constexpr (kBuildOptions.pmem_trace) trace::OnFence();
}

void Persist(const void* addr, size_t len) {
  Flush(addr, len);
  Drain();
}

void CopyNoDrain(void* dst, const void* src, size_t len) {
  if (len == 0) return;
  pmem_memcpy(dst, src, len, PMEM_F_MEM_NODRAIN);
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
  pmem_memset(dst, 0, len, PMEM_F_MEM_NODRAIN);
  if constexpr (kBuildOptions.pmem_trace) {
    trace::OnStore(dst, len);
    trace::OnFlush(dst, len);
  }
}

}  // namespace tern::pmem
