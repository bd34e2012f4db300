#include "pmem/trace.h"

#include <cstring>
#include <mutex>

namespace tern::pmem::trace {
namespace {

struct Region {
  uint32_t id;
  uintptr_t base;
  uint64_t length;
  uint64_t region_offset;
};

struct State {
  std::mutex mu;
  bool recording = false;
  std::vector<Region> regions;
  std::vector<Event> events;
};

State& GetState() {
  static State* state = new State();  // never destroyed: hooks may run during exit
  return *state;
}

// REQUIRES: state.mu held.
const Region* Find(State& state, uintptr_t addr) {
  for (const Region& r : state.regions) {
    if (addr >= r.base && addr < r.base + r.length) return &r;
  }
  return nullptr;
}

// REQUIRES: state.mu held.
void RecordLocked(State& state, EventKind kind, const void* addr, size_t len) {
  if (!state.recording) return;
  auto a = reinterpret_cast<uintptr_t>(addr);
  const Region* r = Find(state, a);
  if (r == nullptr) return;
  Event e{kind, r->id, r->region_offset + (a - r->base), len, {}};
  if (kind == EventKind::kStore) {
    e.bytes.resize(len);
    memcpy(e.bytes.data(), addr, len);
  }
  state.events.push_back(std::move(e));
}

void Record(EventKind kind, const void* addr, size_t len) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  RecordLocked(state, kind, addr, len);
}

}  // namespace

void RegisterRegion(uint32_t region, const void* base, uint64_t length, uint64_t region_offset) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  state.regions.push_back({region, reinterpret_cast<uintptr_t>(base), length, region_offset});
}

void UnregisterRange(const void* base, uint64_t length) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  auto b = reinterpret_cast<uintptr_t>(base);
  std::erase_if(state.regions, [&](const Region& r) { return r.base >= b && r.base < b + length; });
}

void Start() {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  state.events.clear();
  state.recording = true;
}

std::vector<Event> Stop() {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  state.recording = false;
  return std::move(state.events);
}

bool Recording() {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  return state.recording;
}

void OnStore(const void* addr, size_t len) { Record(EventKind::kStore, addr, len); }
void OnFlush(const void* addr, size_t len) { Record(EventKind::kFlush, addr, len); }

bool StoreAndRecord(const void* addr, size_t len, const std::function<bool()>& store) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  if (!store()) return false;
  RecordLocked(state, EventKind::kStore, addr, len);
  return true;
}

void OnFence() {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  if (state.recording) state.events.push_back({EventKind::kFence, 0, 0, 0, {}});
}

}  // namespace tern::pmem::trace
