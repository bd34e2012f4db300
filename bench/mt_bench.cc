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
// Names: <case>/<backend>/iterations:N/real_time/threads:T. items_per_second is the total over all
// threads. tern's counters, per operation over all threads: commits, conflicts (failed commit CAS),
// recopies (partial blocks copied again after a conflict), read_retries.
//
// Automatic compaction is held off by default (--auto_gc=1 lets it run): compacting a 1 GiB file
// fragmented by random writes fails today and grows the backing file until it hits a limit (see
// bench/README.md), which would measure that bug instead of the concurrency control.
//
// Options (before Google Benchmark's): --dir=DIR, --file_mib=N (default 1024), --ops=N (per thread,
// default 10000), --auto_gc=0|1, --prefault=1|0 (read the whole file once before measuring).
#include <fcntl.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "lib/file.h"
#include "lib/file_core.h"
#include "pmem/persist.h"

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

void RunOps(benchmark::State& state, Backend backend, const std::vector<Op>& ops, size_t size) {
  AlignedBuf src(kBlock, static_cast<uint8_t>('a' + state.thread_index())), dst(kBlock, 0);
  size_t i = 0;
  for (auto _ : state) {
    const Op& op = ops[i++];
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
    if (!ok) [[unlikely]] {
      state.SkipWithError(op.read ? "read failed" : "write+fsync failed");
      break;
    }
    benchmark::DoNotOptimize(dst.data());
  }
}

void Bench(benchmark::State& state, Backend backend, int read_percent, bool zipf, size_t size, uint64_t seed) {
  std::vector<Op> ops = MakeOps(read_percent, zipf, state.thread_index(), seed);
  tern::FileCounters before{};
  // Thread 0 reads the counters before the start barrier and after the stop barrier of the timed
  // loop, so they cover exactly the operations of all threads.
  if (backend == Backend::kTern && state.thread_index() == 0) before = g_tern->Counters();
  RunOps(state, backend, ops, size);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
  if (backend != Backend::kTern || state.thread_index() != 0) return;
  tern::FileCounters after = g_tern->Counters();
  const auto total_ops = static_cast<double>(state.iterations() * state.threads());
  auto per_op = [&](uint64_t a, uint64_t b) { return static_cast<double>(b - a) / total_ops; };
  state.counters["commits"] = per_op(before.commits, after.commits);
  state.counters["conflicts"] = per_op(before.conflicts, after.conflicts);
  state.counters["recopies"] = per_op(before.recopies, after.recopies);
  state.counters["read_retries"] = per_op(before.read_retries, after.read_retries);
}

void Register(const std::string& name, Backend backend, int read_percent, bool zipf, size_t size, uint64_t seed) {
  std::string full = name + (backend == Backend::kKernel ? "/kernel" : "/tern");
  auto* b = benchmark::RegisterBenchmark(full.c_str(), [=](benchmark::State& s) {
    Bench(s, backend, read_percent, zipf, size, seed);
  });
  b->Iterations(g_ops)->UseRealTime()->Unit(benchmark::kMicrosecond);
  for (int threads : {1, 2, 4}) b->Threads(threads);
}

void RegisterAll() {
  for (Backend backend : {Backend::kKernel, Backend::kTern}) {
    for (int r : {0, 50, 95, 100}) {
      Register("unif_" + std::to_string(r) + "R", backend, r, false, kBlock, static_cast<uint64_t>(r) + 1);
    }
    Register("zipf_4k", backend, 0, true, 4096, 200);
    Register("zipf_2k", backend, 0, true, 2048, 201);
  }
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

}  // namespace
}  // namespace tern::bench

int main(int argc, char** argv) {
  using namespace tern::bench;
  std::string dir = TakeDirOption(&argc, argv);
  g_file_bytes = std::stoull(TakeOption(&argc, argv, "file_mib", "1024")) * kMiB;
  g_ops = std::stoll(TakeOption(&argc, argv, "ops", "10000"));
  bool auto_gc = TakeOption(&argc, argv, "auto_gc", "0") == "1";
  g_prefault = TakeOption(&argc, argv, "prefault", "1") == "1";
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  tern::pmem::Init();
  // The backing file plus copy-on-write garbage, plus the engine's sparse shared-state object.
  LimitFileSize(3 * g_file_bytes + 1024 * kMiB);
  std::fprintf(stderr, "mt_bench: prefilling %llu MiB per backend in %s\n",
               static_cast<unsigned long long>(g_file_bytes / kMiB), dir.c_str());
  SetUpFiles(dir, auto_gc);
  benchmark::AddCustomContext("tern_bench_dir", dir);
  benchmark::AddCustomContext("tern_bench_fs", FsDescription(dir));
  benchmark::AddCustomContext("tern_bench_file_mib", std::to_string(g_file_bytes / kMiB));
  benchmark::AddCustomContext("tern_bench_auto_gc", auto_gc ? "on" : "held off");
  benchmark::AddCustomContext("tern_bench_prefault", g_prefault ? "yes" : "no");
  benchmark::AddCustomContext("nproc", std::to_string(sysconf(_SC_NPROCESSORS_ONLN)));
  WarmUp();
  RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_tern.reset();
  unlink(g_tern_path.c_str());
  close(g_kernel_fd);
  return 0;
}
