#include "tests/concurrency/history.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "lib/layout_constants.h"

namespace tern::test {
namespace {

constexpr uint32_t kSalt = 0x5EED1234u;

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

uint64_t StampWord(uint32_t id, uint64_t offset) {
  return (uint64_t{id} << 32) | (static_cast<uint32_t>(offset / 8) ^ kSalt);
}

std::pair<uint64_t, uint64_t> RandomWriteRange(std::mt19937_64& rng, int thread,
                                               uint64_t shared_bytes,
                                               uint64_t private_bytes) {
  bool shared = rng() % 4 != 0;
  uint64_t base =
      shared ? 0 : shared_bytes + static_cast<uint64_t>(thread) * private_bytes;
  uint64_t span = shared ? shared_bytes : private_bytes;
  if (rng() % 2 == 0) {
    uint64_t blocks = span / kBlockSize;
    uint64_t b = rng() % blocks;
    uint64_t n = std::min<uint64_t>(1 + rng() % 3, blocks - b);
    return {base + b * kBlockSize, n * kBlockSize};
  }
  uint64_t words = span / 8;
  uint64_t w = rng() % words;
  uint64_t n =
      std::min<uint64_t>(1 + rng() % (rng() % 2 == 0 ? 64 : 1536), words - w);
  return {base + w * 8, n * 8};
}

History::History(std::vector<WriteRec> writes, int threads,
                 uint64_t file_blocks)
    : writes_(std::move(writes)), threads_(threads), by_block_(file_blocks) {
  for (const WriteRec& w : writes_) {
    for (uint64_t b = w.off / kBlockSize;
         b < (w.off + w.len + kBlockSize - 1) / kBlockSize; ++b) {
      by_block_[b].push_back(w.id);
    }
  }
  stamp_.assign(writes_.size() + 1, 0);
}

void History::CheckSnapshot(uint64_t off, const std::vector<uint8_t>& data,
                            std::vector<int64_t> visible,
                            uint64_t read_end_ticket, const std::string& what) {
  size_t nwords = data.size() / 8;
  std::vector<uint32_t> attr(nwords);
  for (size_t i = 0; i < nwords; ++i) {
    uint64_t o = off + 8 * i;
    uint64_t v;
    memcpy(&v, data.data() + 8 * i, 8);
    if (v == 0) continue;
    auto id = static_cast<uint32_t>(v >> 32);
    if (id == 0 || id > writes_.size() || v != StampWord(id, o) ||
        !Write(id).Overlaps(o, o + 8)) {
      Fail(what + ": word at offset " + std::to_string(o) +
           " is garbage: " + Hex(v));
      return;
    }
    if (Write(id).start > read_end_ticket) {
      Fail(what + ": shows write " + std::to_string(id) +
           " that started after the read ended");
      return;
    }
    attr[i] = id;
    int t = Write(id).thread;
    visible[static_cast<size_t>(t)] =
        std::max<int64_t>(visible[static_cast<size_t>(t)], Write(id).seq);
  }
  auto is_visible = [&](uint32_t id) {
    return static_cast<int64_t>(Write(id).seq) <=
           visible[static_cast<size_t>(Write(id).thread)];
  };
  // Segments of words produced by the same write.
  for (size_t i = 0; i < nwords;) {
    size_t j = i;
    while (j < nwords && attr[j] == attr[i]) ++j;
    uint64_t a = off + 8 * i, b = off + 8 * j;
    uint32_t shown = attr[i];
    ++current_stamp_;
    for (uint64_t blk = a / kBlockSize; blk < (b + kBlockSize - 1) / kBlockSize;
         ++blk) {
      for (uint32_t x : by_block_[blk]) {
        if (stamp_[x] == current_stamp_) continue;
        stamp_[x] = current_stamp_;
        if (x == shown || !Write(x).Overlaps(a, b) || !is_visible(x)) continue;
        if (shown == 0) {
          Fail(what + ": committed write " + Describe(x) + " is missing at [" +
               std::to_string(a) + ", " + std::to_string(b) +
               "), which reads as the initial zeros");
          continue;
        }
        if (Write(shown).end < Write(x).start) {
          Fail(what + ": write " + Describe(shown) + " finished before " +
               Describe(x) + " started, yet covers it at [" +
               std::to_string(a) + ", " + std::to_string(b) + ")");
          continue;
        }
        edges_.emplace_back(x, shown);  // x committed before `shown`
      }
    }
    i = j;
  }
}

std::vector<int64_t> History::FinishedBefore(uint64_t ticket) const {
  std::vector<int64_t> v(static_cast<size_t>(threads_), -1);
  for (const WriteRec& w : writes_) {
    if (w.end < ticket)
      v[static_cast<size_t>(w.thread)] =
          std::max<int64_t>(v[static_cast<size_t>(w.thread)], w.seq);
  }
  return v;
}

void History::CheckSerializable() {
  size_t n = writes_.size() + 1;
  std::vector<std::vector<uint32_t>> out(n);
  std::vector<uint32_t> indegree(n, 0);
  auto add = [&](uint32_t from, uint32_t to) {
    out[from].push_back(to);
    ++indegree[to];
  };
  for (const WriteRec& w : writes_) {
    if (w.seq > 0) add(w.id - 1, w.id);  // ids of one thread are consecutive
  }
  std::sort(edges_.begin(), edges_.end());
  edges_.erase(std::unique(edges_.begin(), edges_.end()), edges_.end());
  for (auto [from, to] : edges_) add(from, to);
  std::vector<uint32_t> ready;
  for (uint32_t id = 1; id < n; ++id) {
    if (indegree[id] == 0) ready.push_back(id);
  }
  size_t done = 0;
  while (!ready.empty()) {
    uint32_t id = ready.back();
    ready.pop_back();
    ++done;
    for (uint32_t to : out[id]) {
      if (--indegree[to] == 0) ready.push_back(to);
    }
  }
  if (done != writes_.size()) {
    Fail("the observed commit order has a cycle: " +
         std::to_string(writes_.size() - done) +
         " writes cannot be placed in any serial order (" +
         std::to_string(edges_.size()) + " edges)");
  }
}

void History::Fail(std::string s) {
  if (failures_.size() < 20) failures_.push_back(std::move(s));
}
std::string History::Describe(uint32_t id) const {
  const WriteRec& w = Write(id);
  return std::to_string(id) + " (thread " + std::to_string(w.thread) + " #" +
         std::to_string(w.seq) + ", [" + std::to_string(w.off) + ", " +
         std::to_string(w.off + w.len) + "))";
}

}  // namespace tern::test
