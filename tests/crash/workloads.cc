#include "tests/crash/workloads.h"

#include <random>

#include "lib/layout_constants.h"

namespace tern::crash {
namespace {

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  uint64_t Uniform(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_); }
  uint64_t NextSeed() { return ++op_seed_; }

 private:
  std::mt19937_64 rng_;
  uint64_t op_seed_ = 0;
};

Op Write(uint64_t offset, uint64_t length, uint64_t seed) { return {OpKind::kWrite, offset, length, seed}; }
Op AppendOp(uint64_t length, uint64_t seed) { return {OpKind::kAppend, 0, length, seed}; }
Op Truncate(uint64_t size) { return {OpKind::kTruncate, size, 0, 0}; }
Op Fsync() { return {OpKind::kFsync, 0, 0, 0}; }

}  // namespace

Workload AlignedOverwrite(uint64_t seed, int ops) {
  Gen g(seed);
  Workload w{"aligned_overwrite", {Write(0, 32 * kBlockSize, 1000000)}, {{}}};
  for (int i = 0; i < ops; ++i) {
    uint64_t n = g.Uniform(1, 8);
    w.threads[0].push_back(Write(g.Uniform(0, 32 - n) * kBlockSize, n * kBlockSize, g.NextSeed()));
    if (i % 4 == 3) w.threads[0].push_back(Fsync());
  }
  return w;
}

Workload UnalignedOverwrite(uint64_t seed, int ops) {
  Gen g(seed);
  Workload w{"unaligned_overwrite", {Write(0, 100000, 1000000)}, {{}}};
  for (int i = 0; i < ops; ++i) {
    w.threads[0].push_back(Write(g.Uniform(0, 100000), g.Uniform(1, 9000), g.NextSeed()));
    if (i % 3 == 2) w.threads[0].push_back(Fsync());
  }
  return w;
}

Workload Append(uint64_t seed, int ops) {
  Gen g(seed);
  Workload w{"append", {}, {{}}};
  for (int i = 0; i < ops; ++i) {
    uint64_t n = i % 7 == 0 ? kBlockSize : g.Uniform(1, 6000);
    w.threads[0].push_back(AppendOp(n, g.NextSeed()));
    if (i % 5 == 4) w.threads[0].push_back(Fsync());
  }
  return w;
}

Workload TruncateDownUp(uint64_t seed, int ops) {
  Gen g(seed);
  Workload w{"truncate_down_up", {Write(0, 64 * 1024, 1000000)}, {{}}};
  uint64_t size = 64 * 1024;
  for (int i = 0; i < ops; ++i) {
    uint64_t kind = g.Uniform(0, 5);
    uint64_t target = size;
    if (kind == 0) target = 0;
    if (kind == 1) target = g.Uniform(0, size / kBlockSize) * kBlockSize;  // at a block edge
    if (kind == 2) target = g.Uniform(0, size);                            // inside a block
    if (kind == 3) target = size + g.Uniform(1, 3 * kBlockSize);           // up: a hole
    if (kind <= 3 && target != size) {
      w.threads[0].push_back(Truncate(target));
      size = target;
    } else {
      uint64_t off = g.Uniform(0, size + kBlockSize), n = g.Uniform(1, 3 * kBlockSize);
      w.threads[0].push_back(Write(off, n, g.NextSeed()));
      size = std::max(size, off + n);
    }
    if (i % 3 == 2) w.threads[0].push_back(Fsync());
  }
  return w;
}

Workload LogOverflow(uint64_t seed, int ops) {
  Gen g(seed);
  Workload w{"log_overflow", {Write(0, 16 * 1024, 1000000)}, {{}}};
  for (int i = 0; i < ops; ++i) {
    w.threads[0].push_back(Write(g.Uniform(0, 16 * 1024 - 100), g.Uniform(1, 100), g.NextSeed()));
    if (i % 50 == 49) w.threads[0].push_back(Fsync());
  }
  return w;
}

Workload Compaction(uint64_t seed, int ops) {  // ops >= 1701
  Gen g(seed);
  Workload w{"compaction", {Write(0, 24 * 1024, 1000000)}, {{}}};
  for (int i = 0; i < ops; ++i) {
    w.threads[0].push_back(Write(g.Uniform(0, 24 * 1024 - 200), g.Uniform(1, 200), g.NextSeed()));
    if (i % 40 == 39) w.threads[0].push_back(Fsync());
    // A compaction needs the log past the first log block, and a log block's worth of entries past
    // the last checkpoint.
    if (i == 1100 || i == 1700) w.threads[0].push_back({OpKind::kCompact, 0, 0, 0});
  }
  return w;
}

Workload Extended(uint64_t seed, int ops) {
  Gen g(seed);
  Workload w{"extended", {}, {{}}};
  uint64_t size = 0;
  for (int i = 0; i < ops; ++i) {
    Op op;
    if (i % 3 == 0) {  // more than 63 blocks: never inline
      uint64_t n = g.Uniform(64, 100) * kBlockSize;
      op = Write(g.Uniform(0, 8) * kBlockSize, n, g.NextSeed());
    } else if (i % 3 == 1) {  // past the end, unaligned end: a record with new_size
      op = Write(size + g.Uniform(0, 2 * kBlockSize), g.Uniform(1, 2 * kBlockSize), g.NextSeed());
    } else {  // unaligned, across the end
      op = Write(size > 100 ? size - g.Uniform(1, 100) : 0, g.Uniform(200, 9000), g.NextSeed());
    }
    size = std::max(size, op.offset + op.length);
    w.threads[0].push_back(op);
    if (i % 2 == 1) w.threads[0].push_back(Fsync());
  }
  return w;
}

Workload TwoThreads(uint64_t seed, int ops_per_thread) {
  Gen g(seed);
  Workload w{"two_threads", {Write(0, 32 * 1024, 1000000)}, {{}, {}}};
  for (auto& ops : w.threads) {
    for (int i = 0; i < ops_per_thread; ++i) {
      uint64_t off = g.Uniform(0, 32 * 1024 / 8) * 8, n = g.Uniform(1, 750) * 8;
      ops.push_back(Write(off, n, g.NextSeed()));
      if (i % 10 == 9) ops.push_back(Fsync());
    }
  }
  return w;
}

Workload AlignedAppend(uint64_t seed, int ops) {
  Gen g(seed);
  Workload w{"aligned_append", {}, {{}}};
  for (int i = 0; i < ops; ++i) {
    w.threads[0].push_back(AppendOp(g.Uniform(1, 4) * kBlockSize, g.NextSeed()));
    if (i % 5 == 4) w.threads[0].push_back(Fsync());
  }
  return w;
}

}  // namespace tern::crash
