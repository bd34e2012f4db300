// The mapped backing file of one open tern file in this process: address-space reservations and the
// views into them. A block's address never changes while the file is open: growing maps more of the
// file into the current reservation, or, when that is full, maps the whole file into a larger new
// reservation while the old one stays mapped (both show the same shared pages), so pointers taken
// earlier stay valid until Close.
//
// Thread-safety: BlockAddress is lock-free; EnsureMapped serialises itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "lib/index.h"
#include "lib/small_vector.h"
#include "lib/status.h"
#include "pmem/mapping.h"

namespace tern {

class Backing {
 public:
  // `dev`: the file's st_dev (0 if unknown), so that its filesystem is asked for MAP_SYNC once.
  Backing(int fd, bool writable, uint32_t trace_region, dev_t dev)
      : fd_(fd), writable_(writable), trace_region_(trace_region), dev_(dev) {}
  ~Backing();
  Backing(const Backing&) = delete;
  Backing& operator=(const Backing&) = delete;

  // Maps blocks [0, nblocks) if they are not mapped yet. REQUIRES: the file has at least that size.
  Status EnsureMapped(uint64_t nblocks);
  // Before the first EnsureMapped, for a file opened to be read: its first reservation is small
  // (64 MiB, or twice the file), so the files a reading process opens lie side by side and share
  // page-table pages (each fresh gigabyte of address space costs its first touch ~0.1 ms here). A
  // file that outgrows it is mapped again into a large one, and every page used again after that
  // takes a first touch anew (~5–10 µs each): writers start large.
  void ExpectReadsOnly() { first_reservation_ = kReadersFirstReservation; }
  // Before the first EnsureMapped: `range` (clean and PROT_NONE: pmem::ResetAddressRange) becomes
  // the first reservation instead of fresh address space, which costs more to touch (BackingCache
  // recycles the address space of files it let go). The Backing owns it from here.
  void AdoptReservation(pmem::AddressRange range);
  // The first reservation of a Backing that may be written: what a recycled range must hold.
  static constexpr uint64_t kFirstReservation = 4ull << 30;  // cheap: only PROT_NONE address space

  // Address of a mapped block, or nullptr when the block is past what this process has mapped.
  uint8_t* BlockAddress(LogicalBlock block) const {
    const View* v = view_.load(std::memory_order_acquire);
    if (v == nullptr || block.value() >= v->nblocks) return nullptr;
    return v->base + block.ToBytes();
  }
  uint64_t mapped_blocks() const {
    const View* v = view_.load(std::memory_order_acquire);
    return v == nullptr ? 0 : v->nblocks;
  }
  int fd() const { return fd_; }
  // A new open file description of the backing file's inode, through /proc/self/fd (whatever became
  // of its name: a deleted file is still this file). `flags` as open(2)'s. -1 with errno on failure.
  int OpenAgain(int flags) const;
  // Releases every OFD lock of the descriptor and closes it, keeping the mappings: BackingCache
  // parks the mappings of files it let go, because unmapping costs more than keeping them until
  // the process ends. The mappings keep the open file description alive, and with it any lock
  // still on it, hence the unlock. Nothing may use the Backing afterwards but its destructor.
  void CloseDescriptor();
  // Appends the address-space reservations (and so every mapping) to *out for the caller to
  // release, several Backings' at once (pmem::ReleaseAddressSpaces), and leaves none to the
  // destructor. REQUIRES: nobody uses the Backing's addresses any more.
  void TakeReservations(std::vector<pmem::AddressRange>* out);
  // Copies n bytes at byte offset `at` of the backing file into dst with pread(2). For a large read
  // this is cheaper than a copy out of the mapping when this process has not touched those pages
  // yet: the kernel copies through its own mapping, while every page of ours would take a
  // first-touch fault (~5 µs each on this VM). False on an error or a short read (the caller then
  // copies through the mapping).
  bool ReadThroughKernel(void* dst, uint64_t n, uint64_t at) const;
  // From this length on, ReadThroughKernel is the cheaper way to copy a contiguous piece out: the
  // system call costs ~1 µs, a page of the mapping this process has not touched yet ~5 µs.
  static constexpr uint64_t kKernelCopyMin = 256 * 1024;
  // After fork: swaps in another descriptor of the same file, maps every view from it again (a
  // mapping holds its descriptor's open file description, and with it the parent's open locks,
  // alive), and closes the old one. REQUIRES: the only thread of the process (a fork child).
  Status ReplaceFdInChild(int fd);
  bool writable() const { return writable_; }
  bool is_dax() const { return is_dax_; }

 private:
  struct View {
    uint8_t* base;
    uint64_t nblocks;
  };
  using Reservation = pmem::AddressRange;

  static constexpr uint64_t kReadersFirstReservation = 64ull << 20;

  std::atomic<int> fd_;
  bool writable_;
  uint64_t first_reservation_ = kFirstReservation;  // the first one's floor; set before it is made
  uint32_t trace_region_;
  dev_t dev_;
  bool is_dax_ = false;
  std::mutex mu_;
  // Views are never freed before Close (readers hold them). The first ones live here: a write
  // that grows the file then allocates nothing (it may come from a signal handler, small_vector.h).
  static constexpr uint32_t kInlineViews = 32;
  View* NewView(View v);  // REQUIRES: mu_ held
  SmallVector<Reservation, 4> reservations_;  // guarded by mu_
  View inline_views_[kInlineViews] = {};      // guarded by mu_: [0, inline_views_used_) in use
  uint32_t inline_views_used_ = 0;
  std::vector<std::unique_ptr<View>> more_views_;  // guarded by mu_
  std::atomic<const View*> view_{nullptr};  // release in EnsureMapped; acquire in BlockAddress
};

}  // namespace tern
