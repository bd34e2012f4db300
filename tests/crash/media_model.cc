#include "tests/crash/media_model.h"

#include <algorithm>
#include <cstring>

namespace tern::crash {

MediaModel::MediaModel(std::vector<uint8_t> initial) : latest_(initial), durable_(std::move(initial)) {
  GrowTo((durable_.size() + kLine - 1) / kLine * kLine);
  for (uint64_t line = 0; line < durable_.size() / kLine; ++line) {
    durable_hash_ += LineHash(line, LineAt(durable_, line));
  }
}

void MediaModel::GrowTo(uint64_t end) {
  end = (end + kLine - 1) / kLine * kLine;
  if (end > latest_.size()) latest_.resize(end, 0);
  if (end > durable_.size()) durable_.resize(end, 0);
}

LineBytes MediaModel::LineAt(const std::vector<uint8_t>& v, uint64_t line) {
  LineBytes out{};
  if ((line + 1) * kLine <= v.size()) memcpy(out.data(), v.data() + line * kLine, kLine);
  return out;
}

uint64_t MediaModel::LineHash(uint64_t line, const LineBytes& bytes) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (line * 0xD6E8FEB86659FD93ull);
  bool zero = true;
  for (uint64_t w = 0; w < kWordsPerLine; ++w) {
    uint64_t v;
    memcpy(&v, bytes.data() + w * kWord, kWord);
    zero = zero && v == 0;
    h ^= v + 0x632BE59BD9B4E019ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  return zero ? 0 : h | 1;  // never 0 for a non-zero line
}

void MediaModel::Store(uint64_t offset, const uint8_t* bytes, uint64_t len) {
  if (len == 0) return;
  GrowTo(offset + len);
  memcpy(latest_.data() + offset, bytes, len);
  for (uint64_t line = offset / kLine; line <= (offset + len - 1) / kLine; ++line) {
    unsettled_.insert(line);
  }
}

void MediaModel::Flush(uint64_t offset, uint64_t len) {
  if (len == 0) return;
  for (uint64_t line = offset / kLine; line <= (offset + len - 1) / kLine; ++line) {
    if (unsettled_.count(line) != 0) flushed_[line] = LineAt(latest_, line);
  }
}

void MediaModel::Fence() {
  for (const auto& [line, bytes] : flushed_) {
    durable_hash_ -= LineHash(line, LineAt(durable_, line));
    memcpy(durable_.data() + line * kLine, bytes.data(), kLine);
    durable_hash_ += LineHash(line, bytes);
    if (memcmp(latest_.data() + line * kLine, bytes.data(), kLine) == 0) unsettled_.erase(line);
  }
  flushed_.clear();
}

const LineBytes* MediaModel::Flushed(uint64_t line) const {
  auto it = flushed_.find(line);
  return it == flushed_.end() ? nullptr : &it->second;
}

}  // namespace tern::crash
