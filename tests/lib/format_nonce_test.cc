// Format nonces (lib/format_nonce.h) name a file's shared state and tell an inode's earlier files
// from its current one: they must not repeat within a process, nor between a process and the
// children it forks (which continue its count).
#include "lib/format_nonce.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "tests/process_util.h"

namespace tern {
namespace {

TEST(FormatNonceTest, NeverRepeatsInAProcessOrAcrossFork) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(seen.insert(NewFormatNonce()).second) << "repeated after " << i;
  // The child's next nonces against the ones the parent makes next: the same count, another pid.
  std::vector<uint64_t> parent_next;
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  EXPECT_TRUE(test::InForkedChild([&] {
    for (int i = 0; i < 1000; ++i) {
      uint64_t n = NewFormatNonce();
      if (write(pipe_fds[1], &n, sizeof(n)) != static_cast<ssize_t>(sizeof(n))) return false;
    }
    return true;
  }));
  close(pipe_fds[1]);
  for (int i = 0; i < 1000; ++i) parent_next.push_back(NewFormatNonce());
  for (uint64_t n : parent_next) ASSERT_TRUE(seen.insert(n).second);
  uint64_t n;
  int from_child = 0;
  while (read(pipe_fds[0], &n, sizeof(n)) == static_cast<ssize_t>(sizeof(n))) {
    ++from_child;
    EXPECT_TRUE(seen.insert(n).second) << "the child repeated a nonce of its parent's";
  }
  close(pipe_fds[0]);
  EXPECT_EQ(from_child, 1000);
}

}  // namespace
}  // namespace tern
