// How the per-process caches (BackingCache, SharedStateSpares) end what they forget when the
// process ends or execs.
#pragma once

namespace tern {

enum class DropMode {
  kRelease,  // unmap and close everything (exec, tests)
  // At exit: only names that would outlive the process are removed; mappings and descriptors go
  // with the process, which the kernel takes down in one go. Unmapping each kept file costs ~30–60
  // µs here (a TLB shootdown under paravirtualisation): more than the work of a short command.
  kProcessExit,
};

}  // namespace tern
