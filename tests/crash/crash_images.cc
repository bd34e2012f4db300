#include "tests/crash/crash_images.h"

#include <bit>
#include <cstring>

namespace tern::crash {
namespace {

// One independently chosen piece of an unsettled line: a set of its words and the contents those
// words may have on media. alternatives[0] is the durable content.
struct Unit {
  uint64_t line;
  uint8_t word_mask;  // bit w: word w of the line belongs to this unit
  std::vector<LineBytes> alternatives;
};

uint8_t DifferingWords(const LineBytes& a, const LineBytes& b) {
  uint8_t mask = 0;
  for (uint64_t w = 0; w < kWordsPerLine; ++w) {
    if (memcmp(a.data() + w * kWord, b.data() + w * kWord, kWord) != 0) mask = static_cast<uint8_t>(mask | (1u << w));
  }
  return mask;
}

void CopyWords(uint8_t mask, const LineBytes& from, LineBytes* to) {
  for (uint64_t w = 0; w < kWordsPerLine; ++w) {
    if (mask & (1u << w)) memcpy(to->data() + w * kWord, from.data() + w * kWord, kWord);
  }
}

// Lines where few words changed (commit slots, links: 8-byte CAS targets) are split into one unit
// per changed word, so that every tearing of them is enumerated; other lines (data, zeroed log
// blocks, records) are one unit, torn only in random images.
constexpr int kSplitWordsAtMost = 4;

std::vector<Unit> UnitsOf(const MediaModel& m) {
  std::vector<Unit> units;
  for (uint64_t line : m.unsettled()) {
    LineBytes durable = m.DurableLine(line);
    LineBytes latest = m.LatestLine(line);
    const LineBytes* flushed = m.Flushed(line);
    uint8_t diff = DifferingWords(durable, latest);
    if (flushed != nullptr) diff = static_cast<uint8_t>(diff | DifferingWords(durable, *flushed));
    if (diff == 0) continue;
    std::vector<LineBytes> alts{durable, latest};
    if (flushed != nullptr && *flushed != latest && *flushed != durable) alts.push_back(*flushed);
    if (std::popcount(static_cast<unsigned>(diff)) <= kSplitWordsAtMost) {
      for (uint64_t w = 0; w < kWordsPerLine; ++w) {
        if (diff & (1u << w)) units.push_back({line, static_cast<uint8_t>(1u << w), alts});
      }
    } else {
      units.push_back({line, diff, alts});
    }
  }
  return units;
}

// Builds an image from a choice of alternative per unit (choice[i] indexes units[i].alternatives;
// torn[i] set: word-wise random mix of the alternatives instead).
CrashImage Build(const MediaModel& m, const std::vector<Unit>& units, const std::vector<uint32_t>& choice,
                 const std::vector<uint8_t>& tear_masks) {
  CrashImage image;
  image.hash = m.DurableHash();
  for (size_t i = 0; i < units.size(); ++i) {
    const Unit& u = units[i];
    if (choice[i] == 0 && tear_masks[i] == 0) continue;
    if (image.overrides.empty() || image.overrides.back().line != u.line) {
      image.overrides.push_back({u.line, u.alternatives[0]});
    }
    LineBytes& bytes = image.overrides.back().bytes;
    // Words of the unit: chosen alternative, except torn words, which take the latest content
    // when the chosen alternative is the durable one and the durable content otherwise.
    uint8_t torn = static_cast<uint8_t>(tear_masks[i] & u.word_mask);
    CopyWords(static_cast<uint8_t>(u.word_mask & ~torn), u.alternatives[choice[i]], &bytes);
    CopyWords(torn, u.alternatives[choice[i] == 0 ? 1 : 0], &bytes);
  }
  for (const LineOverride& o : image.overrides) {
    image.hash -= MediaModel::LineHash(o.line, m.DurableLine(o.line));
    image.hash += MediaModel::LineHash(o.line, o.bytes);
  }
  return image;
}

}  // namespace

std::vector<CrashImage> CrashImages(const MediaModel& m, const SamplingPolicy& policy,
                                    std::mt19937_64& rng) {
  std::vector<Unit> units = UnitsOf(m);
  std::vector<uint32_t> choice(units.size(), 0);
  std::vector<uint8_t> no_tear(units.size(), 0);
  std::vector<CrashImage> images;

  // Number of combinations, saturating.
  uint64_t combos = 1;
  for (const Unit& u : units) {
    combos = combos > policy.exhaustive_limit ? combos : combos * u.alternatives.size();
  }
  if (combos <= policy.exhaustive_limit) {
    for (uint64_t n = 0; n < combos; ++n) {  // mixed-radix counter over the units
      uint64_t rest = n;
      for (size_t i = 0; i < units.size(); ++i) {
        choice[i] = static_cast<uint32_t>(rest % units[i].alternatives.size());
        rest /= units[i].alternatives.size();
      }
      images.push_back(Build(m, units, choice, no_tear));
    }
    return images;
  }

  images.push_back(Build(m, units, choice, no_tear));  // nothing in flight reached media
  for (size_t i = 0; i < units.size(); ++i) choice[i] = 1;
  images.push_back(Build(m, units, choice, no_tear));  // everything did
  std::bernoulli_distribution tear(policy.tear_probability);
  std::vector<uint8_t> tear_masks(units.size(), 0);
  for (uint32_t s = 0; s < policy.samples; ++s) {
    // Alternate dense and sparse samples: a bug may need most lines in (a commit whose data is
    // missing one line) or most lines out.
    double keep = (s % 3 == 0) ? 0.5 : (s % 3 == 1 ? 0.9 : 0.1);
    std::bernoulli_distribution take(keep);
    for (size_t i = 0; i < units.size(); ++i) {
      const Unit& u = units[i];
      choice[i] = take(rng) ? static_cast<uint32_t>(1 + rng() % (u.alternatives.size() - 1)) : 0;
      tear_masks[i] = tear(rng) ? static_cast<uint8_t>(rng()) : 0;
    }
    images.push_back(Build(m, units, choice, tear_masks));
  }
  return images;
}

void Materialize(const MediaModel& m, const CrashImage& image, std::vector<uint8_t>* out) {
  *out = m.durable();
  for (const LineOverride& o : image.overrides) {
    memcpy(out->data() + o.line * kLine, o.bytes.data(), kLine);
  }
}

}  // namespace tern::crash
