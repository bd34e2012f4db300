// gc_tail_bench: what log compaction does to the latency of the writes around it (issue 4: "GC tail
// latency: p99.9 of 4 KiB writes while GC runs"; MadFS's bench/micro_gc measures the same CDF).
//
// One writer thread does --ops 4 KiB writes at uniformly random 4 KiB-aligned offsets of a
// prefilled file, each followed by fsync, and records each write+fsync's latency in a preallocated
// array. Modes, each on a fresh file:
//   no_gc     tern, nothing else runs (automatic compaction held off)
//   gc_loop   tern, while a second thread calls File::core().Compact() back to back for the whole
//             run (most calls find the log too short and return; the report counts the real ones)
//   auto_gc   tern with its automatic background compaction (past 64 log blocks), nothing else
//   kernel    pwrite(2)+fsync(2) on a plain file, the baseline
// Reported: p50/p90/p99/p99.9/max/mean per write+fsync, and for gc_loop the number and duration of
// the compactions that wrote a checkpoint.
//
// The default file is 32 MiB, not MadFS's 1 GiB: a checkpoint of more than 64 blocks (about 16,000
// runs, reached after a few tens of thousands of random writes to a large file) cannot be
// allocated today and the compaction fails after growing the file (bench/README.md). --file_mib
// raises it; files are capped at 3x + 1 GiB so such a failure stays bounded.
//
// usage: gc_tail_bench [--dir=DIR] [--file_mib=32] [--ops=200000] [--modes=no_gc,gc_loop,auto_gc,kernel]
//                      [--out=FILE.json]
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "lib/file.h"
#include "lib/file_core.h"

namespace tern::bench {
namespace {

struct Config {
  std::string dir;
  uint64_t file_bytes;
  uint64_t ops;
};

std::vector<uint64_t> Offsets(const Config& c) {
  std::mt19937_64 rng(99);
  std::vector<uint64_t> v(c.ops);
  for (uint64_t& o : v) o = (rng() % (c.file_bytes / kBlock)) * kBlock;
  return v;
}

// Runs `write_one(offset)` for every offset and returns the latency of each call (ns).
template <typename WriteFn>
std::vector<uint64_t> TimeWrites(const std::vector<uint64_t>& offsets, WriteFn&& write_one) {
  std::vector<uint64_t> lat(offsets.size());  // preallocated: no allocation in the timed loop
  for (size_t i = 0; i < offsets.size(); ++i) {
    uint64_t t0 = NowNs();
    write_one(offsets[i]);
    lat[i] = NowNs() - t0;
  }
  return lat;
}

// Compact() back to back until told to stop; the durations of the calls that wrote a checkpoint.
struct CompactLoop {
  std::vector<uint64_t> durations;
  uint64_t calls = 0, errors = 0;
  std::string last_error;
};

void RunCompactLoop(tern::File& f, const std::atomic<bool>& stop, CompactLoop* out) {
  while (!stop.load(std::memory_order_relaxed)) {
    uint64_t t0 = NowNs();
    auto stats = f.core().Compact();
    uint64_t t1 = NowNs();
    ++out->calls;
    if (!stats.ok()) {
      ++out->errors;
      out->last_error = stats.status().context();
    } else if (stats->checkpoint_runs > 0) {
      out->durations.push_back(t1 - t0);
    }
  }
}

void Measure(JsonReport& report, const Config& c, const std::string& mode) {
  const std::vector<uint64_t> offsets = Offsets(c);
  AlignedBuf buf(kBlock, 'g');
  std::vector<uint64_t> lat;
  CompactLoop loop;
  uint64_t gc_runs = 0;
  if (mode == "kernel") {
    std::string path = UniquePath(c.dir, "gc-kernel");
    int fd = CreatePrefilledKernel(path, c.file_bytes);
    lat = TimeWrites(offsets, [&](uint64_t off) {
      if (pwrite(fd, buf.data(), kBlock, static_cast<off_t>(off)) != static_cast<ssize_t>(kBlock) || fsync(fd) != 0) {
        DieErrno("kernel write", errno);
      }
    });
    close(fd);
    unlink(path.c_str());
  } else {
    std::string path = UniquePath(c.dir, "gc-tern-" + mode);
    std::unique_ptr<tern::File> f = CreatePrefilledTern(path, c.file_bytes);
    // Marking compaction as already queued keeps the background thread from starting one.
    if (mode != "auto_gc") f->core().compaction_scheduled_.store(true);
    std::atomic<bool> stop{false};
    std::thread gc;
    if (mode == "gc_loop") gc = std::thread(RunCompactLoop, std::ref(*f), std::cref(stop), &loop);
    lat = TimeWrites(offsets, [&](uint64_t off) {
      auto w = f->Pwrite(buf.data(), kBlock, off);
      tern::Status s = w.ok() ? f->Fsync() : w.status();
      if (!s.ok()) Die("tern write", s);
    });
    stop.store(true);
    if (gc.joinable()) gc.join();
    gc_runs = f->core().GetStats().gc_runs;
    f.reset();
    unlink(path.c_str());
  }
  Percentiles p = Summarize(&lat);
  Percentiles gc_p = Summarize(&loop.durations);
  JsonReport::Record& r = report.Add()
                              .Str("bench", "gc_tail")
                              .Str("mode", mode)
                              .Num("file_mib", static_cast<double>(c.file_bytes / kMiB))
                              .Lat("write", p)
                              .Num("gc_runs", static_cast<double>(gc_runs))
                              .Num("compact_calls", static_cast<double>(loop.calls))
                              .Num("compact_errors", static_cast<double>(loop.errors))
                              .Lat("compact", gc_p);
  if (!loop.last_error.empty()) r.Str("compact_last_error", loop.last_error);
  std::fprintf(stderr, "  %-8s p50 %7.0f  p99 %8.0f  p99.9 %9.0f  max %10.0f ns  (gc runs %llu, errors %llu)\n",
               mode.c_str(), p.p50, p.p99, p.p999, p.max, static_cast<unsigned long long>(gc_runs),
               static_cast<unsigned long long>(loop.errors));
}

}  // namespace
}  // namespace tern::bench

int main(int argc, char** argv) {
  using namespace tern::bench;
  Config c;
  c.dir = TakeDirOption(&argc, argv);
  c.file_bytes = std::stoull(TakeOption(&argc, argv, "file_mib", "32")) * kMiB;
  c.ops = std::stoull(TakeOption(&argc, argv, "ops", "200000"));
  std::string modes = TakeOption(&argc, argv, "modes", "no_gc,gc_loop,auto_gc,kernel");
  std::string out = TakeOption(&argc, argv, "out", "-");
  if (argc > 1) {
    std::fprintf(stderr, "gc_tail_bench: unknown argument %s\n", argv[1]);
    return 2;
  }
  LimitFileSize(3 * c.file_bytes + 1024 * kMiB);
  JsonReport report;
  report.Context()
      .Str("program", "gc_tail_bench")
      .Str("dir", c.dir)
      .Str("fs", FsDescription(c.dir))
      .Num("file_mib", static_cast<double>(c.file_bytes / kMiB))
      .Num("ops", static_cast<double>(c.ops))
      .Str("load_avg_start", LoadAverage());
  std::stringstream ss(modes);
  std::string mode;
  std::fprintf(stderr, "gc_tail_bench: %llu writes on %llu MiB (load %s)\n", static_cast<unsigned long long>(c.ops),
               static_cast<unsigned long long>(c.file_bytes / kMiB), LoadAverage().c_str());
  while (std::getline(ss, mode, ',')) {
    if (mode != "no_gc" && mode != "gc_loop" && mode != "auto_gc" && mode != "kernel") {
      std::fprintf(stderr, "gc_tail_bench: unknown mode %s\n", mode.c_str());
      return 2;
    }
    Measure(report, c, mode);
  }
  report.Context().Str("load_avg_end", LoadAverage());
  report.Write(out);
  return 0;
}
