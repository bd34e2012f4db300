#include "lib/crc32c.h"

#include <nmmintrin.h>

#include <array>
#include <cstring>

#include "pmem/cpu_features.h"

namespace tern {
namespace {

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = MakeTable();

// Long inputs are summed as three interleaved streams of kStripe bytes (the crc32 instruction
// has a latency of three cycles and a throughput of one: a single stream runs at a third of the
// speed). The stripes' sums are joined by shifting a sum over kStripe zero bytes, which is linear
// in the sum: kShift[k][b] is the shifted value of b << 8k.
constexpr size_t kStripe = 4096;

constexpr std::array<std::array<uint32_t, 256>, 4> MakeShift() {
  std::array<uint32_t, 32> basis{};
  for (uint32_t bit = 0; bit < 32; ++bit) {
    uint32_t c = 1u << bit;
    for (size_t n = 0; n < kStripe; ++n) c = kTable[c & 0xFF] ^ (c >> 8);
    basis[bit] = c;
  }
  std::array<std::array<uint32_t, 256>, 4> shift{};
  for (uint32_t k = 0; k < 4; ++k) {
    for (uint32_t b = 0; b < 256; ++b) {
      for (uint32_t bit = 0; bit < 8; ++bit) {
        if ((b >> bit) & 1) shift[k][b] ^= basis[8 * k + bit];
      }
    }
  }
  return shift;
}

constexpr std::array<std::array<uint32_t, 256>, 4> kShift = MakeShift();

uint32_t ShiftOverStripe(uint32_t c) {
  return kShift[0][c & 0xFF] ^ kShift[1][(c >> 8) & 0xFF] ^ kShift[2][(c >> 16) & 0xFF] ^ kShift[3][c >> 24];
}

uint32_t TableCrc(const uint8_t* p, size_t len, uint32_t c) {
  for (size_t i = 0; i < len; ++i) c = kTable[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c;
}

// SSE4.2's crc32 instruction computes the same polynomial 8 bytes at a time: ~40x the table (and
// ~3x more with three streams), which matters for checkpoints (megabytes, checked at every open).
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(const uint8_t* p, size_t len, uint32_t c) {
  uint64_t c64 = c;
  for (; len >= 3 * kStripe; p += 3 * kStripe, len -= 3 * kStripe) {
    uint64_t a = c64, b = 0, d = 0;
    for (size_t i = 0; i < kStripe; i += 8) {
      uint64_t w[3];
      std::memcpy(&w[0], p + i, 8);
      std::memcpy(&w[1], p + kStripe + i, 8);
      std::memcpy(&w[2], p + 2 * kStripe + i, 8);
      a = _mm_crc32_u64(a, w[0]);
      b = _mm_crc32_u64(b, w[1]);
      d = _mm_crc32_u64(d, w[2]);
    }
    c64 = ShiftOverStripe(ShiftOverStripe(static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b)) ^ static_cast<uint32_t>(d);
  }
  for (; len >= 8; p += 8, len -= 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    c64 = _mm_crc32_u64(c64, word);
  }
  auto c32 = static_cast<uint32_t>(c64);
  for (; len > 0; ++p, --len) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}

// Not __builtin_cpu_supports: it links libgcc's __cpu_indicator_init, a load-time constructor
// running ~13 CPUID instructions (~0.1 ms added to the start of every process the shim is in).
const bool kHaveSse42 = CPU_FEATURE_ACTIVE(SSE4_2);

}  // namespace

uint32_t Crc32c(const void* data, size_t len, uint32_t seed) {
  auto* p = static_cast<const uint8_t*>(data);
  return ~(kHaveSse42 ? Crc32cSse42(p, len, ~seed) : TableCrc(p, len, ~seed));
}

uint32_t Crc32cPortable(const void* data, size_t len, uint32_t seed) {
  return ~TableCrc(static_cast<const uint8_t*>(data), len, ~seed);
}

}  // namespace tern
