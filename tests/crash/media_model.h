// The persistence state of one backing file while a pmem trace is replayed: which bytes are
// certainly on media, which ones the CPU sees, and which cache lines are still in flight. The crash
// simulator (crash_images.h) builds every image a power failure could leave from it.
//
// The rules, those of x86 with clwb/non-temporal stores and of PM's 8-byte failure atomicity:
// - a store changes the CPU's view (`latest`) of its bytes at once; its cache line is *unsettled*
//   (media may hold the old or the new content) until it is flushed *and* a fence follows;
// - a flush captures the line's content at that moment; the next fence makes that captured content
//   durable; a store after the flush and before the fence is not covered by it;
// - an unsettled line may reach media at any moment, whole or (8-byte words) in part.
// Single-threaded; a model of one trace region.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

namespace tern::crash {

inline constexpr uint64_t kLine = 64;
inline constexpr uint64_t kWord = 8;
inline constexpr uint64_t kWordsPerLine = kLine / kWord;

using LineBytes = std::array<uint8_t, kLine>;

class MediaModel {
 public:
  // `initial`: the backing file's bytes when the trace started, all durable.
  explicit MediaModel(std::vector<uint8_t> initial);

  void Store(uint64_t offset, const uint8_t* bytes, uint64_t len);
  void Flush(uint64_t offset, uint64_t len);
  void Fence();

  // What the CPU sees, and what is certainly on media. Both grow (with zeros) when a store lands
  // past their end, as the backing file grows.
  const std::vector<uint8_t>& latest() const { return latest_; }
  const std::vector<uint8_t>& durable() const { return durable_; }
  // Lines that may hold, on media, something other than `durable`. Ascending.
  const std::set<uint64_t>& unsettled() const { return unsettled_; }
  // The content a flush captured and no fence has settled yet; nullptr when there is none.
  const LineBytes* Flushed(uint64_t line) const;
  LineBytes DurableLine(uint64_t line) const { return LineAt(durable_, line); }
  LineBytes LatestLine(uint64_t line) const { return LineAt(latest_, line); }

  // Order-independent hash of the durable image: the sum of LineHash over its lines. An image that
  // differs in some lines hashes as DurableHash() - Σ LineHash(old) + Σ LineHash(new), so two crash
  // images are compared without materialising them. All-zero lines hash to 0, so growing the file
  // with zeros does not change the hash.
  uint64_t DurableHash() const { return durable_hash_; }
  static uint64_t LineHash(uint64_t line, const LineBytes& bytes);

 private:
  static LineBytes LineAt(const std::vector<uint8_t>& v, uint64_t line);
  void GrowTo(uint64_t end);

  std::vector<uint8_t> latest_;
  std::vector<uint8_t> durable_;
  std::set<uint64_t> unsettled_;
  std::map<uint64_t, LineBytes> flushed_;  // line -> content captured by a flush, not yet fenced
  uint64_t durable_hash_ = 0;
};

}  // namespace tern::crash
