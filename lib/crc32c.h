// CRC-32C (Castagnoli) over a byte range; checksums of on-media headers and extended records.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tern {

// Uses the CPU's crc32 instruction when it has one.
uint32_t Crc32c(const void* data, size_t len, uint32_t seed = 0);
// The same sum by table, for CPUs without SSE4.2 (and for tests that compare the two).
uint32_t Crc32cPortable(const void* data, size_t len, uint32_t seed = 0);

}  // namespace tern
