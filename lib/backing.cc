#include "lib/backing.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "pmem/mapping.h"

namespace tern {
namespace {
constexpr uint64_t kPopulateLimit = 32ull << 20;
}  // namespace

int Backing::OpenAgain(int flags) const {
  // No snprintf: its first use faults formatting code into a process.
  char proc[32] = "/proc/self/fd/";
  *std::to_chars(proc + 14, proc + sizeof(proc) - 1, fd()).ptr = '\0';
  return open(proc, flags);
}

Backing::~Backing() {
  for (const Reservation& r : reservations_) pmem::ReleaseAddressSpace(r.base, r.length);
  if (int fd = fd_.load(); fd >= 0) close(fd);
}

void Backing::AdoptReservation(pmem::AddressRange range) {
  std::lock_guard lock(mu_);
  reservations_.push_back(range);
}

void Backing::TakeReservations(std::vector<pmem::AddressRange>* out) {
  std::lock_guard lock(mu_);
  out->insert(out->end(), reservations_.begin(), reservations_.end());
  reservations_.clear();
  view_.store(nullptr, std::memory_order_release);
}

void Backing::CloseDescriptor() {
  int fd = fd_.exchange(-1);
  if (fd < 0) return;
  struct flock everything {};
  everything.l_type = F_UNLCK;
  everything.l_whence = SEEK_SET;  // l_start 0, l_len 0: the whole file
  (void)fcntl(fd, F_OFD_SETLK, &everything);
  close(fd);
}

Status Backing::ReplaceFdInChild(int fd) {
  int old = fd_.exchange(fd);
  close(old);
  auto remap = [&](const View& view) {
    bool dax = false;
    return pmem::MapFileRange(view.base, view.nblocks * kBlockSize, fd, 0, writable_, false, trace_region_, dev_, &dax);
  };
  for (uint32_t i = 0; i < inline_views_used_; ++i) {
    if (int rc = remap(inline_views_[i]); rc != 0) return Status::Error(-rc, "map backing file again after fork");
  }
  for (const auto& view : more_views_) {
    if (int rc = remap(*view); rc != 0) return Status::Error(-rc, "map backing file again after fork");
  }
  return Status::Ok();
}

Backing::View* Backing::NewView(View v) {
  if (inline_views_used_ < kInlineViews) {
    inline_views_[inline_views_used_] = v;
    return &inline_views_[inline_views_used_++];
  }
  more_views_.push_back(std::make_unique<View>(v));
  return more_views_.back().get();
}

bool Backing::ReadThroughKernel(void* dst, uint64_t n, uint64_t at) const {
  auto* out = static_cast<uint8_t*>(dst);
  uint64_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd_.load(), out + done, n - done, static_cast<off_t>(at + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<uint64_t>(r);
  }
  return true;
}

Status Backing::EnsureMapped(uint64_t nblocks) {
  std::lock_guard lock(mu_);
  const View* current = view_.load(std::memory_order_relaxed);
  uint64_t have = current == nullptr ? 0 : current->nblocks;
  if (nblocks <= have) return Status::Ok();
  uint64_t want_bytes = nblocks * kBlockSize;

  // (An adopted reservation is there before anything is mapped.)
  uint8_t* base = current != nullptr ? current->base : reservations_.empty() ? nullptr : reservations_.back().base;
  uint64_t map_from = have * kBlockSize;
  if (reservations_.empty() || want_bytes > reservations_.back().length) {
    // A new, larger reservation; the whole file is mapped into it.
    uint64_t floor = reservations_.empty() ? first_reservation_ : kFirstReservation;
    uint64_t length = std::max(floor, want_bytes * 2);
    void* raw = nullptr;
    int rc = pmem::ReserveAddressSpace(length, &raw);
    if (rc != 0) return Status::Error(-rc, "reserve address space");
    reservations_.push_back({static_cast<uint8_t*>(raw), length});
    base = static_cast<uint8_t*>(raw);
    map_from = 0;
  }
  bool dax = false;
  // Pre-fault growth (a writer is about to touch it); an existing file is faulted as it is used,
  // so opening one costs the same whatever its size.
  bool populate = map_from > 0 && want_bytes - map_from <= kPopulateLimit;
  int rc = pmem::MapFileRange(base + map_from, want_bytes - map_from, fd_, map_from, writable_,
                              populate, trace_region_, dev_, &dax);
  if (rc != 0) return Status::Error(-rc, "map backing file");
  is_dax_ = dax;
  view_.store(NewView(View{base, nblocks}), std::memory_order_release);
  return Status::Ok();
}

}  // namespace tern
