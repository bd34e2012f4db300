// CRC-32C (Castagnoli) over a byte range; checksums of on-media headers and extended records.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tern {

uint32_t Crc32c(const void* data, size_t len, uint32_t seed = 0);

}  // namespace tern
