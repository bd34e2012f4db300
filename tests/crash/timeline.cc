#include "tests/crash/timeline.h"

#include <cstring>

#include "lib/checkpoint_format.h"
#include "lib/commit.h"
#include "lib/log_block_format.h"
#include "lib/meta_block_format.h"

namespace tern::crash {
namespace {

using pmem::trace::Event;
using pmem::trace::EventKind;

// DecodeCommit's view of the blocks: the media as the CPU sees it.
class LatestResolver : public BlockResolver {
 public:
  explicit LatestResolver(const std::vector<uint8_t>& bytes) : bytes_(bytes) {}
  const uint8_t* Resolve(LogicalBlock block, uint32_t count) override {
    if ((uint64_t{block.value()} + count) * kBlockSize > bytes_.size()) return nullptr;
    return bytes_.data() + block.ToBytes();
  }
  uint64_t num_blocks() const { return bytes_.size() / kBlockSize; }

 private:
  const std::vector<uint8_t>& bytes_;
};

uint64_t Load(const std::vector<uint8_t>& bytes, uint64_t offset, uint64_t len) {
  uint64_t v = 0;
  if (offset <= bytes.size() && len <= bytes.size() - offset) memcpy(&v, bytes.data() + offset, len);
  return v;
}

}  // namespace

uint64_t Timeline::SlotOffset(uint64_t pos) const {
  if (pos < pmem::kMetaSlots) return offsetof(pmem::MetaBlock, slots) + pos * 8;
  uint64_t k = (pos - pmem::kMetaSlots) / pmem::kLogSlots;
  if (k >= chain_.size()) return UINT64_MAX;
  return uint64_t{chain_[k]} * kBlockSize + (pos - pmem::kMetaSlots) % pmem::kLogSlots * 8;
}

void Timeline::Reset() {
  media_ = std::make_unique<MediaModel>(r_.initial);
  // The log as the setup left it: its chain, and its tail (commits before tracing are durable).
  chain_.clear();
  base_ = 0;
  const std::vector<uint8_t>& img = r_.initial;
  uint64_t link = offsetof(pmem::MetaHeader, log_head);
  while (Load(img, base_ < pmem::kMetaSlots ? offsetof(pmem::MetaBlock, slots) + base_ * 8 : SlotOffset(base_), 8) != 0) {
    ++base_;
    if (base_ == pmem::kMetaSlots + chain_.size() * pmem::kLogSlots) {
      auto next = static_cast<uint32_t>(Load(img, link, 4));
      if (next == 0) break;
      chain_.push_back(next);
      link = uint64_t{next} * kBlockSize + offsetof(pmem::LogBlock, trailer) + offsetof(pmem::LogBlockTrailer, next);
    }
  }
  log_ops_.clear();
  next_op_.assign(w_.threads.size(), 0);
  fsync_start_.assign(w_.threads.size(), 0);
  prefix_ = 0;
  min_prefix_ = 0;
  ordered_ = r_.setup_model;
  prefix_hashes_ = {ordered_.Hash()};
}

std::string Timeline::Walk(const std::function<void(const CrashPoint&)>& fn) {
  Reset();
  for (size_t i = 0; i < r_.events.size(); ++i) {
    const Event& e = r_.events[i];
    if (e.region == kMarkerRegion && e.kind == EventKind::kStore) {
      uint32_t t = MarkerThread(e);
      if (MarkerKind(e) == Marker::kFsyncStart) fsync_start_.at(t) = prefix_;
      if (MarkerKind(e) == Marker::kFsyncDone) min_prefix_ = std::max(min_prefix_, fsync_start_.at(t));
      continue;
    }
    switch (e.kind) {
      case EventKind::kStore: {
        std::string err = OnStore(e);
        if (!err.empty()) return "event " + std::to_string(i) + ": " + err;
        break;
      }
      case EventKind::kFlush:
        media_->Flush(e.offset, e.length);
        break;
      case EventKind::kFence:
        fn(CrashPoint{media_.get(), i, min_prefix_, prefix_});
        media_->Fence();
        break;
    }
  }
  fn(CrashPoint{media_.get(), r_.events.size(), min_prefix_, prefix_});
  return "";
}

std::string Timeline::OnStore(const Event& e) {
  media_->Store(e.offset, e.bytes.data(), e.length);
  uint64_t block = e.offset / kBlockSize;
  uint64_t in_block = e.offset % kBlockSize;
  const std::vector<uint8_t>& now = media_->latest();
  if (e.length == 4) {  // a link: log_head, or `next` of the last log block
    uint64_t link = chain_.empty() ? offsetof(pmem::MetaHeader, log_head)
                                   : uint64_t{chain_.back()} * kBlockSize +
                                         offsetof(pmem::LogBlock, trailer) + offsetof(pmem::LogBlockTrailer, next);
    uint64_t value = Load(now, e.offset, 4);
    if (e.offset == link && value != 0) chain_.push_back(static_cast<uint32_t>(value));
    return "";
  }
  if (e.length != 8 || e.offset % 8 != 0) return "";
  uint64_t value = Load(now, e.offset, 8);
  if (value == 0) return "";
  if (e.offset == offsetof(pmem::MetaHeader, checkpoint)) {
    // A compaction installed a checkpoint: log blocks before its position's block may now be freed
    // and reused (as data, even as a new log block), so stores into them are no longer commits.
    pmem::CheckpointHeader h;
    if (value * kBlockSize + sizeof(h) > now.size()) return "checkpoint pointer past the file";
    memcpy(&h, now.data() + value * kBlockSize, sizeof(h));
    for (uint64_t k = 0; k < h.chain_index && k < chain_.size(); ++k) chain_[k] = 0;
    return "";
  }
  if (block == 0 && in_block >= offsetof(pmem::MetaBlock, slots)) {
    return OnCommit((in_block - offsetof(pmem::MetaBlock, slots)) / 8, value);
  }
  for (size_t k = 0; k < chain_.size(); ++k) {
    if (chain_[k] == block && in_block < offsetof(pmem::LogBlock, trailer)) {
      return OnCommit(pmem::kMetaSlots + k * pmem::kLogSlots + in_block / 8, value);
    }
  }
  return "";
}

std::string Timeline::OnCommit(uint64_t abs_pos, uint64_t entry) {
  if (abs_pos < base_) return "commit into log position " + std::to_string(abs_pos) + ", before the tail";
  uint64_t pos = abs_pos - base_;
  if (log_ops_.count(pos) != 0) return "log position " + std::to_string(pos) + " committed twice";
  const Op* found = nullptr;
  size_t found_thread = 0;
  std::string why;
  for (size_t t = 0; t < w_.threads.size(); ++t) {
    const std::vector<Op>& ops = w_.threads[t];
    size_t& next = next_op_[t];
    while (next < ops.size() && !ops[next].Mutates()) ++next;
    if (next == ops.size()) continue;
    std::string reason;
    if (Matches(ops[next], pos, entry, &reason)) {
      if (found != nullptr) return "commit at log position " + std::to_string(pos) + " matches two ops";
      found = &ops[next];
      found_thread = t;
    } else {
      why += " [thread " + std::to_string(t) + ": " + ops[next].Describe() + ": " + reason + "]";
    }
  }
  if (found == nullptr) {
    return "commit at log position " + std::to_string(pos) + " matches no pending op:" + why;
  }
  ++next_op_[found_thread];
  log_ops_[pos] = found;
  while (log_ops_.count(prefix_) != 0) {
    ordered_.Apply(*log_ops_[prefix_]);
    prefix_hashes_.push_back(ordered_.Hash());
    ++prefix_;
  }
  return "";
}

bool Timeline::Matches(const Op& op, uint64_t pos, uint64_t entry, std::string* why) const {
  LatestResolver resolver(media_->latest());
  auto c = DecodeCommit(entry, resolver.num_blocks(), resolver, /*verify_crc=*/true);
  if (!c.ok()) {
    *why = std::string("entry does not decode: ") + c.status().context();
    return false;
  }
  if (op.kind == OpKind::kTruncate) {
    if (!c->unmap_beyond || c->size != op.offset) {
      *why = "not a truncate to that size";
      return false;
    }
    return true;
  }
  if (c->unmap_beyond) {
    *why = "a truncate";
    return false;
  }
  uint64_t at = op.offset;
  if (op.kind == OpKind::kAppend) {
    if (pos != prefix_) {
      *why = "append committed out of order (multi-thread appends are not supported)";
      return false;
    }
    at = ordered_.content().size();
  }
  // Every virtual block of the op mapped by this entry, and holding the op's bytes.
  uint64_t first = at / kBlockSize, end = (at + op.length + kBlockSize - 1) / kBlockSize;
  std::map<uint64_t, uint64_t> mapped;
  c->ForEachRun([&](const MapRun& r) {
    for (uint32_t i = 0; i < r.count; ++i) {
      mapped[r.vblock.value() + i] = r.lblock == kNoBlock ? 0 : r.lblock.value() + i;
    }
  });
  for (uint64_t v = first; v < end; ++v) {
    auto it = mapped.find(v);
    if (it == mapped.end() || it->second == 0) {
      *why = "virtual block " + std::to_string(v) + " not mapped by the entry";
      return false;
    }
  }
  // A write that starts past the end, beyond the last block, maps that block too: a copy zeroed
  // past the old end (the tail rule, lib/file_core.h). Judged in log order only.
  uint64_t old_size = ordered_.content().size();
  bool gap_block = op.kind == OpKind::kWrite && pos == prefix_ && old_size % kBlockSize != 0 &&
                   old_size / kBlockSize < first && mapped.size() == end - first + 1 &&
                   mapped.begin()->first == old_size / kBlockSize && mapped.begin()->second != 0;
  if (mapped.size() != end - first && !gap_block) {
    *why = "entry maps other blocks too";
    return false;
  }
  const std::vector<uint8_t>& now = media_->latest();
  for (uint64_t b = at; b < at + op.length; ++b) {
    uint64_t l = mapped[b / kBlockSize];
    if (now[l * kBlockSize + b % kBlockSize] != OpByte(op.seed, b)) {
      *why = "byte at file offset " + std::to_string(b) + " is not the op's";
      return false;
    }
  }
  return true;
}

FileModel Timeline::ModelAt(uint64_t j) const {
  FileModel m = r_.setup_model;
  for (uint64_t i = 0; i < j; ++i) m.Apply(*log_ops_.at(i));
  return m;
}

}  // namespace tern::crash
