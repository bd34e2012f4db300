// Differential test: one random sequence of pwrite / append / truncate / pread / reopen / log
// compaction runs against a tern file and against a plain kernel file; every read, every size and
// the final bytes must match.
// Several seeds run in CI; TERN_SOAK=1 enables a long run (the soak target).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "tests/test_util.h"

namespace tern {
namespace {

constexpr uint64_t kSoftMaxSize = 4u << 20;  // beyond it, the generator shrinks the file

class Differential {
 public:
  Differential(const test::TempDir& dir, uint64_t seed)
      : tern_path_(dir.File("tern")), kernel_path_(dir.File("kernel")), rng_(seed) {}
  ~Differential() {
    if (kfd_ >= 0) close(kfd_);
  }

  // Runs `ops` operations; stops at the first mismatch and returns its description ("" if none).
  std::string Run(uint64_t ops) {
    kfd_ = open(kernel_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (kfd_ < 0) return "cannot create the kernel file";
    if (std::string e = Reopen(O_RDWR | O_CREAT); !e.empty()) return e;
    for (uint64_t i = 0; i < ops; ++i) {
      op_index_ = i;
      std::string e = Step();
      if (e.empty()) e = CompareSize();
      if (!e.empty()) return Report(e);
    }
    if (std::string e = CompareAll("at the end"); !e.empty()) return Report(e);
    if (std::string e = Reopen(O_RDWR); !e.empty()) return Report(e);
    if (std::string e = CompareAll("after the final reopen"); !e.empty()) return Report(e);
    auto reachable = file_->core().BlocksReachable();
    if (!reachable.ok()) return Report("BlocksReachable: " + test::Describe(reachable.status()));
    if (file_->core().BlocksInUse() != *reachable) {
      return Report("blocks leaked: " + std::to_string(file_->core().BlocksInUse()) + " in use, " +
                    std::to_string(*reachable) + " reachable");
    }
    return "";
  }

 private:
  uint64_t Rand(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  uint64_t KernelSize() {
    struct stat st;
    fstat(kfd_, &st);
    return static_cast<uint64_t>(st.st_size);
  }

  size_t RandomLength() {
    switch (Rand(10)) {
      case 0: case 1: case 2: return 1 + Rand(100);
      case 3: case 4: return kBlockSize * (1 + Rand(4));
      case 5: case 6: case 7: return 1 + Rand(20000);
      case 8: return 1 + Rand(3 * kBlockSize);
      default: return Rand(5) == 0 ? 64 * kBlockSize + Rand(300000) : 1 + Rand(70000);
    }
  }

  uint64_t RandomOffset(uint64_t size) {
    switch (Rand(6)) {
      case 0: return Rand(size + 1);
      case 1: return (Rand(size + kBlockSize) / kBlockSize) * kBlockSize;
      case 2: return size;
      case 3: return size + Rand(300000);  // past EOF: leaves a hole
      case 4: return size > 0 ? size - 1 - Rand(std::min<uint64_t>(size, 5000)) : 0;
      default: return Rand(size + 20000);
    }
  }

  std::string Step() {
    uint64_t size = KernelSize();
    uint64_t r = Rand(100);
    if (size > kSoftMaxSize && r < 50) r = 50;  // keep the file bounded
    if (r < 33) return DoPwrite(RandomOffset(size), RandomLength());
    if (r < 45) return DoAppend(RandomLength());
    if (r < 50) return DoTruncate(RandomTruncateSize(size));
    if (r < 55 && size > kSoftMaxSize) return DoTruncate(Rand(size / 2));
    if (r < 95) return DoPread(RandomOffset(size), RandomLength());
    if (r < 96) return Reopen(O_RDWR);
    if (r < 97) return Compact();
    if (r < 98) return CompareAll("spot check");
    Note("fsync");
    if (Status s = file_->Fsync(); !s.ok()) return "fsync failed: " + test::Describe(s);
    return "";
  }

  uint64_t RandomTruncateSize(uint64_t size) {
    switch (Rand(5)) {
      case 0: return 0;
      case 1: return (Rand(size + 2 * kBlockSize) / kBlockSize) * kBlockSize;
      case 2: return size + Rand(20000);
      default: return Rand(size + 1);
    }
  }

  std::string DoPwrite(uint64_t offset, size_t len) {
    Note("pwrite " + std::to_string(len) + "@" + std::to_string(offset));
    std::vector<uint8_t> data = test::Pattern(rng_(), offset, len);
    auto n = file_->Pwrite(data.data(), len, offset);
    if (!n.ok()) return "tern pwrite failed: " + test::Describe(n.status());
    if (*n != len) return "tern pwrite returned " + std::to_string(*n);
    if (pwrite(kfd_, data.data(), len, static_cast<off_t>(offset)) != static_cast<ssize_t>(len)) {
      return "kernel pwrite failed";
    }
    return "";
  }

  std::string DoAppend(size_t len) {
    uint64_t at = KernelSize();
    Note("append " + std::to_string(len) + " (kernel size " + std::to_string(at) + ")");
    std::vector<uint8_t> data = test::Pattern(rng_(), at, len);
    auto got = file_->Append(data.data(), len);
    if (!got.ok()) return "tern append failed: " + test::Describe(got.status());
    if (*got != at) return "tern appended at " + std::to_string(*got) + ", kernel at " + std::to_string(at);
    if (pwrite(kfd_, data.data(), len, static_cast<off_t>(at)) != static_cast<ssize_t>(len)) {
      return "kernel append failed";
    }
    return "";
  }

  std::string DoTruncate(uint64_t size) {
    Note("truncate " + std::to_string(size));
    if (Status s = file_->Truncate(size); !s.ok()) return "tern truncate failed: " + test::Describe(s);
    if (ftruncate(kfd_, static_cast<off_t>(size)) != 0) return "kernel ftruncate failed";
    return "";
  }

  std::string DoPread(uint64_t offset, size_t len) {
    Note("pread " + std::to_string(len) + "@" + std::to_string(offset));
    std::vector<uint8_t> t(len, 0xA5), k(len, 0x5A);
    auto n = file_->Pread(t.data(), len, offset);
    if (!n.ok()) return "tern pread failed: " + test::Describe(n.status());
    ssize_t kn = pread(kfd_, k.data(), len, static_cast<off_t>(offset));
    if (kn < 0) return "kernel pread failed";
    if (*n != static_cast<size_t>(kn)) {
      return "pread returned " + std::to_string(*n) + " bytes, kernel " + std::to_string(kn);
    }
    int64_t d = test::FirstDifference(t.data(), k.data(), *n);
    if (d >= 0) {
      return "pread differs at file offset " + std::to_string(offset + static_cast<uint64_t>(d)) +
             ": tern " + std::to_string(t[static_cast<size_t>(d)]) + ", kernel " +
             std::to_string(k[static_cast<size_t>(d)]);
    }
    return "";
  }

  // Log compaction (GC) must not change a byte.
  std::string Compact() {
    Note("compact");
    auto stats = file_->core().Compact();
    if (!stats.ok()) return "compact failed: " + test::Describe(stats.status());
    return "";
  }

  std::string Reopen(int flags) {
    Note("reopen");
    file_.reset();
    auto r = File::Open(tern_path_, flags);
    if (!r.ok()) return "reopen failed: " + test::Describe(r.status());
    file_ = std::move(r).value();
    return "";
  }

  std::string CompareSize() {
    auto size = file_->Size();
    if (!size.ok()) return "Size failed: " + test::Describe(size.status());
    if (*size != KernelSize()) {
      return "size " + std::to_string(*size) + ", kernel " + std::to_string(KernelSize());
    }
    return "";
  }

  std::string CompareAll(const char* when) {
    auto got = test::ReadAll(*file_);
    if (!got.ok()) return std::string("read all ") + when + ": " + test::Describe(got.status());
    std::vector<uint8_t> want(KernelSize());
    if (pread(kfd_, want.data(), want.size(), 0) != static_cast<ssize_t>(want.size())) {
      return "kernel read failed";
    }
    int64_t d = test::FirstDifference(*got, want);
    if (d >= 0) {
      return std::string("content ") + when + " differs at offset " + std::to_string(d) +
             " (tern size " + std::to_string(got->size()) + ", kernel " + std::to_string(want.size()) + ")";
    }
    return "";
  }

  void Note(std::string what) {
    recent_.push_back("#" + std::to_string(op_index_) + " " + what);
    if (recent_.size() > 25) recent_.pop_front();
  }

  std::string Report(const std::string& error) {
    std::ostringstream out;
    out << "op #" << op_index_ << ": " << error << "\nrecent ops:\n";
    for (const auto& s : recent_) out << "  " << s << "\n";
    return out.str();
  }

  std::string tern_path_;
  std::string kernel_path_;
  std::mt19937_64 rng_;
  int kfd_ = -1;
  std::unique_ptr<File> file_;
  uint64_t op_index_ = 0;
  std::deque<std::string> recent_;
};

class RandomOpsTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(RandomOpsTest, MatchesTheKernel) {
  test::TempDir dir;
  Differential d(dir, GetParam());
  std::string error = d.Run(3000);
  EXPECT_EQ(error, "") << "seed " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomOpsTest, ::testing::Values(1, 2, 3, 4, 5, 6));

TEST(RandomOpsSoak, LongRun) {
  const char* soak = getenv("TERN_SOAK");
  if (soak == nullptr || std::string(soak) != "1") {
    GTEST_SKIP() << "long differential run: set TERN_SOAK=1 to run it (soak target, not CI)";
  }
  const char* seed_env = getenv("TERN_SOAK_SEED");
  uint64_t seed = seed_env != nullptr ? strtoull(seed_env, nullptr, 0) : std::random_device{}();
  for (int round = 0; round < 20; ++round) {
    test::TempDir dir;
    Differential d(dir, seed + static_cast<uint64_t>(round));
    std::string error = d.Run(50000);
    ASSERT_EQ(error, "") << "seed " << seed + static_cast<uint64_t>(round)
                         << " (rerun with TERN_SOAK_SEED)";
  }
}

}  // namespace
}  // namespace tern
