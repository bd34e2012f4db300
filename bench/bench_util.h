// Helpers shared by the issue-4 benchmark programs (mt_bench, open_bench, gc_tail_bench): the
// benchmark directory, prefilling a tern file or a kernel file, latency percentiles, and the small
// JSON report that bench/mt_table.py turns into results/mt.md. Bench-only code: it may exit on
// setup errors (a benchmark that cannot set up has nothing to measure).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "lib/file.h"

namespace tern::bench {

inline constexpr uint64_t kBlock = 4096;
inline constexpr uint64_t kMiB = uint64_t{1} << 20;

// A 4 KiB-aligned heap buffer filled with `fill`.
class AlignedBuf {
 public:
  AlignedBuf(size_t n, uint8_t fill);
  ~AlignedBuf() { std::free(p_); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  uint8_t* data() const { return p_; }

 private:
  uint8_t* p_;
};

// Monotonic clock in nanoseconds.
inline uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// Prints "what: context (strerror)" and exits with status 1.
[[noreturn]] void Die(const std::string& what, const tern::Status& s);
[[noreturn]] void DieErrno(const std::string& what, int err);

// Takes `--dir=DIR` out of argv (else $TERN_BENCH_DIR, else /dev/shm/tern-bench), creates it, and
// returns it without a trailing slash.
std::string TakeDirOption(int* argc, char** argv);
// Takes `--NAME=VALUE` out of argv; returns `fallback` when absent.
std::string TakeOption(int* argc, char** argv, const std::string& name, const std::string& fallback);
// The mount holding `dir`: "mountpoint fstype options".
std::string FsDescription(const std::string& dir);
// "1.23 0.98 0.75": the load averages, for the report (the VM is shared).
std::string LoadAverage();
// dir/tag.pid: one name per program run, so concurrent runs do not collide.
std::string UniquePath(const std::string& dir, const std::string& tag);

// Caps the size of any file this process writes (RLIMIT_FSIZE; SIGXFSZ ignored, so growth past
// it fails with EFBIG). A guard: an engine bug that grows a backing file without bound must fail
// the benchmark, not fill the shared tmpfs and wake the OOM killer.
void LimitFileSize(uint64_t bytes);

// Byte `i` of the prefill of block `block` (each block differs, so a misplaced block shows).
inline uint8_t PrefillByte(uint64_t block, uint64_t i) { return static_cast<uint8_t>(block * 131 + i); }
// Creates (truncating) a tern file at `path` and writes `bytes` of the prefill pattern in 1 MiB
// writes, then fsyncs. Dies on error.
std::unique_ptr<tern::File> CreatePrefilledTern(const std::string& path, uint64_t bytes);
// The same for a kernel file; returns the open descriptor.
int CreatePrefilledKernel(const std::string& path, uint64_t bytes);
// True when `buf` holds the prefill of block `block`.
bool IsPrefillBlock(const uint8_t* buf, uint64_t block);

// Latency samples (ns) and their order statistics.
struct Percentiles {
  uint64_t count = 0;
  double min = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;
};
// Sorts `samples` in place. Nearest-rank percentiles.
Percentiles Summarize(std::vector<uint64_t>* samples);

// A flat JSON report: a context object and a list of records, each a set of key/value pairs.
// Written as {"context": {...}, "records": [{...}, ...]}.
class JsonReport {
 public:
  class Record {
   public:
    Record& Str(const std::string& key, const std::string& value);
    Record& Num(const std::string& key, double value);
    Record& Lat(const std::string& prefix, const Percentiles& p);  // prefix_p50_ns, ...

   private:
    friend class JsonReport;
    std::vector<std::string> fields_;
  };
  Record& Context() { return context_; }
  Record& Add() { return records_.emplace_back(); }
  // Writes to `path` ("-" = stdout). Dies on error.
  void Write(const std::string& path) const;

 private:
  Record context_;
  std::vector<Record> records_;
};

}  // namespace tern::bench
