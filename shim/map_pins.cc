#include "shim/map_pins.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "lib/process_id.h"
#include "pmem/log.h"
#include "shim/common.h"

namespace tern::shim {
namespace detail {
std::atomic<size_t> g_pinned_mappings{0};
}  // namespace detail

namespace {

struct Pin {
  std::shared_ptr<FileCore> core;
  std::vector<std::pair<uint32_t, uint32_t>> blocks;
  pid_t pinned_by = 0;
  size_t ranges = 0;  // pieces of its mapping still in the address space
};

struct Range {
  uintptr_t end;
  std::shared_ptr<Pin> pin;
};

struct PinTable {
  std::mutex mu;
  // Pieces of pinned mappings still mapped, by start: disjoint, as the address space is.
  std::map<uintptr_t, Range> live;       // guarded by mu
  std::vector<std::shared_ptr<Pin>> kept;  // guarded by mu; remapped: held until exit
};

// Never destroyed: a mapping may be unmapped by another library's destructor after ours ran.
// Replaced (the old one leaked) in a forked child.
std::atomic<PinTable*> g_table{nullptr};

PinTable& Table() {
  PinTable* t = g_table.load(std::memory_order_acquire);
  if (t != nullptr) return *t;
  auto* fresh = new PinTable;
  if (g_table.compare_exchange_strong(t, fresh)) return *fresh;
  delete fresh;
  return *t;
}

void Unpin(Pin& pin) {
  EngineScope engine;
  // Pins are the pinning process's claims (a forked child forgets the table; this is the second
  // line of defence).
  if (pin.pinned_by == static_cast<pid_t>(ThisProcessId())) pin.core->UnpinBlocks(pin.blocks);
  pin.core.reset();  // the last reference closes the file
}

// Takes the pieces overlapping [lo, hi) out of `live`, putting back what lies outside it, and
// returns the pins that lost a piece, each once. REQUIRES: t.mu held.
std::vector<std::shared_ptr<Pin>> CutOut(PinTable& t, uintptr_t lo, uintptr_t hi) {
  std::vector<std::shared_ptr<Pin>> touched;
  auto it = t.live.upper_bound(lo);
  if (it != t.live.begin() && std::prev(it)->second.end > lo) --it;
  while (it != t.live.end() && it->first < hi) {
    uintptr_t start = it->first;
    Range r = std::move(it->second);
    it = t.live.erase(it);
    --r.pin->ranges;
    if (start < lo) {
      t.live.emplace(start, Range{lo, r.pin});
      ++r.pin->ranges;
    }
    if (r.end > hi) {
      it = t.live.emplace(hi, Range{r.end, r.pin}).first;
      ++r.pin->ranges;
      ++it;
    }
    touched.push_back(std::move(r.pin));
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  return touched;
}

}  // namespace

void ForgetPinsInChild() {
  // The parent's table (its lock possibly held by a parent thread at the fork) and the parent's
  // claims stay behind: the child's munmaps of what it inherited end nothing.
  g_table.store(nullptr);
  detail::g_pinned_mappings.store(0);
}

void RememberPinnedMapping(void* addr, size_t len, std::shared_ptr<FileCore> core,
                           std::vector<std::pair<uint32_t, uint32_t>> blocks) {
  auto lo = reinterpret_cast<uintptr_t>(addr);
  auto pin = std::make_shared<Pin>(Pin{std::move(core), std::move(blocks), static_cast<pid_t>(ThisProcessId()), 1});
  PinTable& t = Table();
  HeldLockGuard lock(t.mu);
  t.live.emplace(lo, Range{lo + len, std::move(pin)});
  detail::g_pinned_mappings.fetch_add(1);
}

void NoteUnmapped(const void* addr, size_t len) {
  if (!AnyPinnedMappings() || len == 0) return;
  auto lo = reinterpret_cast<uintptr_t>(addr);
  std::vector<std::shared_ptr<Pin>> gone;
  {
    PinTable& t = Table();
    HeldLockGuard lock(t.mu);
    for (auto& pin : CutOut(t, lo, lo + len)) {
      if (pin->ranges == 0) {
        detail::g_pinned_mappings.fetch_sub(1);
        gone.push_back(std::move(pin));
      }
    }
  }
  for (auto& pin : gone) Unpin(*pin);
}

void NoteRemapped(const void* addr, size_t len) {
  if (!AnyPinnedMappings()) return;
  auto lo = reinterpret_cast<uintptr_t>(addr);
  PinTable& t = Table();
  HeldLockGuard lock(t.mu);
  for (auto& pin : CutOut(t, lo, lo + std::max<size_t>(len, 1))) {
    if (pin->ranges == 0) {
      detail::g_pinned_mappings.fetch_sub(1);
    } else {
      // Its other pieces may still be unmapped later; the pin must outlive them all the same.
      pin->pinned_by = 0;
    }
    TERN_LOG_INFO("shim: mremap of a mapping of a tern file: its blocks stay pinned until exit");
    t.kept.push_back(std::move(pin));
  }
}

}  // namespace tern::shim
