#include "lib/block_table.h"

#include <algorithm>

namespace tern {

void BlockTable::Set(uint32_t v, uint32_t l) {
  uint32_t old = map_.Set(v, l);
  if (old == 0 && l != 0) mapped_count_.fetch_add(1, std::memory_order_relaxed);
  if (old != 0 && l == 0) mapped_count_.fetch_sub(1, std::memory_order_relaxed);
}

void BlockTable::Apply(const Commit& c) {
  if (c.unmap_beyond) {
    auto keep = static_cast<uint32_t>(BlocksFor(c.size));
    for (uint32_t v = keep; v < mapped_end_; ++v) Set(v, 0);
    mapped_end_ = std::min(mapped_end_, keep);
  }
  c.ForEachRun([&](const MapRun& r) {
    for (uint32_t i = 0; i < r.count; ++i) {
      Set(r.vblock.value() + i, r.lblock == kNoBlock ? 0 : r.lblock.value() + i);
    }
    if (r.lblock != kNoBlock) mapped_end_ = std::max(mapped_end_, r.vblock.value() + r.count);
  });
  switch (c.size_rule) {
    case Commit::SizeRule::kExtendToEnd:
      size_.store(std::max(size_.load(), (c.inline_run.vblock + BlockCount{c.inline_run.count}).ToBytes()));
      break;
    case Commit::SizeRule::kKeep:
      break;
    case Commit::SizeRule::kSet:
      size_.store(c.size);
      break;
  }
}

void BlockTable::Load(const std::vector<MapRun>& runs, uint64_t size) {
  uint32_t end = 0;
  for (const MapRun& r : runs) end = std::max(end, r.vblock.value() + r.count);
  std::vector<uint32_t> want(std::max(end, mapped_end_), 0);
  for (const MapRun& r : runs) {
    for (uint32_t i = 0; i < r.count; ++i) want[r.vblock.value() + i] = r.lblock.value() + i;
  }
  for (uint32_t v = 0; v < want.size(); ++v) {
    if (map_.Get(v) != want[v]) Set(v, want[v]);
  }
  mapped_end_ = end;
  size_.store(size);
}

std::vector<MapRun> BlockTable::Runs() const {
  std::vector<MapRun> runs;
  ForEachMapped([&](uint32_t v, uint32_t l) {
    if (!runs.empty()) {
      MapRun& last = runs.back();
      if (last.vblock.value() + last.count == v && last.lblock.value() + last.count == l) {
        ++last.count;
        return;
      }
    }
    runs.push_back({VirtualBlock(v), LogicalBlock(l), 1});
  });
  return runs;
}

}  // namespace tern
