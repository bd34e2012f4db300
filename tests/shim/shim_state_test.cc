// What tern leaves outside the files programs see: shared-state objects (published while a file is
// open, at rest after a large file's last close, kept as spares between files) and spare backing
// files beside the root. Programs run under `tern run` with a private shared-state directory
// (TERN_SHM_DIR), so other processes' objects do not count; the checks are that nothing outlives
// its use, and that what killed processes leave is swept — by the minute's sweep, by `rm`, or by
// `tern gc --spares`.
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lib/shared_state.h"
#include "lib/shared_state_spares.h"
#include "tests/shim/shim_test_util.h"

namespace tern::shim_test {
namespace {

// Names in `dir` that start with `prefix` (every name when it is empty, dot names left out then).
size_t CountNames(const std::string& dir, const std::string& prefix) {
  size_t n = 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (struct dirent* e = readdir(d)) {
      std::string name = e->d_name;
      n += prefix.empty() ? name[0] != '.' : name.starts_with(prefix);
    }
    closedir(d);
  }
  return n;
}

class ShimState : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(mkdir(shm_.c_str(), 0700), 0); }
  void TearDown() override {
    for (const std::string& dir : mounted_) umount2(dir.c_str(), MNT_DETACH);
  }

  // A tmpfs with mount options `options` at `dir` until the test ends. Skips, saying why, unless
  // this is root and may mount.
  void MountTmpfs(const std::string& dir, const char* options) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: mounts a small tmpfs";
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, options) != 0) {
      if (errno == EPERM) GTEST_SKIP() << "root, but no right to mount a tmpfs here (a container?)";
      FAIL() << "mount " << dir << ": " << strerror(errno);
    }
    mounted_.push_back(dir);
  }

  // The environment that points tern at the private directory, with TERN_LOG=`log` if given.
  std::vector<std::string> Env(const std::string& log = "") const {
    std::vector<std::string> env = {"TERN_SHM_DIR=" + shm_};
    if (!log.empty()) env.push_back("TERN_LOG=" + log);
    return env;
  }
  // python3 under tern running `script`, then SIGKILLing itself.
  RunResult KilledPython(const std::string& script, const std::string& log = "") const {
    return s_.Run({"python3", "-c", "import os\n" + script + "os.kill(os.getpid(), 9)\n"}, true, Env(log));
  }
  // The orphan sweep's marker (SharedState::SweepOrphansIfDue): its age says when a sweep is due.
  std::string SweepMarker() const {
    return shm_ + "/" + SharedState::kSweepMarkerPrefix + std::to_string(geteuid());
  }

  Scratch s_;
  std::string shm_ = s_.base() + "/shm";
  std::vector<std::string> mounted_;
};

// `rm` of a large tern file takes the shared state its last close left at rest along
// (lib/file_core_rest.cc), instead of leaving it to a sweep 15 minutes later.
TEST_F(ShimState, RemovingALargeFileRemovesItsRestingState) {
  RunResult made = s_.Bash("head -c 136314880 /dev/zero > big && wc -c < big", true, Env());  // 130 MiB
  ASSERT_EQ(made.out, "136314880\n") << made.err;
  ASSERT_EQ(CountNames(shm_, SharedState::kPublishedPrefix), 1u) << "big's object rests after its last close";
  RunResult removed = s_.Bash("rm big", true, Env());
  EXPECT_EQ(removed.status, 0) << removed.err;
  EXPECT_EQ(CountNames(shm_, SharedState::kPublishedPrefix), 0u);
}

// A process killed while it keeps a deleted file as a spare leaves it beside the root; `tern gc
// --spares` removes it (and leaves the spares of live processes alone: see backing_cache_test),
// with the shared-state objects the process kept and published.
TEST_F(ShimState, TernGcSparesRemovesWhatKilledProcessesLeft) {
  RunResult killed = KilledPython(
      "held = open('held', 'wb')\n"
      "held.write(b'y' * 5000)\n"
      "held.flush()\n"
      "with open('doomed', 'wb') as f: f.write(b'x' * 9000)\n"
      "os.unlink('doomed')\n");
  EXPECT_EQ(killed.status, 128 + 9) << killed.err;
  std::string spares = s_.base() + "/.tern-spares-" + std::to_string(geteuid());
  const std::string state_prefix = SharedStateSpares::kPrefix;
  ASSERT_EQ(CountNames(spares, ""), 1u) << "the killed process's spare";
  ASSERT_EQ(CountNames(shm_, state_prefix), 1u) << "the shared state it kept after closing doomed";
  ASSERT_EQ(CountNames(shm_, SharedState::kPublishedPrefix), 1u) << "held's, published while it was open";
  RunResult gc = s_.Run({TERN_BIN, "gc", "--spares", "--root", s_.tern_dir()}, false, Env());
  EXPECT_EQ(gc.status, 0) << gc.err;
  EXPECT_EQ(gc.out, spares + ": 1 spare files of processes that are gone removed\n" + shm_ +
                        ": 1 spare shared-state objects of processes that are gone removed\n" + shm_ +
                        ": 1 shared-state objects of files whose processes are gone removed\n");
  EXPECT_EQ(CountNames(spares, ""), 0u);
  EXPECT_EQ(CountNames(shm_, state_prefix), 0u);
  EXPECT_EQ(CountNames(shm_, SharedState::kPublishedPrefix), 0u);
  EXPECT_EQ(s_.Bash("wc -c < held", true, Env()).out, "5000\n") << "held opens again, rebuilt from its log";
  // The root in another spelling names the same spare directory (the shim's lexical form).
  RunResult again = s_.Run({TERN_BIN, "gc", "--spares", "--root=" + s_.tern_dir() + "/./"}, false, Env());
  EXPECT_EQ(again.out, spares + ": 0 spare files of processes that are gone removed\n" + shm_ +
                           ": 0 spare shared-state objects of processes that are gone removed\n" + shm_ +
                           ": 0 shared-state objects of files whose processes are gone removed\n")
      << again.err;
  EXPECT_EQ(s_.Run({TERN_BIN, "gc", "--spares", "--bogus"}, false).status, 2);
}

// A process killed while it is a file's last opener leaves the file's shared state published; the
// next process under tern that closes a file sweeps such objects (at most once a minute per user:
// the marker's age says when a sweep is due, so the test removes it).
TEST_F(ShimState, AKilledLastOpenersSharedStateIsSweptByTheNextProcess) {
  RunResult killed = KilledPython(
      "held = open('held', 'wb')\n"
      "held.write(b'y' * 5000)\n"
      "held.flush()\n",
      "info");
  EXPECT_EQ(killed.status, 128 + 9) << killed.err;
  ASSERT_EQ(CountNames(shm_, SharedState::kPublishedPrefix), 1u);
  unlink(SweepMarker().c_str());  // as if the last sweep were long ago
  RunResult next = s_.Bash("echo other > other && cat other", true, Env("info"));
  EXPECT_EQ(next.out, "other\n") << next.err;
  EXPECT_NE(next.err.find("removed 1 shared-state objects of files whose processes are gone"), std::string::npos)
      << next.err;
  EXPECT_EQ(CountNames(shm_, SharedState::kPublishedPrefix), 0u);
  EXPECT_EQ(s_.Bash("wc -c < held", true, Env()).out, "5000\n");
}

// The spare shared-state objects a killed process kept are removed by the minute's sweep (one
// process a minute looks, SharedState::SweepOrphansIfDue), not by every process that starts: the
// directory holds an object per file open anywhere, and reading it all is a short command's cost.
TEST_F(ShimState, AKilledProcessesSpareStatesGoWithTheMinutesSweep) {
  // The sleep outlasts the file's lingering after close (Pool::kLingerFor): closed for real then.
  RunResult killed = KilledPython("import time\n"
                                  "with open('closed', 'wb') as f: f.write(b'x' * 9000)\n"
                                  "time.sleep(1)\n",
                                  "info");
  EXPECT_EQ(killed.status, 128 + 9) << killed.err;
  const std::string spare_prefix = SharedStateSpares::kPrefix;
  ASSERT_EQ(CountNames(shm_, spare_prefix), 1u) << "the state it kept after closing `closed`";
  WritePlain(SweepMarker(), "");  // swept a moment ago
  RunResult early = s_.Bash("echo a > a && cat a", true, Env("info"));
  EXPECT_EQ(early.out, "a\n") << early.err;
  EXPECT_EQ(CountNames(shm_, spare_prefix), 1u) << "not due: nobody read the directory";
  unlink(SweepMarker().c_str());  // as if the last sweep were long ago
  RunResult due = s_.Bash("echo b > b && cat b", true, Env("info"));
  EXPECT_EQ(due.out, "b\n") << due.err;
  EXPECT_NE(due.err.find("removed 1 spare shared-state objects of processes that are gone"), std::string::npos)
      << due.err;
  EXPECT_EQ(CountNames(shm_, spare_prefix), 0u);
  EXPECT_EQ(s_.Bash("wc -c < closed", true, Env()).out, "9000\n");
}

// A shell that writes, reads back and deletes many small files: the files' shared-state objects
// are reused from one file to the next (what makes such a loop several times faster), and
// nothing of them is left once the programs have exited.
TEST_F(ShimState, SmallFilesReuseSharedStateAndLeaveNothingBehind) {
  const std::string script =
      "for i in $(seq 1 40); do echo \"line $i\" > f$i; read -r x < f$i; echo \"$x\" >> all; rm f$i; done\n"
      "echo kept > kept.txt; cat all | wc -l";
  RunResult plain = s_.Bash(script, false);
  RunResult tern = s_.Bash(script, true, Env("debug"));
  EXPECT_EQ(tern.status, 0) << tern.err;
  EXPECT_EQ(tern.out, plain.out);
  EXPECT_EQ(tern.out, "40\n");
  ExpectSameTrees(s_);
  size_t at = tern.err.rfind("shared-state spares: ");  // the shell's own, at its exit (the last)
  ASSERT_NE(at, std::string::npos) << tern.err;
  unsigned long kept = 0, reused = 0;
  ASSERT_EQ(sscanf(tern.err.c_str() + at, "shared-state spares: %lu kept at a last close, %lu reused", &kept, &reused), 2);
  EXPECT_GE(reused, 40u) << tern.err;
  EXPECT_EQ(CountNames(shm_, ".tern") - CountNames(shm_, SharedState::kSweepMarkerPrefix), 0u)
      << "no spare and no published object outlives the programs (the orphan sweep's marker may)";
}

// _exit runs no atexit handler and no destructor, yet dash ends every `sh -c` with it (after its
// last command's child exits), as do Python's os._exit and forked children: the spares such a
// process kept go with it, as at exit(), not a minute later with the sweep.
TEST_F(ShimState, ProcessesThatEndWithUnderscoreExitLeaveNoSpares) {
  RunResult sh = s_.Run({"sh", "-c", "echo hi > f; cat f"}, true, Env());
  EXPECT_EQ(sh.out, "hi\n") << sh.err;
  const std::string spare_prefix = SharedStateSpares::kPrefix;
  EXPECT_EQ(CountNames(shm_, spare_prefix), 0u) << "the shell kept f's shared state after `echo hi > f`";
  const std::string spares = s_.base() + "/.tern-spares-" + std::to_string(geteuid());
  RunResult py = s_.Run({"python3", "-c",
                         "import os, time\n"
                         "with open('before_child', 'wb') as f: f.write(b'y')\n"
                         "pid = os.fork()\n"
                         "if pid == 0: os._exit(0)\n"
                         "os.waitpid(pid, 0)\n"
                         "for i in range(12):\n"
                         "    with open('p%d' % i, 'wb') as f: f.write(b'x' * 100)\n"
                         "    os.unlink('p%d' % i) if i % 2 else None\n"
                         "time.sleep(0.2)\n"  // the spares made ahead are made by now
                         "kept = [n for n in os.listdir(os.environ['TERN_SHM_DIR']) if n.startswith('" +
                             spare_prefix + "')]\n"
                         "print(len(kept), len(os.listdir('" + spares + "')), flush=True)\n"
                         "os._exit(7)\n"},
                        true, Env());
  EXPECT_EQ(py.status, 7) << py.err;
  unsigned kept_states = 0, kept_backings = 0;
  ASSERT_EQ(sscanf(py.out.c_str(), "%u %u", &kept_states, &kept_backings), 2) << py.out << py.err;
  EXPECT_GE(kept_states, 1u) << "what the process kept before its _exit";
  EXPECT_GE(kept_backings, 1u);
  EXPECT_EQ(CountNames(shm_, spare_prefix), 0u);
  EXPECT_EQ(CountNames(spares, ""), 0u) << "the deleted files' backings it kept and the spares made ahead";
  EXPECT_EQ(s_.Bash("cat before_child p0", true, Env()).out, "y" + std::string(100, 'x'));
}

// The shared-state directory is a tmpfs with a size limit (/dev/shm: half the RAM by default, and
// the default root lives there too). When it is full, a first open of a tern file for writing, or a
// write that grows one, fails with ENOSPC, as a write into a full filesystem does; a reader reads
// without the object (slotless, as a reader that may not write the file). (Each page of the sparse
// object is allocated before its first touch: a touch with no room behind it was a SIGBUS that
// killed the program.) Once there is room again, the same process goes on.
TEST_F(ShimState, AFullSharedStateDirectoryIsEnospcNotACrash) {
  MountTmpfs(shm_, "size=256k");  // the shared-state directory
  if (IsSkipped() || HasFatalFailure()) return;
  RunResult py = s_.Run({"python3", "-c",
                         "import os, errno, subprocess\n"
                         "with open('ro', 'w') as r: r.write('read me')\n"
                         "f = os.open('grow', os.O_WRONLY | os.O_CREAT, 0o644)\n"
                         "os.write(f, b'a' * 4096)\n"
                         "filler = os.environ['TERN_SHM_DIR'] + '/filler'\n"
                         "with open(filler, 'wb', buffering=0) as g:\n"
                         "    try:\n"
                         "        while True: g.write(b'f' * 4096)\n"
                         "    except OSError as e: assert e.errno == errno.ENOSPC\n"
                         "def attempt(what, step):\n"
                         "    try: step(); print(what, 'ok')\n"
                         "    except OSError as e: print(what, errno.errorcode[e.errno])\n"
                         "attempt('grow', lambda: os.write(f, b'b' * (16 << 20)))\n"
                         "attempt('create', lambda: open('other', 'wb'))\n"
                         "print(subprocess.run(['cat', 'ro'], capture_output=True).stdout)\n"
                         "os.unlink(filler)\n"
                         "attempt('grow', lambda: os.write(f, b'c' * (16 << 20)))\n"
                         "attempt('create', lambda: open('other', 'wb').write(b'o'))\n"
                         "os.close(f)\n"
                         "print(os.path.getsize('grow'))\n"},
                        true, Env());
  EXPECT_EQ(py.status, 0) << py.err;
  EXPECT_EQ(py.out, "grow ENOSPC\ncreate ENOSPC\nb'read me'\ngrow ok\ncreate ok\n" + std::to_string(4096 + (16 << 20)) + "\n")
      << py.err;
  EXPECT_NE(py.err.find("warn: shared state in " + shm_ + ": allocate a page of shared state: No space left on device"),
            std::string::npos)
      << py.err;
  uint64_t size = 0;
  auto bytes = ReadTern(s_.tern_dir() + "/grow", &size);
  ASSERT_TRUE(bytes.ok()) << bytes.status().context();
  EXPECT_EQ(*bytes, std::string(4096, 'a') + std::string(16 << 20, 'c')) << "the refused write left nothing";
}

// A shared-state directory that is missing (a mistyped TERN_SHM_DIR) fails every first open of a
// tern file with the errno of its creation, ENOENT here, which alone would point at the file's own
// path: one warning line a process names the directory and the cause.
TEST_F(ShimState, AMissingSharedStateDirectoryIsNamedInOneWarning) {
  const std::string missing = s_.base() + "/missing";
  RunResult r = s_.Bash("echo a > a; echo b > b; echo \"$?\"", true, {"TERN_SHM_DIR=" + missing});
  EXPECT_EQ(r.out, "1\n");
  const std::string warning = "warn: shared state in " + missing + ": create shared state: No such file or directory";
  size_t at = r.err.find(warning);
  EXPECT_NE(at, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(warning, at + 1), std::string::npos) << "said once: " << r.err;
}

// A process keeps the backing of a file it deletes for the next file it creates (spares, beside
// the root on the same filesystem), and the backing of a file it closed for a reopen, which holds
// the file's space after another process deletes it: so `rm` frees nothing at once. When the
// filesystem is full, a growth gives that space back and tries again: a program that deletes files
// to make room for its writes gets the room, as on the kernel.
TEST_F(ShimState, ADeletedFilesSpaceComesBackWhenTheFilesystemIsFull) {
  const std::string small = s_.base() + "/small";
  ASSERT_EQ(mkdir(small.c_str(), 0755), 0);
  MountTmpfs(small, "size=6m");
  if (IsSkipped() || HasFatalFailure()) return;
  const std::string root = small + "/root";  // its spares go to small/.tern-spares-UID
  ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
  // A file's backing reaches the closed-file cache when the last reference to it goes, which may
  // be the Pool's thread's a moment after close returns (1 run in ~60 here under load): the
  // writes pause before the deletes, so that the unlink finds the backing to keep as a spare.
  RunResult py = s_.Run({TERN_BIN, "run", "--root", root, "--", "python3", "-c",
                         "import os, time\n"
                         "def write(name, byte):\n"
                         "    with open('" + root + "/' + name, 'wb') as f: f.write(byte * (3 << 19))\n"
                         "    time.sleep(0.2)\n"
                         "c = os.open('" + root + "/c', os.O_WRONLY | os.O_CREAT, 0o644)\n"
                         "write('a', b'a')\n"
                         "os.unlink('" + root + "/a')\n"
                         "print(len(os.listdir('" + small + "/.tern-spares-" + std::to_string(geteuid()) + "')))\n"
                         "write('d', b'd')\n"
                         "assert os.system('rm " + root + "/d') == 0\n"
                         "os.write(c, b'c' * (3 << 20))\n"
                         "os.close(c)\n"
                         "print(os.path.getsize('" + root + "/c'))\n"},
                        false, Env());
  EXPECT_EQ(py.status, 0) << py.err;
  EXPECT_EQ(py.out, "1\n" + std::to_string(3 << 20) + "\n") << "a's and d's backings were kept, then given back" << py.err;
}

}  // namespace
}  // namespace tern::shim_test
