// The calling process's pid without a syscall: the open and close paths would otherwise ask the
// kernel for it once each (glibc stopped caching it).
#pragma once

#include <cstdint>

namespace tern {

// The pid of the calling process. A forked child sees its own: a pthread_atfork child handler
// refreshes the cache (installed by the first call; Pool's own child handler refreshes it first
// thing too, before it touches any file). A child made by a raw clone(2) or vfork(2) that runs
// tern code before exec would see its parent's pid; neither is supported by the engine anyway.
uint32_t ThisProcessId();
void RefreshThisProcessId();

}  // namespace tern
