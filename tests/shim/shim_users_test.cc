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
}

}  // namespace
}  // namespace tern::shim_test
