// Pins of direct mappings. A read-only or private mmap of a tern file maps the backing file where
// the file's blocks lie (entry_mmap.cc) and pins those blocks (FileCore::PinBlocks) so that no
// write, truncate or GC reuses them while the mapping shows them. This table remembers each such
// mapping's address range, keeps its FileCore alive, and ends the pin once munmap (or a MAP_FIXED
// mapping over it) has removed every page of it.
//
// Conservative where it cannot follow: a mapping mremap touches keeps its pin for the life of the
// process (space held, never data lost). A forked child inherits the mappings, not the pins: it
// never unpins what the parent pinned (the parent's munmap may then let the child's copy change;
// FileCores the parent's pins held stay open in the child until it exits).
// Thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "lib/file_core.h"

namespace tern::shim {

namespace detail {
extern std::atomic<size_t> g_pinned_mappings;
}  // namespace detail

// True when some mapping holds a pin: munmap and mmap pay one load otherwise.
inline bool AnyPinnedMappings() { return detail::g_pinned_mappings.load(std::memory_order_relaxed) != 0; }

// Takes over the pin of `blocks` of `core` for the mapping [addr, addr + len).
void RememberPinnedMapping(void* addr, size_t len, std::shared_ptr<FileCore> core,
                           std::vector<std::pair<uint32_t, uint32_t>> blocks);
// The kernel removed [addr, addr + len) from the address space: pins of mappings now wholly gone
// end (outside the table's lock).
void NoteUnmapped(const void* addr, size_t len);
// mremap is about to move or resize [addr, addr + len): the pins of mappings it touches are kept
// until exit, since the table can no longer tell when their pages go.
void NoteRemapped(const void* addr, size_t len);
// fork, in the child: starts an empty table (the pins and their claims are the parent's).
void ForgetPinsInChild();

}  // namespace tern::shim
