// The races of an in-place append (lib/file_core_tail.cc), each landed on purpose: the hook
// test_hooks::after_in_place_copy runs a competing operation after the appender has written its
// bytes past the end and before it commits. The appender must lose, take the copy-on-write path,
// and its bytes left past the old end must never show. Trace builds only (the hook compiles away
// elsewhere); label crash.
#include <fcntl.h>
#include <linux/falloc.h>

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "lib/test_hooks.h"
#include "tests/test_util.h"

namespace tern {
namespace {

std::function<void()>* g_competitor = nullptr;

// Runs the competitor once, in the window of the next in-place append.
class Window {
 public:
  explicit Window(std::function<void()> competitor) : competitor_(std::move(competitor)) {
    g_competitor = &competitor_;
    test_hooks::after_in_place_copy.callback = [] {
      std::function<void()>* c = g_competitor;
      g_competitor = nullptr;  // the competitor's own appends must not run it again
      if (c != nullptr) (*c)();
    };
  }
  ~Window() {
    test_hooks::after_in_place_copy.callback = nullptr;
    g_competitor = nullptr;
  }
  bool ran() const { return g_competitor == nullptr; }
  Window(const Window&) = delete;
  Window& operator=(const Window&) = delete;

 private:
  std::function<void()> competitor_;
};

class TailRaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = File::Open(dir_.File("f"), O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(r.ok()) << test::Describe(r.status());
    f_ = std::move(r).value();
    Put(0, Bytes('a', 1000));
  }
  static std::vector<uint8_t> Bytes(uint8_t c, size_t n) { return std::vector<uint8_t>(n, c); }
  void Put(uint64_t at, const std::vector<uint8_t>& data) {
    auto n = f_->Pwrite(data.data(), data.size(), at);
    ASSERT_TRUE(n.ok()) << test::Describe(n.status());
    if (model_.size() < at + data.size()) model_.resize(at + data.size(), 0);
    std::copy(data.begin(), data.end(), model_.begin() + static_cast<ptrdiff_t>(at));
  }
  void Expect(const char* when) {
    for (int pass = 0; pass < 2; ++pass) {
      auto got = test::ReadAll(*f_);
      ASSERT_TRUE(got.ok()) << when;
      ASSERT_EQ(got->size(), model_.size()) << when;
      EXPECT_EQ(test::FirstDifference(*got, model_), -1) << when << (pass ? " (after reopen)" : "");
      f_.reset();
      auto r = File::Open(dir_.File("f"), O_RDWR);
      ASSERT_TRUE(r.ok()) << test::Describe(r.status());
      f_ = std::move(r).value();
    }
    auto reachable = f_->core().BlocksReachable();
    ASSERT_TRUE(reachable.ok());
    EXPECT_EQ(*reachable, f_->core().BlocksInUse()) << when << ": blocks in use but unreachable";
  }
  uint64_t Conflicts() { return f_->core().Counters().conflicts; }

  test::TempDir dir_;
  std::unique_ptr<File> f_;
  std::vector<uint8_t> model_;
};

// Truncate up inside the window: the appender's 'b's sit past the old end; the growth must show
// zeros there, and the append lands after it.
TEST_F(TailRaceTest, TruncateUpBeatsAnAppend) {
  uint64_t conflicts = Conflicts();
  Window w([&] { ASSERT_TRUE(f_->Truncate(1500).ok()); });
  auto at = f_->Append(Bytes('b', 200).data(), 200);
  ASSERT_TRUE(at.ok());
  ASSERT_TRUE(w.ran());
  EXPECT_EQ(*at, 1500u);
  EXPECT_GT(Conflicts(), conflicts);
  model_.resize(1500, 0);
  Put(1500, Bytes('b', 200));  // the model only: the same bytes again
  Expect("truncate up, then the append");
}

// A write past the end, beyond the last block, inside the window: the old last block is replaced
// by a copy zeroed past the old end, so the hole shows zeros, not the appender's bytes.
TEST_F(TailRaceTest, AWritePastTheEndBeatsAnAppend) {
  Window w([&] { ASSERT_TRUE(f_->Pwrite(Bytes('c', 10).data(), 10, 3 * kBlockSize).ok()); });
  auto at = f_->Append(Bytes('b', 300).data(), 300);
  ASSERT_TRUE(at.ok());
  ASSERT_TRUE(w.ran());
  EXPECT_EQ(*at, 3 * kBlockSize + 10);
  model_.resize(3 * kBlockSize, 0);
  model_.insert(model_.end(), 10, 'c');
  model_.insert(model_.end(), 300, 'b');
  Expect("write past the end, then the append");
}

// A write past the end inside the same block: its copy of the block stops at the old end.
TEST_F(TailRaceTest, AWritePastTheEndInTheBlockBeatsAnAppend) {
  Window w([&] { ASSERT_TRUE(f_->Pwrite(Bytes('c', 10).data(), 10, 1400).ok()); });
  auto at = f_->Append(Bytes('b', 300).data(), 300);
  ASSERT_TRUE(at.ok());
  ASSERT_TRUE(w.ran());
  EXPECT_EQ(*at, 1410u);
  model_.resize(1400, 0);
  model_.insert(model_.end(), 10, 'c');
  model_.insert(model_.end(), 300, 'b');
  Expect("write past the end in the block, then the append");
}

// Another append inside the window cannot claim the block: it copies on write (up to the end,
// not the first appender's bytes) and commits first; the first appender then appends after it.
TEST_F(TailRaceTest, AnotherAppendBeatsAnAppend) {
  Window w([&] { ASSERT_TRUE(f_->Append(Bytes('c', 50).data(), 50).ok()); });
  auto at = f_->Append(Bytes('b', 300).data(), 300);
  ASSERT_TRUE(at.ok());
  ASSERT_TRUE(w.ran());
  EXPECT_EQ(*at, 1050u);
  model_.insert(model_.end(), 50, 'c');
  model_.insert(model_.end(), 300, 'b');
  Expect("append, then the append");
}

// An overwrite of the block inside the window supersedes it while the appender holds it: the
// appender gives up, frees the block (its superseder could not), and appends by copy.
TEST_F(TailRaceTest, AnOverwriteOfTheBlockBeatsAnAppend) {
  Window w([&] { ASSERT_TRUE(f_->Pwrite(Bytes('d', 100).data(), 100, 10).ok()); });
  auto at = f_->Pwrite(Bytes('b', 300).data(), 300, 1000);
  ASSERT_TRUE(at.ok());
  ASSERT_TRUE(w.ran());
  Put(10, Bytes('d', 100));  // the model only
  Put(1000, Bytes('b', 300));
  ASSERT_TRUE(f_->Fsync().ok());  // the superseded block's free waits for durability
  Expect("overwrite, then the write at the end");
}

// fallocate growth and zero-range growth in the window.
TEST_F(TailRaceTest, FallocateBeatsAnAppend) {
  Window w([&] { ASSERT_TRUE(f_->Fallocate(0, 1000, 2000).ok()); });
  auto at = f_->Append(Bytes('b', 100).data(), 100);
  ASSERT_TRUE(at.ok());
  ASSERT_TRUE(w.ran());
  EXPECT_EQ(*at, 3000u);
  model_.resize(3000, 0);
  model_.insert(model_.end(), 100, 'b');
  Expect("fallocate, then the append");
  Window w2([&] { ASSERT_TRUE(f_->Fallocate(FALLOC_FL_ZERO_RANGE, 3050, 100).ok()); });
  auto at2 = f_->Append(Bytes('e', 100).data(), 100);
  ASSERT_TRUE(at2.ok());
  ASSERT_TRUE(w2.ran());
  EXPECT_EQ(*at2, 3150u);
  std::fill(model_.begin() + 3050, model_.end(), 0);
  model_.resize(3150, 0);
  model_.insert(model_.end(), 100, 'e');
  Expect("zero range, then the append");
}

}  // namespace
}  // namespace tern
