// The test side of the kill tests: starts a writer fleet (writer_fleet.h) as
// child processes, kills and respawns them, watches that the live ones keep
// making progress, and checks the file. Also the soak knobs and the no-leak
// check the kill tests share.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "lib/file.h"
#include "tests/crash/writer_fleet.h"
#include "tests/test_util.h"

namespace tern::test {

// A live writer that completes no op for this long is blocked (DESIGN §5: a
// dead process leaves nothing that blocks others). A deadline, not a
// performance assertion: ops take microseconds.
inline constexpr std::chrono::seconds kProgressDeadline{10};

struct SoakConfig {
  int kills;
  uint64_t seed;
};
// `ci_kills` with a fixed seed; with TERN_SOAK=1, `soak_kills` with
// TERN_SOAK_SEED or a random seed.
SoakConfig SoakFromEnv(int ci_kills, int soak_kills);

// Blocks in use == blocks reachable from the log (gtest failure naming the
// unreferenced blocks). REQUIRES: no writer alive, dead slots reclaimed, log
// flushed.
void ExpectNoLeak(File& f, const std::string& when);

class Fleet {
 public:
  // `processes` × `threads` writers on dir/"f". REQUIRES: processes * threads
  // <= kFleetMaxWriters. `reopen_every` (FleetShared): 0 = each process keeps
  // the file open.
  Fleet(const TempDir& dir, int processes, int threads, uint32_t reopen_every = 0);
  ~Fleet();  // kills what still runs
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  const std::string& path() const { return path_; }
  // Creates the file and the shared memory, spawns every process. False (with a
  // failure) on error.
  bool Start();
  // Starts process `p`'s writers again. REQUIRES: a Check since they were killed (else a gtest
  // failure and false).
  bool Spawn(int process);
  // SIGKILLs and reaps process `p`; its writers become dead (their op in flight
  // unresolved until the next Check). Errors: it was not running, or it had
  // exited by itself.
  std::string Kill(int process);
  // CheckFleet over every writer; resolves the dead ones.
  std::string Check(File& f);
  // Waits until `process` completed `ops` ops since it was spawned, watching
  // every live writer.
  std::string WaitForOps(int process, uint64_t ops);
  // "" while every live process runs and every live writer made progress within
  // the deadline.
  std::string Watch();
  uint64_t OpsSinceSpawn(int process) const;
  uint64_t TotalOps() const;

 private:
  std::string DescribeExit(int process, int status) const;

  std::string path_;
  std::string shared_path_;
  int processes_;
  int threads_;
  uint32_t reopen_every_;
  FleetShared* shared_ = nullptr;
  std::vector<pid_t> pids_;  // -1: not running
  std::vector<WriterState> states_;
  std::vector<uint64_t> base_;  // done at spawn
  std::vector<uint64_t> last_done_;
  std::vector<std::chrono::steady_clock::time_point> last_change_;
};

}  // namespace tern::test
