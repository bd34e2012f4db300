#include "tests/record.h"

#include <cstring>

#include "lib/crc32c.h"
#include "tests/test_util.h"

namespace tern::test {
namespace {

constexpr uint32_t kRecordMagic = 0x32434552;  // "REC2"

struct Header {
  uint32_t magic;
  uint32_t writer;
  uint64_t seq;
  uint32_t len;
  uint32_t crc;
};
static_assert(sizeof(Header) == kRecordHeaderBytes);

uint64_t PayloadSeed(uint32_t writer, uint64_t seq) {
  return (uint64_t{writer} << 40) ^ seq;
}

uint32_t Checksum(Header h, const uint8_t* payload, size_t n) {
  h.crc = 0;
  return Crc32c(payload, n, Crc32c(&h, sizeof(h)));
}

}  // namespace

std::vector<uint8_t> MakeRecord(uint32_t writer, uint64_t seq, size_t len) {
  std::vector<uint8_t> b(len);
  uint8_t* payload = b.data() + kRecordHeaderBytes;
  size_t n = len - kRecordHeaderBytes;
  FillPattern(PayloadSeed(writer, seq), 0, payload, n);
  Header h{kRecordMagic, writer, seq, static_cast<uint32_t>(len), 0};
  h.crc = Checksum(h, payload, n);
  memcpy(b.data(), &h, sizeof(h));
  return b;
}

std::optional<RecordId> ParseRecord(const uint8_t* p, size_t avail) {
  if (avail < kRecordHeaderBytes) return std::nullopt;
  Header h;
  memcpy(&h, p, sizeof(h));
  if (h.magic != kRecordMagic || h.len < kRecordHeaderBytes || h.len > avail)
    return std::nullopt;
  if (Checksum(h, p + kRecordHeaderBytes, h.len - kRecordHeaderBytes) != h.crc)
    return std::nullopt;
  return RecordId{h.writer, h.seq, h.len};
}

}  // namespace tern::test
