// Concurrency on one tern file: 8 writer threads write overlapping (shared region) and disjoint
// (private regions) ranges, block-aligned and not, while 4 reader threads read. Every 8-byte word a
// write stores names the write and the word's own position, so any word of any read can be traced
// to the one write that produced it (or to the initial zeros).
//
// Writers go in rounds of a few writes each: a barrier lets all 8 start together (so they really
// race for the log tail on a machine with few CPUs), and at each round boundary, while no write is
// in flight, the barrier's completion step snapshots the shared region. A snapshot must show every write so
// far, so a write that reverted bytes of a concurrent one (a stale partial block) shows at once.
//
// What is checked, after joining:
//  - no read returns a word that no write produced at that position (garbage, misplaced data) or a
//    write that had not started when the read ended;
//  - no write is half-visible: if a read shows write A over part of write X's range while showing X
//    (or X must be visible, see below), then X committed before A. A write that must be visible
//    (it finished before the read started, or a later write of its thread is visible) may not show
//    initial zeros anywhere in the read;
//  - all those "X before A" facts, from every read and the final content, together with each
//    thread's program order, are acyclic, and none contradicts real time (A finished before X
//    started). So one serial order of all writes explains every read and the final file: the final
//    content is the sequential replay of the writes in that order.
#include <fcntl.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <barrier>
#include <latch>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "tests/test_util.h"

namespace tern {
namespace {

constexpr int kWriters = 8;
constexpr int kReaders = 4;
constexpr uint32_t kWritesPerThread = 500;
constexpr uint32_t kMaxReadsPerThread = 1000;
constexpr uint32_t kWritesPerRound = 8;  // per writer, between two snapshots
constexpr int kTrials = 3;             // fresh file each; conflicts depend on the scheduler
constexpr uint64_t kSharedBytes = 32 * 1024;
constexpr uint64_t kPrivateBytes = 16 * 1024;
constexpr uint64_t kFileBytes = kSharedBytes + kWriters * kPrivateBytes;
constexpr uint64_t kFileBlocks = kFileBytes / kBlockSize;
constexpr uint32_t kSalt = 0x5EED1234u;

uint64_t WordFor(uint32_t id, uint64_t offset) {
  return (uint64_t{id} << 32) | (static_cast<uint32_t>(offset / 8) ^ kSalt);
}

struct WriteRec {
  uint32_t id = 0;  // 1-based; 0 = the initial zeros
  int thread = 0;
  uint32_t seq = 0;
  uint64_t off = 0;
  uint64_t len = 0;
  uint64_t start = 0, end = 0;  // tickets taken before the call and after it returned
  bool Overlaps(uint64_t a, uint64_t b) const { return off < b && a < off + len; }
};

struct ReadRec {
  uint64_t off = 0;
  std::vector<uint8_t> data;
  uint64_t start = 0, end = 0;
};

// Everything that happened, and the checks over it.
class History {
 public:
  explicit History(std::vector<WriteRec> writes) : writes_(std::move(writes)), by_block_(kFileBlocks) {
    for (const WriteRec& w : writes_) {
      for (uint64_t b = w.off / kBlockSize; b < (w.off + w.len + kBlockSize - 1) / kBlockSize; ++b) {
        by_block_[b].push_back(w.id);
      }
    }
    stamp_.assign(writes_.size() + 1, 0);
  }

  const WriteRec& Write(uint32_t id) const { return writes_[id - 1]; }

  // Checks one snapshot of [off, off + data.size()). `visible` says, per thread, the highest seq
  // known to be committed (-1: none); it is extended with what the snapshot shows.
  void CheckSnapshot(uint64_t off, const std::vector<uint8_t>& data, std::vector<int64_t> visible,
                     uint64_t read_end_ticket, const std::string& what) {
    size_t nwords = data.size() / 8;
    std::vector<uint32_t> attr(nwords);
    for (size_t i = 0; i < nwords; ++i) {
      uint64_t o = off + 8 * i;
      uint64_t v;
      memcpy(&v, data.data() + 8 * i, 8);
      if (v == 0) continue;
      auto id = static_cast<uint32_t>(v >> 32);
      if (id == 0 || id > writes_.size() || v != WordFor(id, o) || !Write(id).Overlaps(o, o + 8)) {
        Fail(what + ": word at offset " + std::to_string(o) + " is garbage: " + Hex(v));
        return;
      }
      if (Write(id).start > read_end_ticket) {
        Fail(what + ": shows write " + std::to_string(id) + " that started after the read ended");
        return;
      }
      attr[i] = id;
      int t = Write(id).thread;
      visible[static_cast<size_t>(t)] = std::max<int64_t>(visible[static_cast<size_t>(t)], Write(id).seq);
    }
    auto is_visible = [&](uint32_t id) {
      return static_cast<int64_t>(Write(id).seq) <= visible[static_cast<size_t>(Write(id).thread)];
    };
    // Segments of words produced by the same write.
    for (size_t i = 0; i < nwords;) {
      size_t j = i;
      while (j < nwords && attr[j] == attr[i]) ++j;
      uint64_t a = off + 8 * i, b = off + 8 * j;
      uint32_t shown = attr[i];
      ++current_stamp_;
      for (uint64_t blk = a / kBlockSize; blk < (b + kBlockSize - 1) / kBlockSize; ++blk) {
        for (uint32_t x : by_block_[blk]) {
          if (stamp_[x] == current_stamp_) continue;
          stamp_[x] = current_stamp_;
          if (x == shown || !Write(x).Overlaps(a, b) || !is_visible(x)) continue;
          if (shown == 0) {
            Fail(what + ": committed write " + Describe(x) + " is missing at [" + std::to_string(a) +
                 ", " + std::to_string(b) + "), which reads as the initial zeros");
            continue;
          }
          if (Write(shown).end < Write(x).start) {
            Fail(what + ": write " + Describe(shown) + " finished before " + Describe(x) +
                 " started, yet covers it at [" + std::to_string(a) + ", " + std::to_string(b) + ")");
            continue;
          }
          edges_.emplace_back(x, shown);  // x committed before `shown`
        }
      }
      i = j;
    }
  }

  // Per thread, the highest seq of a write that finished before `ticket` (-1: none).
  std::vector<int64_t> FinishedBefore(uint64_t ticket) const {
    std::vector<int64_t> v(kWriters, -1);
    for (const WriteRec& w : writes_) {
      if (w.end < ticket) v[static_cast<size_t>(w.thread)] = std::max<int64_t>(v[static_cast<size_t>(w.thread)], w.seq);
    }
    return v;
  }

  // Program order plus every observed "before" edge must be acyclic (Kahn's algorithm).
  void CheckSerializable() {
    size_t n = writes_.size() + 1;
    std::vector<std::vector<uint32_t>> out(n);
    std::vector<uint32_t> indegree(n, 0);
    auto add = [&](uint32_t from, uint32_t to) {
      out[from].push_back(to);
      ++indegree[to];
    };
    for (const WriteRec& w : writes_) {
      if (w.seq > 0) add(w.id - 1, w.id);  // ids of one thread are consecutive
    }
    std::sort(edges_.begin(), edges_.end());
    edges_.erase(std::unique(edges_.begin(), edges_.end()), edges_.end());
    for (auto [from, to] : edges_) add(from, to);
    std::vector<uint32_t> ready;
    for (uint32_t id = 1; id < n; ++id) {
      if (indegree[id] == 0) ready.push_back(id);
    }
    size_t done = 0;
    while (!ready.empty()) {
      uint32_t id = ready.back();
      ready.pop_back();
      ++done;
      for (uint32_t to : out[id]) {
        if (--indegree[to] == 0) ready.push_back(to);
      }
    }
    if (done != writes_.size()) {
      Fail("the observed commit order has a cycle: " + std::to_string(writes_.size() - done) +
           " writes cannot be placed in any serial order (" + std::to_string(edges_.size()) + " edges)");
    }
  }

  size_t edges() const { return edges_.size(); }
  const std::vector<std::string>& failures() const { return failures_; }

 private:
  void Fail(std::string s) {
    if (failures_.size() < 20) failures_.push_back(std::move(s));
  }
  std::string Describe(uint32_t id) const {
    const WriteRec& w = Write(id);
    return std::to_string(id) + " (thread " + std::to_string(w.thread) + " #" + std::to_string(w.seq) +
           ", [" + std::to_string(w.off) + ", " + std::to_string(w.off + w.len) + "))";
  }
  static std::string Hex(uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(v));
    return buf;
  }

  std::vector<WriteRec> writes_;
  std::vector<std::vector<uint32_t>> by_block_;
  std::vector<uint64_t> stamp_;
  uint64_t current_stamp_ = 0;
  std::vector<std::pair<uint32_t, uint32_t>> edges_;
  std::vector<std::string> failures_;
};

// A random range for writer t: the shared region or t's private one; block-aligned or only
// 8-byte aligned (partial blocks at either end).
std::pair<uint64_t, uint64_t> RandomRange(std::mt19937_64& rng, int t) {
  bool shared = rng() % 4 != 0;
  uint64_t base = shared ? 0 : kSharedBytes + static_cast<uint64_t>(t) * kPrivateBytes;
  uint64_t span = shared ? kSharedBytes : kPrivateBytes;
  if (rng() % 2 == 0) {
    uint64_t blocks = span / kBlockSize;
    uint64_t b = rng() % blocks;
    uint64_t n = std::min<uint64_t>(1 + rng() % 3, blocks - b);
    return {base + b * kBlockSize, n * kBlockSize};
  }
  uint64_t words = span / 8;
  uint64_t w = rng() % words;
  uint64_t n = std::min<uint64_t>(1 + rng() % (rng() % 2 == 0 ? 64 : 1536), words - w);
  return {base + w * 8, n * 8};
}

// With `compact`, one more thread compacts the log over and over while the others run (DESIGN §5:
// without stopping readers or writers); the checks are the same.
void RunTrial(int trial, bool compact) {
  SCOPED_TRACE("trial " + std::to_string(trial) + (compact ? ", compacting" : ""));
  test::TempDir dir;
  std::string path = dir.File("f");
  std::unique_ptr<File> file;
  {
    auto r = File::Open(path, O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(r.ok()) << test::Describe(r.status());
    file = std::move(r).value();
  }
  TERN_ASSERT_OK(file->Truncate(kFileBytes));  // a hole: the initial state reads as zeros

  std::atomic<uint64_t> clock{1};
  std::atomic<int> writers_done{0};
  std::vector<std::vector<WriteRec>> writes(kWriters);
  std::vector<std::vector<ReadRec>> reads(kReaders);
  std::vector<ReadRec> snapshots;
  std::vector<std::string> thread_errors(kWriters + kReaders);
  std::string snapshot_error;
  std::latch start(kWriters + kReaders);
  // Runs when every writer finished its write of the round and none has started the next one.
  auto snapshot = [&]() noexcept {
    ReadRec rec;
    rec.data.resize(kSharedBytes);
    rec.start = clock.fetch_add(1);
    auto n = file->Pread(rec.data.data(), kSharedBytes, 0);
    rec.end = clock.fetch_add(1);
    if (!n.ok() || *n != kSharedBytes) {
      snapshot_error = "snapshot read failed";
      return;
    }
    snapshots.push_back(std::move(rec));
  };
  std::barrier round(kWriters, snapshot);
  std::vector<std::thread> threads;

  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) * 7919 + 1 + static_cast<uint64_t>(trial) * 1000003);
      std::vector<uint64_t> words;
      start.arrive_and_wait();
      for (uint32_t s = 0; s < kWritesPerThread; ++s) {
        if (s % kWritesPerRound == 0) round.arrive_and_wait();
        auto [off, len] = RandomRange(rng, t);
        WriteRec w;
        w.id = static_cast<uint32_t>(t) * kWritesPerThread + s + 1;
        w.thread = t;
        w.seq = s;
        w.off = off;
        w.len = len;
        words.resize(len / 8);
        for (size_t i = 0; i < words.size(); ++i) words[i] = WordFor(w.id, off + 8 * i);
        w.start = clock.fetch_add(1);
        auto n = file->Pwrite(words.data(), len, off);
        w.end = clock.fetch_add(1);
        if (!n.ok() || *n != len) {
          thread_errors[static_cast<size_t>(t)] = "pwrite failed: " + test::Describe(n.status());
          round.arrive_and_drop();
          break;
        }
        writes[static_cast<size_t>(t)].push_back(w);
      }
      writers_done.fetch_add(1);
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(static_cast<uint64_t>(r) * 104729 + 3 + static_cast<uint64_t>(trial) * 1000003);
      start.arrive_and_wait();
      for (uint32_t i = 0; i < kMaxReadsPerThread && writers_done.load() < kWriters; ++i) {
        ReadRec rec;
        // Mostly the shared region, where the writers race.
        rec.off = (rng() % ((rng() % 4 != 0 ? kSharedBytes : kFileBytes) / 8)) * 8;
        uint64_t len = std::min<uint64_t>(8 * (1 + rng() % 1024), kFileBytes - rec.off);
        rec.data.resize(len);
        rec.start = clock.fetch_add(1);
        auto n = file->Pread(rec.data.data(), len, rec.off);
        rec.end = clock.fetch_add(1);
        if (!n.ok() || *n != len) {
          thread_errors[static_cast<size_t>(kWriters + r)] =
              "pread failed or short: " + (n.ok() ? std::to_string(*n) : test::Describe(n.status()));
          break;
        }
        reads[static_cast<size_t>(r)].push_back(std::move(rec));
      }
    });
  }
  std::string compact_error;
  uint64_t compactions = 0;
  if (compact) {
    threads.emplace_back([&] {
      // Until the writers finish (the cap only bounds the loop): most early attempts find the log
      // too short and return at once.
      for (int i = 0; i < 1000000 && writers_done.load() < kWriters; ++i) {
        auto stats = file->core().Compact();
        if (!stats.ok() && stats.status().err() != EBUSY) {
          compact_error = "compact failed: " + test::Describe(stats.status());
          return;
        }
        if (stats.ok() && stats->checkpoint_runs > 0) ++compactions;
        std::this_thread::yield();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const std::string& e : thread_errors) ASSERT_EQ(e, "");
  ASSERT_EQ(snapshot_error, "");
  ASSERT_EQ(compact_error, "");

  std::vector<WriteRec> all;
  for (const auto& v : writes) all.insert(all.end(), v.begin(), v.end());
  ASSERT_EQ(all.size(), static_cast<size_t>(kWriters) * kWritesPerThread);
  History history(std::move(all));

  size_t nreads = 0;
  for (const auto& per_reader : reads) {
    for (const ReadRec& rec : per_reader) {
      history.CheckSnapshot(rec.off, rec.data, history.FinishedBefore(rec.start), rec.end,
                            "read [" + std::to_string(rec.off) + ", " +
                                std::to_string(rec.off + rec.data.size()) + ")");
      ++nreads;
    }
  }
  for (size_t i = 0; i < snapshots.size(); ++i) {
    const ReadRec& rec = snapshots[i];
    history.CheckSnapshot(0, rec.data, history.FinishedBefore(rec.start), rec.end,
                          "snapshot after round " + std::to_string(i));
  }
  auto size = file->Size();
  TERN_ASSERT_OK(size);
  EXPECT_EQ(*size, kFileBytes);
  auto final_content = test::ReadAll(*file);
  TERN_ASSERT_OK(final_content);
  ASSERT_EQ(final_content->size(), kFileBytes);
  history.CheckSnapshot(0, *final_content, std::vector<int64_t>(kWriters, kWritesPerThread),
                        clock.load(), "final content");
  history.CheckSerializable();
  for (const std::string& f : history.failures()) ADD_FAILURE() << f;
  FileCounters counters = file->Counters();
  EXPECT_GE(counters.commits, uint64_t{kWriters} * kWritesPerThread);

  // The same content after closing and reopening.
  file.reset();
  auto r = File::Open(path, O_RDONLY);
  TERN_ASSERT_OK(r);
  auto reopened = test::ReadAll(**r);
  TERN_ASSERT_OK(reopened);
  EXPECT_EQ(test::FirstDifference(*reopened, *final_content), -1) << "content changed across reopen";
  std::string t = "trial" + std::to_string(trial) + "_";
  ::testing::Test::RecordProperty(t + "reads_checked", static_cast<int>(nreads));
  ::testing::Test::RecordProperty(t + "snapshots", static_cast<int>(snapshots.size()));
  ::testing::Test::RecordProperty(t + "conflicts", static_cast<int>(counters.conflicts));
  ::testing::Test::RecordProperty(t + "recopies", static_cast<int>(counters.recopies));
  ::testing::Test::RecordProperty(t + "read_retries", static_cast<int>(counters.read_retries));
  ::testing::Test::RecordProperty(t + "order_edges", static_cast<int>(history.edges()));
  if (compact) ::testing::Test::RecordProperty(t + "compactions", static_cast<int>(compactions));
}

TEST(FileConcurrencyTest, WritesAreAtomicAndSerializable) {
  for (int trial = 0; trial < kTrials && !HasFailure(); ++trial) RunTrial(trial, /*compact=*/false);
}

TEST(FileConcurrencyTest, WritesStayAtomicWhileTheLogIsCompacted) {
  RunTrial(kTrials, /*compact=*/true);
}

// Concurrent appenders never overwrite each other: every record lands whole at a distinct offset
// and the records tile the file exactly.
TEST(FileConcurrencyTest, ConcurrentAppendsTileTheFile) {
  test::TempDir dir;
  auto r = File::Open(dir.File("log"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(r);
  File& file = **r;
  constexpr int kAppenders = 6;
  constexpr uint32_t kPerThread = 150;
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> placed(kAppenders);  // (offset, id)
  std::vector<std::string> errors(kAppenders);
  std::latch start(kAppenders);
  std::vector<std::thread> threads;
  auto length_of = [](uint64_t id) { return 8 * (1 + (id * 2654435761u) % 700); };
  for (int t = 0; t < kAppenders; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      std::vector<uint64_t> words;
      for (uint32_t s = 0; s < kPerThread; ++s) {
        uint64_t id = static_cast<uint64_t>(t) * kPerThread + s + 1;
        words.assign(length_of(id) / 8, 0);
        for (size_t i = 0; i < words.size(); ++i) words[i] = (id << 32) | i;
        auto at = file.Append(words.data(), words.size() * 8);
        if (!at.ok()) {
          errors[static_cast<size_t>(t)] = test::Describe(at.status());
          break;
        }
        placed[static_cast<size_t>(t)].emplace_back(*at, id);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const std::string& e : errors) ASSERT_EQ(e, "");
  std::vector<std::pair<uint64_t, uint64_t>> all;
  for (const auto& v : placed) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto content = test::ReadAll(file);
  TERN_ASSERT_OK(content);
  uint64_t expect_at = 0;
  for (auto [at, id] : all) {
    ASSERT_EQ(at, expect_at) << "record " << id << " does not follow the previous one";
    uint64_t len = length_of(id);
    ASSERT_LE(at + len, content->size());
    for (uint64_t i = 0; i < len / 8; ++i) {
      uint64_t v;
      memcpy(&v, content->data() + at + 8 * i, 8);
      ASSERT_EQ(v, (id << 32) | i) << "record " << id << " word " << i;
    }
    expect_at += len;
  }
  EXPECT_EQ(content->size(), expect_at);
}

}  // namespace
}  // namespace tern
