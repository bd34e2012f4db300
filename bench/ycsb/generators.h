// YCSB's core key generators, ported from YCSB 0.17 (site.ycsb.generator.*,
// site.ycsb.Utils) so that the driver draws the same distributions as YCSB's
// CoreWorkload: FNV-1a 64 key hashing, ZipfianGenerator (Gray et al., "Quickly
// generating billion-record synthetic databases"), ScrambledZipfianGenerator
// and SkewedLatestGenerator. Single-threaded: nothing here locks.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

namespace tern::ycsb {

// site.ycsb.Utils.fnvhash64: FNV-1a over the 8 bytes of `v`, low byte first;
// Math.abs of the result.
inline uint64_t FnvHash64(uint64_t v) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (int i = 0; i < 8; ++i) {
    h ^= v & 0xff;
    h *= 1099511628211ull;
    v >>= 8;
  }
  auto s = static_cast<int64_t>(h);
  return s < 0 ? static_cast<uint64_t>(-(s + 1)) + 1
               : h;  // Math.abs (MIN_VALUE wraps to itself)
}

// A uniform double in [0, 1) and uniform integers, from one seeded engine.
class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  double NextDouble() {
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }
  // Uniform in [lo, hi], both inclusive.
  uint64_t Uniform(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }
  uint64_t Next() { return rng_(); }

 private:
  std::mt19937_64 rng_;
};

inline constexpr double kZipfianConstant = 0.99;

// ZipfianGenerator: items [0, item_count) with item 0 the most popular. The
// item count may grow between draws (SkewedLatest does that); zeta is then
// extended incrementally, as in YCSB.
class Zipfian {
 public:
  Zipfian(uint64_t item_count, double theta = kZipfianConstant)
      : Zipfian(item_count, theta, -1.0) {}
  // With a precomputed zeta(item_count, theta) (ScrambledZipfian's 10^10
  // items).
  Zipfian(uint64_t item_count, double theta, double zetan)
      : theta_(theta),
        alpha_(1.0 / (1.0 - theta)),
        zeta2theta_(Zeta(0, 2, theta, 0.0)),
        items_(item_count),
        count_for_zeta_(item_count),
        zetan_(zetan >= 0 ? zetan : Zeta(0, item_count, theta, 0.0)) {
    eta_ = Eta();
  }

  uint64_t Next(Random* r) { return Next(r, items_); }
  uint64_t Next(Random* r, uint64_t item_count) {
    if (item_count > count_for_zeta_) {
      zetan_ = Zeta(count_for_zeta_, item_count, theta_, zetan_);
      count_for_zeta_ = item_count;
      eta_ = Eta();
    }
    double u = r->NextDouble();
    double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, theta_)) return 1;
    return static_cast<uint64_t>(static_cast<double>(item_count) *
                                 std::pow(eta_ * u - eta_ + 1, alpha_));
  }

 private:
  // sum_{i = from+1}^{to} 1 / i^theta, added to `initial`.
  static double Zeta(uint64_t from, uint64_t to, double theta, double initial) {
    double sum = initial;
    for (uint64_t i = from; i < to; ++i)
      sum += 1.0 / std::pow(static_cast<double>(i + 1), theta);
    return sum;
  }
  // YCSB computes eta from the constructor's item count (`items`) even after
  // zeta has grown.
  double Eta() const {
    return (1 - std::pow(2.0 / static_cast<double>(items_), 1 - theta_)) /
           (1 - zeta2theta_ / zetan_);
  }

  double theta_, alpha_, zeta2theta_;
  uint64_t items_, count_for_zeta_;
  double zetan_, eta_ = 0;
};

// ScrambledZipfianGenerator(min, max): a zipfian draw over 10^10 items, hashed
// onto [min, max], so the popular items are spread over the key space instead
// of clustered at its start.
class ScrambledZipfian {
 public:
  ScrambledZipfian(uint64_t min, uint64_t max)
      : min_(min),
        count_(max - min + 1),
        zipf_(kItemCount, kZipfianConstant, kZetan) {}
  uint64_t Next(Random* r) { return min_ + FnvHash64(zipf_.Next(r)) % count_; }

 private:
  static constexpr uint64_t kItemCount = 10'000'000'000ull;
  static constexpr double kZetan =
      26.46902820178302;  // zeta(10^10, 0.99), YCSB's constant
  uint64_t min_, count_;
  Zipfian zipf_;
};

// SkewedLatestGenerator: the most recently inserted key is the most popular;
// `last` is the highest key number inserted so far (CoreWorkload's
// transactioninsertkeysequence.lastValue()).
class SkewedLatest {
 public:
  explicit SkewedLatest(uint64_t last) : zipf_(last) {}
  uint64_t Next(Random* r, uint64_t last) { return last - zipf_.Next(r, last); }

 private:
  Zipfian zipf_;
};

}  // namespace tern::ycsb
