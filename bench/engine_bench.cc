// engine_bench: tern's engine API against the kernel and against the raw persistence limit, side by
// side in one binary, single thread (DESIGN §10, issue 2 "Performance").
//
// Backends (same directory, same run, registered next to each other so they share the noise):
//   kernel  - a plain file: pwrite(2)+fsync(2), write(2) with O_APPEND + fsync, pread(2).
//   tern    - tern::File: Pwrite+Fsync, Append+Fsync, Pread.
//   raw     - a MAP_SHARED mapping of a file (pmem/mapping.h, pre-faulted): pmem::CopyPersist of the
//             payload (non-temporal copy + fence); reads are a plain memcpy out of the mapping.
//   rawcow  - (sub-block case only) the raw cost of a copy-on-write of the whole 4 KiB block that
//             the sub-block write lands in: old head + new bytes + old tail, non-temporal, one fence.
//
// Cases (each write is followed by fsync; ns per operation = per write+fsync or per read):
//   overwrite_fsync/<b>/<size>  random, 4 KiB-aligned overwrite inside a prefilled file
//   append_fsync/<b>/<size>     append to a file that starts empty (growth is part of the cost)
//   append_reuse_fsync/<b>/<size>  append to a file that was written and truncated to 0 first: the
//                               space is already the file's (no growth, no fresh pages)
//   subblock_fsync/<b>/<size>   <size> < 4 KiB, 128 B-aligned, inside one 4 KiB block, prefilled file
//   read/<b>/<size>             random read, aligned to min(size, 4 KiB), prefilled file
//
// Options (before the Google Benchmark ones): --dir=DIR (else $TERN_BENCH_DIR, else
// /dev/shm/tern-bench), --file_mib=N (prefilled file size, default 64), --iter_scale=X (multiplies
// the fixed iteration counts; e.g. 10 to make the timed loop dominate a perf profile).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/engine_bench.h"
#include "pmem/mapping.h"

#ifndef TERN_BENCH_WITH_ENGINE
#define TERN_BENCH_WITH_ENGINE 1
#endif
#if TERN_BENCH_WITH_ENGINE
#include "lib/file.h"
#endif

namespace tern::engine_bench {

std::string g_dir;
uint64_t g_file_bytes = 64 * kMiB;
double g_iter_scale = 1.0;

// Fast for block-aligned ranges (a block is a rotation of 0..255), so that prefill setup stays out
// of profiles.
void FillPattern(uint8_t* dst, uint64_t file_offset, size_t n) {
  static const auto* table = [] {
    static uint8_t t[kBlock + 256];
    for (size_t i = 0; i < sizeof(t); ++i) t[i] = static_cast<uint8_t>(i);
    return t;
  }();
  size_t i = 0;
  for (; i < n && ((file_offset + i) & (kBlock - 1)) != 0; ++i) dst[i] = PatternByte(file_offset + i);
  for (; i + kBlock <= n; i += kBlock) std::memcpy(dst + i, table + PatternByte(file_offset + i), kBlock);
  for (; i < n; ++i) dst[i] = PatternByte(file_offset + i);
}

bool CheckPattern(const uint8_t* got, uint64_t file_offset, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (got[i] != PatternByte(file_offset + i)) return false;
  return true;
}

std::string PathFor(const std::string& tag) {
  return g_dir + "/" + tag + "." + std::to_string(getpid());
}

// Random offsets for one (case, size): `align`-aligned, [offset, offset+size) inside the file; for
// sub-block writes, inside one 4 KiB block.
std::vector<uint64_t> MakeOffsets(size_t size, bool sub_block, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> v(kOffsets);
  const uint64_t blocks = g_file_bytes / kBlock;
  for (auto& o : v) {
    if (sub_block) {
      uint64_t slots = (kBlock - size) / 128 + 1;
      o = (rng() % blocks) * kBlock + (rng() % slots) * 128;
    } else {
      uint64_t align = std::min<uint64_t>(size, kBlock);
      uint64_t slots = (g_file_bytes - size) / align + 1;
      o = (rng() % slots) * align;
    }
  }
  return v;
}

// Sum of huge-page (PMD) mapped shmem/file memory of this process, in MiB: shows whether the
// backend's mappings got 2 MiB pages (huge=always tmpfs) or not.
double PmdMappedMiB() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  double kb = 0;
  while (std::getline(in, line)) {
    if (line.rfind("ShmemPmdMapped:", 0) == 0 || line.rfind("FilePmdMapped:", 0) == 0) {
      std::istringstream ss(line.substr(line.find(':') + 1));
      double v = 0;
      ss >> v;
      kb += v;
    }
  }
  return kb / 1024.0;
}

void Fail(benchmark::State& state, const std::string& what, int err) {
  std::string msg = what + ": " + std::strerror(err);
  state.SkipWithError(msg.c_str());
}

uint64_t WriteIterations(size_t size) {
  // At most ~256 MiB written per run (tmpfs space, CoW garbage), between 1000 and 20000 ops.
  return std::clamp<uint64_t>((256 * kMiB) / size, 1000, 20000);
}
uint64_t ReadIterations(size_t size) { return size <= 16384 ? 50000 : 20000; }

// Bytes written before the timed loop: the random-offset cases work on a prefilled file; append
// starts empty; append_reuse writes as much as the loop will append, then truncates to 0, so the
// loop appends into space the file already owns (no backing growth, no fresh pages).
uint64_t PrefillBytes(Case c, const benchmark::State& state, size_t size) {
  if (c == Case::kAppend) return 0;
  if (c == Case::kAppendReuse)
    return (static_cast<uint64_t>(state.max_iterations) * size + kMiB - 1) & ~(kMiB - 1);
  return g_file_bytes;
}

const char* CaseName(Case c) {
  switch (c) {
    case Case::kOverwrite: return "overwrite_fsync";
    case Case::kAppend: return "append_fsync";
    case Case::kAppendReuse: return "append_reuse_fsync";
    case Case::kSubBlock: return "subblock_fsync";
    case Case::kRead: return "read";
  }
  return "?";
}
const char* BackendName(Backend b) {
  switch (b) {
    case Backend::kKernel: return "kernel";
    case Backend::kTern: return "tern";
    case Backend::kRaw: return "raw";
    case Backend::kRawLog: return "rawlog";
    case Backend::kRawCow: return "rawcow";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// kernel: a plain file in the same directory

struct KernelFile {
  int fd = -1;
  std::string path;
  ~KernelFile() {
    if (fd >= 0) close(fd);
    if (!path.empty()) unlink(path.c_str());
  }
};

int KernelOpen(KernelFile& f, const std::string& tag, int extra_flags) {
  f.path = PathFor(tag);
  f.fd = open(f.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | extra_flags, 0644);
  return f.fd < 0 ? errno : 0;
}

int KernelPrefill(KernelFile& f, uint64_t bytes) {
  AlignedBuf chunk(kMiB);
  for (uint64_t off = 0; off < bytes; off += kMiB) {
    FillPattern(chunk.p, off, kMiB);
    if (pwrite(f.fd, chunk.p, kMiB, static_cast<off_t>(off)) != static_cast<ssize_t>(kMiB)) return errno ? errno : EIO;
  }
  if (fsync(f.fd) != 0) return errno;
  uint8_t check[kBlock];
  uint64_t probe = (bytes / 2) & ~(kBlock - 1);
  if (pread(f.fd, check, kBlock, static_cast<off_t>(probe)) != static_cast<ssize_t>(kBlock) ||
      !CheckPattern(check, probe, kBlock))
    return EIO;
  return 0;
}

void RunKernel(benchmark::State& state, Case c, size_t size) {
  KernelFile f;
  AlignedBuf src(kMaxIo), dst(kMaxIo);
  int err = KernelOpen(f, std::string("kernel-") + CaseName(c), IsAppend(c) ? O_APPEND : 0);
  if (err) return Fail(state, "open " + f.path, err);
  uint64_t prefill = PrefillBytes(c, state, size);
  if (prefill != 0 && (err = KernelPrefill(f, prefill)) != 0) return Fail(state, "prefill", err);
  if (c == Case::kAppendReuse && (ftruncate(f.fd, 0) != 0 || fsync(f.fd) != 0))
    return Fail(state, "truncate", errno);
  std::vector<uint64_t> offs = CaseOffsets(c, size);
  size_t i = 0;
  PerfWindow perf_window;
  switch (c) {
    case Case::kOverwrite:
    case Case::kSubBlock:
      for (auto _ : state) {
        ssize_t r = pwrite(f.fd, src.p, size, static_cast<off_t>(offs[i++ & (kOffsets - 1)]));
        int s = fsync(f.fd);
        benchmark::DoNotOptimize(r);
        benchmark::DoNotOptimize(s);
      }
      break;
    case Case::kAppend:
    case Case::kAppendReuse:
      for (auto _ : state) {
        ssize_t r = write(f.fd, src.p, size);
        int s = fsync(f.fd);
        benchmark::DoNotOptimize(r);
        benchmark::DoNotOptimize(s);
      }
      break;
    case Case::kRead:
      for (auto _ : state) {
        ssize_t r = pread(f.fd, dst.p, size, static_cast<off_t>(offs[i++ & (kOffsets - 1)]));
        benchmark::DoNotOptimize(r);
        benchmark::DoNotOptimize(dst.p);
        benchmark::ClobberMemory();
      }
      break;
  }
  state.counters["pmd_MiB"] = PmdMappedMiB();  // after the loop: growth included
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}

// ---------------------------------------------------------------------------------------------
// tern: the engine API

#if TERN_BENCH_WITH_ENGINE
struct TernFile {
  std::unique_ptr<tern::File> f;
  std::string path;
  ~TernFile() {
    f.reset();
    if (!path.empty()) unlink(path.c_str());
  }
};

std::string StatusText(const tern::Status& s) {
  return std::string(s.context()) + " (" + std::strerror(s.err()) + ")";
}

void RunTern(benchmark::State& state, Case c, size_t size) {
  TernFile t;
  AlignedBuf src(kMaxIo), dst(kMaxIo);
  t.path = PathFor(std::string("tern-") + CaseName(c));
  unlink(t.path.c_str());
  {
    auto opened = tern::File::Open(t.path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (!opened.ok()) {
      state.SkipWithError(("tern open " + t.path + ": " + StatusText(opened.status())).c_str());
      return;
    }
    t.f = std::move(opened).value();
  }
  const uint64_t prefill = PrefillBytes(c, state, size);
  if (prefill != 0) {
    AlignedBuf chunk(kMiB);
    for (uint64_t off = 0; off < prefill; off += kMiB) {
      FillPattern(chunk.p, off, kMiB);
      auto w = t.f->Pwrite(chunk.p, kMiB, off);
      if (!w.ok() || *w != kMiB) {
        state.SkipWithError(("tern prefill: " + StatusText(w.status())).c_str());
        return;
      }
    }
    tern::Status s = t.f->Fsync();
    if (!s.ok()) {
      state.SkipWithError(("tern fsync: " + StatusText(s)).c_str());
      return;
    }
    uint64_t probe = (prefill / 2) & ~(kBlock - 1);
    auto rd = t.f->Pread(dst.p, kBlock, probe);
    if (!rd.ok() || *rd != kBlock || !CheckPattern(dst.p, probe, kBlock)) {
      state.SkipWithError("tern prefill read-back mismatch");
      return;
    }
  }
  if (c == Case::kAppendReuse) {
    tern::Status s = t.f->Truncate(0);
    if (s.ok()) s = t.f->Fsync();
    if (!s.ok()) {
      state.SkipWithError(("tern truncate: " + StatusText(s)).c_str());
      return;
    }
  }
  std::vector<uint64_t> offs = CaseOffsets(c, size);
  tern::FileCounters before = t.f->Counters();
  size_t i = 0;
  bool failed = false;
  std::optional<PerfWindow> perf_window(std::in_place);
  switch (c) {
    case Case::kOverwrite:
    case Case::kSubBlock:
      for (auto _ : state) {
        auto r = t.f->Pwrite(src.p, size, offs[i++ & (kOffsets - 1)]);
        tern::Status s = t.f->Fsync();
        if (!r.ok() || !s.ok()) [[unlikely]] {
          failed = true;
          state.SkipWithError(("tern pwrite/fsync: " + StatusText(r.ok() ? s : r.status())).c_str());
          break;
        }
        benchmark::DoNotOptimize(r);
      }
      break;
    case Case::kAppend:
    case Case::kAppendReuse:
      for (auto _ : state) {
        auto r = t.f->Append(src.p, size);
        tern::Status s = t.f->Fsync();
        if (!r.ok() || !s.ok()) [[unlikely]] {
          failed = true;
          state.SkipWithError(("tern append/fsync: " + StatusText(r.ok() ? s : r.status())).c_str());
          break;
        }
        benchmark::DoNotOptimize(r);
      }
      break;
    case Case::kRead:
      for (auto _ : state) {
        auto r = t.f->Pread(dst.p, size, offs[i++ & (kOffsets - 1)]);
        if (!r.ok()) [[unlikely]] {
          failed = true;
          state.SkipWithError(("tern pread: " + StatusText(r.status())).c_str());
          break;
        }
        benchmark::DoNotOptimize(r);
        benchmark::DoNotOptimize(dst.p);
        benchmark::ClobberMemory();
      }
      break;
  }
  perf_window.reset();
  if (failed) return;
  tern::FileCounters after = t.f->Counters();
  auto per_op = [](uint64_t a, uint64_t b) {
    return benchmark::Counter(static_cast<double>(b - a), benchmark::Counter::kAvgIterations);
  };
  if (c == Case::kRead) {
    state.counters["read_retries"] = per_op(before.read_retries, after.read_retries);
  } else {
    state.counters["commits"] = per_op(before.commits, after.commits);
    state.counters["recopies"] = per_op(before.recopies, after.recopies);
  }
  if (IsAppend(c)) {
    auto sz = t.f->Size();
    if (!sz.ok() || *sz != static_cast<uint64_t>(state.iterations()) * size)
      state.SkipWithError("tern append: final size mismatch");
  }
  struct stat st{};
  if (::stat(t.path.c_str(), &st) == 0)
    state.counters["backing_MiB"] = static_cast<double>(st.st_size) / static_cast<double>(kMiB);
  state.counters["pmd_MiB"] = PmdMappedMiB();  // after the loop: growth included
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}
#endif

// ---------------------------------------------------------------------------------------------
// Registration

void Register(Case c, Backend b, size_t size) {
  std::string name = std::string(CaseName(c)) + "/" + BackendName(b) + "/" + std::to_string(size);
  std::function<void(benchmark::State&)> fn;
  switch (b) {
    case Backend::kKernel: fn = [c, size](benchmark::State& s) { RunKernel(s, c, size); }; break;
    case Backend::kRaw: fn = [c, size](benchmark::State& s) { RunRaw(s, c, size); }; break;
    case Backend::kRawLog: fn = [c, size](benchmark::State& s) { RunRawLog(s, c, size); }; break;
    case Backend::kRawCow: fn = [size](benchmark::State& s) { RunRawCow(s, size); }; break;
    case Backend::kTern:
#if TERN_BENCH_WITH_ENGINE
      fn = [c, size](benchmark::State& s) { RunTern(s, c, size); };
      break;
#else
      return;
#endif
  }
  uint64_t iters = c == Case::kRead ? ReadIterations(size) : WriteIterations(size);
  iters = std::max<uint64_t>(1, static_cast<uint64_t>(static_cast<double>(iters) * g_iter_scale));
  benchmark::RegisterBenchmark(name.c_str(), fn)
      ->Iterations(static_cast<benchmark::IterationCount>(iters))
      ->UseRealTime()
      ->Unit(benchmark::kNanosecond);
}

void RegisterAll() {
  const size_t kReadSizes[] = {512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072};
  const size_t kWriteSizes[] = {4096, 8192, 16384, 32768, 65536, 131072};
  const size_t kSubSizes[] = {128, 512, 1024, 2048, 3968};
  for (size_t s : kWriteSizes)
    for (Backend b : {Backend::kKernel, Backend::kTern, Backend::kRaw, Backend::kRawLog})
      Register(Case::kOverwrite, b, s);
  for (size_t s : kWriteSizes)
    for (Backend b : {Backend::kKernel, Backend::kTern, Backend::kRaw, Backend::kRawLog})
      Register(Case::kAppend, b, s);
  for (size_t s : kWriteSizes)
    for (Backend b : {Backend::kKernel, Backend::kTern, Backend::kRaw, Backend::kRawLog})
      Register(Case::kAppendReuse, b, s);
  for (size_t s : kSubSizes)
    for (Backend b : {Backend::kKernel, Backend::kTern, Backend::kRaw, Backend::kRawLog, Backend::kRawCow})
      Register(Case::kSubBlock, b, s);
  for (size_t s : kReadSizes)
    for (Backend b : {Backend::kKernel, Backend::kTern, Backend::kRaw}) Register(Case::kRead, b, s);
}

std::string FsDescription(const std::string& dir) {
  // The mount that holds `dir`: the longest mount point that is a prefix of it.
  std::ifstream in("/proc/self/mounts");
  std::string dev, mnt, type, opts, best;
  size_t best_len = 0;
  while (in >> dev >> mnt >> type >> opts) {
    std::string rest;
    std::getline(in, rest);
    bool prefix = dir.rfind(mnt, 0) == 0 && (dir.size() == mnt.size() || mnt == "/" || dir[mnt.size()] == '/');
    if (prefix && mnt.size() >= best_len) {
      best_len = mnt.size();
      best = mnt + " " + type + " " + opts;
    }
  }
  return best;
}

int MkdirP(const std::string& dir) {
  std::string cur;
  std::stringstream ss(dir);
  std::string part;
  if (!dir.empty() && dir[0] == '/') cur = "";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += "/" + part;
    if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return errno;
  }
  return 0;
}

}  // namespace tern::engine_bench

int main(int argc, char** argv) {
  using namespace tern::engine_bench;
  const char* env = std::getenv("TERN_BENCH_DIR");
  g_dir = env && *env ? env : "/dev/shm/tern-bench";
  // Take our options out of argv before Google Benchmark sees it.
  std::vector<char*> rest;
  rest.push_back(argv[0]);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--dir=", 0) == 0) {
      g_dir = a.substr(6);
    } else if (a == "--dir" && i + 1 < argc) {
      g_dir = argv[++i];
    } else if (a.rfind("--file_mib=", 0) == 0) {
      g_file_bytes = std::stoull(a.substr(11)) * kMiB;
    } else if (a.rfind("--iter_scale=", 0) == 0) {
      g_iter_scale = std::stod(a.substr(13));
    } else {
      rest.push_back(argv[i]);
    }
  }
  while (g_dir.size() > 1 && g_dir.back() == '/') g_dir.pop_back();
  if (int err = MkdirP(g_dir)) {
    std::fprintf(stderr, "engine_bench: cannot create %s: %s\n", g_dir.c_str(), std::strerror(err));
    return 1;
  }
  int n = static_cast<int>(rest.size());
  rest.push_back(nullptr);
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 1;
  benchmark::AddCustomContext("tern_bench_dir", g_dir);
  benchmark::AddCustomContext("tern_bench_fs", FsDescription(g_dir));
  benchmark::AddCustomContext("tern_bench_file_mib", std::to_string(g_file_bytes / kMiB));
  benchmark::AddCustomContext("tern_bench_engine", TERN_BENCH_WITH_ENGINE ? "yes" : "no (baselines only)");
  RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
