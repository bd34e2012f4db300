// Trace mode of pmem/: when the build option TERN_PMEM_TRACE is on, every store, flush and fence
// that pmem/ performs inside a registered region is recorded, with the bytes stored, so that the
// crash simulator (tests/crash/) can rebuild every image a power failure could leave. When the option
// is off, pmem/trace_noop.cc provides the same functions as empty bodies and persist.h never calls
// them (`if constexpr`), so the hot path pays nothing.
//
// Thread-safe: events from all threads go into one sequence under a mutex, in the order they were
// recorded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace tern::pmem::trace {

enum class EventKind : uint8_t { kStore, kFlush, kFence };

struct Event {
  EventKind kind;
  uint32_t region;              // id from RegisterRegion; unused for kFence
  uint64_t offset;              // byte offset within the region
  uint64_t length;
  std::vector<uint8_t> bytes;   // kStore: the bytes as stored
};

// Announces a mapped range [base, base+length) under `region` id (e.g. one per backing file, with
// the file offset of `base` as `region_offset`). Stores outside registered regions are ignored.
void RegisterRegion(uint32_t region, const void* base, uint64_t length, uint64_t region_offset);
void UnregisterRange(const void* base, uint64_t length);

// Starts recording (clears earlier events); Stop() returns what was recorded.
void Start();
std::vector<Event> Stop();
bool Recording();

// Hooks called by persist.h / persist.cc.
void OnStore(const void* addr, size_t len);
void OnFlush(const void* addr, size_t len);
void OnFence();
// Runs `store` (an atomic store or CAS of [addr, addr+len) that other threads act on) and, when it
// returns true, records the store, both under the trace's lock. A thread that sees the new word and
// then records something it caused (a flush of the word's line, a store into a block the word
// frees) waits for that lock, so its events come after the store, as they happened. Recorded
// after an unlocked store, a commit could land in the sequence after another thread's flush of
// it, and the crash simulator would call an fsync-acknowledged commit lost.
bool StoreAndRecord(const void* addr, size_t len, const std::function<bool()>& store);

}  // namespace tern::pmem::trace
