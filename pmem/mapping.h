// Mapping and growing a backing file. Low-level calls return 0 or -errno (as libpmem2 does).
//
// Address space is reserved once (PROT_NONE) and file ranges are mapped into it with MAP_FIXED, so a
// block's address never moves while a file stays open: readers and writers hold plain pointers.
// Ranges are pre-faulted on request (first touch of a page costs ~12 µs on this VM).
// Thread-safe as far as the kernel calls are; callers serialise growth of one reservation.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace tern::pmem {

// Reserves `length` bytes of address space aligned to 2 MiB (so huge pages can back it).
int ReserveAddressSpace(uint64_t length, void** out);
// Returns a reservation (and any mappings inside it) to the kernel.
void ReleaseAddressSpace(void* base, uint64_t length);
struct AddressRange {
  uint8_t* base;
  uint64_t length;
};
// ReleaseAddressSpace of many reservations, with one munmap for each run of adjacent ones: each
// munmap flushes the TLBs of every CPU running the process (~50 µs here while another thread runs),
// and reservations made one after the other usually lie side by side. Sorts `ranges`.
void ReleaseAddressSpaces(std::span<AddressRange> ranges);
// Makes [base, base+length) of a reservation clean for reuse: the mappings in it go, and it stays
// reserved, PROT_NONE. Only the part that was mapped needs it: the page-table pages of the rest of
// the reservation stay, and a file mapped there later takes its first touches at about half the
// cost of fresh address space on this VM (12–15 vs 27–31 µs a page with another thread running;
// resetting the whole reservation frees them: 17 µs). False if the kernel refused.
bool ResetAddressRange(uint8_t* base, uint64_t length);

// Maps [offset, offset+length) of fd at `at` (inside a reservation), shared, writable if `writable`.
// Tries MAP_SYNC first (DAX filesystems) and falls back to plain MAP_SHARED where the filesystem
// refuses it (tmpfs). `*is_dax` tells which one took. `trace_region` names the range for trace mode.
// `dev` (the file's st_dev; 0 when unknown): a filesystem that refused MAP_SYNC once is not asked
// again (each refusal is a system call, at every new file's first mapping).
int MapFileRange(void* at, uint64_t length, int fd, uint64_t offset, bool writable, bool populate,
                 uint32_t trace_region, uint64_t dev, bool* is_dax);

// Grows the backing file from `old_length` to `new_length` bytes with fallocate (allocated, reads
// as zero), durably (fdatasync). Only the new range is passed: fallocate walks every page of the
// range it is given.
int GrowFile(int fd, uint64_t old_length, uint64_t new_length);

// Touches every page of [addr, addr+len) for writing without changing a byte (an atomic add of
// zero per page), so that later stores to it take no page fault. For a background thread to pay
// the first-touch cost (~2 µs a page on this VM even after MAP_POPULATE) off the write path.
void TouchForWrite(void* addr, uint64_t len);

// Maps every page of [addr, addr+len) (a file mapping, shared or anonymous memory) in one call
// (MADV_POPULATE_READ/WRITE), so that a following pass over a large range — an opener's checksum of
// a checkpoint, a rebuild of the shared allocator state — takes no page fault per 4 KiB page: one
// batched call costs a fraction of the faults (each ~2–12 µs on this VM). Advisory: where the
// kernel lacks it (before 5.14) the range is simply faulted as it is used. `addr` need not be
// page-aligned. A range within one page is left to its first use: the call would save nothing.
void Prefault(void* addr, uint64_t len, bool for_write);

}  // namespace tern::pmem
