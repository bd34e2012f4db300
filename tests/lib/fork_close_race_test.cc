// A fork that races the last close of a file: the parent's close may run while the child still
// shares the parent's open file description (between fork and the child's own reopen). The child
// once blocked forever on its open lock, and the parent removed the shared state the child kept
// using. Here the race is forced with atfork handlers registered before tern's: the prepare handler
// (run after tern's) drops the only handle, and the child handler (run before tern's) waits until
// the parent has finished closing.
#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lib/file.h"
#include "tests/test_util.h"

namespace tern {
namespace {

std::unique_ptr<File> g_doomed;  // dropped by the prepare handler, inside the fork
int g_parent_closed[2] = {-1, -1};  // the parent writes a byte once its close is done

void DropTheHandle() { g_doomed.reset(); }
void WaitForTheParentsClose() {
  char c;
  (void)!read(g_parent_closed[0], &c, 1);
}

TEST(ForkCloseRaceTest, ChildKeepsWorkingWhenTheParentClosesDuringFork) {
  // Before any File exists, so these run outside tern's handlers (POSIX orders prepare handlers
  // last-registered first, child handlers first-registered first).
  ASSERT_EQ(pthread_atfork(&DropTheHandle, nullptr, &WaitForTheParentsClose), 0);
  ASSERT_EQ(pipe(g_parent_closed), 0);
  test::TempDir dir;
  std::string path = dir.path() + "/f";
  std::vector<uint8_t> first = test::Pattern(1, 0, 3 * 4096);
  {
    auto f = File::Open(path, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    g_doomed = std::move(f).value();
    TERN_ASSERT_OK(g_doomed->Pwrite(first.data(), first.size(), 0));
    TERN_ASSERT_OK(g_doomed->Fsync());
  }
  // The child opens the file again (the engine object came along through fork), writes, and
  // exits 0 if all went well; it must not hang.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto f = File::Open(path, O_RDWR);
    if (!f.ok()) _exit(2);
    std::vector<uint8_t> second = test::Pattern(2, 0, 4096);
    if (!(*f)->Pwrite(second.data(), second.size(), 4096).ok() || !(*f)->Fsync().ok()) _exit(3);
    std::vector<uint8_t> got(3 * 4096);
    if (!(*f)->Pread(got.data(), got.size(), 0).ok()) _exit(4);
    if (memcmp(got.data(), first.data(), 4096) != 0 || memcmp(got.data() + 4096, second.data(), 4096) != 0) _exit(5);
    _exit(0);
  }
  // Our handle was dropped inside fork; the close ran in the parent-after-fork handler by now.
  ASSERT_EQ(g_doomed, nullptr);
  ASSERT_EQ(write(g_parent_closed[1], "x", 1), 1);
  // A third opener meanwhile must see the same shared state the child uses (or build its own
  // only once the child is gone), and the writes of both.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int status = 0;
  pid_t done = 0;
  while ((done = waitpid(child, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (done == 0) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    FAIL() << "the child hung after a fork that raced the parent's last close";
  }
  ASSERT_TRUE(WIFEXITED(status)) << "child died by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child failed step " << WEXITSTATUS(status);
  auto f = File::Open(path, O_RDWR);
  TERN_ASSERT_OK(f);
  std::vector<uint8_t> got(3 * 4096);
  TERN_ASSERT_OK((*f)->Pread(got.data(), got.size(), 0));
  EXPECT_EQ(memcmp(got.data(), first.data(), 4096), 0);
  EXPECT_EQ(memcmp(got.data() + 4096, test::Pattern(2, 0, 4096).data(), 4096), 0) << "the child's write is lost";
  EXPECT_EQ(memcmp(got.data() + 8192, first.data() + 8192, 4096), 0);
}

}  // namespace
}  // namespace tern
