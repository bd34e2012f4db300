// engine_bench's shared pieces: the options, the buffers and prefill pattern, the cases and
// backends, the perf window, and the raw baselines (engine_bench_raw.cc) that engine_bench.cc
// registers next to the kernel and tern.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace tern::engine_bench {

inline constexpr uint64_t kBlock = 4096;
inline constexpr uint64_t kMiB = 1ull << 20;
inline constexpr size_t kMaxIo = 128 * 1024;
inline constexpr size_t kOffsets = 1u << 16;  // precomputed random offsets, cycled

extern std::string g_dir;
extern uint64_t g_file_bytes;
extern double g_iter_scale;  // --iter_scale: multiplies the fixed iteration counts (profiling)

// ---------------------------------------------------------------------------------------------
// Helpers

struct AlignedBuf {
  explicit AlignedBuf(size_t n) : size(n) {
    p = static_cast<uint8_t*>(std::aligned_alloc(kBlock, n));
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(i * 7 + 3);
  }
  ~AlignedBuf() { std::free(p); }
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  uint8_t* p;
  size_t size;
};

// The prefill pattern: byte at file offset o.
inline uint8_t PatternByte(uint64_t o) { return static_cast<uint8_t>((o >> 12) * 131 + (o & 4095)); }

// Fast for block-aligned ranges (a block is a rotation of 0..255), so that prefill setup stays out
// of profiles.
void FillPattern(uint8_t* dst, uint64_t file_offset, size_t n);
bool CheckPattern(const uint8_t* got, uint64_t file_offset, size_t n);
// A file in the benchmark directory, unique to this process.
std::string PathFor(const std::string& tag);
// Random offsets for one (case, size): `align`-aligned, [offset, offset+size) inside the file; for
// sub-block writes, inside one 4 KiB block.
std::vector<uint64_t> MakeOffsets(size_t size, bool sub_block, uint64_t seed);
// Sum of huge-page (PMD) mapped shmem/file memory of this process, in MiB.
double PmdMappedMiB();

// Profiling only the timed loops: with TERN_BENCH_PERF_CTL=<ctl fifo> (and optionally
// TERN_BENCH_PERF_ACK=<ack fifo>) set, the loops are bracketed by "enable"/"disable" written to
// perf's control fifo. Run perf with `-D -1 --control fifo:CTL[,ACK]` (see README).
class PerfWindow {
 public:
  PerfWindow() { Send("enable\n"); }
  ~PerfWindow() { Send("disable\n"); }
  PerfWindow(const PerfWindow&) = delete;
  PerfWindow& operator=(const PerfWindow&) = delete;

 private:
  static void Send(const char* cmd) {
    static const int ctl = Open("TERN_BENCH_PERF_CTL", O_WRONLY);
    static const int ack = Open("TERN_BENCH_PERF_ACK", O_RDONLY);
    if (ctl < 0) return;
    ssize_t w = write(ctl, cmd, std::strlen(cmd));
    (void)w;
    if (ack >= 0) {
      char buf[8];
      ssize_t r = read(ack, buf, sizeof(buf));
      (void)r;
    }
  }
  static int Open(const char* env, int flags) {
    const char* p = std::getenv(env);
    return p && *p ? open(p, flags | O_CLOEXEC) : -1;
  }
};

void Fail(benchmark::State& state, const std::string& what, int err);
uint64_t WriteIterations(size_t size);
uint64_t ReadIterations(size_t size);

enum class Case { kOverwrite, kAppend, kAppendReuse, kSubBlock, kRead };
enum class Backend { kKernel, kTern, kRaw, kRawLog, kRawCow };

inline bool IsAppend(Case c) { return c == Case::kAppend || c == Case::kAppendReuse; }
// The random offsets a case writes or reads at, the same for every backend (none for appends).
inline std::vector<uint64_t> CaseOffsets(Case c, size_t size) {
  return IsAppend(c) ? std::vector<uint64_t>{} : MakeOffsets(size, c == Case::kSubBlock, 42);
}
// Bytes written before the timed loop (see engine_bench.cc).
uint64_t PrefillBytes(Case c, const benchmark::State& state, size_t size);
const char* CaseName(Case c);
const char* BackendName(Backend b);

// The raw persistence limit (engine_bench_raw.cc).
void RunRaw(benchmark::State& state, Case c, size_t size);
void RunRawLog(benchmark::State& state, Case c, size_t size);
void RunRawCow(benchmark::State& state, size_t size);

}  // namespace tern::engine_bench
