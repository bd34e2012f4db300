// shim_probe's scenarios (tests/shim/shim_probe*.cc: sequences of libc file calls that print what
// they returned) run on the kernel and under `tern run` and compared line by line; and the
// scenarios that only tern can answer (shared appenders, pinned mappings) checked against their
// expected output.
#include <fcntl.h>
#include <sys/stat.h>

#include <string>

#include <gtest/gtest.h>

#include "lib/file.h"
#include "tests/shim/shim_test_util.h"

namespace tern::shim_test {
namespace {

class ShimProbes : public ::testing::Test {
 protected:
  RunResult Probe(const std::string& args, bool tern) { return RunProbe(s_, args, tern); }

  // A probe whose files depend on timing: same status (0) and output, and every file left a valid
  // tern file; a hang ends at the timeout.
  void ExpectSameTimedProbe(const std::string& args) {
    std::string run = "timeout 120 " + std::string(SHIM_PROBE_BIN) + " " + args;
    RunResult plain = s_.Bash(run, false);
    RunResult tern = s_.Bash(run, true);
    EXPECT_EQ(plain.status, 0) << plain.err;
    EXPECT_EQ(tern.status, 0) << tern.err;
    EXPECT_EQ(plain.out, tern.out) << tern.err;
    ExpectAllTernFiles(s_.tern_dir());
  }

  Scratch s_;
};

TEST_F(ShimProbes, ProbeErrnoParity) {
  RunResult plain = Probe("errno", false);
  RunResult tern = Probe("errno", true);
  EXPECT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.out, tern.out) << tern.err;
  EXPECT_EQ(plain.status, tern.status);
}

TEST_F(ShimProbes, ProbeRandomOperations) {
  for (int seed = 1; seed <= 4; ++seed) {
    std::string args = "random " + std::to_string(seed) + " 400";
    RunResult plain = Probe(args, false);
    RunResult tern = Probe(args, true);
    EXPECT_EQ(plain.out, tern.out) << "seed " << seed << "\n" << tern.err;
    ExpectSameTrees(s_);
  }
}

TEST_F(ShimProbes, ProbeForkExecDupStdioLocksMmapFstream) {
  for (const char* what : {"fork", "exec", "spawn", "splice", "opath", "reopen", "system", "times", "aio", "dupflags", "stdio", "locks", "mmap", "fstream"}) {
    RunResult plain = Probe(what, false);
    RunResult tern = Probe(what, true);
    EXPECT_EQ(plain.status, 0) << what << ": " << plain.err;
    EXPECT_EQ(plain.status, tern.status) << what << ": " << tern.err;
    EXPECT_EQ(plain.out, tern.out) << what << ": " << tern.err;
  }
  ExpectSameTrees(s_);
}

TEST_F(ShimProbes, SignalHandlersWriteToFiles) {
  // A handler that entered the shim while its thread was inside it waited for itself (the run
  // hung: the timeout ends it), and one that interrupted malloc corrupted the heap (abort).
  ExpectSameTimedProbe("signals");  // how many lines the handlers wrote differs run to run
}

TEST_F(ShimProbes, ThreadsCancelledInFileIo) {
  // The unwinding of a cancelled thread that crossed a shim frame aborted the program (code 134),
  // whether the thread was in a tern file's I/O or blocked in open(2) of any file.
  ExpectSameTimedProbe("cancel");  // how far each cancelled loop got differs run to run
}

TEST_F(ShimProbes, ConcurrentAppendersNeverOverwrite) {
  RunResult tern = Probe("append2 3000", true);
  EXPECT_EQ(tern.out, "records 3000 3000 bad 0 size 258000\n") << tern.err;
  uint64_t size = 0;
  auto f = File::Open(s_.tern_dir() + "/appended", O_RDONLY);
  ASSERT_TRUE(f.ok());
  auto got = (*f)->Size();
  ASSERT_TRUE(got.ok());
  size = *got;
  EXPECT_EQ(size, 258000u);
}

TEST_F(ShimProbes, ThreadsShareOneDescription) {
  RunResult plain = Probe("threads", false);
  RunResult tern = Probe("threads", true);
  EXPECT_EQ(plain.out, "size 256000 bad 0 torn 0 dup-errors 0 churn-errors 0\n") << plain.err;
  EXPECT_EQ(tern.out, plain.out) << tern.err;
}

TEST_F(ShimProbes, ForksWhileThreadsWriteShareTheOffset) {
  RunResult plain = Probe("fork-while-writing", false);
  RunResult tern = Probe("fork-while-writing", true);
  std::string want;
  for (int round = 0; round < 6; ++round) {
    want += "round " + std::to_string(round) + " size 48192 writer-records 3000 child-records 12 bad 0 child-failures 0\n";
  }
  EXPECT_EQ(plain.out, want) << plain.err;
  EXPECT_EQ(tern.out, plain.out) << tern.err;
  ExpectAllTernFiles(s_.tern_dir());
}

// mmap shows the file's own blocks without a copy, pinned until munmap: rewriting the file (which
// would reuse freed blocks) leaves the mapping as it was; a child's munmap or a partial one ends no
// pin early; and once unmapped, superseded blocks are freed again (the file stays small).
TEST_F(ShimProbes, MappingsShowPinnedBlocksUntilMunmap) {
  RunResult tern = Probe("mmap-pins", true);
  EXPECT_EQ(tern.status, 0) << tern.err;
  EXPECT_EQ(tern.out,
            "maps the file itself: 1\n"
            "content: 1\n"
            "mprotect writable: -1 EACCES\n"
            "unchanged after rewrites: 1\n"
            "unchanged after a child's munmap: 1\n"
            "rest unchanged after a partial munmap: 1\n"
            "private maps the file itself: 1\n"
            "file unchanged by private stores: 1\n"
            "fragmented maps the file itself: 0\n"
            "fragmented content: 1\n"
            "done\n")
      << tern.err;
  struct stat st = {};
  ASSERT_EQ(stat((s_.tern_dir() + "/pinned").c_str(), &st), 0);
  // 4 MiB here; 64 map-overwrite-unmap rounds of 65 blocks leave 18 MiB if no unmapping ends a
  // pin, 10 MiB if only MAP_FIXED over the mapping does not.
  EXPECT_LE(st.st_size, 6 << 20) << "backing file size";
  auto f = File::Open(s_.tern_dir() + "/pinned", O_RDONLY);
  ASSERT_TRUE(f.ok());
  auto size = (*f)->Size();
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, 64u * 4096 + 100);
}

// A tern file's descriptor, from a first open or from a reopen of a file open here (a duplicate
// of the engine's own O_PATH descriptor), lets nothing that bypasses libc reach the backing file.
TEST_F(ShimProbes, SystemCallsThatBypassLibcGetNothingThroughATernFd) {
  RunResult tern = Probe("rawfd", true);
  EXPECT_EQ(tern.status, 0) << tern.err;
  std::string round =
      "raw pread: -1 EBADF\n"
      "raw pwrite: -1 EBADF\n"
      "raw ftruncate: -1 EBADF\n";
  EXPECT_EQ(tern.out, "write: ok 5\n" + round + round + round +
                          "raw pread of the first: -1 EBADF\n"
                          "content: bytes\n")
      << tern.err;
  ExpectAllTernFiles(s_.tern_dir());
}

// stat of a file nobody has open reads its log instead of opening it (shim/ops.cc,
// PeekLogicalStat): for every shape of log — an extended record's size, holes, truncates, appends in
// place, several log blocks, a checkpoint left by compaction, and a file too large to be read that
// way — stat, lstat, fstatat and statx show the size and blocks an open descriptor's fstat shows,
// and the sizes the kernel shows.
TEST_F(ShimProbes, StatOfAClosedFileShowsWhatTheOpenFileShows) {
  RunResult plain = Probe("statmake", false);
  RunResult tern = Probe("statmake", true);
  ASSERT_EQ(plain.status, 0) << plain.err;
  ASSERT_EQ(tern.status, 0) << tern.err;
  EXPECT_EQ(plain.out, tern.out) << tern.err;
  // Compacted: replay starts at a checkpoint.
  RunResult gc = s_.Bash(std::string(TERN_BIN) + " gc " + s_.tern_dir() + "/overwritten", false);
  ASSERT_EQ(gc.status, 0) << gc.out << gc.err;
  plain = Probe("statcheck", false);
  tern = Probe("statcheck", true);
  EXPECT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(tern.status, 0) << tern.err;
  EXPECT_EQ(plain.out, tern.out) << tern.err;
  ExpectAllTernFiles(s_.tern_dir());
}

// The same read of the log while another process appends to the file (and its log grows into new
// log blocks): every size a stat shows is one the file had, none fails.
TEST_F(ShimProbes, StatOfAFileAnotherProcessAppendsToShowsSizesItHad) {
  const std::string want =
      "stats failed 0, sizes that shrank 0, sizes between records 0, last is the whole file 1, many stats 1\n";
  RunResult plain = Probe("statrace", false);
  EXPECT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.out, want) << plain.err;
  RunResult tern = Probe("statrace", true);
  EXPECT_EQ(tern.status, 0) << tern.err;
  EXPECT_EQ(tern.out, want) << tern.err;
  ExpectAllTernFiles(s_.tern_dir());
}

}  // namespace
}  // namespace tern::shim_test
