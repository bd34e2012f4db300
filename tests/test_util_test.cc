// The test helpers themselves: patterns are byte-addressable and seed-dependent; RunIsolated
// reports exit codes, crashes and hangs.
#include "tests/test_util.h"

#include <atomic>

#include "tests/process_util.h"
#include "tests/record.h"

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace tern::test {
namespace {

TEST(TestUtilTest, FillPatternMatchesPatternByteAtAnyAlignment) {
  for (uint64_t offset : {0ull, 1ull, 7ull, 8ull, 4095ull, 123457ull}) {
    for (size_t len : {0ul, 1ul, 9ul, 64ul, 1000ul}) {
      std::vector<uint8_t> v = Pattern(5, offset, len);
      for (size_t i = 0; i < len; ++i) ASSERT_EQ(v[i], PatternByte(5, offset + i)) << offset << "+" << i;
    }
  }
}

TEST(TestUtilTest, PatternsOfDifferentSeedsDiffer) {
  std::vector<uint8_t> a = Pattern(1, 0, 4096), b = Pattern(2, 0, 4096);
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  EXPECT_LT(same, 64u);
  EXPECT_EQ(FirstDifference(a, a), -1);
  EXPECT_GE(FirstDifference(a, b), 0);
}

TEST(TestUtilTest, RunIsolatedReportsExitCrashAndHang) {
  ChildOutcome ok = RunIsolated([] { return 7; });
  EXPECT_TRUE(ok.exited);
  EXPECT_EQ(ok.code, 7);
  ChildOutcome crash = RunIsolated([] {
    raise(SIGKILL);  // not SIGSEGV: ASan would catch that and exit instead
    return 0;
  });
  EXPECT_FALSE(crash.exited);
  EXPECT_EQ(crash.signal, SIGKILL) << crash.Describe();
  ChildOutcome hang = RunIsolated(
      [] {
        pause();
        return 0;
      },
      1);
  EXPECT_EQ(hang.signal, SIGALRM) << hang.Describe();
}

TEST(TestUtilTest, TempDirIsPrivateAndRemoved) {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    EXPECT_EQ(access(path.c_str(), F_OK), 0);
    EXPECT_EQ(std::string(getenv("TERN_SHM_DIR")), dir.shm_dir());
    ASSERT_TRUE(WritePlainFile(dir.File("x"), {1, 2, 3}));
    EXPECT_EQ(ReadRawFile(dir.File("x")), (std::vector<uint8_t>{1, 2, 3}));
    ASSERT_TRUE(WriteRawBytes(dir.File("x"), 1, "\x09", 1));
    EXPECT_EQ(ReadRawFile(dir.File("x")), (std::vector<uint8_t>{1, 9, 3}));
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}


TEST(TestUtilTest, RecordsParseWholeAndRejectTornZeroAndCutOff) {
  std::vector<uint8_t> a = MakeRecord(3, 77, 3001), b = MakeRecord(3, 78, 3001);
  auto id = ParseRecord(a.data(), a.size());
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(*id, (RecordId{3, 77, 3001}));
  std::vector<uint8_t> torn = a;
  std::copy(b.begin() + 2048, b.end(), torn.begin() + 2048);  // new tail, old head
  EXPECT_FALSE(ParseRecord(torn.data(), torn.size()).has_value());
  std::copy(b.begin(), b.begin() + 24, torn.begin());  // new header, mixed payload
  EXPECT_FALSE(ParseRecord(torn.data(), torn.size()).has_value());
  std::vector<uint8_t> zeros(100, 0);
  EXPECT_FALSE(ParseRecord(zeros.data(), zeros.size()).has_value());
  EXPECT_FALSE(ParseRecord(a.data(), a.size() - 1).has_value()) << "a record cut off by the end";
}

TEST(TestUtilTest, SharedFileIsTheSameMemoryForEveryMapping) {
  TempDir dir;
  struct Counter {
    std::atomic<uint64_t> n;
  };
  auto* created = CreateShared<Counter>(dir.File("c"));
  ASSERT_NE(created, nullptr);
  EXPECT_EQ(created->n.load(), 0u);
  auto* attached = AttachShared<Counter>(dir.File("c"));
  ASSERT_NE(attached, nullptr);
  created->n.store(42);
  EXPECT_EQ(attached->n.load(), 42u);
  EXPECT_EQ(CreateShared<Counter>(dir.File("c")), nullptr) << "created twice";
  EXPECT_EQ(AttachShared<Counter>(dir.File("missing")), nullptr);
}

}  // namespace
}  // namespace tern::test
