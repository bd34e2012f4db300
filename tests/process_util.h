// Helpers for tests that run several processes on one tern file: re-executing
// the test binary as a child (a fresh process that inherits nothing from the
// test but its environment), memory shared with those children through a small
// mapped file, and killing and reaping a child.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace tern::test {

// Re-executes this binary (/proc/self/exe) with `args` as argv[1..]; returns
// the child's pid, or -1 with a gtest failure. posix_spawn, not fork: no atfork
// handlers run in the parent, which may have tern files open and engine threads
// running.
pid_t SpawnSelf(const std::vector<std::string>& args);

// Called first in a spawned child: the child gets SIGKILL when the test process
// dies, so a test that crashes leaves no writers running.
void DieWithParent();

// Runs `child` in a forked process (which _exits with its result); true if it returned true
// there. For a test about what a process has done since it began (no atfork surprises: call it
// from a test process with no tern file open and no engine thread).
pid_t ForkChild();
[[noreturn]] void ExitChild(bool ok);
bool WaitChildSucceeded(pid_t pid);
template <typename F>
bool InForkedChild(F child) {
  pid_t pid = ForkChild();
  if (pid == 0) ExitChild(child());
  return pid > 0 && WaitChildSucceeded(pid);
}

// Busy-waits `iterations` rounds: a kill moment finer than any sleep.
void SpinFor(uint64_t iterations);

// SIGKILLs `pid` (if still running) and reaps it. Returns the wait status, or
// -1 on error.
int KillAndReap(pid_t pid);

// Maps `bytes` of the file at `path` MAP_SHARED, creating it (zero-filled) when
// `create`. Returns nullptr on error (with errno). The mapping lives until the
// process exits.
void* MapSharedFile(const std::string& path, size_t bytes, bool create);

// A T placed in a file that the test and its children map: the test creates it
// (zeroed) before it spawns them, each child attaches by path. T holds only
// lock-free atomics and plain integers.
template <typename T>
T* CreateShared(const std::string& path) {
  static_assert(std::is_trivially_destructible_v<T>);
  return static_cast<T*>(MapSharedFile(path, sizeof(T), true));
}
template <typename T>
T* AttachShared(const std::string& path) {
  return static_cast<T*>(MapSharedFile(path, sizeof(T), false));
}

}  // namespace tern::test
