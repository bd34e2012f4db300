// Helpers shared by tern's test suites: a private temp directory on /dev/shm, deterministic byte
// patterns, raw access to backing files, whole-file reads through the engine, and running a piece
// of code in a forked child so that a crash or a hang there becomes a test failure instead of
// killing the test binary.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/status.h"
#include "lib/test_hooks.h"

// Status / Result assertions that print the errno and the context.
// Each may be followed by `<< more context`.
#define TERN_EXPECT_OK(expr)                                               \
  if (::tern::Status _st = ::tern::test::ToStatus(expr); false) {          \
  } else                                                                   \
    EXPECT_TRUE(_st.ok()) << #expr << " failed: " << ::tern::test::Describe(_st)
#define TERN_ASSERT_OK(expr)                                               \
  if (::tern::Status _st = ::tern::test::ToStatus(expr); false) {          \
  } else                                                                   \
    ASSERT_TRUE(_st.ok()) << #expr << " failed: " << ::tern::test::Describe(_st)
// Expects that a Status or Result failed with errno `e`.
#define TERN_EXPECT_ERRNO(expr, e)                                         \
  if (::tern::Status _st = ::tern::test::ToStatus(expr); false) {          \
  } else                                                                   \
    EXPECT_EQ(_st.err(), (e)) << #expr << ": got " << ::tern::test::Describe(_st)

namespace tern::test {

inline Status ToStatus(Status s) { return s; }
template <typename T>
Status ToStatus(const Result<T>& r) {
  return r.status();
}
// "errno N (name): context".
std::string Describe(Status s);

// A fresh directory /dev/shm/tern-test-XXXXXX (under $TERN_TEST_DIR if set), removed with
// everything in it on destruction. It also points TERN_SHM_DIR at a private subdirectory so the
// shared-state objects of the files a test opens are its own (and checkable: see ShmEntries).
// REQUIRES: constructed and destroyed while no other thread reads the environment.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  const std::string& shm_dir() const { return shm_dir_; }
  // Names in the private shared-state directory (empty when every tern file is closed).
  std::vector<std::string> ShmEntries() const;

 private:
  std::string path_;
  std::string shm_dir_;
  std::string old_shm_env_;
  bool had_shm_env_ = false;
};

// Deterministic bytes: the byte at absolute file offset `offset` of pattern `seed`. Two different
// seeds differ at almost every offset, so a misplaced or stale byte shows.
uint8_t PatternByte(uint64_t seed, uint64_t offset);
// Fills `out` with PatternByte(seed, offset + i).
void FillPattern(uint64_t seed, uint64_t offset, uint8_t* out, size_t len);
std::vector<uint8_t> Pattern(uint64_t seed, uint64_t offset, size_t len);

// Whole backing file through plain syscalls (empty on error, with a gtest failure).
std::vector<uint8_t> ReadRawFile(const std::string& path);
// Overwrites bytes of a backing file through plain syscalls. Returns false on error.
bool WriteRawBytes(const std::string& path, uint64_t offset, const void* data, size_t len);
// Creates an empty tern file at `path` whose backing file holds `backing_bytes` (a size the growth
// rule produces, e.g. 2 MiB). For tests that reason about which blocks a write may reuse: a new
// file's backing is small, and a writer that runs out of free blocks makes its log durable and
// reuses the blocks its commits superseded, where a roomy file takes fresh ones.
void CreateRoomyFile(const std::string& path, uint64_t backing_bytes);
// Creates a plain file with the given content.
bool WritePlainFile(const std::string& path, const std::vector<uint8_t>& content);

// The logical content of a tern file, read through the engine in chunks of `chunk` bytes.
Result<std::vector<uint8_t>> ReadAll(tern::File& f, size_t chunk = 1 << 20);

// Index of the first byte where a and b differ (or the shorter length); -1 when equal.
int64_t FirstDifference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);
int64_t FirstDifference(const uint8_t* a, const uint8_t* b, size_t len);

// Closes f and waits until its last close has run to the end: the engine's background thread may
// hold the file and close it a moment later. Then the file's open lock is free (no open anywhere).
void CloseAndSettle(std::unique_ptr<tern::File> f);
// Whether some open file description other than a fresh one of ours holds `path`'s open lock: the
// tern file is open somewhere, in any process (lib/open_lock.h). A path that cannot be opened, or
// a lock that cannot be asked about, is a test failure (and false).
bool OpenSomewhere(const std::string& path);

// Waits for child `pid`; its exit status, or -1 when it did not exit normally (or pid <= 0).
int WaitExitStatus(pid_t pid);
// A forked child that stops once at a trace-build hook (lib/test_hooks.h) while its parent acts:
//   auto child = HookedChild::Fork(test_hooks::some_hook, [&] { ...; return 0; });
//   (the parent prepares) child->Go(); ASSERT_TRUE(child->Stopped());
//   (the parent acts inside the window) child->Resume(); EXPECT_EQ(child->Wait(), 0);
// Forked before the parent opens anything, so that the child's opens are its own (no inherited
// engine). The child exits with the body's result; 9 when the parent went away before Go, 10
// when it went away while the child was stopped.
class HookedChild {
 public:
  // Forks; nullptr (with a test failure) when pipe or fork fails. `hook` is armed in the child
  // only, when its body starts; the first pass through it stops the child.
  static std::unique_ptr<HookedChild> Fork(test_hooks::WindowHook& hook, const std::function<int()>& body);
  ~HookedChild();  // closes the pipes; a child still running is killed and reaped
  HookedChild(const HookedChild&) = delete;
  HookedChild& operator=(const HookedChild&) = delete;

  void Go();       // the child starts its body
  bool Stopped();  // waits until the child stops at the hook; false if it ended first
  void Resume();   // the stopped child goes on
  int Wait();      // its exit status (WaitExitStatus)

 private:
  HookedChild() = default;
  pid_t pid_ = -1;
  int to_child_ = -1, from_child_ = -1;
};
// Shared-state objects published in `dir`'s private shared-state directory (one per file open
// somewhere, or left by processes killed while they had it open).
size_t PublishedObjects(const TempDir& dir);
// A child process writes `bytes` of pattern `seed` at offset 0 of `path` (created if missing),
// fsyncs, and exits without closing, as a kill would leave it: the kernel drops its locks, nothing
// else happens. Returns the child's exit status (0 when every step worked), -1 if it did not exit.
int DieWithFileOpen(const std::string& path, uint64_t seed, size_t bytes);
// A child process opens `path` read-only and checks that it holds `bytes` of pattern `seed`.
// Returns its exit status: 0 when it does, 2 when the open failed, 3 when the bytes differ.
int ChildReads(const std::string& path, uint64_t seed, size_t bytes);

// What happened to a child process run by RunIsolated.
struct ChildOutcome {
  bool exited = false;      // exited normally; `code` is valid
  int code = -1;            // the value fn returned (0..255), or 255 if it could not be reported
  int signal = 0;           // the signal that killed it, when !exited
  std::string Describe() const;
};

// Runs fn in a forked child and waits for it. The child returns fn()'s value as exit code (0..254).
// A watchdog alarm of `watchdog_seconds` turns a hang (an endless loop on a damaged log) into a
// SIGALRM death rather than a stuck test; it is not a timing assertion.
// REQUIRES: no other threads running (fork of a single-threaded process).
ChildOutcome RunIsolated(const std::function<int()>& fn, unsigned watchdog_seconds = 120);

}  // namespace tern::test
