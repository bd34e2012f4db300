// The whole persistence vocabulary of tern. Every flush, fence, non-temporal copy and store to a
// mapped tern file goes through these functions, so that the trace mode (pmem/trace.h) sees every
// persistence step and the crash simulator can rebuild any durable image.
//
// Durability words used in contracts: "NoDrain" functions leave data flushed or in flight but not
// fenced — the caller must call Drain() before relying on durability. Store/Cas functions leave data
// in the CPU cache only: it is durable after Flush() + Drain() of its range.
// None of these can fail. All are thread-safe (they touch only the bytes they are given).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "build_options.h"
#include "pmem/trace.h"

namespace tern::pmem {

// From now on the functions below are PMDK libpmem's (loaded now, once per process): called when a
// file turns out to be on real persistent memory (a MAP_SYNC mapping), where PMDK's reference
// implementation of the platform's flush rules should decide. Until then, and if it cannot be
// loaded (one error line), they are tern's own CLWB/SFENCE/non-temporal copies, correct on any
// x86. TERN_PMEM_LIBPMEM=1 in the environment uses libpmem from the start.
void UseLibpmem();
// "libpmem" or "tern": whose flushes and copies the functions below use now.
const char* BackendName();

// Writes back the cache lines covering [addr, addr+len). Not fenced.
void Flush(const void* addr, size_t len);
// Orders all earlier flushes and non-temporal stores before any later store (sfence).
void Drain();
// Flush + Drain: [addr, addr+len) is durable on return.
void Persist(const void* addr, size_t len);

// Copies len bytes to dst (non-temporal stores for large copies) and flushes them. Not fenced.
void CopyNoDrain(void* dst, const void* src, size_t len);
// CopyNoDrain + Drain: durable on return.
void CopyPersist(void* dst, const void* src, size_t len);
// Copies len bytes of file data out of media (a plain copy): bytes that may change under it, which
// an optimistic reader validates against the log afterwards.
void CopyFromMedia(void* dst, const void* src, size_t len);
// Zeroes [dst, dst+len) and flushes it. Not fenced.
void ZeroNoDrain(void* dst, size_t len);

static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<uint32_t>::is_always_lock_free);

namespace detail {
// The word store and CAS below; in trace builds the store and its record are one step
// (trace::StoreAndRecord says why).
template <typename T>
inline void StoreWord(T* addr, T value) {
  auto store = [&] {
    std::atomic_ref<T>(*addr).store(value, std::memory_order_release);
    return true;
  };
  if constexpr (kBuildOptions.pmem_trace) {
    trace::StoreAndRecord(addr, sizeof(value), store);
  } else {
    store();
  }
}
template <typename T>
inline bool CasWord(T* addr, T& expected, T desired) {
  auto cas = [&] { return std::atomic_ref<T>(*addr).compare_exchange_strong(expected, desired); };
  if constexpr (kBuildOptions.pmem_trace) return trace::StoreAndRecord(addr, sizeof(desired), cas);
  return cas();
}
}  // namespace detail

// An 8- or 4-byte store to media that other threads and processes may read concurrently
// (release). Not flushed.
inline void Store64(uint64_t* addr, uint64_t value) { detail::StoreWord(addr, value); }
inline void Store32(uint32_t* addr, uint32_t value) { detail::StoreWord(addr, value); }

// Compare-and-swap of an 8- or 4-byte word on media (seq_cst: the commit point of tern's log).
// On failure `expected` receives the current value. Not flushed.
inline bool Cas64(uint64_t* addr, uint64_t& expected, uint64_t desired) { return detail::CasWord(addr, expected, desired); }
inline bool Cas32(uint32_t* addr, uint32_t& expected, uint32_t desired) { return detail::CasWord(addr, expected, desired); }

// Loads of media words that concurrent writers may change (acquire; pairs with Store*/Cas*).
inline uint64_t Load64(const uint64_t* addr) {
  return std::atomic_ref<const uint64_t>(*addr).load(std::memory_order_acquire);
}
inline uint32_t Load32(const uint32_t* addr) {
  return std::atomic_ref<const uint32_t>(*addr).load(std::memory_order_acquire);
}

}  // namespace tern::pmem
