// Programs run by a user other than the files' owner, who may only read them (mode 0644): they
// read tern files as they read kernel files, and are refused writes the same way. The files are
// made by root; the readers run as `nobody` through setpriv, under the same `tern run`.
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "tests/shim/shim_test_util.h"

namespace tern::shim_test {
namespace {

TEST(ShimUsers, OtherUsersReadTernFilesAndAreRefusedWrites) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to run programs as another user";
  if (!HaveProgram("setpriv")) GTEST_SKIP() << "setpriv (util-linux) is not installed";
  Scratch s;
  const std::string make =
      "printf 'rootdata\\n' > small; seq 1 30000 > big; chmod 644 small big";
  const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups -- ";
  const std::string read =
      as_nobody + "sh -c 'cat small; wc -l < big; tail -n 2 big; stat -c \"%n %s\" small big; "
                  "sort -rn big | head -n 1; "
                  "python3 -c \"import mmap; m = mmap.mmap(open(\\\"big\\\", \\\"rb\\\").fileno(), 0, "
                  "access=mmap.ACCESS_READ); print(m[-12:])\"; "
                  "echo more >> small || echo refused; cat small'";
  for (bool tern : {false, true}) {
    RunResult made = s.Bash(make, tern);
    ASSERT_EQ(made.status, 0) << made.err;
  }
  RunResult plain = s.Bash(read, false);
  RunResult tern = s.Bash(read, true);
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_NE(plain.out.find("refused"), std::string::npos) << plain.out;
  EXPECT_EQ(tern.status, plain.status) << tern.err;
  EXPECT_EQ(tern.out, plain.out) << tern.err;
  EXPECT_NE(tern.err.find("Permission denied"), std::string::npos) << tern.err;
  ExpectSameTrees(s);
  // `tern stat` by that user: the size, and that the counts of the writers' shared state are not known.
  RunResult st = s.Run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", TERN_BIN, "stat",
                        s.tern_dir() + "/small"},
                       false);
  EXPECT_EQ(st.status, 0) << st.err;
  EXPECT_NE(st.out.find("size           9 bytes\n  shared state   not joined"), std::string::npos) << st.out;
}

// A file given to another user while a process keeps it open, or while one that ended with it open
// left its shared state behind (bash execs its last command; a killed process): that object still
// belongs to the old owner, so the new owner reads without it, and is refused writes until nobody
// has the file open and the object is renewed. (A first read-only open reads slotless anyway,
// lib/pool.h; with TERN_SLOTLESS_READS=0 it tries the object, as a second open would.)
TEST(ShimUsers, ANewOwnerReadsAFileWhoseSharedStateIsTheOldOwners) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to give a file to another user";
  if (!HaveProgram("setpriv")) GTEST_SKIP() << "setpriv (util-linux) is not installed";
  Scratch s;
  const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups -- ";
  const std::string script =
      "rm -f kept left; seq 1 5000 > kept; seq 1 7000 > left; "
      "exec 3< kept; chown 65534 kept; " + as_nobody + "sh -c 'wc -l < kept; tail -n 1 kept'; exec 3<&-; "
      "sh -c 'exec 4< left; chown 65534 left; exec " + as_nobody + "sh -c \"wc -l < left\"'";
  RunResult plain = s.Bash(script, false);
  RunResult tern = s.Bash(script, true);
  RunResult tern_joining = s.Bash("export TERN_SLOTLESS_READS=0; " + script, true);
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.out, "5000\n5000\n7000\n");
  EXPECT_EQ(tern.out, plain.out) << tern.err;
  EXPECT_EQ(tern_joining.out, plain.out) << tern_joining.err;
  EXPECT_NE(tern_joining.err.find("another user's, made when the file had another owner or mode"), std::string::npos)
      << tern_joining.err;
}

// A process that gives up root while it has a file open, and opens that file again: the kernel
// checks the new credentials, so a file only root may open is refused, though this process had it
// open a moment ago (and still has). Under tern the reopen finds the file open in the engine and
// skips the kernel's check when it allowed the same access to the file as it is (lib/access_grant.h);
// the credential calls (setgroups, setresgid, setresuid here) void that, so the check runs again.
TEST(ShimUsers, AProcessThatGivesUpRootIsRefusedAReopenOfAFileItHasOpen) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root, to give it up";
  if (!HaveProgram("python3")) GTEST_SKIP() << "python3 is not installed";
  Scratch s;
  const std::string script =
      "import os\n"
      "with open('public', 'w') as f: f.write('for everyone')\n"
      "os.chmod('public', 0o644)\n"
      "held = os.open('mine', os.O_RDWR | os.O_CREAT, 0o600)\n"
      "os.write(held, b'x' * 5000)\n"
      "for again in range(2): os.close(os.open('mine', os.O_RDWR))\n"
      "os.setgroups([])\n"
      "os.setresgid(65534, 65534, 65534)\n"
      "os.setresuid(65534, 65534, 65534)\n"
      "for name, flags in (('mine read', os.O_RDONLY), ('mine write', os.O_RDWR), ('public read', os.O_RDONLY)):\n"
      "    try:\n"
      "        os.close(os.open(name.split()[0], flags))\n"
      "        print(name, 'allowed')\n"
      "    except PermissionError:\n"
      "        print(name, 'refused')\n"
      "print(len(os.pread(held, 10000, 0)))\n";
  RunResult plain = s.Run({"python3", "-c", script}, false);
  RunResult tern = s.Run({"python3", "-c", script}, true);
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.out, "mine read refused\nmine write refused\npublic read allowed\n5000\n");
  EXPECT_EQ(tern.status, 0) << tern.err;
  EXPECT_EQ(tern.out, plain.out) << tern.err;
}

}  // namespace
}  // namespace tern::shim_test
