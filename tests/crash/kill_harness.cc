#include "tests/crash/kill_harness.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <random>

#include "lib/file_core.h"
#include "tests/process_util.h"

namespace tern::test {

SoakConfig SoakFromEnv(int ci_kills, int soak_kills) {
  const char* soak = getenv("TERN_SOAK");
  if (soak == nullptr || std::string(soak) != "1") return {ci_kills, 20261123};
  const char* seed = getenv("TERN_SOAK_SEED");
  return {soak_kills, seed != nullptr ? strtoull(seed, nullptr, 0)
                                      : std::random_device{}()};
}

void ExpectNoLeak(File& f, const std::string& when) {
  auto reachable = f.core().BlocksReachable();
  ASSERT_TRUE(reachable.ok()) << Describe(reachable.status());
  uint64_t in_use = f.core().BlocksInUse();
  if (in_use == *reachable) return;
  std::string blocks;
  auto unreferenced = f.core().UnreferencedInUse();
  if (unreferenced.ok()) {
    for (size_t i = 0; i < unreferenced->size() && i < 16; ++i) {
      blocks += " " + std::to_string((*unreferenced)[i].first) + "(owner " +
                std::to_string((*unreferenced)[i].second) + ")";
    }
  }
  ADD_FAILURE() << when << ": " << in_use << " blocks in use, " << *reachable
                << " reachable from the log; unreferenced:" << blocks;
}

Fleet::Fleet(const TempDir& dir, int processes, int threads, uint32_t reopen_every)
    : path_(dir.File("f")),
      shared_path_(dir.File("fleet.shared")),
      processes_(processes),
      threads_(threads),
      reopen_every_(reopen_every),
      pids_(static_cast<size_t>(processes), -1),
      states_(static_cast<size_t>(processes * threads), WriterState::kStopped),
      base_(states_.size(), 0),
      last_done_(states_.size(), 0),
      last_change_(states_.size()) {}

Fleet::~Fleet() {
  for (pid_t pid : pids_) {
    if (pid > 0) KillAndReap(pid);
  }
}

bool Fleet::Start() {
  if (processes_ * threads_ > kFleetMaxWriters) {
    ADD_FAILURE() << "too many writers";
    return false;
  }
  Status st = CreateFleetFile(path_);
  if (!st.ok()) {
    ADD_FAILURE() << "create " << path_ << ": " << Describe(st);
    return false;
  }
  shared_ = CreateShared<FleetShared>(shared_path_);
  if (shared_ == nullptr) {
    ADD_FAILURE() << "shared memory " << shared_path_ << ": "
                  << strerror(errno);
    return false;
  }
  shared_->threads_per_process.store(static_cast<uint32_t>(threads_));
  shared_->reopen_every.store(reopen_every_);
  for (int g = 0; g < processes_ * threads_; ++g)
    shared_->writers[g].next_start.store(1);
  for (int p = 0; p < processes_; ++p) {
    if (!Spawn(p)) return false;
  }
  return true;
}

bool Fleet::Spawn(int process) {
  auto now = std::chrono::steady_clock::now();
  for (int t = 0; t < threads_; ++t) {
    auto g = static_cast<size_t>(process * threads_ + t);
    // A killed writer's last op is resolved by Check; started again before that, the new writer
    // would repeat op numbers the file already holds.
    if (states_[g] == WriterState::kDead) {
      ADD_FAILURE() << "writer " << g << " started again before a Check resolved its kill";
      return false;
    }
  }
  for (int t = 0; t < threads_; ++t) {
    auto g = static_cast<size_t>(process * threads_ + t);
    FleetWriter& w = shared_->writers[g];
    w.place.store(kNoPlace);
    w.error.store(0);
    base_[g] = last_done_[g] = w.done.load();
    last_change_[g] = now;
    states_[g] = WriterState::kRunning;
  }
  pid_t pid = SpawnSelf(
      {"--fleet-child", path_, shared_path_, std::to_string(process)});
  pids_[static_cast<size_t>(process)] = pid;
  return pid > 0;
}

std::string Fleet::DescribeExit(int process, int status) const {
  std::string out = "process " + std::to_string(process) +
                    " exited by itself with code " +
                    std::to_string(WEXITSTATUS(status));
  for (int t = 0; t < threads_; ++t) {
    int g = process * threads_ + t;
    out += "; writer " + std::to_string(g) + " error " +
           std::to_string(shared_->writers[g].error.load());
  }
  return out;
}

std::string Fleet::Kill(int process) {
  pid_t& pid = pids_[static_cast<size_t>(process)];
  if (pid <= 0) return "process " + std::to_string(process) + " is not running";
  int status = KillAndReap(pid);
  pid = -1;
  for (int t = 0; t < threads_; ++t)
    states_[static_cast<size_t>(process * threads_ + t)] = WriterState::kDead;
  if (status == -1) return "waitpid failed";
  if (WIFEXITED(status)) return DescribeExit(process, status);
  return "";
}

std::string Fleet::Check(File& f) {
  std::string problems =
      CheckFleet(f, shared_, processes_ * threads_, states_.data());
  for (WriterState& s : states_) {
    if (s == WriterState::kDead) s = WriterState::kStopped;
  }
  return problems;
}

std::string Fleet::Watch() {
  auto now = std::chrono::steady_clock::now();
  for (int p = 0; p < processes_; ++p) {
    pid_t pid = pids_[static_cast<size_t>(p)];
    if (pid <= 0) continue;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pids_[static_cast<size_t>(p)] = -1;
      return WIFEXITED(status) ? DescribeExit(p, status)
                               : "process " + std::to_string(p) + " died";
    }
    for (int t = 0; t < threads_; ++t) {
      auto g = static_cast<size_t>(p * threads_ + t);
      uint64_t done = shared_->writers[g].done.load();
      if (done != last_done_[g]) {
        last_done_[g] = done;
        last_change_[g] = now;
      } else if (now - last_change_[g] > kProgressDeadline) {
        return "writer " + std::to_string(g) + " (process " +
               std::to_string(p) + ") completed no op for " +
               std::to_string(kProgressDeadline.count()) + " s: blocked";
      }
    }
  }
  return "";
}

std::string Fleet::WaitForOps(int process, uint64_t ops) {
  while (OpsSinceSpawn(process) < ops) {
    std::string problem = Watch();
    if (!problem.empty()) return problem;
    usleep(200);  // polling; the deadline is Watch's
  }
  return "";
}

uint64_t Fleet::OpsSinceSpawn(int process) const {
  uint64_t ops = 0;
  for (int t = 0; t < threads_; ++t) {
    auto g = static_cast<size_t>(process * threads_ + t);
    ops += shared_->writers[g].done.load() - base_[g];
  }
  return ops;
}

uint64_t Fleet::TotalOps() const {
  uint64_t ops = 0;
  for (int g = 0; g < processes_ * threads_; ++g)
    ops += shared_->writers[g].done.load();
  return ops;
}

}  // namespace tern::test

// The kill tests' binary: the test runner, or one of the children it spawns.
int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--fleet-child") {
    tern::test::DieWithParent();
    return tern::test::FleetChildMain(argv[2], argv[3], std::stoi(argv[4]));
  }
  if (argc == 4 && std::string(argv[1]) == "--compactor-child") {
    tern::test::DieWithParent();
    return tern::test::CompactorChildMain(argv[2], argv[3]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
