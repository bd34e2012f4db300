// SharedStateSpares: this process keeps the shared-state objects (shared_state.h) of files whose
// last open anywhere it closed, and reuses them for the next files it opens first.
//
// Why: a first open builds a fresh object (create, size, map) and the last close removes it
// (unlink, unmap). On this kind of machine each fresh page the object's header, slots, op cells,
// bitmap and owner map touch costs a fault and a zero fill (~15–25 µs here), and unmapping it tens of
// µs more, so a program that opens, writes and closes small files (a compiler, a shell script,
// SQLite's journal) paid several hundred µs per file for state that lives for one open. A kept
// object's touched pages stay mapped; reusing it means zeroing what its last file used.
//
// Keep runs at the last close, while the closer holds the file's open lock exclusively (so no
// other process has the object mapped): the object's name is renamed to a spare name in the same
// directory (which takes it away from the file as unlink would) and this process holds an OFD
// lock on it while it keeps it. Take hands one to a first opener, which resets it for its file
// (SharedState::ResetFor) and publishes it by renaming the spare name to the file's. Spares this
// process leaves behind (exit, exec) are unlinked by DropAll; those of a killed process are swept
// by a process that keeps a spare once the minute's sweep is due (SharedState::SweepOrphansIfDue's
// marker), and by `tern gc --spares` (their locks are free).
//
// An object that was mapped when this process forked is never kept: the child may still use it.
// Disabled until Enable. Thread-safe; fork: Pool's handlers call the fork hooks.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lib/drop_mode.h"
#include "lib/shared_state.h"
#include "lib/status.h"

namespace tern {

class SharedStateSpares {
 public:
  static SharedStateSpares& Default();

  void Enable();

  // At the last close: keeps `state`, which is published at `published`, as a spare, and returns
  // true (the name is gone, `state` is empty); false when it did nothing (disabled, full, too big,
  // mapped across a fork, or a step failed), and the caller removes the name itself.
  // REQUIRES: the caller holds the file's open lock exclusively.
  bool Keep(std::unique_ptr<SharedState>& state, const std::string& published);
  // For a first opener: a kept object in `dir`, reset for a file like `like` with `num_blocks`
  // blocks, or nullptr. Publish renames it to the file's name.
  std::unique_ptr<SharedState> Take(const std::string& dir, const struct stat& like, uint64_t num_blocks);

  // Unlinks every spare and forgets it (exit and exec: nothing may outlive the process).
  void DropAll(DropMode mode = DropMode::kRelease);
  // Removes, unmaps and closes every spare, which gives their pages back to the directory: for
  // a growth that found it full. True if there were any. Never waits for the lock, as
  // BackingCache::ReleaseSpares.
  bool ReleaseSpares();

  // Unlinks the spare objects in `dir` whose process is gone (their lock is free); returns how many.
  static Result<uint64_t> SweepOrphans(const std::string& dir);
  // The name prefix of spare objects inside a shared-state directory.
  static constexpr const char* kPrefix = ".tern-spare-state.";

  // fork: the child forgets every spare without touching its name (it is the parent's).
  void LockForFork();
  void UnlockAfterFork();
  void ForgetInChild();

  struct Counts {
    uint64_t spares, kept, reused;
  };
  Counts counts() const;

  // Bounds: objects kept, and the largest file whose object is kept (its bitmap and owner map are
  // zeroed at reuse, and stay resident while kept: 2 bytes + 1 bit a block).
  static constexpr size_t kMaxSpares = 8;
  // A 1 GiB file has more than 2^18 blocks of backing (its log, its checkpoint, the space its
  // overwrites freed): 2^19 keeps such objects, ~1.1 MiB resident each.
  static constexpr uint64_t kMaxBlocks = uint64_t{1} << 19;

 private:
  struct Spare {
    std::string dir;
    std::unique_ptr<SharedState> state;
  };
  void SweepOrphansOnce(const std::string& dir);

  mutable std::mutex mu_;
  bool enabled_ = false;           // guarded by mu_
  std::vector<Spare> spares_;      // guarded by mu_; the newest (warmest) last
  std::vector<std::string> swept_dirs_;  // guarded by mu_
  uint64_t next_ = 0, kept_ = 0, reused_ = 0;  // guarded by mu_
};

}  // namespace tern
