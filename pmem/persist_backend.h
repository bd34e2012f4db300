// How pmem/persist.h's functions reach the hardware: tern's own instructions (persist.cc), or PMDK
// libpmem's on real persistent memory (libpmem_backend.cc). Internal to pmem/.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tern::pmem {

struct PersistBackend {
  const char* name;
  void (*flush)(const void* addr, size_t len);  // write back the lines covering the range
  void (*drain)();                              // order every earlier flush and non-temporal store
  // Writes len bytes from src (nullptr: zeros) to dst and flushes them; not drained.
  void (*write)(uint8_t* dst, const uint8_t* src, size_t len);
};

// libpmem's, loaded now (with its dependencies: ~1.3 ms on this VM); nullptr, with one error line,
// when it cannot be. TERN_LIBPMEM names another library (tests).
const PersistBackend* LoadLibpmemBackend();

}  // namespace tern::pmem
