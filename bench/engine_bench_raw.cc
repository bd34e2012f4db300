// engine_bench's raw baselines: what persisting the bytes costs with no file system at all (a
// pre-faulted shared mapping of a file and pmem/'s non-temporal copy), plus the minimum a
// log-structured commit adds, and the raw cost of a sub-block copy-on-write.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "bench/engine_bench.h"
#include "lib/layout_constants.h"
#include "pmem/mapping.h"
#include "pmem/persist.h"

namespace tern::engine_bench {

// ---------------------------------------------------------------------------------------------
// raw: non-temporal copy + persist into a pre-faulted shared mapping of a file

struct RawRegion {
  int fd = -1;
  void* base = nullptr;
  uint64_t len = 0;
  std::string path;
  ~RawRegion() {
    if (base) tern::pmem::ReleaseAddressSpace(base, len);
    if (fd >= 0) close(fd);
    if (!path.empty()) unlink(path.c_str());
  }
  uint8_t* at(uint64_t off) const { return static_cast<uint8_t*>(base) + off; }
};

// Creates, maps and pre-faults (by writing the prefill pattern) `bytes` of a file.
int RawCreate(RawRegion& r, const std::string& tag, uint64_t bytes) {
  r.path = PathFor(tag);
  r.fd = open(r.path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (r.fd < 0) return errno;
  constexpr uint64_t kStep = tern::kBlocksPerGrowStep * tern::kBlockSize;  // as a grown tern file
  r.len = (bytes + kStep - 1) / kStep * kStep;
  int rc = tern::pmem::ReserveAddressSpace(r.len, &r.base);
  if (rc) {
    r.base = nullptr;
    return -rc;
  }
  if ((rc = tern::pmem::GrowFile(r.fd, 0, r.len)) != 0) return -rc;
  bool dax = false;
  if ((rc = tern::pmem::MapFileRange(r.base, r.len, r.fd, 0, true, /*populate=*/true, 0, 0, &dax)) != 0) return -rc;
  // Prefill with non-temporal copies, the way tern writes data, so that raw reads find the same
  // cache state as tern's (written data is not left in the CPU cache). The mapping is faulted in by
  // MAP_POPULATE plus these stores.
  AlignedBuf chunk(kMiB);
  for (uint64_t off = 0; off < r.len; off += kMiB) {
    FillPattern(chunk.p, off, kMiB);
    tern::pmem::CopyNoDrain(r.at(off), chunk.p, kMiB);
  }
  tern::pmem::Drain();
  if (!CheckPattern(r.at(r.len / 2), r.len / 2, kBlock)) return EIO;
  return 0;
}

void RunRaw(benchmark::State& state, Case c, size_t size) {
  RawRegion r;
  AlignedBuf src(kMaxIo), dst(kMaxIo);
  uint64_t bytes = IsAppend(c) ? static_cast<uint64_t>(state.max_iterations) * size : g_file_bytes;
  int err = RawCreate(r, std::string("raw-") + CaseName(c), bytes);
  if (err) return Fail(state, "map " + r.path, err);
  std::vector<uint64_t> offs = CaseOffsets(c, size);
  size_t i = 0;
  PerfWindow perf_window;
  switch (c) {
    case Case::kOverwrite:
    case Case::kSubBlock:
      for (auto _ : state) {
        tern::pmem::CopyPersist(r.at(offs[i++ & (kOffsets - 1)]), src.p, size);
        benchmark::ClobberMemory();
      }
      break;
    case Case::kAppend:
    case Case::kAppendReuse: {
      uint64_t pos = 0;
      for (auto _ : state) {
        tern::pmem::CopyPersist(r.at(pos), src.p, size);
        pos += size;
        benchmark::ClobberMemory();
      }
      break;
    }
    case Case::kRead:
      for (auto _ : state) {
        std::memcpy(dst.p, r.at(offs[i++ & (kOffsets - 1)]), size);
        benchmark::DoNotOptimize(dst.p);
        benchmark::ClobberMemory();
      }
      break;
  }
  state.counters["pmd_MiB"] = PmdMappedMiB();  // after the loop: growth included
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}

// The raw limit plus the minimum any crash-consistent log-structured design adds: after the data
// copy and its fence, an 8-byte commit word is CAS'd into the next slot of a log and persisted
// (flush + fence). The data lands in place (overwrite) or sequentially (append); no allocation, no
// index. tern/rawlog is the engine's own overhead over that floor.
void RunRawLog(benchmark::State& state, Case c, size_t size) {
  RawRegion r;
  AlignedBuf src(kMaxIo);
  const uint64_t data_bytes =
      IsAppend(c) ? static_cast<uint64_t>(state.max_iterations) * size : g_file_bytes;
  const uint64_t log_bytes = static_cast<uint64_t>(state.max_iterations) * sizeof(uint64_t);
  int err = RawCreate(r, std::string("rawlog-") + CaseName(c), data_bytes + log_bytes);
  if (err) return Fail(state, "map " + r.path, err);
  std::memset(r.at(data_bytes), 0, log_bytes);
  tern::pmem::Persist(r.at(data_bytes), log_bytes);
  auto* log = reinterpret_cast<uint64_t*>(r.at(data_bytes));
  std::vector<uint64_t> offs = CaseOffsets(c, size);
  size_t i = 0;
  uint64_t pos = 0;
  PerfWindow perf_window;
  for (auto _ : state) {
    uint64_t off = IsAppend(c) ? pos : offs[i & (kOffsets - 1)];
    tern::pmem::CopyNoDrain(r.at(off), src.p, size);
    tern::pmem::Drain();
    uint64_t expected = 0;
    bool ok = tern::pmem::Cas64(&log[i], expected, (off << 8) | 1);
    tern::pmem::Flush(&log[i], sizeof(uint64_t));
    tern::pmem::Drain();
    benchmark::DoNotOptimize(ok);
    ++i;
    pos += size;
  }
  state.counters["pmd_MiB"] = PmdMappedMiB();  // after the loop: growth included
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}

// The raw limit of a copy-on-write sub-block write: the whole 4 KiB block is rebuilt elsewhere
// (old head, new bytes, old tail), non-temporally, then one fence.
void RunRawCow(benchmark::State& state, size_t size) {
  RawRegion r;
  AlignedBuf src(kMaxIo);
  int err = RawCreate(r, "rawcow", 2 * g_file_bytes);
  if (err) return Fail(state, "map " + r.path, err);
  std::vector<uint64_t> offs = MakeOffsets(size, true, 42);
  std::vector<uint64_t> dests = MakeOffsets(kBlock, false, 7);
  size_t i = 0;
  PerfWindow perf_window;
  for (auto _ : state) {
    uint64_t off = offs[i & (kOffsets - 1)];
    uint64_t in_block = off & (kBlock - 1);
    const uint8_t* old_block = r.at(off - in_block);
    uint8_t* new_block = r.at(g_file_bytes + dests[i & (kOffsets - 1)]);
    ++i;
    tern::pmem::CopyNoDrain(new_block, old_block, in_block);
    tern::pmem::CopyNoDrain(new_block + in_block, src.p, size);
    tern::pmem::CopyNoDrain(new_block + in_block + size, old_block + in_block + size,
                            kBlock - in_block - size);
    tern::pmem::Drain();
    benchmark::ClobberMemory();
  }
  state.counters["pmd_MiB"] = PmdMappedMiB();  // after the loop: growth included
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}

}  // namespace tern::engine_bench
