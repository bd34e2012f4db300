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
// What is checked, after joining (tests/concurrency/history.h): every read and the final content
// show only whole writes, and one serial order of all writes explains them all.
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
#include "tests/concurrency/history.h"
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
  std::vector<std::vector<test::WriteRec>> writes(kWriters);
  std::vector<std::vector<test::ReadRec>> reads(kReaders);
  std::vector<test::ReadRec> snapshots;
  std::vector<std::string> thread_errors(kWriters + kReaders);
  std::string snapshot_error;
  std::latch start(kWriters + kReaders);
  // Runs when every writer finished its write of the round and none has started the next one.
  auto snapshot = [&]() noexcept {
    test::ReadRec rec;
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
        auto [off, len] = test::RandomWriteRange(rng, t, kSharedBytes, kPrivateBytes);
        test::WriteRec w;
        w.id = static_cast<uint32_t>(t) * kWritesPerThread + s + 1;
        w.thread = t;
        w.seq = s;
        w.off = off;
        w.len = len;
        words.resize(len / 8);
        for (size_t i = 0; i < words.size(); ++i) words[i] = test::StampWord(w.id, off + 8 * i);
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
        test::ReadRec rec;
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

  std::vector<test::WriteRec> all;
  for (const auto& v : writes) all.insert(all.end(), v.begin(), v.end());
  ASSERT_EQ(all.size(), static_cast<size_t>(kWriters) * kWritesPerThread);
  test::History history(std::move(all), kWriters, kFileBlocks);

  size_t nreads = 0;
  for (const auto& per_reader : reads) {
    for (const test::ReadRec& rec : per_reader) {
      history.CheckSnapshot(rec.off, rec.data, history.FinishedBefore(rec.start), rec.end,
                            "read [" + std::to_string(rec.off) + ", " +
                                std::to_string(rec.off + rec.data.size()) + ")");
      ++nreads;
    }
  }
  for (size_t i = 0; i < snapshots.size(); ++i) {
    const test::ReadRec& rec = snapshots[i];
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

// Appenders that write the last block in place race a thread that grows the file (fallocate): an
// appender that loses its commit has already written past the end, and those bytes must never
// show (the tail rule, lib/file_core.h). The file must hold each record once, where Append said,
// and zeros between them.
TEST(FileConcurrencyTest, AppendsRacingGrowthLeaveOnlyRecordsAndZeros) {
  test::TempDir dir;
  auto r = File::Open(dir.File("log"), O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(r);
  File& file = **r;
  constexpr int kAppenders = 3;
  constexpr uint32_t kPerThread = 600;
  constexpr uint8_t kMagic = 0xA5;
  // A record: magic, id (4 bytes), length (2 bytes), then nonzero payload bytes.
  auto length_of = [](uint32_t id) { return 8 + static_cast<uint32_t>((id * 2654435761u) % 900); };
  auto byte_of = [](uint32_t id, uint32_t j) { return static_cast<uint8_t>(test::PatternByte(id, j) | 1); };
  std::vector<uint64_t> placed(kAppenders * kPerThread + 1, UINT64_MAX);
  std::vector<std::string> errors(kAppenders + 1);
  std::atomic<int> running{kAppenders};
  std::latch start(kAppenders + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kAppenders; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      std::vector<uint8_t> rec;
      for (uint32_t s = 0; s < kPerThread; ++s) {
        uint32_t id = static_cast<uint32_t>(t) * kPerThread + s + 1;
        uint32_t len = length_of(id);
        rec.assign(len, 0);
        rec[0] = kMagic;
        memcpy(&rec[1], &id, 4);
        memcpy(&rec[5], &len, 2);
        rec[7] = 0x5A;
        for (uint32_t j = 8; j < len; ++j) rec[j] = byte_of(id, j);
        auto at = file.Append(rec.data(), rec.size());
        if (!at.ok()) {
          errors[static_cast<size_t>(t)] = test::Describe(at.status());
          break;
        }
        placed[id] = *at;
      }
      running.fetch_sub(1);
    });
  }
  threads.emplace_back([&] {
    start.arrive_and_wait();
    std::mt19937_64 rng(7);
    while (running.load() > 0) {
      auto size = file.Size();
      Status st = size.ok() ? file.Fallocate(0, *size, 1 + rng() % 3000) : size.status();
      if (!st.ok()) {
        errors[kAppenders] = test::Describe(st);
        break;
      }
    }
  });
  for (auto& th : threads) th.join();
  for (const std::string& e : errors) ASSERT_EQ(e, "");
  auto content = test::ReadAll(file);
  TERN_ASSERT_OK(content);
  const std::vector<uint8_t>& c = *content;
  std::vector<bool> seen(placed.size(), false);
  uint64_t records = 0;
  for (uint64_t pos = 0; pos < c.size();) {
    if (c[pos] == 0) {
      ++pos;
      continue;
    }
    ASSERT_EQ(c[pos], kMagic) << "a byte at " << pos << " belongs to no record (past an old end?)";
    ASSERT_LE(pos + 8, c.size());
    uint32_t id = 0, len = 0;
    memcpy(&id, &c[pos + 1], 4);
    memcpy(&len, &c[pos + 5], 2);
    ASSERT_TRUE(id >= 1 && id < placed.size() && len == length_of(id)) << "bad record header at " << pos;
    ASSERT_EQ(placed[id], pos) << "record " << id << " found where Append did not put it";
    ASSERT_FALSE(seen[id]) << "record " << id << " twice";
    seen[id] = true;
    ASSERT_LE(pos + len, c.size());
    for (uint32_t j = 8; j < len; ++j) ASSERT_EQ(c[pos + j], byte_of(id, j)) << "record " << id << " byte " << j;
    pos += len;
    ++records;
  }
  EXPECT_EQ(records, uint64_t{kAppenders} * kPerThread);
  FileCounters counters = file.core().Counters();
  ::testing::Test::RecordProperty("conflicts", static_cast<int>(counters.conflicts));
}

}  // namespace
}  // namespace tern
