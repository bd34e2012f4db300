// pmem/persist.h's copies, zeroing and flushes (tern's own: pmem/persist.cc says why not libpmem's):
// every length and alignment writes exactly its bytes — the non-temporal body, the ordinary head
// and tail — reads no byte past its source, and works on a shared file mapping as on anonymous
// memory. And a process that writes and fsyncs a tern file loads no PMDK library.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "lib/file.h"
#include "pmem/persist.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace tern {
namespace {

constexpr size_t kPage = 4096;
constexpr uint8_t kUntouched = 0xAA;
const size_t kLengths[] = {1, 15, 63, 64, 65, 200, 255, 256, 257, 1000, 4096, 4097, 3 * kPage + 77};
const size_t kDstOffsets[] = {0, 1, 15, 16, 48, 63};

// `len` bytes that end exactly at a page followed by an inaccessible one: a read past the source's
// end faults.
class GuardedSource {
 public:
  explicit GuardedSource(size_t len) : len_(len) {
    size_t pages = (len + kPage - 1) / kPage + 1;
    bytes_ = pages * kPage;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    base_ = static_cast<uint8_t*>(p);
    EXPECT_EQ(mprotect(base_ + bytes_ - kPage, kPage, PROT_NONE), 0);
    test::FillPattern(len, 0, data(), len);
  }
  ~GuardedSource() { munmap(base_, bytes_); }
  uint8_t* data() { return base_ + bytes_ - kPage - len_; }

 private:
  size_t len_;
  size_t bytes_ = 0;
  uint8_t* base_ = nullptr;
};

// Checks that [dst, dst+len) of `buf` holds `want` and every other byte is still kUntouched.
void ExpectOnly(const std::vector<uint8_t>& buf, size_t dst, const uint8_t* want, size_t len) {
  for (size_t i = 0; i < buf.size(); ++i) {
    uint8_t expected = (i >= dst && i < dst + len) ? want[i - dst] : kUntouched;
    ASSERT_EQ(buf[i], expected) << "byte " << i << " (dst " << dst << ", len " << len << ")";
  }
}

TEST(PersistTest, CopyWritesExactlyItsBytesAtEveryLengthAndAlignment) {
  for (size_t len : kLengths) {
    GuardedSource src(len);
    for (size_t dst : kDstOffsets) {
      std::vector<uint8_t> buf(len + 256, kUntouched);
      uint8_t* at = buf.data() + 64 + dst;  // vector storage is 16-aligned; +64 keeps its offset
      pmem::CopyPersist(at, src.data(), len);
      ExpectOnly(buf, static_cast<size_t>(at - buf.data()), src.data(), len);
    }
  }
}

TEST(PersistTest, ZeroWritesExactlyItsBytesAtEveryLengthAndAlignment) {
  for (size_t len : kLengths) {
    std::vector<uint8_t> zeros(len, 0);
    for (size_t dst : kDstOffsets) {
      std::vector<uint8_t> buf(len + 256, kUntouched);
      uint8_t* at = buf.data() + 64 + dst;
      pmem::ZeroNoDrain(at, len);
      pmem::Drain();
      ExpectOnly(buf, static_cast<size_t>(at - buf.data()), zeros.data(), len);
    }
  }
}

TEST(PersistTest, ASharedFileMappingHoldsWhatWasCopiedAndFlushed) {
  test::TempDir dir;
  const std::string path = dir.File("raw");
  constexpr size_t kBytes = 4 * kPage;
  int fd = open(path.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kBytes), 0);
  void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  auto* map = static_cast<uint8_t*>(p);
  std::vector<uint8_t> data = test::Pattern(7, 0, 2 * kPage + 300);
  pmem::CopyNoDrain(map + 1000, data.data(), data.size());  // crosses two page boundaries
  pmem::ZeroNoDrain(map + 1000 + 500, 100);
  pmem::Store64(reinterpret_cast<uint64_t*>(map + 8), 0x1122334455667788);
  pmem::Persist(map + 8, 8);
  pmem::Flush(map + 1, 3 * kPage);  // unaligned start and end: every line it touches
  pmem::Drain();
  munmap(p, kBytes);
  std::fill(data.begin() + 500, data.begin() + 600, 0);
  std::vector<uint8_t> got(kBytes);
  ASSERT_EQ(pread(fd, got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
  close(fd);
  EXPECT_EQ(memcmp(got.data() + 1000, data.data(), data.size()), 0);
  uint64_t word;
  memcpy(&word, got.data() + 8, sizeof(word));
  EXPECT_EQ(word, 0x1122334455667788u);
}

bool PmdkMapped() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("libpmem") != std::string::npos || line.find("libndctl") != std::string::npos) return true;
  }
  return false;
}

TEST(PersistTest, AWriterLoadsNoPmdkLibrary) {
  test::TempDir dir;
  const std::string path = dir.File("f");
  EXPECT_TRUE(test::InForkedChild([&] {
    auto file = File::Open(path, O_RDWR | O_CREAT, 0644);
    if (!file.ok()) return false;
    std::vector<uint8_t> bytes = test::Pattern(3, 0, 3 * kPage + 100);
    bool ok = (*file)->Pwrite(bytes.data(), bytes.size(), 0).ok() && (*file)->Fsync().ok();
    test::CloseAndSettle(std::move(*file));
    return ok && !PmdkMapped();
  }));
}

}  // namespace
}  // namespace tern
