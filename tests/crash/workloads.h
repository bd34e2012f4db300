// The crash simulator's workloads (DESIGN §9, issue 5): each a deterministic op sequence from a
// seed, sized so that the whole suite checks well over 10,000 crash images in a few minutes.
#pragma once

#include <cstdint>

#include "tests/crash/workload.h"

namespace tern::crash {

// Block-aligned overwrites of 1–8 blocks inside a 128 KiB file; fsync every 4 ops.
Workload AlignedOverwrite(uint64_t seed, int ops = 60);
// Overwrites at any byte offset and length (1–9000 bytes), some running past the end.
Workload UnalignedOverwrite(uint64_t seed, int ops = 60);
// Appends of 1–6000 bytes (some exactly a block), from an empty file.
Workload Append(uint64_t seed, int ops = 80);
// Truncates down (inside blocks, at block edges, to 0) and up, between writes.
Workload TruncateDownUp(uint64_t seed, int ops = 60);
// More commits than the meta block's 504 slots and the first log block's 510: the log grows two
// log blocks; fsync rarely, so many commit entries are in flight at once.
Workload LogOverflow(uint64_t seed, int ops = 1100);
// Extended records: writes of more than 63 blocks, unaligned writes past the end.
Workload Extended(uint64_t seed, int ops = 24);
// Two threads committing concurrently to overlapping ranges (8-byte-aligned, not block-aligned,
// so partial blocks are recopied after conflicts).
Workload TwoThreads(uint64_t seed, int ops_per_thread = 60);

// Log compaction (GC) between small overwrites: two checkpoints, the log past each; fsync rarely.
Workload Compaction(uint64_t seed, int ops = 1800);

// Block-aligned appends only: nothing is ever superseded or freed, so the only thing that orders
// data before its commit is the data fence (the planted-bug test's workload).
Workload AlignedAppend(uint64_t seed, int ops = 40);

}  // namespace tern::crash
