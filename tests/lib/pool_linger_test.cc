// Pool's lingering (lib/pool.h): a file this process opens again stays open here after its last
// close, so the next reopen finds its engine as it was, until its time is up, a new file needs its
// shared state, its name goes, or the process ends. To other processes it is open meanwhile, and
// closed after. A file opened once closes at once. A forked child leaves the parent's lingering
// files alone and opens the file for itself.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lib/backing_cache.h"
#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/pool.h"
#include "lib/shared_state_spares.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::OpenSomewhere;
using test::Pattern;

// Long enough that no file ends its lingering by time in a test that expects it open, however slow
// the machine; the test of the time ending uses a short one.
constexpr std::chrono::milliseconds kLingerForever = std::chrono::hours(1);
constexpr std::chrono::milliseconds kLingerBriefly = std::chrono::seconds(1);

class PoolLingerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A reopen is told by the Backing the cache kept at the last close.
    BackingCache::Default().Enable(dir_.File(".spares"), 022);
    SharedStateSpares::Default().Enable();
    Pool::Default().EndAllLingering();
    Pool::Default().EnableLinger(kLingerForever);
  }
  void TearDown() override {
    Pool::Default().EndAllLingering();
    SharedStateSpares::Default().DropAll();
    BackingCache::Default().DropSpares();
  }

  // Creates `name` with `bytes` of pattern `seed` and closes it; returns its engine, which the
  // caller watches through a weak reference (nothing of the test keeps it open).
  std::weak_ptr<FileCore> CreateAndClose(const std::string& name, uint64_t seed, size_t bytes) {
    auto f = File::Open(dir_.File(name), O_RDWR | O_CREAT, 0644);
    EXPECT_TRUE(f.ok()) << f.status().context();
    if (!f.ok()) return {};
    std::vector<uint8_t> data = Pattern(seed, 0, bytes);
    EXPECT_TRUE((*f)->Pwrite(data.data(), data.size(), 0).ok());
    std::weak_ptr<FileCore> core = (*f)->core().shared_from_this();
    f->reset();
    return core;
  }
  // CreateAndClose, then opens and closes the file once more: the reopen makes it linger.
  std::weak_ptr<FileCore> WriteAndClose(const std::string& name, uint64_t seed, size_t bytes) {
    std::weak_ptr<FileCore> first = CreateAndClose(name, seed, bytes);
    EXPECT_TRUE(first.expired()) << "opened once: closed at once";
    auto f = File::Open(dir_.File(name), O_RDONLY);
    EXPECT_TRUE(f.ok()) << f.status().context();
    if (!f.ok()) return {};
    std::weak_ptr<FileCore> core = (*f)->core().shared_from_this();
    f->reset();
    return core;
  }

  void ExpectReads(const std::string& name, uint64_t seed, size_t bytes) {
    auto f = File::Open(dir_.File(name), O_RDONLY);
    TERN_ASSERT_OK(f);
    std::vector<uint8_t> got(bytes);
    auto n = (*f)->Pread(got.data(), got.size(), 0);
    TERN_ASSERT_OK(n);
    EXPECT_EQ(*n, bytes);
    EXPECT_TRUE(got == Pattern(seed, 0, bytes)) << name;
  }

  test::TempDir dir_;
};

TEST_F(PoolLingerTest, AFileOpenedOnceClosesAtOnce) {
  std::weak_ptr<FileCore> core = CreateAndClose("a", 1, 10000);
  EXPECT_TRUE(core.expired());
  EXPECT_EQ(Pool::Default().LingeringCount(), 0u);
  EXPECT_FALSE(OpenSomewhere(dir_.File("a")));
}

TEST_F(PoolLingerTest, AClosedFileStaysOpenUntilItsTimeIsUp) {
  Pool::Default().EnableLinger(kLingerBriefly);
  std::weak_ptr<FileCore> core = WriteAndClose("a", 1, 10000);
  ASSERT_FALSE(core.expired()) << "closed a moment ago: still open here";
  EXPECT_EQ(Pool::Default().LingeringCount(), 1u);
  EXPECT_TRUE(OpenSomewhere(dir_.File("a")));
  {
    auto again = File::Open(dir_.File("a"), O_RDONLY);
    TERN_ASSERT_OK(again);
    EXPECT_EQ(&(*again)->core(), core.lock().get()) << "the reopen finds the engine as it was";
  }
  ExpectReads("a", 1, 10000);
  // Each open starts the time anew; the background thread closes it once that is up.
  auto deadline = std::chrono::steady_clock::now() + kLingerBriefly * 20;
  while (!core.expired() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(kLingerBriefly / 10);
  }
  EXPECT_TRUE(core.expired()) << "still open " << (kLingerBriefly * 20).count() << " ms later";
  EXPECT_EQ(Pool::Default().LingeringCount(), 0u);
  EXPECT_FALSE(OpenSomewhere(dir_.File("a")));
  EXPECT_EQ(test::PublishedObjects(dir_), 0u) << "its close unpublished the shared state";
  ExpectReads("a", 1, 10000);
}

TEST_F(PoolLingerTest, AFileWhoseNameGoesClosesAtOnce) {
  std::weak_ptr<FileCore> core = WriteAndClose("a", 2, 5000);
  ASSERT_FALSE(core.expired());
  struct stat st;
  ASSERT_EQ(stat(dir_.File("a").c_str(), &st), 0);
  Pool::Default().EndLinger(st.st_dev, st.st_ino);
  EXPECT_TRUE(core.expired());
  EXPECT_FALSE(OpenSomewhere(dir_.File("a")));
}

TEST_F(PoolLingerTest, AFileInUseIsNotClosedByItsLingerEnding) {
  auto f = File::Open(dir_.File("a"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(f);
  Pool::Default().EndAllLingering();
  std::vector<uint8_t> data = Pattern(3, 0, 3000);
  TERN_ASSERT_OK((*f)->Pwrite(data.data(), data.size(), 0));
  EXPECT_TRUE(OpenSomewhere(dir_.File("a")));
  f->reset();  // the last use: closes now, lingering over
  EXPECT_FALSE(OpenSomewhere(dir_.File("a")));
  ExpectReads("a", 3, 3000);
}

// At most kMaxLingering files linger: the file that would be one more pushes out the one whose time
// is nearest its end, which closes for everyone (and reads back); the others stay.
TEST_F(PoolLingerTest, OneFileMoreThanMayLingerPushesOutTheOldest) {
  std::vector<std::weak_ptr<FileCore>> cores;
  for (size_t i = 0; i < Pool::kMaxLingering; ++i) {
    cores.push_back(WriteAndClose("f" + std::to_string(i), 10 + i, 3000));
  }
  EXPECT_EQ(Pool::Default().LingeringCount(), Pool::kMaxLingering);
  for (const auto& core : cores) ASSERT_FALSE(core.expired());
  std::weak_ptr<FileCore> newest = WriteAndClose("newest", 30, 3000);
  EXPECT_FALSE(newest.expired());
  EXPECT_EQ(Pool::Default().LingeringCount(), Pool::kMaxLingering);
  EXPECT_TRUE(cores[0].expired()) << "the oldest was pushed out";
  EXPECT_FALSE(OpenSomewhere(dir_.File("f0")));
  for (size_t i = 1; i < cores.size(); ++i) EXPECT_FALSE(cores[i].expired()) << i;
  ExpectReads("f0", 10, 3000);
}

// What the shim hands a program that opens a file open here again (shim/open.cc, ReopenOpenHere):
// the Pool says the file is open here while it lingers, and its engine keeps one O_PATH descriptor
// of its inode, whatever becomes of the name, closed with the engine.
TEST_F(PoolLingerTest, ALingeringFileKeepsAPathDescriptorOfItsInodeUntilItCloses) {
  std::weak_ptr<FileCore> core = WriteAndClose("a", 8, 5000);
  ASSERT_FALSE(core.expired());
  struct stat named;
  ASSERT_EQ(stat(dir_.File("a").c_str(), &named), 0);
  EXPECT_TRUE(Pool::Default().MayHaveOpenFiles());
  EXPECT_TRUE(Pool::Default().IsOpenHere(named.st_dev, named.st_ino));
  int pd = core.lock()->PathDescriptor();
  ASSERT_GE(pd, 0) << strerror(errno);
  EXPECT_EQ(core.lock()->PathDescriptor(), pd) << "one descriptor, kept";
  EXPECT_NE(fcntl(pd, F_GETFL) & O_PATH, 0);
  EXPECT_NE(fcntl(pd, F_GETFD) & FD_CLOEXEC, 0);
  char byte;
  EXPECT_EQ(read(pd, &byte, 1), -1) << "no access through it";
  ASSERT_EQ(rename(dir_.File("a").c_str(), dir_.File("b").c_str()), 0);
  struct stat via;
  ASSERT_EQ(fstat(pd, &via), 0);
  EXPECT_EQ(via.st_ino, named.st_ino) << "the inode, whatever became of its name";
  EXPECT_EQ(via.st_dev, named.st_dev);
  Pool::Default().EndLinger(named.st_dev, named.st_ino);
  ASSERT_TRUE(core.expired());
  EXPECT_FALSE(Pool::Default().IsOpenHere(named.st_dev, named.st_ino));
  // Closed with the engine: the number is free (or, reused since, names another file).
  EXPECT_TRUE(fstat(pd, &via) != 0 || via.st_ino != named.st_ino);
}

// A shell that writes a file, reads it back and has another process delete it, file after file:
// the next file's first open closes the deleted one, which nothing can reopen, and reuses its
// shared-state object, as without lingering. A lingering file that still has its name stays.
TEST_F(PoolLingerTest, ANewFileTakesTheSharedStateOfADeletedLingeringFile) {
  std::weak_ptr<FileCore> kept = WriteAndClose("kept", 4, 3000);
  std::weak_ptr<FileCore> gone = WriteAndClose("gone", 5, 3000);
  ASSERT_FALSE(kept.expired());
  ASSERT_FALSE(gone.expired());
  ASSERT_EQ(unlink(dir_.File("gone").c_str()), 0);  // as `rm` in another process does it
  SharedStateSpares::Default().DropAll();
  uint64_t reused = SharedStateSpares::Default().counts().reused;
  {
    auto b = File::Open(dir_.File("b"), O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(b);
    EXPECT_TRUE(gone.expired()) << "b's first open closed the deleted file";
    EXPECT_FALSE(kept.expired());
    EXPECT_EQ(SharedStateSpares::Default().counts().reused, reused + 1) << "b took its object";
  }
  {
    auto c = File::Open(dir_.File("c"), O_RDWR | O_CREAT, 0644);  // (b's object waits for it)
    TERN_ASSERT_OK(c);
  }
  SharedStateSpares::Default().DropAll();
  {
    auto d = File::Open(dir_.File("d"), O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(d);
    EXPECT_FALSE(kept.expired()) << "a file with a name lingers on";
  }
  ExpectReads("kept", 4, 3000);
}

// The parent's lingering file is left to it: the child opens the file with an engine of its own
// (its own slot and descriptions), and the parent's engine, still lingering, sees what the child
// wrote. The parent may keep the object for reuse at its close: the child never used it.
TEST_F(PoolLingerTest, AForkedChildLeavesTheParentsLingeringFilesAlone) {
  std::weak_ptr<FileCore> core = WriteAndClose("a", 6, 8192);
  ASSERT_FALSE(core.expired());
  const FileCore* parents = core.lock().get();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    {
      auto f = File::Open(dir_.File("a"), O_RDWR);
      if (!f.ok()) _exit(2);
      if (&(*f)->core() == parents) code = 3;
      std::vector<uint8_t> data = Pattern(7, 0, 8192);
      if (code == 0 && !(*f)->Pwrite(data.data(), data.size(), 0).ok()) code = 4;
      if (code == 0 && !(*f)->Fsync().ok()) code = 5;
    }
    Pool::Default().EndAllLingering();
    _exit(code);
  }
  EXPECT_EQ(test::WaitExitStatus(child), 0) << "2: no open, 3: the parent's engine, 4/5: no write";
  EXPECT_FALSE(core.expired());
  EXPECT_TRUE(OpenSomewhere(dir_.File("a"))) << "still open here";
  {
    auto again = File::Open(dir_.File("a"), O_RDONLY);
    TERN_ASSERT_OK(again);
    EXPECT_EQ(&(*again)->core(), parents);
  }
  ExpectReads("a", 7, 8192);
  uint64_t kept = SharedStateSpares::Default().counts().kept;
  Pool::Default().EndAllLingering();
  EXPECT_TRUE(core.expired());
  EXPECT_FALSE(OpenSomewhere(dir_.File("a")));
  EXPECT_EQ(SharedStateSpares::Default().counts().kept, kept + 1) << "kept for reuse despite the fork";
  ExpectReads("a", 7, 8192);
}

}  // namespace
}  // namespace tern
