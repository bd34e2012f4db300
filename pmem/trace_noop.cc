// The trace mode's twin for normal builds: same functions, nothing recorded. persist.h never calls
// the hooks in these builds; the registration calls cost one empty call at map time.
#include "pmem/trace.h"

namespace tern::pmem::trace {

void RegisterRegion(uint32_t, const void*, uint64_t, uint64_t) {}
void UnregisterRange(const void*, uint64_t) {}
void Start() {}
std::vector<Event> Stop() { return {}; }
bool Recording() { return false; }
void OnStore(const void*, size_t) {}
void OnFlush(const void*, size_t) {}
void OnFence() {}
bool StoreAndRecord(const void*, size_t, const std::function<bool()>& store) { return store(); }

}  // namespace tern::pmem::trace
