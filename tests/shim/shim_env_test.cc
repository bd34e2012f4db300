// Programs started with an environment that lost LD_PRELOAD (`env -i`, a subprocess given an
// environment of its own) by a program under tern: they run under tern too, with the same
// settings, instead of reading tern files as their backing format. An LD_PRELOAD set without the
// shim is a choice, and kept.
#include <string>

#include <gtest/gtest.h>

#include "tests/shim/shim_test_util.h"

namespace tern::shim_test {
namespace {

TEST(ShimEnv, ProgramsStartedWithAnEmptyEnvironmentStayOnTern) {
  Scratch s;
  const std::string script =
      "printf 'hello\\n' > f; "
      "env -i /bin/cat f; "
      "env -i /bin/sh -c 'echo more >> f; wc -c < f'; "
      "python3 -c 'import subprocess; subprocess.run([\"cat\", \"f\"], env={\"PATH\": \"/usr/bin:/bin\"})'; "
      "python3 -c 'import os; os.execve(\"/usr/bin/tail\", [\"tail\", \"-n\", \"1\", \"f\"], {})'";
  RunResult plain = s.Bash(script, false);
  RunResult tern = s.Bash(script, true);
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(tern.status, 0) << tern.err;
  EXPECT_EQ(tern.out, plain.out) << tern.err;
  ExpectSameTrees(s);
  // Opting out: the program sees the backing file, as any program without tern does.
  RunResult out = s.Bash("LD_PRELOAD= /bin/cat f | head -c 8", true);
  EXPECT_EQ(out.out, "NRFILES1") << out.err;
}

}  // namespace
}  // namespace tern::shim_test
