// Losing the shared state (DESIGN §3, §5): the free-block bitmap is not on
// media; it lives in a shared-memory object that the last closer removes and
// the first opener rebuilds from the log. Here a process dies while it has the
// file open, so its object stays behind with nobody using it, and then that
// object is deleted (or wiped). The next open must rebuild it: the contents are
// intact, the blocks in use are exactly those the log reaches, and new writes —
// many of them, so that they would land on live blocks if the rebuilt bitmap
// called them free — destroy nothing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace tern::test {
namespace {

struct HoldShared {
  std::atomic<uint32_t>
      wrote;  // the child's write completed; it now holds the file open
};

constexpr uint64_t kChildWriteAt = 300 * 1024 + 17;
constexpr size_t kChildWriteLen = 9000;

// The child: opens the file, writes one range, says so, and waits to be killed
// with it open.
int HoldChildMain(const std::string& path, const std::string& shared_path) {
  auto* shared = AttachShared<HoldShared>(shared_path);
  if (shared == nullptr) return 2;
  auto f = File::Open(path, O_RDWR);
  if (!f.ok()) return 3;
  std::vector<uint8_t> data = Pattern(99, kChildWriteAt, kChildWriteLen);
  auto n = (*f)->Pwrite(data.data(), data.size(), kChildWriteAt);
  if (!n.ok() || *n != data.size() || !(*f)->Fsync().ok()) return 4;
  shared->wrote.store(1);
  for (;;) pause();
}

enum class Loss { kDeleted, kWiped };
void PrintTo(Loss loss, std::ostream* os) {
  *os << (loss == Loss::kDeleted ? "deleted" : "wiped");
}

class SharedStateLossTest : public ::testing::TestWithParam<Loss> {
 protected:
  void Write(File& f, uint64_t off, const std::vector<uint8_t>& data) {
    auto n = f.Pwrite(data.data(), data.size(), off);
    ASSERT_TRUE(n.ok() && *n == data.size()) << Describe(n.status());
    if (model_.size() < off + data.size()) model_.resize(off + data.size(), 0);
    std::copy(data.begin(), data.end(),
              model_.begin() + static_cast<std::ptrdiff_t>(off));
  }
  void ExpectModel(File& f, const std::string& when) {
    auto content = ReadAll(f);
    ASSERT_TRUE(content.ok()) << Describe(content.status());
    EXPECT_EQ(FirstDifference(*content, model_), -1)
        << when << ": content differs (size " << content->size()
        << ", expected " << model_.size() << ")";
  }

  TempDir dir_;
  std::string path_ = dir_.File("f");
  std::vector<uint8_t> model_;
};

TEST_P(SharedStateLossTest, NextOpenRebuildsTheBitmapAndKeepsEveryBlock) {
  {
    auto f = File::Open(path_, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    // Aligned and unaligned data, a hole in between, and an overwrite that
    // frees blocks.
    for (uint64_t i = 0; i < 40; ++i)
      Write(**f, i * kBlockSize, Pattern(i, i * kBlockSize, kBlockSize));
    Write(**f, 1 << 20, Pattern(50, 1 << 20, 70000));
    Write(**f, 5000, Pattern(51, 5000, 20000));
    TERN_ASSERT_OK((*f)->Fsync());
    // The Pool's thread, growing the file ahead, may hold it a moment past the close.
    CloseAndSettle(std::move(*f));
  }
  ASSERT_TRUE(dir_.ShmEntries().empty())
      << "the last close left its shared state behind";

  // A process dies holding the file: its shared state stays, and nobody has the
  // file open.
  std::string shared_path = dir_.File("hold.shared");
  auto* shared = CreateShared<HoldShared>(shared_path);
  ASSERT_NE(shared, nullptr);
  pid_t pid = SpawnSelf({"--hold-child", path_, shared_path});
  ASSERT_GT(pid, 0);
  while (shared->wrote.load() == 0) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0)
        << "the child exited with code " << WEXITSTATUS(status);
    usleep(1000);  // polling the child
  }
  KillAndReap(pid);
  std::vector<uint8_t> child_data = Pattern(99, kChildWriteAt, kChildWriteLen);
  std::copy(child_data.begin(), child_data.end(),
            model_.begin() + static_cast<std::ptrdiff_t>(kChildWriteAt));
  std::vector<std::string> left = dir_.ShmEntries();
  ASSERT_EQ(left.size(), 1u)
      << "a killed holder should leave its shared state behind";
  std::string object = dir_.shm_dir() + "/" + left[0];
  if (GetParam() == Loss::kDeleted) {
    ASSERT_EQ(unlink(object.c_str()), 0);
  } else {
    struct stat st;
    ASSERT_EQ(stat(object.c_str(), &st), 0);
    ASSERT_EQ(truncate(object.c_str(), 0),
              0);  // every bit "free", every header field zero
    ASSERT_EQ(truncate(object.c_str(), st.st_size), 0);
  }

  auto f = File::Open(path_, O_RDWR);
  TERN_ASSERT_OK(f);
  EXPECT_EQ(dir_.ShmEntries().size(), 1u)
      << "the open did not rebuild the shared state";
  ExpectModel(**f, "after the rebuild");
  auto reachable = (*f)->core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_EQ((*f)->core().BlocksInUse(), *reachable)
      << "the rebuilt bitmap does not match the log";
  // Allocate well past the live blocks: a bitmap that lost any live block hands
  // it out here.
  for (uint64_t i = 0; i < 64; ++i) {
    uint64_t off = (2 << 20) + i * kBlockSize;
    Write(**f, off, Pattern(200 + i, off, kBlockSize));
  }
  Write(**f, 100, Pattern(300, 100, 3 * kBlockSize));
  ExpectModel(**f, "after writing into the rebuilt state");
  TERN_ASSERT_OK((*f)->Fsync());
  reachable = (*f)->core().BlocksReachable();
  TERN_ASSERT_OK(reachable);
  EXPECT_EQ((*f)->core().BlocksInUse(), *reachable)
      << "blocks leaked after the rebuild";
  f->reset();
  auto again = File::Open(path_, O_RDONLY);
  TERN_ASSERT_OK(again);
  ExpectModel(**again, "after a reopen");
}

INSTANTIATE_TEST_SUITE_P(Loss, SharedStateLossTest,
                         ::testing::Values(Loss::kDeleted, Loss::kWiped),
                         [](const auto& p) {
                           return p.param == Loss::kDeleted ? "Deleted"
                                                            : "Wiped";
                         });

}  // namespace
}  // namespace tern::test

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--hold-child") {
    tern::test::DieWithParent();
    return tern::test::HoldChildMain(argv[2], argv[3]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
