// BackingCache: this process keeps the mapped backing files of tern files it closed, and reuses
// those of files it deleted for the files it creates next.
//
// Why: on this kind of machine the first touch of a page a process has not mapped before costs
// ~2–5 µs (a shadow-page fill under the hypervisor), far more than the copy it serves. A program
// that writes a stream of new files and deletes old ones (LevelDB's tables and logs, a build's
// objects) paid that for every page of every new file, where the kernel copies into its own page
// cache for free. Kept mappings pay it once.
//
// Two kinds of entry, both keyed by (device, inode) and bounded in number and size:
//  - closed: the Backing of a file whose last open in this process closed. Its open lock is
//    released, so the file is as closed to everyone else as before; the mapping only keeps this
//    process's page tables. A later open of the same inode adopts it (FileCore::Open).
//  - spare: a closed file that was then unlinked here while nobody else had it open. Instead of
//    unlinking it, Retire renames it into the spare directory (same filesystem) and keeps its
//    open lock exclusively, so no other process can open or sweep it. A create (PlaceSpare)
//    writes a fresh empty meta block into it (every old block becomes free space: nothing of the
//    old file is reachable through the engine), gives it the new file's mode, group and times,
//    and renames it to the new path without replacing anything there. The new file is then an
//    ordinary empty tern file whose backing already has touched, mapped blocks; the creating open
//    uses that Backing as it is (no second open(2), which a mode like 0444 would refuse).
//  - fresh spare: a process that keeps creating files with no spare waiting (its fourth such
//    create on) has its background thread make new ones ahead of it (MakeFreshSpare): a file
//    in the spare directory grown to one step and mapped, with its pages faulted in this process.
//    A create then costs neither the growth (~0.4 ms of fallocate for 2 MiB here) nor the first
//    touches of a new mapping. At most kFreshSpares wait at a time.
//  - parked: the mapping of a closed entry the bounds pushed out, its descriptor closed. Unmapping
//    a Backing costs ~50–70 µs here while another thread of the process runs (page tables and a
//    TLB shootdown; measured in the background thread of a process creating files), so a process
//    that writes many files keeps their mappings until it ends, which takes them down in one go.
//    Past kMaxParked or kMaxParkedBytes the oldest go in the background, a batch at a time
//    (recycled, below, or unmapped with adjacent reservations in one munmap). A parked
//    mapping is never used again; it only keeps its file's pages allocated if the file is deleted
//    meanwhile (at most kMaxParkedBytes, given back by ReleaseSpares when space runs out).
//  - recycled address space: the reservations of parked mappings past the bounds have their mapped
//    part emptied (pmem::ResetAddressRange) rather than being unmapped, up to kMaxRecycled, and
//    new writable Backings start in them (LendRecycled): address space used before keeps its page
//    tables, and the first touches of a new file there cost about half of those in fresh space.
// Spares this process leaves behind (exit, exec) are unlinked by DropSpares; those of a killed
// process are swept by the next process that makes a spare (their open locks are free).
//
// Disabled until Enable: an engine user that does not ask for it sees plain unlink and create.
// Thread-safe; fork: Pool's handlers call the fork hooks.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "lib/backing.h"
#include "lib/drop_mode.h"
#include "lib/kept_table.h"

namespace tern {

// True when `path` names the inode (dev, ino) now; `follow`: a final symlink is followed (as open
// without O_NOFOLLOW does). Recycling moves inodes between names, so whoever holds an inode and a
// path checks that they still agree.
bool PathNames(const std::string& path, bool follow, dev_t dev, ino_t ino);

// For each file in `dir` whose name `wanted` accepts and whose open lock (open_lock.h) is free —
// taken here exclusively, on the descriptor `fd` that `remove` gets, until it returns — calls
// remove(path, fd, fstat of fd); returns how many it returned true for. A missing directory is 0.
Result<uint64_t> RemoveUnlockedFiles(const std::string& dir, bool (*wanted)(std::string_view name),
                                     const std::function<bool(const std::string& path, int fd, const struct stat& st)>& remove);
// RemoveUnlockedFiles that unlinks each such file: a live process holds the lock of every spare it
// keeps, so these are a dead one's.
Result<uint64_t> UnlinkUnlockedFiles(const std::string& dir, bool (*wanted)(std::string_view name));

class BackingCache {
 public:
  static BackingCache& Default();

  // Turns the cache on. `spare_dir` holds the spares (created when the first one is made); it must
  // be on the same filesystem as the files for a spare to be made or placed. `umask` is the
  // process's file mode creation mask (see SetUmask).
  void Enable(std::string spare_dir, mode_t umask);
  bool enabled() const;
  // The process's umask changed (the shim reports umask(2) calls): created files get its mode.
  void SetUmask(mode_t umask);

  // ~FileCore hands over the Backing of a closed file (open lock already released by the caller
  // or not: Put releases it). Kept when enabled, writable and small enough; else destroyed.
  // `table` (may be null) is kept with it for TakeUnchanged (kept_table.h). Keeping one may push
  // the oldest kept ones out: unmapping a Backing costs ~0.2-0.4 ms here (page tables), so those
  // wait for ReleaseEvicted, which the next open has run off its thread.
  void Put(dev_t dev, ino_t ino, std::unique_ptr<Backing> backing, std::unique_ptr<KeptTable> table = nullptr);
  // True (once until ReleaseEvicted) when Put pushed kReleaseBatch Backings out: the caller has
  // ReleaseEvicted run in the background (Pool job kReleaseBackings). In batches: waking that
  // thread costs the opening thread a futex call at every create otherwise.
  bool WantsRelease();
  // Closes the Backings Put pushed out and parks their mappings (see above), recycling the address
  // space of the oldest parked ones past the bounds.
  void ReleaseEvicted();
  // A new Backing's first reservation from recycled address space (Backing::AdoptReservation),
  // if there is one; none for a read-only open, whose small reservations share page tables.
  void LendRecycled(Backing& backing);
  // True when Put would keep `backing` now (so the caller may prepare a table for it).
  bool WouldKeep(const Backing& backing) const;
  // FileCore::Open: the kept Backing of this inode, or nullptr. Only one that the file is still
  // large enough for (nothing shrinks backing files today; this keeps a mapping from ever reaching
  // past the end) and writable when `writable`.
  std::unique_ptr<Backing> Take(dev_t dev, ino_t ino, uint64_t file_bytes, bool writable);
  // Pool::OpenCore, before any open(2), with the path's stat: the kept Backing of that inode if
  // the inode's ctime is the one it had when kept (no chmod, chown, link count change or write
  // through the kernel since; tern's writers set the times at close, before Put) and the file still
  // covers its mapping; else nullptr, and the entry stays for Take. The caller still checks
  // access (faccessat), and the open checks the header under its lock, as for any open. The table
  // kept with it, if any, goes to *table. *closed_here: whether the inode's Backing was kept at
  // all (this process closed the file lately), changed or not.
  std::unique_ptr<Backing> TakeUnchanged(const struct stat& st, std::unique_ptr<KeptTable>* table, bool* closed_here);

  // unlink(path) for a tern file: when this process keeps its Backing and nobody has it open,
  // moves it aside as a spare and returns true (the name is gone, as unlink promises). False when
  // it did nothing; the caller unlinks.
  bool Retire(const std::string& path);
  // The same, with `st` the path's lstat (the shim's unlink looks once for both of its steps).
  bool Retire(const std::string& path, const struct stat& st);
  // Before an O_CREAT open of `path`: puts a spare there, reformatted empty, with `mode` as a
  // created file's, if the name does not exist, and returns its Backing (open read-write, as a
  // create's open is whatever the mode; `*st` its stat) for FileCore::OpenWith: an ordinary empty
  // tern file, its open lock still held exclusively on that Backing's descriptor (others may open it
  // once the caller's open has downgraded the lock, or dropped the Backing). nullptr when it did
  // nothing (no spare, the name exists, another filesystem).
  std::unique_ptr<Backing> PlaceSpare(const std::string& path, mode_t mode, struct stat* st);

  // After a create that took a spare or found none: true when this process creates files faster
  // than it deletes them (kFreshAfter creates found no spare) and fewer than kFreshLowWater spares
  // wait or are being made; the caller then has MakeFreshSpare run once, in the background, which
  // makes enough for kFreshSpares (they count as being made until then).
  bool WantsFreshSpare();
  // Makes the fresh spares asked for (see above). Errors are logged at debug level: a create then
  // simply grows its own file.
  void MakeFreshSpare();

  // Unlinks every spare and forgets every entry (exit and exec: nothing may outlive the process).
  void DropSpares(DropMode mode = DropMode::kRelease);
  // Deletes, unmaps and closes the spares (deleted files' backings, fresh ones made ahead), which
  // gives their space back to the filesystem: for a growth that found it full. Of the closed files
  // kept for a reopen, those deleted since go too (the rest hold only their own files' space), and
  // every parked mapping (which may hold a deleted file's pages; RecycleParked). True if anything
  // went. Never waits for the cache's lock (the caller holds a file's locks, which
  // fork's handlers take after it): false when the lock is busy.
  bool ReleaseSpares();

  // Where the processes of user `uid` keep spares for files under `root` (absolute and lexically
  // normalised, NormalizePath): beside the root, in `.tern-spares-UID` (on the root's filesystem
  // unless the root is a mount point). Empty when the root is "/".
  static std::string SpareDirFor(const std::string& root, uid_t uid);
  // Unlinks the spares in `spare_dir` whose process is gone (their open lock is free: a live
  // process holds its spares' locks); returns how many. A missing directory is 0 spares.
  static Result<uint64_t> SweepOrphans(const std::string& spare_dir);

  // fork: the child forgets every entry without touching the files (they are the parent's). The
  // parked mappings stay parked: they are the child's own copies, with no descriptor.
  void LockForFork();
  void UnlockAfterFork();
  void ForgetInChild();

  // Counts for tests and `tern stat`-style reports.
  struct Counts {
    uint64_t closed, spares, adopted, retired, placed;
    uint64_t adopted_unchanged = 0;  // of `adopted`: by TakeUnchanged, without an open(2)
    uint64_t fresh = 0;              // fresh spares made
    uint64_t placed_fresh = 0;       // new files made of fresh spares (not in `placed`)
    uint64_t evicted = 0;            // Backings pushed out, waiting for ReleaseEvicted
    uint64_t parked = 0;             // mappings parked (see above)
    uint64_t parked_bytes = 0;
    uint64_t recycled = 0;           // emptied reservations waiting for a new Backing
    uint64_t recycled_lent = 0;      // reservations new Backings started in
  };
  Counts counts() const;

  // Bounds: entries of either kind (each holds a descriptor), their backing bytes (a closed entry
  // whose file somebody else deletes holds that space until it ages out), and the largest backing
  // file kept.
  static constexpr size_t kMaxClosed = 64;
  static constexpr size_t kMaxSpares = 16;
  static constexpr size_t kFreshSpares = 4;
  static constexpr size_t kFreshLowWater = 2;
  static constexpr uint64_t kFreshAfter = 4;
  static constexpr uint64_t kFreshTouchedBytes = 16 << 10;
  static constexpr uint64_t kMaxClosedBytes = 256ull << 20;
  static constexpr uint64_t kMaxSpareBytes = 128ull << 20;
  static constexpr uint64_t kMaxBackingBytes = 32ull << 20;
  // Each parked mapping keeps two VMAs and a page-table page or two (~8 KiB of kernel memory).
  static constexpr size_t kMaxParked = 512;
  static constexpr uint64_t kMaxParkedBytes = 64ull << 20;
  static constexpr size_t kReleaseBatch = 8;
  static constexpr size_t kMaxRecycled = 128;
  // How far below the bounds a trim goes: one batch of unmaps.
  static constexpr size_t kParkedBatch = 128;
  static constexpr uint64_t kParkedBatchBytes = 16ull << 20;

 private:
  struct Entry {
    dev_t dev;
    ino_t ino;
    std::unique_ptr<Backing> backing;
    std::string spare_path;  // spares only
    struct timespec ctime {};  // closed entries: the inode's ctime when kept
    std::unique_ptr<KeptTable> table = nullptr;  // closed entries: what the closer knew of the log
    bool fresh = false;  // spares only: made ahead (MakeFreshSpare), not a deleted file
  };
  // SweepOrphans of this process's spare directory, once per process.
  void SweepOrphansOnce();
  // Whether Put keeps a closed file's Backing (enabled, writable, small enough). REQUIRES: mu_ held.
  bool KeepableLocked(const Backing& backing) const;
  // The closed entry of the inode, or closed_.end(). REQUIRES: mu_ held.
  std::list<Entry>::iterator FindClosedLocked(dev_t dev, ino_t ino);
  Status MakeEmpty(Entry& spare, const std::string& path, mode_t mode, struct stat* made);
  // A fresh spare named `seq` in `dir` with `mode`: grown, mapped, locked, its first pages touched. Its
  // backing is null when that failed (logged at debug level, nothing left behind).
  Entry FreshSpareAt(const std::string& dir, uint64_t seq, mode_t mode);
  // One of the spares MakeFreshSpare was asked for; false when none is left to make.
  bool MakeOneFreshSpare();

  // Moves the oldest entries of `list` past the bounds into *dropped. REQUIRES: mu_ held.
  static void TrimLocked(std::list<Entry>& list, size_t max_entries, uint64_t max_bytes, std::vector<Entry>* dropped);
  // Moves all parked mappings into *out. REQUIRES: mu_ held.
  void TakeParkedLocked(std::vector<std::unique_ptr<Backing>>* out);
  // Lets parked Backings go: empties the mapped part of their reservations for reuse, up to
  // kMaxRecycled, and unmaps the rest in as few munmaps as their addresses allow.
  void RecycleParked(std::vector<std::unique_ptr<Backing>>& parked);

  mutable std::mutex mu_;
  bool enabled_ = false;        // guarded by mu_
  std::string spare_dir_;       // guarded by mu_
  mode_t umask_ = 022;          // guarded by mu_
  mode_t last_created_mode_ = 0600;  // guarded by mu_: of the last create that took a spare
  bool swept_ = false;          // guarded by mu_
  uint64_t next_spare_ = 0;     // guarded by mu_
  std::list<Entry> closed_;     // guarded by mu_; newest first
  std::list<Entry> spares_;     // guarded by mu_; newest first
  uint64_t adopted_ = 0, retired_ = 0, placed_ = 0, adopted_unchanged_ = 0;  // guarded by mu_
  uint64_t unplaced_ = 0;  // guarded by mu_: new files made while no spare waited
  uint64_t fresh_ = 0, placed_fresh_ = 0;  // guarded by mu_: fresh spares made, and placed
  size_t making_ = 0;        // guarded by mu_: fresh spares asked for and not yet made
  bool making_now_ = false;  // guarded by mu_: MakeFreshSpare is between its two locked sections
  uint64_t generation_ = 0;  // guarded by mu_: Enable and DropSpares; a spare made across one is void
  std::condition_variable idle_;  // notified when making_now_ turns false
  std::vector<std::unique_ptr<Backing>> evicted_;  // guarded by mu_: for ReleaseEvicted
  std::deque<std::unique_ptr<Backing>> parked_;    // guarded by mu_: oldest first, descriptors closed
  uint64_t parked_bytes_ = 0;                      // guarded by mu_: their mapped bytes
  std::vector<pmem::AddressRange> recycled_;       // guarded by mu_: clean, PROT_NONE, for LendRecycled
  uint64_t recycled_lent_ = 0;                     // guarded by mu_
  bool release_asked_ = false;                     // guarded by mu_: WantsRelease said so since
  // evicted_.size() >= kReleaseBatch, readable without mu_: every open asks WantsRelease.
  std::atomic<bool> has_evicted_{false};
};

}  // namespace tern
