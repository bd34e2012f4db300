#include "tests/process_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace tern::test {

pid_t SpawnSelf(const std::vector<std::string>& args) {
  std::vector<std::string> owned;
  owned.reserve(args.size() + 1);
  owned.push_back("tern-test-child");
  owned.insert(owned.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : owned) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(),
                       environ);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn: " << strerror(rc);
    return -1;
  }
  return pid;
}

void DieWithParent() {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) raise(SIGKILL);  // the test died before the line above
}

pid_t ForkChild() { return fork(); }
void ExitChild(bool ok) { _exit(ok ? 0 : 1); }
bool WaitChildSucceeded(pid_t pid) {
  int status = 0;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void SpinFor(uint64_t iterations) {
  std::atomic<uint64_t> spin{iterations};
  while (spin.load(std::memory_order_relaxed) > 0)
    spin.fetch_sub(1, std::memory_order_relaxed);
}

int KillAndReap(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

void* MapSharedFile(const std::string& path, size_t bytes, bool create) {
  int fd = open(path.c_str(),
                O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600);
  if (fd < 0) return nullptr;
  if (create && ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    close(fd);
    return nullptr;
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace tern::test
