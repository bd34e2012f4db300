#include "lib/crc32c.h"

#include <nmmintrin.h>

#include <array>
#include <cstring>

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

uint32_t TableCrc(const uint8_t* p, size_t len, uint32_t c) {
  for (size_t i = 0; i < len; ++i) c = kTable[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c;
}

// SSE4.2's crc32 instruction computes the same polynomial 8 bytes at a time: ~40x the table, which
// matters for checkpoints (megabytes, checked at every open).
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(const uint8_t* p, size_t len, uint32_t c) {
  uint64_t c64 = c;
  for (; len >= 8; p += 8, len -= 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof(word));
    c64 = _mm_crc32_u64(c64, word);
  }
  auto c32 = static_cast<uint32_t>(c64);
  for (; len > 0; ++p, --len) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");

}  // namespace

uint32_t Crc32c(const void* data, size_t len, uint32_t seed) {
  auto* p = static_cast<const uint8_t*>(data);
  return ~(kHaveSse42 ? Crc32cSse42(p, len, ~seed) : TableCrc(p, len, ~seed));
}

uint32_t Crc32cPortable(const void* data, size_t len, uint32_t seed) {
  return ~TableCrc(static_cast<const uint8_t*>(data), len, ~seed);
}

}  // namespace tern
