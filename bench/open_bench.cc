// open_bench: how long tern::File::Open takes as the file grows, before and after log compaction,
// next to the kernel's open(2) of a same-size file in the same directory (issue 4: "opening a 1 GiB
// file written by 4 KiB random overwrites takes under 1 ms after GC").
//
// Per size S (2 MiB … 1 GiB): a tern file is written sequentially to S, then gets S/4 KiB random
// 4 KiB overwrites (as many as it has blocks, so its log is long and its mapping fragmented), one
// fsync at the end. Automatic compaction is held off meanwhile, so "before GC" really replays the
// whole log. Then, each measured R times after one unmeasured warm-up open (which also checks a
// sample of blocks against a model of what was written):
//   cold      File::Open(O_RDWR) of a file no process has open: this open maps the file, replays the
//             log (or loads the checkpoint), and takes the shared allocator state the last close
//             left at rest if the file is large (>= 128 MiB of backing, lib/file_core_rest.cc);
//             for a smaller file the last close removed it, and this open rebuilds it.
//   rebuild   the same with the shared state deleted before each open (as after a reboot): the
//             open creates a fresh one, and the first write after it (timed too: a 4 KiB pwrite
//             of block 0's own bytes) builds its block allocator from the log.
//   attached  the same while a child process keeps the file open: the shared state exists, so the
//             open attaches to it and replays the log into its own block table.
//   close     the destruction of the File of a cold open (last close: flush, leave the shared
//             state at rest or remove it, unmap), measured separately.
// then File::core().Compact() once (timed), and the three again ("after GC"; skipped, with the
// error in the report, when the compaction fails). Kernel: open(2) (O_RDWR) and close(2) of a
// prefilled plain file of size S. Files are capped at 3 S + 1 GiB (LimitFileSize).
//
// usage: open_bench [--dir=DIR] [--sizes=2,8,32,128,512,1024] (MiB) [--reps=15] [--out=FILE.json]
// Output: JSON (see bench_util.h), rendered by bench/mt_table.py.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/meta_block_format.h"
#include "lib/shared_state.h"

namespace tern::bench {
namespace {

constexpr uint8_t kOverwriteByte = 0xab;
constexpr int kVerifySamples = 256;

// What each block of the test file holds: its prefill, or the overwrite buffer.
using Model = std::vector<bool>;  // true = overwritten

// Closes `f` and waits until the engine's background thread has let go of the file too (it holds
// it while growing the file ahead of writers), so that the next open is a cold one.
void CloseAndSettle(std::unique_ptr<tern::File> f) {
  std::weak_ptr<tern::FileCore> core = f->core().shared_from_this();
  f.reset();
  while (!core.expired()) usleep(1000);
}

Model WriteFragmented(const std::string& path, uint64_t bytes) {
  std::unique_ptr<tern::File> f = CreatePrefilledTern(path, bytes);
  // Hold off automatic compaction (scheduled past 64 log blocks) by marking it already queued:
  // the "before GC" numbers must replay the whole log. Compact() below is called explicitly.
  f->core().compaction_scheduled_.store(true);
  const uint64_t nblocks = bytes / kBlock;
  Model overwritten(nblocks, false);
  AlignedBuf buf(kBlock, kOverwriteByte);
  std::mt19937_64 rng(bytes);
  for (uint64_t i = 0; i < nblocks; ++i) {
    uint64_t b = rng() % nblocks;
    auto w = f->Pwrite(buf.data(), kBlock, b * kBlock);
    if (!w.ok()) Die("overwrite " + path, w.status());
    overwritten[b] = true;
  }
  tern::Status s = f->Fsync();
  if (!s.ok()) Die("fsync " + path, s);
  CloseAndSettle(std::move(f));
  return overwritten;
}

void Verify(tern::File& f, const Model& model, const std::string& what) {
  auto size = f.Size();
  if (!size.ok() || *size != model.size() * kBlock) {
    std::fprintf(stderr, "%s: wrong size after open\n", what.c_str());
    std::exit(1);
  }
  AlignedBuf buf(kBlock, 0);
  std::mt19937_64 rng(42);
  for (int i = 0; i < kVerifySamples; ++i) {
    uint64_t b = i == 0 ? model.size() - 1 : rng() % model.size();
    auto r = f.Pread(buf.data(), kBlock, b * kBlock);
    if (!r.ok()) Die(what + ": read", r.status());
    bool ok = model[b] ? (buf.data()[0] == kOverwriteByte && buf.data()[kBlock - 1] == kOverwriteByte)
                       : IsPrefillBlock(buf.data(), b);
    if (*r != kBlock || !ok) {
      std::fprintf(stderr, "%s: block %llu reads back wrong\n", what.c_str(), static_cast<unsigned long long>(b));
      std::exit(1);
    }
  }
}

std::unique_ptr<tern::File> OpenOrDie(const std::string& path) {
  auto f = tern::File::Open(path, O_RDWR);
  if (!f.ok()) Die("tern open " + path, f.status());
  return std::move(f).value();
}

struct OpenTimes {
  std::vector<uint64_t> open_ns, close_ns;
  std::vector<uint64_t> first_write_ns;  // rebuild mode only
  uint64_t log_entries = 0;
};

// Removes the file's shared-state object, as a reboot would: the next open rebuilds it.
void DropSharedState(const std::string& path) {
  struct stat st{};
  tern::pmem::MetaHeader h{};
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0 || pread(fd, &h, sizeof(h), 0) != static_cast<ssize_t>(sizeof(h))) {
    DieErrno("read the meta block of " + path, errno);
  }
  close(fd);
  (void)unlink(tern::SharedState::NameFor(st, h.nonce).c_str());
}

OpenTimes TimeTernOpens(const std::string& path, int reps, const Model& model, const std::string& what,
                        bool drop_state = false) {
  OpenTimes t;
  {
    std::unique_ptr<tern::File> warm = OpenOrDie(path);
    t.log_entries = warm->core().LogLength();
    Verify(*warm, model, what);
    CloseAndSettle(std::move(warm));
  }
  for (int r = 0; r < reps; ++r) {
    if (drop_state) DropSharedState(path);
    uint64_t t0 = NowNs();
    std::unique_ptr<tern::File> f = OpenOrDie(path);
    uint64_t t1 = NowNs();
    if (drop_state) {
      // The write would schedule a background compaction of a long log ("before GC"), which
      // would hold the engine past the close below: held off, as while the file was written.
      f->core().compaction_scheduled_.store(true);
      // Block 0's own bytes back: the model stays true, and the write builds the allocator.
      std::vector<uint8_t> block(kBlock);
      auto got = f->Pread(block.data(), kBlock, 0);
      if (!got.ok() || *got != kBlock) Die("read block 0 of " + path, got.ok() ? tern::Status::Error(EIO, "short read") : got.status());
      uint64_t w0 = NowNs();
      auto w = f->Pwrite(block.data(), kBlock, 0);
      if (!w.ok()) Die("first write to " + path, w.status());
      t.first_write_ns.push_back(NowNs() - w0);
    }
    std::weak_ptr<tern::FileCore> core = f->core().shared_from_this();
    uint64_t t2 = NowNs();
    f.reset();
    uint64_t t3 = NowNs();
    if (!core.expired()) {
      std::fprintf(stderr, "%s: the engine kept the file open after its last close\n", what.c_str());
      std::exit(1);
    }
    t.open_ns.push_back(t1 - t0);
    t.close_ns.push_back(t3 - t2);
  }
  return t;
}

// A child process that keeps `path` open until told to go: its pid, and the pipe that tells it.
struct Holder {
  pid_t pid;
  int go_fd;
};

Holder StartHolder(const std::string& path) {
  int ready[2], go[2];
  if (pipe(ready) != 0 || pipe(go) != 0) DieErrno("pipe", errno);
  pid_t pid = fork();
  if (pid < 0) DieErrno("fork", errno);
  if (pid == 0) {
    close(ready[0]);
    close(go[1]);
    auto f = tern::File::Open(path, O_RDWR);
    char status = f.ok() ? 1 : 0;
    if (write(ready[1], &status, 1) != 1) _exit(2);
    char c;
    ssize_t n = read(go[0], &c, 1);
    (void)n;
    if (f.ok()) f.value().reset();
    _exit(f.ok() ? 0 : 1);
  }
  close(ready[1]);
  close(go[0]);
  char status = 0;
  if (read(ready[0], &status, 1) != 1 || status != 1) DieErrno("holder process could not open " + path, EIO);
  close(ready[0]);
  return {pid, go[1]};
}

void StopHolder(const Holder& h) {
  char c = 1;
  if (write(h.go_fd, &c, 1) != 1) DieErrno("stop holder", errno);
  close(h.go_fd);
  int status = 0;
  waitpid(h.pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) DieErrno("holder process failed", EIO);
}

void AddOpenRecord(JsonReport& report, uint64_t mib, const std::string& phase, const std::string& mode,
                   OpenTimes& t) {
  Percentiles open = Summarize(&t.open_ns);
  Percentiles close_p = Summarize(&t.close_ns);
  auto& record = report.Add()
                     .Str("bench", "open")
                     .Str("backend", "tern")
                     .Num("size_mib", static_cast<double>(mib))
                     .Str("phase", phase)
                     .Str("mode", mode)
                     .Num("log_entries", static_cast<double>(t.log_entries))
                     .Lat("open", open)
                     .Lat("close", close_p);
  std::string first_write;
  if (!t.first_write_ns.empty()) {
    Percentiles w = Summarize(&t.first_write_ns);
    record.Lat("first_write", w);
    first_write = "  first write p50 " + std::to_string(static_cast<uint64_t>(w.p50)) + " ns";
  }
  std::fprintf(stderr, "  tern %-6s %-8s %5llu MiB: open p50 %10.0f ns  close p50 %10.0f ns  (log %llu entries)%s\n",
               phase.c_str(), mode.c_str(), static_cast<unsigned long long>(mib), open.p50, close_p.p50,
               static_cast<unsigned long long>(t.log_entries), first_write.c_str());
}

void MeasureTernPhase(JsonReport& report, const std::string& path, uint64_t mib, const std::string& phase,
                      int reps, const Model& model) {
  OpenTimes cold = TimeTernOpens(path, reps, model, phase + " cold");
  AddOpenRecord(report, mib, phase, "cold", cold);
  OpenTimes rebuild = TimeTernOpens(path, reps, model, phase + " rebuild", true);
  AddOpenRecord(report, mib, phase, "rebuild", rebuild);
  Holder holder = StartHolder(path);
  OpenTimes attached = TimeTernOpens(path, reps, model, phase + " attached");
  StopHolder(holder);
  AddOpenRecord(report, mib, phase, "attached", attached);
}

void MeasureKernel(JsonReport& report, const std::string& dir, uint64_t mib, int reps) {
  std::string path = UniquePath(dir, "open-kernel");
  close(CreatePrefilledKernel(path, mib * kMiB));
  std::vector<uint64_t> open_ns, close_ns;
  for (int r = 0; r <= reps; ++r) {
    uint64_t t0 = NowNs();
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    uint64_t t1 = NowNs();
    if (fd < 0) DieErrno("open " + path, errno);
    close(fd);
    uint64_t t2 = NowNs();
    if (r == 0) continue;  // warm-up, as for tern
    open_ns.push_back(t1 - t0);
    close_ns.push_back(t2 - t1);
  }
  unlink(path.c_str());
  Percentiles open = Summarize(&open_ns);
  report.Add()
      .Str("bench", "open")
      .Str("backend", "kernel")
      .Num("size_mib", static_cast<double>(mib))
      .Str("phase", "-")
      .Str("mode", "cold")
      .Lat("open", open)
      .Lat("close", Summarize(&close_ns));
  std::fprintf(stderr, "  kernel %5llu MiB: open p50 %10.0f ns\n", static_cast<unsigned long long>(mib), open.p50);
}

// Compacts once; false when the compaction failed (then there is no "after GC" to measure).
bool CompactOnce(JsonReport& report, const std::string& path, uint64_t mib) {
  std::unique_ptr<tern::File> f = OpenOrDie(path);
  uint64_t t0 = NowNs();
  auto stats = f->core().Compact();
  uint64_t t1 = NowNs();
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) DieErrno("stat " + path, errno);
  JsonReport::Record& r = report.Add()
                              .Str("bench", "compact")
                              .Str("backend", "tern")
                              .Num("size_mib", static_cast<double>(mib))
                              .Num("compact_ns", static_cast<double>(t1 - t0))
                              .Num("backing_mib", static_cast<double>(st.st_size) / static_cast<double>(kMiB));
  CloseAndSettle(std::move(f));
  if (!stats.ok()) {
    std::string err = std::string(stats.status().context()) + " (" + std::strerror(stats.status().err()) + ")";
    r.Str("error", err);
    std::fprintf(stderr, "  compact %5llu MiB FAILED after %.1f ms: %s; backing file now %lld MiB\n",
                 static_cast<unsigned long long>(mib), static_cast<double>(t1 - t0) / 1e6, err.c_str(),
                 static_cast<long long>(st.st_size) >> 20);
    return false;
  }
  r.Num("entries_before", static_cast<double>(stats->entries_before))
      .Num("entries_after", static_cast<double>(stats->entries_after))
      .Num("checkpoint_runs", stats->checkpoint_runs)
      .Num("log_blocks_after", static_cast<double>(stats->log_blocks_after))
      .Num("blocks_freed", static_cast<double>(stats->blocks_freed))
      .Num("drained", stats->drained ? 1 : 0);
  std::fprintf(stderr, "  compact %5llu MiB: %.1f ms, %llu entries -> checkpoint of %u runs\n",
               static_cast<unsigned long long>(mib), static_cast<double>(t1 - t0) / 1e6,
               static_cast<unsigned long long>(stats->entries_before), stats->checkpoint_runs);
  return true;
}

std::vector<uint64_t> ParseSizes(const std::string& list) {
  std::vector<uint64_t> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoull(item));
  return out;
}

}  // namespace
}  // namespace tern::bench

int main(int argc, char** argv) {
  using namespace tern::bench;
  std::string dir = TakeDirOption(&argc, argv);
  std::vector<uint64_t> sizes = ParseSizes(TakeOption(&argc, argv, "sizes", "2,8,32,128,512,1024"));
  int reps = std::stoi(TakeOption(&argc, argv, "reps", "15"));
  std::string out = TakeOption(&argc, argv, "out", "-");
  if (argc > 1) {
    std::fprintf(stderr, "open_bench: unknown argument %s\n", argv[1]);
    return 2;
  }
  JsonReport report;
  report.Context()
      .Str("program", "open_bench")
      .Str("dir", dir)
      .Str("fs", FsDescription(dir))
      .Num("reps", reps)
      .Str("load_avg_start", LoadAverage());
  for (uint64_t mib : sizes) {
    std::fprintf(stderr, "open_bench: %llu MiB (load %s)\n", static_cast<unsigned long long>(mib),
                 LoadAverage().c_str());
    // Room for the file, its copy-on-write garbage and a checkpoint, and for the engine's sparse
    // shared-state object (~550 MiB of apparent size).
    LimitFileSize(3 * mib * kMiB + 1024 * kMiB);
    MeasureKernel(report, dir, mib, reps);
    std::string path = UniquePath(dir, "open-tern-" + std::to_string(mib));
    Model model = WriteFragmented(path, mib * kMiB);
    MeasureTernPhase(report, path, mib, "before", reps, model);
    if (CompactOnce(report, path, mib)) MeasureTernPhase(report, path, mib, "after", reps, model);
    unlink(path.c_str());
  }
  report.Context().Str("load_avg_end", LoadAverage());
  report.Write(out);
  return 0;
}
