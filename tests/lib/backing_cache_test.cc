// BackingCache (lib/backing_cache.h): a file this process closed and then deleted lends its mapped
// backing file to the next file it creates. The recycled file must be an ordinary empty file —
// nothing of the old content readable through any path, the mode and group a create would give —
// and recycling must never happen while anyone else has the old file open.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <dirent.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "lib/backing_cache.h"
#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/fsck.h"
#include "tests/test_util.h"

namespace tern {
namespace {

using test::Pattern;

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  closedir(d);
  return names;
}

ino_t InodeOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// The file checks clean and reads back as `want` when opened again.
void ExpectCleanAndReadsBack(const std::string& path, const std::vector<uint8_t>& want) {
  auto report = CheckFile(path);
  TERN_ASSERT_OK(report);
  EXPECT_TRUE(report->clean());
  auto reopened = File::Open(path, O_RDONLY);
  TERN_ASSERT_OK(reopened);
  auto got = test::ReadAll(**reopened);
  TERN_ASSERT_OK(got);
  EXPECT_EQ(test::FirstDifference(*got, want), -1) << "after reopening";
}

class BackingCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spare_dir_ = dir_.File(".spares");
    BackingCache::Default().Enable(spare_dir_, 022);
    base_ = BackingCache::Default().counts();
  }
  void TearDown() override { BackingCache::Default().DropSpares(); }

  // Creates `name` holding `bytes` of pattern `seed`, closes it, and reads it back once (closed
  // again): the cache then keeps its backing.
  void WriteClosed(const std::string& name, uint64_t seed, size_t bytes) {
    auto f = File::Open(dir_.File(name), O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    std::vector<uint8_t> data = Pattern(seed, 0, bytes);
    TERN_ASSERT_OK((*f)->Pwrite(data.data(), data.size(), 0));
    f->reset();
    auto again = File::Open(dir_.File(name), O_RDONLY);
    TERN_ASSERT_OK(again);
    auto got = test::ReadAll(**again);
    TERN_ASSERT_OK(got);
    ASSERT_EQ(*got, data);
  }
  BackingCache::Counts Delta() const {
    auto now = BackingCache::Default().counts();
    return {now.closed, now.spares, now.adopted - base_.adopted, now.retired - base_.retired,
            now.placed - base_.placed};
  }

  test::TempDir dir_;
  std::string spare_dir_;
  BackingCache::Counts base_{};
};

// The whole cycle: the deleted file's inode comes back as the new file, empty; a write with a hole
// and a truncate upwards show zeros wherever the old file had bytes; the file checks clean.
TEST_F(BackingCacheTest, ADeletedFileBecomesTheNextNewFileWithNothingOfTheOld) {
  WriteClosed("old", 7, 300 * 1024);
  EXPECT_EQ(Delta().adopted, 1u) << "the read-back open adopts the backing the writer's close kept";
  ino_t old_ino = InodeOf(dir_.File("old"));
  ASSERT_TRUE(BackingCache::Default().Retire(dir_.File("old")));
  struct stat st;
  EXPECT_NE(stat(dir_.File("old").c_str(), &st), 0) << "the name is gone, as unlink promises";
  EXPECT_EQ(Names(spare_dir_).size(), 1u);

  auto f = File::Open(dir_.File("new"), O_RDWR | O_CREAT | O_EXCL, 0666);
  TERN_ASSERT_OK(f);
  EXPECT_EQ(Delta().placed, 1u);
  EXPECT_EQ(InodeOf(dir_.File("new")), old_ino) << "the spare is the new file";
  EXPECT_TRUE(Names(spare_dir_).empty());
  ASSERT_EQ(stat(dir_.File("new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "0666 under umask 022";
  auto size = (*f)->Size();
  TERN_ASSERT_OK(size);
  EXPECT_EQ(*size, 0u);

  std::vector<uint8_t> model(200 * 1024, 0);
  std::vector<uint8_t> head = Pattern(9, 0, 100);
  std::vector<uint8_t> far = Pattern(9, 150000, 50);
  TERN_ASSERT_OK((*f)->Pwrite(head.data(), head.size(), 0));
  TERN_ASSERT_OK((*f)->Pwrite(far.data(), far.size(), 150000));
  std::copy(head.begin(), head.end(), model.begin());
  std::copy(far.begin(), far.end(), model.begin() + 150000);
  TERN_ASSERT_OK((*f)->Truncate(model.size()));
  auto got = test::ReadAll(**f);
  TERN_ASSERT_OK(got);
  EXPECT_EQ(test::FirstDifference(*got, model), -1) << "holes and the grown end read as zeros";
  auto data = (*f)->Seek(SEEK_DATA, 4096);
  TERN_ASSERT_OK(data);
  EXPECT_EQ(*data, 150000u / 4096 * 4096) << "the old file's blocks are no data of the new one";
  TERN_ASSERT_OK((*f)->Fsync());
  f->reset();

  ExpectCleanAndReadsBack(dir_.File("new"), model);
}

// A file another process has open is deleted the ordinary way: that process keeps reading the
// old bytes, and nothing becomes a spare.
TEST_F(BackingCacheTest, AFileOpenElsewhereIsNotRecycled) {
  WriteClosed("shared", 3, 64 * 1024);
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto f = File::Open(dir_.File("shared"), O_RDONLY);
    if (!f.ok()) _exit(2);
    (void)!write(ready[1], "r", 1);
    char c;
    (void)!read(done[0], &c, 1);
    auto got = test::ReadAll(**f);
    _exit(got.ok() && *got == Pattern(3, 0, 64 * 1024) ? 0 : 3);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_FALSE(BackingCache::Default().Retire(dir_.File("shared")));
  ASSERT_EQ(unlink(dir_.File("shared").c_str()), 0);
  auto f = File::Open(dir_.File("after"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(f);
  EXPECT_EQ(Delta().placed, 0u);
  ASSERT_EQ(write(done[1], "d", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child read the deleted file's bytes";
}

// A kept backing is not trusted for what the file is now: a file whose header was overwritten
// through the kernel since is refused at open (not a tern file) and left byte for byte as it was.
TEST_F(BackingCacheTest, AKeptBackingOfAFileRewrittenThroughTheKernelIsRefused) {
  WriteClosed("k", 5, 3 * kBlockSize);
  ASSERT_EQ(BackingCache::Default().counts().closed, 1u);
  int fd = open(dir_.File("k").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const char junk[] = "plain bytes, not a tern header";
  ASSERT_EQ(pwrite(fd, junk, sizeof(junk), 0), static_cast<ssize_t>(sizeof(junk)));
  std::string before(static_cast<size_t>(lseek(fd, 0, SEEK_END)), '\0');
  ASSERT_EQ(pread(fd, before.data(), before.size(), 0), static_cast<ssize_t>(before.size()));
  uint64_t adopted = Delta().adopted;
  auto f = File::Open(dir_.File("k"), O_RDWR);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().err(), kNotTernFile);
  EXPECT_EQ(Delta().adopted, adopted + 1) << "the open took the kept backing";
  std::string after(before.size(), '\0');
  ASSERT_EQ(pread(fd, after.data(), after.size(), 0), static_cast<ssize_t>(after.size()));
  EXPECT_TRUE(after == before) << "the refused open changed the file";
  close(fd);
}

// Reopening a file this process closed takes its kept backing without an open(2) while the inode
// is as it was kept; after a chmod (a new ctime) the open goes through open(2) and still adopts it.
TEST_F(BackingCacheTest, AnUnchangedFileIsReopenedFromItsKeptBackingWithoutOpen) {
  WriteClosed("r", 8, 5 * kBlockSize);
  uint64_t unchanged = BackingCache::Default().counts().adopted_unchanged;
  {
    auto f = File::Open(dir_.File("r"), O_RDWR);
    TERN_ASSERT_OK(f);
    auto got = test::ReadAll(**f);
    TERN_ASSERT_OK(got);
    EXPECT_EQ(*got, Pattern(8, 0, 5 * kBlockSize));
    test::CloseAndSettle(std::move(*f));
  }
  EXPECT_EQ(BackingCache::Default().counts().adopted_unchanged, unchanged + 1);
  ASSERT_EQ(chmod(dir_.File("r").c_str(), 0640), 0);
  uint64_t adopted = Delta().adopted;
  auto f = File::Open(dir_.File("r"), O_RDONLY);
  TERN_ASSERT_OK(f);
  EXPECT_EQ(BackingCache::Default().counts().adopted_unchanged, unchanged + 1) << "a changed inode is opened";
  EXPECT_EQ(Delta().adopted, adopted + 1) << "and its kept backing still used";
  auto got = test::ReadAll(**f);
  TERN_ASSERT_OK(got);
  EXPECT_EQ(*got, Pattern(8, 0, 5 * kBlockSize));
}

// Taking a kept backing without open(2) still checks that this process may open the file now.
TEST_F(BackingCacheTest, AKeptBackingIsNotTakenByAUserWhoMayNotOpenTheFile) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the test switches to another user with seteuid";
  {
    auto f = File::Open(dir_.File("private"), O_RDWR | O_CREAT, 0600);
    TERN_ASSERT_OK(f);
    std::vector<uint8_t> data = Pattern(9, 0, 8192);
    TERN_ASSERT_OK((*f)->Pwrite(data.data(), data.size(), 0));
    test::CloseAndSettle(std::move(*f));
  }
  ASSERT_EQ(BackingCache::Default().counts().closed, 1u);
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);  // the directory is searchable for others
  ASSERT_EQ(seteuid(65534), 0);
  auto denied = File::Open(dir_.File("private"), O_RDONLY);
  ASSERT_EQ(seteuid(0), 0);
  TERN_EXPECT_ERRNO(denied, EACCES);
  auto f = File::Open(dir_.File("private"), O_RDONLY);
  TERN_ASSERT_OK(f);
  auto got = test::ReadAll(**f);
  TERN_ASSERT_OK(got);
  EXPECT_EQ(*got, Pattern(9, 0, 8192));
}

// A create may give the new file a mode that forbids writing (git writes its objects 0444); the
// creating open still may write, as open(2) with O_CREAT allows. With a spare placed, the open
// uses the spare's own descriptor instead of opening the path again (which that mode refuses).
TEST_F(BackingCacheTest, ACreatorMayWriteAFileCreatedReadOnlyFromASpare) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the test switches to another user with seteuid (root may open anything)";
  ASSERT_EQ(chmod(dir_.path().c_str(), 0777), 0);
  ASSERT_EQ(chmod(dir_.shm_dir().c_str(), 0777), 0);
  struct BackToRoot {
    ~BackToRoot() { (void)seteuid(0); }
  } back_to_root;
  ASSERT_EQ(seteuid(65534), 0);
  {
    auto old = File::Open(dir_.File("old"), O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(old);
    std::vector<uint8_t> data = Pattern(11, 0, 3 * kBlockSize);
    TERN_ASSERT_OK((*old)->Pwrite(data.data(), data.size(), 0));
    test::CloseAndSettle(std::move(*old));
  }
  ASSERT_TRUE(BackingCache::Default().Retire(dir_.File("old")));
  uint64_t placed = Delta().placed;
  auto created = File::Open(dir_.File("readonly"), O_RDWR | O_CREAT | O_EXCL, 0444);
  TERN_ASSERT_OK(created);
  EXPECT_EQ(Delta().placed, placed + 1) << "the spare became the new file";
  std::vector<uint8_t> data = Pattern(12, 0, 5000);
  TERN_ASSERT_OK((*created)->Pwrite(data.data(), data.size(), 0));
  auto got = test::ReadAll(**created);
  TERN_ASSERT_OK(got);
  EXPECT_EQ(*got, data);
  struct stat st;
  ASSERT_EQ(stat(dir_.File("readonly").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_EQ(st.st_uid, 65534u);
}

// A name that exists is never replaced: O_CREAT opens it, O_EXCL fails, and the spare stays.
TEST_F(BackingCacheTest, AnExistingNameIsNeverReplaced) {
  WriteClosed("gone", 1, 8192);
  WriteClosed("kept", 2, 8192);
  ASSERT_TRUE(BackingCache::Default().Retire(dir_.File("gone")));
  auto excl = File::Open(dir_.File("kept"), O_RDWR | O_CREAT | O_EXCL, 0644);
  TERN_EXPECT_ERRNO(excl, EEXIST);
  auto open = File::Open(dir_.File("kept"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(open);
  auto got = test::ReadAll(**open);
  TERN_ASSERT_OK(got);
  EXPECT_EQ(*got, Pattern(2, 0, 8192));
  EXPECT_EQ(Delta().placed, 0u);
  EXPECT_EQ(Names(spare_dir_).size(), 1u);
}

// A process that creates files with none deleted to recycle gets fresh spares made ahead by its
// background thread (from its kFreshAfter-th such create on), kFreshSpares in one go, asked for
// again when fewer than kFreshLowWater are left; a create takes one and is an ordinary new file;
// DropSpares removes the rest.
TEST_F(BackingCacheTest, ACreatorWithNothingToRecycleGetsFreshSpares) {
  for (uint64_t i = 0; i < BackingCache::kFreshAfter; ++i) {
    auto f = File::Open(dir_.File("made" + std::to_string(i)), O_RDWR | O_CREAT | O_EXCL, 0644);
    TERN_ASSERT_OK(f);
  }
  auto waited = [&](size_t want) {
    for (int i = 0; i < 500 && BackingCache::Default().counts().spares < want; ++i) usleep(10000);
    return BackingCache::Default().counts().spares;
  };
  ASSERT_EQ(waited(BackingCache::kFreshSpares), BackingCache::kFreshSpares)
      << "the background thread made the batch the last create asked for";
  EXPECT_EQ(Names(spare_dir_).size(), BackingCache::kFreshSpares);
  uint64_t placed_before = BackingCache::Default().counts().placed_fresh;

  std::set<ino_t> spare_inos;
  for (const std::string& name : Names(spare_dir_)) spare_inos.insert(InodeOf(spare_dir_ + "/" + name));
  auto f = File::Open(dir_.File("new"), O_RDWR | O_CREAT | O_EXCL, 0666);
  TERN_ASSERT_OK(f);
  EXPECT_EQ(BackingCache::Default().counts().placed_fresh, placed_before + 1);
  EXPECT_TRUE(spare_inos.contains(InodeOf(dir_.File("new")))) << "a fresh spare is the new file";
  struct stat st;
  ASSERT_EQ(stat(dir_.File("new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "0666 under umask 022";
  auto size = (*f)->Size();
  TERN_ASSERT_OK(size);
  EXPECT_EQ(*size, 0u);
  std::vector<uint8_t> data = Pattern(3, 0, 20000);
  TERN_ASSERT_OK((*f)->Pwrite(data.data(), data.size(), 0));
  TERN_ASSERT_OK((*f)->Fsync());
  test::CloseAndSettle(std::move(*f));
  ExpectCleanAndReadsBack(dir_.File("new"), data);

  // Enough were left: nothing more was asked for.
  EXPECT_EQ(BackingCache::Default().counts().spares, BackingCache::kFreshSpares - 1);
  BackingCache::Default().DropSpares();
  EXPECT_TRUE(Names(spare_dir_).empty());
}

// Past kMaxClosed kept Backings the oldest are let go, and released by the background thread
// that the next open asks once a batch waits (unmapping costs a closing thread ~0.2-0.4 ms here).
TEST_F(BackingCacheTest, KeptBackingsPushedOutAreReleasedInTheBackground) {
  const size_t files = BackingCache::kMaxClosed + BackingCache::kReleaseBatch;
  for (size_t i = 0; i < files; ++i) {
    auto f = File::Open(dir_.File("k" + std::to_string(i)), O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    test::CloseAndSettle(std::move(*f));
  }
  EXPECT_EQ(BackingCache::Default().counts().closed, BackingCache::kMaxClosed);
  auto f = File::Open(dir_.File("k0"), O_RDONLY);  // pushed out long ago: opened anew
  TERN_ASSERT_OK(f);
  for (int i = 0; i < 500 && BackingCache::Default().counts().evicted > 0; ++i) usleep(10000);
  EXPECT_EQ(BackingCache::Default().counts().evicted, 0u);
}

// What the background thread lets go is parked, not unmapped: its descriptor is closed (the
// process holds no more descriptors however many files it writes), its mapping kept, within
// kMaxParked and kMaxParkedBytes; ReleaseSpares (space ran out) unmaps them all.
TEST_F(BackingCacheTest, PushedOutMappingsAreParkedWithoutDescriptorsAndBounded) {
  auto release = [] {  // after every file: never a batch for the Pool's thread
    BackingCache::Default().ReleaseEvicted();
    EXPECT_EQ(BackingCache::Default().counts().evicted, 0u);
  };
  auto open_fds = [] { return Names("/proc/self/fd").size(); };
  auto write_files = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      auto f = File::Open(dir_.File("p" + std::to_string(i)), O_RDWR | O_CREAT, 0644);
      TERN_ASSERT_OK(f);
      TERN_ASSERT_OK((*f)->Pwrite("x", 1, 0));
      test::CloseAndSettle(std::move(*f));
      release();
    }
  };
  write_files(0, BackingCache::kMaxClosed + 1);
  size_t fds = open_fds();
  uint64_t parked = BackingCache::Default().counts().parked;
  write_files(BackingCache::kMaxClosed + 1, BackingCache::kMaxClosed + 41);
  EXPECT_EQ(BackingCache::Default().counts().parked, std::min<uint64_t>(parked + 40, BackingCache::kMaxParked));
  // Fresh spares made ahead come and go (each holds a descriptor); 40 parked ones would be 40 more.
  EXPECT_LE(open_fds(), fds + BackingCache::kFreshSpares) << "parked mappings should hold no descriptor";
  write_files(BackingCache::kMaxClosed + 41, BackingCache::kMaxClosed + BackingCache::kMaxParked + 20);
  auto counts = BackingCache::Default().counts();
  EXPECT_LE(counts.parked, BackingCache::kMaxParked);
  EXPECT_GE(counts.parked, BackingCache::kMaxParked - BackingCache::kParkedBatch);
  EXPECT_LE(counts.parked_bytes, BackingCache::kMaxParkedBytes);
  EXPECT_GT(counts.parked_bytes, 0u);
  // The batch past the bound left its address space for the files made after it.
  EXPECT_GT(counts.recycled_lent, 0u);
  EXPECT_LE(counts.recycled, BackingCache::kMaxRecycled);
  for (size_t i = BackingCache::kMaxClosed + BackingCache::kMaxParked; i < BackingCache::kMaxClosed + BackingCache::kMaxParked + 20; ++i) {
    ExpectCleanAndReadsBack(dir_.File("p" + std::to_string(i)), {'x'});
  }
  EXPECT_TRUE(BackingCache::Default().ReleaseSpares());
  EXPECT_EQ(BackingCache::Default().counts().parked, 0u);
  EXPECT_EQ(BackingCache::Default().counts().parked_bytes, 0u);
}

// Spares end with the process (DropSpares at exit and exec); those of a process that was killed
// are swept by the next process that makes one.
TEST_F(BackingCacheTest, SparesDoNotOutliveTheirProcess) {
  WriteClosed("a", 1, 8192);
  ASSERT_TRUE(BackingCache::Default().Retire(dir_.File("a")));
  ASSERT_EQ(Names(spare_dir_).size(), 1u);
  BackingCache::Default().DropSpares();
  struct stat st;
  EXPECT_NE(stat(spare_dir_.c_str(), &st), 0) << "the emptied spare directory is removed";

  // A killed process's spare: a file in the spare directory whose open lock nobody holds.
  ASSERT_EQ(mkdir(spare_dir_.c_str(), 0700), 0);
  WriteClosed("orphan", 4, 8192);
  ASSERT_EQ(rename(dir_.File("orphan").c_str(), (spare_dir_ + "/99999.0").c_str()), 0);
  BackingCache::Default().Enable(spare_dir_, 022);  // a new process: its first spare sweeps
  WriteClosed("b", 5, 8192);
  ASSERT_TRUE(BackingCache::Default().Retire(dir_.File("b")));
  std::vector<std::string> left = Names(spare_dir_);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_NE(left[0], "99999.0");
}

// `tern gc --spares`: only spares whose process is gone go; a live process's stay (it holds their
// open locks). The directory is the root's sibling.
TEST_F(BackingCacheTest, SweepingOrphansLeavesLiveSpares) {
  EXPECT_EQ(BackingCache::SpareDirFor("/dev/shm/tern", 1000), "/dev/shm/.tern-spares-1000");
  EXPECT_EQ(BackingCache::SpareDirFor("/tern", 0), "/.tern-spares-0");
  EXPECT_EQ(BackingCache::SpareDirFor("/", 0), "");
  WriteClosed("orphan", 2, 8192);  // made first: a create would take the live spare
  WriteClosed("live", 1, 8192);
  ASSERT_TRUE(BackingCache::Default().Retire(dir_.File("live")));
  ASSERT_EQ(rename(dir_.File("orphan").c_str(), (spare_dir_ + "/99999.0").c_str()), 0);
  ASSERT_EQ(Names(spare_dir_).size(), 2u);
  auto swept = BackingCache::SweepOrphans(spare_dir_);
  TERN_ASSERT_OK(swept);
  EXPECT_EQ(*swept, 1u);
  std::vector<std::string> left = Names(spare_dir_);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_NE(left[0], "99999.0");
  auto none = BackingCache::SweepOrphans(dir_.File("no-such-dir"));
  TERN_ASSERT_OK(none);
  EXPECT_EQ(*none, 0u);
}

// A forked child forgets the parent's spares (both would otherwise hand out the same inode).
TEST_F(BackingCacheTest, AForkedChildDoesNotTakeTheParentsSpares) {
  WriteClosed("a", 1, 8192);
  ino_t spare_ino = InodeOf(dir_.File("a"));
  ASSERT_TRUE(BackingCache::Default().Retire(dir_.File("a")));
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto f = File::Open(dir_.File("child"), O_RDWR | O_CREAT, 0644);
    _exit(f.ok() && InodeOf(dir_.File("child")) != spare_ino ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto f = File::Open(dir_.File("parent"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(f);
  EXPECT_EQ(InodeOf(dir_.File("parent")), spare_ino) << "the parent still has its spare";
}

}  // namespace
}  // namespace tern
