// pmem/persist.h's copies, zeroing and flushes: tern's own (pmem/persist.cc says why) write
// exactly their bytes at every length and alignment — the non-temporal body, the ordinary head
// and tail — read no byte past their source, and work on a shared file mapping as on anonymous
// memory; a process that writes and fsyncs a tern file loads no PMDK library; one that uses
// libpmem (as on real persistent memory) writes files the other kind reads, and back; and one
// that cannot load it goes on with tern's own.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <stdlib.h>

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

// Writes `bytes` of pattern `seed` at 0 of `path` (created if missing), fsyncs, closes.
bool WriteAndSync(const std::string& path, uint64_t seed, size_t bytes) {
  auto file = File::Open(path, O_RDWR | O_CREAT, 0644);
  if (!file.ok()) return false;
  std::vector<uint8_t> data = test::Pattern(seed, 0, bytes);
  bool ok = (*file)->Pwrite(data.data(), data.size(), 0).ok() && (*file)->Fsync().ok();
  test::CloseAndSettle(std::move(*file));
  return ok;
}

bool ReadsBack(const std::string& path, uint64_t seed, size_t bytes) {
  auto file = File::Open(path, O_RDONLY);
  if (!file.ok()) return false;
  auto got = test::ReadAll(**file);
  return got.ok() && test::FirstDifference(*got, test::Pattern(seed, 0, bytes)) == -1;
}

constexpr size_t kFileBytes = 3 * kPage + 100;

// A process started with TERN_PMEM_LIBPMEM=1 (what a process on real persistent memory uses):
// checks that it persists through libpmem, reads `read_seed`'s bytes if not 0, writes `write_seed`'s.
int LibpmemChildMain(const std::string& path, uint64_t read_seed, uint64_t write_seed) {
  if (read_seed != 0 && !ReadsBack(path, read_seed, kFileBytes)) return 2;
  if (!WriteAndSync(path, write_seed, kFileBytes)) return 3;
  if (std::string(pmem::BackendName()) != "libpmem" || !PmdkMapped()) return 4;
  return 0;
}

bool RunLibpmemChild(const std::string& path, uint64_t read_seed, uint64_t write_seed) {
  setenv("TERN_PMEM_LIBPMEM", "1", 1);
  pid_t pid = test::SpawnSelf({"--libpmem-child", path, std::to_string(read_seed), std::to_string(write_seed)});
  unsetenv("TERN_PMEM_LIBPMEM");
  return test::WaitChildSucceeded(pid);
}

TEST(PersistTest, FilesWrittenThroughLibpmemAndThroughTernsOwnReadTheSame) {
  test::TempDir dir;
  const std::string path = dir.File("f");
  ASSERT_TRUE(RunLibpmemChild(path, 0, 11));
  EXPECT_TRUE(test::InForkedChild([&] {
    return std::string(pmem::BackendName()) == "tern" && ReadsBack(path, 11, kFileBytes) &&
           WriteAndSync(path, 12, kFileBytes) && !PmdkMapped();
  }));
  EXPECT_TRUE(RunLibpmemChild(path, 12, 13));
  EXPECT_TRUE(ReadsBack(path, 13, kFileBytes));
}

TEST(PersistTest, WithoutLibpmemTernsOwnFlushesGoOn) {
  test::TempDir dir;
  const std::string path = dir.File("f");
  EXPECT_TRUE(test::InForkedChild([&] {
    if (setenv("TERN_LIBPMEM", "/nonexistent/libpmem.so.1", 1) != 0) return false;
    pmem::UseLibpmem();  // logs one error line
    return std::string(pmem::BackendName()) == "tern" && WriteAndSync(path, 21, kFileBytes) && !PmdkMapped();
  }));
  EXPECT_TRUE(ReadsBack(path, 21, kFileBytes));
}

TEST(PersistTest, AWriterLoadsNoPmdkLibrary) {
  test::TempDir dir;
  const std::string path = dir.File("f");
  EXPECT_TRUE(test::InForkedChild([&] { return WriteAndSync(path, 31, kFileBytes) && !PmdkMapped(); }));
}

}  // namespace
}  // namespace tern

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--libpmem-child") {
    tern::test::DieWithParent();
    return tern::LibpmemChildMain(argv[2], std::stoull(argv[3]), std::stoull(argv[4]));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
