// A fleet of writer processes for the kill tests (kill_soak_main.cc): each
// process runs a few writer threads on one tern file, and each thread writes
// only self-checking records (tests/record.h) into places of its own — aligned
// 2-block slots, unaligned 3001-byte slots whose blocks it shares with other
// writers, and appends at the shared EOF. Writers publish, in memory shared
// with the test, what they started and what completed, so the test can check
// any snapshot of the file while the survivors keep writing, and tell, after a
// kill, which one operation per dead thread may or may not have landed.
//
// File layout (sparse): aligned slots | hole | unaligned slots | hole |
// appends. The holes are never written, so they must stay holes through every
// compaction.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "lib/file.h"
#include "lib/layout_constants.h"

namespace tern::test {

inline constexpr int kFleetMaxWriters = 8;
inline constexpr uint32_t kFleetSlots = 8;  // per writer and slot kind
inline constexpr uint32_t kAppendPlace =
    2 * kFleetSlots;  // places: aligned, unaligned, append
inline constexpr uint32_t kNoPlace = UINT32_MAX;  // no op in flight
inline constexpr uint64_t kFleetAlignedLen = 2 * kBlockSize;
inline constexpr uint64_t kFleetUnalignedLen = 3001;
inline constexpr uint64_t kFleetHoleLen = 1 << 20;
inline constexpr uint64_t kFleetAlignedEnd =
    uint64_t{kFleetSlots} * kFleetMaxWriters * kFleetAlignedLen;
inline constexpr uint64_t kFleetUnalignedBase =
    kFleetAlignedEnd + kFleetHoleLen + 100;
inline constexpr uint64_t kFleetUnalignedEnd =
    kFleetUnalignedBase +
    uint64_t{kFleetSlots} * kFleetMaxWriters * kFleetUnalignedLen;
inline constexpr uint64_t kFleetHole2 =
    (kFleetUnalignedEnd / kBlockSize + 1) * kBlockSize;
inline constexpr uint64_t kFleetAppendBase = kFleetHole2 + kFleetHoleLen;
// Appends stop (the op becomes an aligned overwrite) once the file is this
// large, so that a long soak does not grow the file, and the check after each
// kill, without bound.
inline constexpr uint64_t kFleetAppendCap = kFleetAppendBase + (4 << 20);

// One writer thread's published progress. The writer stores `place` and
// `started` before an op, and `slot_seq` / `appends`, then `done`, after it
// returns. The test sets `next_start` (and `place` to kNoPlace) before it
// spawns the writer's process.
struct FleetWriter {
  std::atomic<uint64_t> next_start;
  std::atomic<uint64_t> started;
  std::atomic<uint32_t> place;  // of op `started`
  std::atomic<uint32_t> error;  // nonzero: an op failed (the child exits)
  std::atomic<uint64_t> done;
  std::atomic<uint64_t> appends;  // completed appends
  std::atomic<uint64_t>
      slot_seq[2 * kFleetSlots];  // last completed op per slot (0: never)
};

struct FleetShared {
  FleetWriter writers[kFleetMaxWriters];
  std::atomic<uint32_t> threads_per_process;
  // When not 0, each process closes the file and opens it again after this many ops of each of
  // its writers (every thread's File is then its own).
  std::atomic<uint32_t> reopen_every;
};

// Creates the sparse file for a fleet: the size covers the layout up to
// kFleetAppendBase.
Status CreateFleetFile(const std::string& path);

// The child side: opens the file and runs `threads` writers g = process *
// threads + t until killed. Returns (as exit code) only on an error.
int FleetChildMain(const std::string& path, const std::string& shared_path,
                   int process);

// What a check may assume about a writer.
enum class WriterState {
  kRunning,  // may be writing during the check
  kDead,  // killed: its op `started` may or may not have landed; nothing else
          // in flight
  kStopped,  // killed earlier and resolved: nothing in flight
};

// Checks a snapshot of the file against what the writers published: every slot
// holds a whole record of its own writer and place, no older than the writer's
// last completed op there (and, for a dead writer, nothing but that or its op
// in flight); the appends tile [kFleetAppendBase, size) with whole records,
// each writer's in its program order, none missing; the holes read as zeros and
// SEEK_DATA/SEEK_HOLE see them. Returns "" or the first problems found. For a
// kDead writer, also resolves its op in flight: afterwards the writer is as if
// it had completed exactly the ops that landed, and `next_start` is set past
// them.
std::string CheckFleet(File& f, FleetShared* shared, int writers,
                       const WriterState* states);

}  // namespace tern::test

namespace tern::test {

// The compactor process of the GC kill test: compacts the file over and over
// and publishes what each compaction did. `in_compaction` is 1 while a
// Compact() call runs, so the test knows where its kills landed.
struct CompactorShared {
  std::atomic<uint64_t> attempts;
  std::atomic<uint64_t> compactions;  // that wrote a checkpoint
  std::atomic<uint64_t>
      busy;  // EBUSY: another process (a writer's background GC) was at it
  std::atomic<uint32_t> in_compaction;
  std::atomic<uint32_t> error;  // nonzero: a compaction failed (or shrank
                                // nothing); the child exits
};

// The child side: opens the file and compacts until killed. Returns (as exit
// code) only on an error.
int CompactorChildMain(const std::string& path, const std::string& shared_path);

}  // namespace tern::test
