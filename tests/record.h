// Self-checking records for crash tests: a write whose bytes name their writer
// and sequence number and carry a checksum, so that a reader of any snapshot
// (after a kill, during concurrent writes) can tell a whole record from a torn,
// stale or misplaced one without knowing what to expect.
//
// Layout: {magic u32, writer u32, seq u64, len u32, crc u32} then len - 24
// payload bytes, a pattern of (writer, seq). crc is CRC-32C over the header
// (crc field zero) and the payload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace tern::test {

inline constexpr size_t kRecordHeaderBytes = 24;

struct RecordId {
  uint32_t writer;
  uint64_t seq;
  uint64_t len;  // header included
  bool operator==(const RecordId&) const = default;
};

// The bytes of record (writer, seq), `len` long. REQUIRES: len >=
// kRecordHeaderBytes, len < 4 GiB.
std::vector<uint8_t> MakeRecord(uint32_t writer, uint64_t seq, size_t len);

// The record starting at p when it is whole: a valid header whose length fits
// in `avail` bytes and a checksum that matches. nullopt for zeros, garbage, a
// torn record or one cut off at `avail`.
std::optional<RecordId> ParseRecord(const uint8_t* p, size_t avail);

}  // namespace tern::test
