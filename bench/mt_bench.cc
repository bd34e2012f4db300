// mt_bench: MadFS's multi-thread matrix (its bench/micro_mt), tern's engine API against the kernel on
// the same tmpfs, side by side in one binary (DESIGN §10, issue 4).
//
// One prefilled file per backend (default 1 GiB), opened once and shared by all threads (MadFS
// shares one fd). Each thread does a fixed number of 4 KiB operations (default 10,000, as MadFS):
//   unif_<R>R  R in {0, 50, 95, 100}: reads with probability R %, else writes; offsets uniform over
//              the file, 4 KiB-aligned
//   zipf_4k, zipf_2k  writes only, of 4096 or 2048 bytes at the start of a block drawn from a
//              Zipf(0.9) distribution over the file's blocks; rank 1 is block 0, and every thread
//              draws from the same distribution (MadFS seeds its generator by thread index), so
//              threads collide on the hot blocks: the 2 KiB case forces copy-on-write of the rest of
//              the block, recopied when another writer committed that block meanwhile
// Every write is followed by fsync, as in MadFS's benchmark. Backends:
//   kernel  pread(2) / pwrite(2)+fsync(2) on one descriptor of a plain file
//   tern    tern::File::Pread / Pwrite+Fsync on one File
// Threads 1, 2, 4, released together; a repetition's throughput is all threads' operations over the
// wall-clock span from the first start to the last finish; the report keeps the median (and min,
// max) of --reps repetitions. tern's counters, per operation over all repetitions: commits,
// conflicts (failed commit CAS), recopies (partial blocks copied again after a conflict),
// read_retries.
//
// Automatic compaction is held off by default (--auto_gc=1 lets it run): compacting a 1 GiB file
// fragmented by random writes fails today and grows the backing file until it hits a limit (see
// bench/README.md), which would measure that bug instead of the concurrency control.
//
// usage: mt_bench [--dir=DIR] [--file_mib=1024] [--ops=10000] (per thread) [--reps=5] [--auto_gc=0|1]
//                 [--prefault=1|0] (read the whole file once before measuring)
//                 [--cases=unif_0R,...] [--threads=1,2,4] [--backends=kernel,tern] [--out=FILE.json]
// Output: JSON (see bench_util.h), rendered by bench/mt_table.py.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <latch>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "lib/file.h"
#include "lib/file_core.h"

namespace tern::bench {
namespace {

uint64_t g_file_bytes = 1024 * kMiB;
int64_t g_ops = 10000;
bool g_prefault = true;
int g_kernel_fd = -1;
std::unique_ptr<tern::File> g_tern;
std::string g_tern_path;

// Zipf(theta) over ranks [0, n), by the method of Gray et al. ("Quickly generating billion-record
// synthetic databases", SIGMOD'94), the one YCSB uses: O(n) set-up, O(1) per draw.
class ZipfGenerator {
 public:
  ZipfGenerator(uint64_t n, double theta) : n_(n), theta_(theta) {
    double zetan = 0;
    for (uint64_t i = 1; i <= n; ++i) zetan += 1.0 / std::pow(static_cast<double>(i), theta);
    zetan_ = zetan;
    double zeta2 = 1.0 + std::pow(0.5, theta);
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n), 1.0 - theta)) / (1.0 - zeta2 / zetan);
  }
  template <typename Rng>
  uint64_t operator()(Rng& rng) const {
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, theta_)) return 1;
    auto r = static_cast<uint64_t>(static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1.0, alpha_));
    return std::min(r, n_ - 1);
  }

 private:
  uint64_t n_;
  double theta_, zetan_ = 0, alpha_ = 0, eta_ = 0;
};

// The same distribution for every case; built once (the set-up sums n powers).
const ZipfGenerator& Zipf() {
  static const ZipfGenerator zipf(g_file_bytes / kBlock, 0.9);
  return zipf;
}

enum class Backend { kKernel, kTern };

struct Op {
  uint64_t offset;
  bool read;
};

// The thread's operations, drawn before the timed loop.
std::vector<Op> MakeOps(int read_percent, bool zipf, int thread, uint64_t seed) {
  std::mt19937_64 rng(seed * 1000 + static_cast<uint64_t>(thread));
  const uint64_t nblocks = g_file_bytes / kBlock;
  std::vector<Op> ops(static_cast<size_t>(g_ops));
  for (Op& op : ops) {
    op.read = static_cast<int>(rng() % 100) < read_percent;
    op.offset = (zipf ? Zipf()(rng) : rng() % nblocks) * kBlock;
  }
  return ops;
}

// Runs the thread's operations; false when one failed. Records when it started and finished.
bool RunOps(Backend backend, const std::vector<Op>& ops, size_t size, uint8_t fill, uint64_t* start_ns,
            uint64_t* end_ns) {
  AlignedBuf src(kBlock, fill), dst(kBlock, 0);
  *start_ns = NowNs();
  for (const Op& op : ops) {
    bool ok;
    if (backend == Backend::kKernel) {
      if (op.read) {
        ok = pread(g_kernel_fd, dst.data(), size, static_cast<off_t>(op.offset)) == static_cast<ssize_t>(size);
      } else {
        ok = pwrite(g_kernel_fd, src.data(), size, static_cast<off_t>(op.offset)) == static_cast<ssize_t>(size) &&
             fsync(g_kernel_fd) == 0;
      }
    } else if (op.read) {
      auto r = g_tern->Pread(dst.data(), size, op.offset);
      ok = r.ok() && *r == size;
    } else {
      auto r = g_tern->Pwrite(src.data(), size, op.offset);
      ok = r.ok() && g_tern->Fsync().ok();
    }
    if (!ok) [[unlikely]] return false;
  }
  *end_ns = NowNs();
  return true;
}

struct CaseSpec {
  std::string name;
  int read_percent;
  bool zipf;
  size_t size;
  uint64_t seed;
};

struct RunResult {
  double ops_per_s;
  tern::FileCounters delta;
};

// One repetition: `threads` threads released together; throughput over the wall-clock span from
// the first thread's start to the last thread's end. (Google Benchmark's ->Threads() averages each
// thread's own running time instead, which overstates throughput when the threads do not really run
// at once, as on this 2-vCPU VM with 4 threads or with busy neighbours.)
RunResult RunOnce(Backend backend, const CaseSpec& c, int threads) {
  std::vector<std::vector<Op>> ops;
  for (int t = 0; t < threads; ++t) ops.push_back(MakeOps(c.read_percent, c.zipf, t, c.seed));
  std::vector<uint64_t> start(static_cast<size_t>(threads)), end(static_cast<size_t>(threads));
  std::atomic<bool> failed{false};
  std::latch ready(threads);
  tern::FileCounters before = backend == Backend::kTern ? g_tern->Counters() : tern::FileCounters{};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ready.arrive_and_wait();
      auto i = static_cast<size_t>(t);
      if (!RunOps(backend, ops[i], c.size, static_cast<uint8_t>('a' + t), &start[i], &end[i])) failed.store(true);
    });
  }
  for (std::thread& w : workers) w.join();
  if (failed.load()) {
    std::fprintf(stderr, "mt_bench: %s/%s: an operation failed\n", c.name.c_str(),
                 backend == Backend::kTern ? "tern" : "kernel");
    std::exit(1);
  }
  RunResult r{};
  if (backend == Backend::kTern) {
    tern::FileCounters after = g_tern->Counters();
    r.delta = {after.commits - before.commits, after.conflicts - before.conflicts,
               after.recopies - before.recopies, after.read_retries - before.read_retries};
  }
  uint64_t span = *std::max_element(end.begin(), end.end()) - *std::min_element(start.begin(), start.end());
  r.ops_per_s = static_cast<double>(g_ops * threads) * 1e9 / static_cast<double>(span);
  return r;
}

// Repetitions of one (case, backend, threads) cell: median, min and max ops/s; tern's counters per
// operation over all repetitions.
void MeasureCell(JsonReport& report, Backend backend, const CaseSpec& c, int threads, int reps) {
  std::vector<double> rates;
  tern::FileCounters sum{};
  for (int rep = 0; rep < reps; ++rep) {
    RunResult r = RunOnce(backend, c, threads);
    rates.push_back(r.ops_per_s);
    sum.commits += r.delta.commits;
    sum.conflicts += r.delta.conflicts;
    sum.recopies += r.delta.recopies;
    sum.read_retries += r.delta.read_retries;
  }
  std::sort(rates.begin(), rates.end());
  const double total_ops = static_cast<double>(g_ops * threads * reps);
  const char* name = backend == Backend::kTern ? "tern" : "kernel";
  JsonReport::Record& rec = report.Add()
                                .Str("bench", "mt")
                                .Str("case", c.name)
                                .Str("backend", name)
                                .Num("threads", threads)
                                .Num("reps", reps)
                                .Num("ops_per_s", rates[rates.size() / 2])
                                .Num("ops_per_s_min", rates.front())
                                .Num("ops_per_s_max", rates.back());
  if (backend == Backend::kTern) {
    rec.Num("commits", static_cast<double>(sum.commits) / total_ops)
        .Num("conflicts", static_cast<double>(sum.conflicts) / total_ops)
        .Num("recopies", static_cast<double>(sum.recopies) / total_ops)
        .Num("read_retries", static_cast<double>(sum.read_retries) / total_ops);
  }
  std::fprintf(stderr, "  %-10s %-6s %d threads: %10.0f ops/s (min %.0f, max %.0f)\n", c.name.c_str(), name, threads,
               rates[rates.size() / 2], rates.front(), rates.back());
}

std::vector<CaseSpec> Cases() {
  std::vector<CaseSpec> cases;
  for (int r : {0, 50, 95, 100}) {
    cases.push_back({"unif_" + std::to_string(r) + "R", r, false, kBlock, static_cast<uint64_t>(r) + 1});
  }
  cases.push_back({"zipf_4k", 0, true, 4096, 200});
  cases.push_back({"zipf_2k", 0, true, 2048, 201});
  return cases;
}

// Random 4 KiB overwrites of a quarter of the blocks, untimed: copy-on-write moves tern's file to
// its steady size (freed blocks reused) before the first case, so the first case measured does not
// pay alone for growing the backing file; the kernel file gets the same writes.
void WarmUp() {
  AlignedBuf buf(kBlock, 'w');
  std::mt19937_64 rng(7);
  const uint64_t nblocks = g_file_bytes / kBlock;
  for (uint64_t i = 0; i < nblocks / 4; ++i) {
    uint64_t off = (rng() % nblocks) * kBlock;
    auto w = g_tern->Pwrite(buf.data(), kBlock, off);
    if (!w.ok()) Die("warm-up write", w.status());
    if (pwrite(g_kernel_fd, buf.data(), kBlock, static_cast<off_t>(off)) != static_cast<ssize_t>(kBlock)) {
      DieErrno("warm-up write", errno);
    }
  }
  tern::Status s = g_tern->Fsync();
  if (!s.ok()) Die("warm-up fsync", s);
  if (!g_prefault) return;
  // Read every block once: tern maps an existing file lazily, and on this VM the first touch of each
  // page of the mapping costs a page fault (~2 µs under PVM shadow paging), which would otherwise
  // land in whichever case touches the page first.
  AlignedBuf chunk(kMiB, 0);
  for (uint64_t off = 0; off < g_file_bytes; off += kMiB) {
    auto r = g_tern->Pread(chunk.data(), kMiB, off);
    if (!r.ok()) Die("warm-up read", r.status());
    if (pread(g_kernel_fd, chunk.data(), kMiB, static_cast<off_t>(off)) < 0) DieErrno("warm-up read", errno);
  }
}

void SetUpFiles(const std::string& dir, bool auto_gc) {
  std::string kernel_path = UniquePath(dir, "mt-kernel");
  g_tern_path = UniquePath(dir, "mt-tern");
  g_kernel_fd = CreatePrefilledKernel(kernel_path, g_file_bytes);
  unlink(kernel_path.c_str());  // the descriptor keeps it; nothing is left behind on exit
  g_tern = CreatePrefilledTern(g_tern_path, g_file_bytes);
  // Marking compaction as already queued keeps the background thread from starting one.
  if (!auto_gc) g_tern->core().compaction_scheduled_.store(true);
}

// True when the comma-separated `list` names `item`.
bool Listed(const std::string& list, const std::string& item) {
  return ("," + list + ",").find("," + item + ",") != std::string::npos;
}

}  // namespace
}  // namespace tern::bench

int main(int argc, char** argv) {
  using namespace tern::bench;
  std::string dir = TakeDirOption(&argc, argv);
  g_file_bytes = std::stoull(TakeOption(&argc, argv, "file_mib", "1024")) * kMiB;
  g_ops = std::stoll(TakeOption(&argc, argv, "ops", "10000"));
  int reps = std::stoi(TakeOption(&argc, argv, "reps", "5"));
  bool auto_gc = TakeOption(&argc, argv, "auto_gc", "0") == "1";
  g_prefault = TakeOption(&argc, argv, "prefault", "1") == "1";
  std::string only = TakeOption(&argc, argv, "cases", "");
  std::string out = TakeOption(&argc, argv, "out", "-");
  std::string thread_list = TakeOption(&argc, argv, "threads", "1,2,4");
  std::string backend_list = TakeOption(&argc, argv, "backends", "kernel,tern");
  if (argc > 1) {
    std::fprintf(stderr, "mt_bench: unknown argument %s\n", argv[1]);
    return 2;
  }
  // The backing file plus copy-on-write garbage, plus the engine's sparse shared-state object.
  LimitFileSize(3 * g_file_bytes + 1024 * kMiB);
  std::fprintf(stderr, "mt_bench: prefilling %llu MiB per backend in %s (load %s)\n",
               static_cast<unsigned long long>(g_file_bytes / kMiB), dir.c_str(), LoadAverage().c_str());
  SetUpFiles(dir, auto_gc);
  WarmUp();
  JsonReport report;
  report.Context()
      .Str("program", "mt_bench")
      .Str("dir", dir)
      .Str("fs", FsDescription(dir))
      .Num("file_mib", static_cast<double>(g_file_bytes / kMiB))
      .Num("ops_per_thread", static_cast<double>(g_ops))
      .Str("auto_gc", auto_gc ? "on" : "held off")
      .Str("prefault", g_prefault ? "yes" : "no")
      .Num("nproc", static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)))
      .Str("load_avg_start", LoadAverage());
  for (const CaseSpec& c : Cases()) {
    if (!only.empty() && !Listed(only, c.name)) continue;
    for (Backend backend : {Backend::kKernel, Backend::kTern}) {
      if (!Listed(backend_list, backend == Backend::kKernel ? "kernel" : "tern")) continue;
      for (int threads : {1, 2, 4}) {
        if (Listed(thread_list, std::to_string(threads))) MeasureCell(report, backend, c, threads, reps);
      }
    }
  }
  report.Context().Str("load_avg_end", LoadAverage());
  report.Write(out);
  g_tern.reset();
  unlink(g_tern_path.c_str());
  close(g_kernel_fd);
  return 0;
}
