// Helpers of the shim tests: a scratch area with a tern root and a plain kernel directory side by
// side, running a command in each (under `tern run` / directly), and checking that what the tern run
// left behind is, file by file, valid tern files with exactly the bytes the kernel run produced.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "lib/status.h"

namespace tern::shim_test {

struct RunResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
};

// A scratch area /dev/shm/tern-shimtest-XXXXXX (mode 0755) with `tern/` (the tern root), `plain/`
// (a kernel directory) and `input/` (inputs shared by both runs); removed on destruction.
class Scratch {
 public:
  Scratch();
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  const std::string& base() const { return base_; }
  std::string tern_dir() const { return base_ + "/tern"; }
  std::string plain_dir() const { return base_ + "/plain"; }
  std::string input_dir() const { return base_ + "/input"; }

  // Runs argv with cwd = dir, environment + INPUT=input_dir() + `extra_env`, under a 10-minute
  // watchdog. `tern`: through `tern run --root tern_dir() --`.
  RunResult Run(const std::vector<std::string>& argv, bool tern,
                const std::vector<std::string>& extra_env = {}) const;
  RunResult Bash(const std::string& script, bool tern, const std::vector<std::string>& extra_env = {}) const {
    return Run({"bash", "-c", script}, tern, extra_env);
  }

 private:
  std::string base_;
};

// Writes a plain file (not through tern).
void WritePlain(const std::string& path, const std::string& content);
std::string ReadPlain(const std::string& path);
// A tern file's bytes through the engine; *size its logical size.
Result<std::string> ReadTern(const std::string& path, uint64_t* size);
// Deterministic text lines / bytes for inputs.
std::string TextLines(int n, unsigned seed);
std::string Bytes(size_t n, unsigned seed);

// Compares the trees: every entry of plain/ exists in tern/ with the same type; every regular file
// in tern/ opens as a tern file through the engine with the size and bytes of its plain twin
// (except `plain_files`: relative paths expected to be plain kernel files, compared raw). Adds a
// gtest failure per difference.
void ExpectSameTrees(const Scratch& s, const std::set<std::string>& plain_files = {});

// Every regular file under dir opens as a tern file through the engine.
void ExpectAllTernFiles(const std::string& dir);

// shim_probe (SHIM_PROBE_BIN) with `args`, in the scratch's plain directory or under tern.
RunResult RunProbe(const Scratch& s, const std::string& args, bool tern);

// True when `prog` is on PATH.
bool HaveProgram(const std::string& prog);

}  // namespace tern::shim_test
