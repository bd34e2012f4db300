// Many processes on one file (DESIGN §5, §9): 4 processes × 4 threads, each
// thread writing overlapping (shared region) and disjoint (its private region)
// ranges, aligned and not, and reading between its writes. The processes are
// this binary re-executed with --mp-child; they take tickets from one clock in
// shared memory, start together at a barrier there, and dump what they did to a
// file when done. The test then judges everything as the in-process concurrency
// test does (tests/concurrency/history.h): every word of every read and of the
// final content comes from one whole write, and one serial order of all writes
// — across processes — explains every read and the final content, i.e. the
// final file is the replay of the writes in their commit order. Label
// `concurrency`: also runs under ThreadSanitizer, children included.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lib/file.h"
#include "lib/layout_constants.h"
#include "tests/concurrency/history.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace tern::test {
namespace {

constexpr int kProcesses = 4;
constexpr int kThreads = 4;  // per process
constexpr int kWriters = kProcesses * kThreads;
// ThreadSanitizer makes every op about ten times slower: fewer writes there.
// The plain build runs more, because cross-process damage has shown only after
// thousands of writes.
#if defined(__SANITIZE_THREAD__)
#define TERN_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TERN_TEST_TSAN 1
#endif
#endif
#ifdef TERN_TEST_TSAN
constexpr uint32_t kWritesPerThread = 300;
#else
constexpr uint32_t kWritesPerThread = 1000;
#endif
constexpr uint64_t kSharedBytes = 32 * 1024;
constexpr uint64_t kPrivateBytes = 8 * 1024;
constexpr uint64_t kFileBytes = kSharedBytes + kWriters * kPrivateBytes;
constexpr uint64_t kFileBlocks = kFileBytes / kBlockSize;

struct Shared {
  std::atomic<uint64_t> clock;
  std::atomic<uint32_t>
      arrived;  // start barrier of all threads of all processes
};

uint32_t WriteId(int writer, uint32_t seq) {
  return static_cast<uint32_t>(writer) * kWritesPerThread + seq + 1;
}

// One thread of a child: writes, each followed by a read of a random range half
// of the time.
std::string RunThread(File& f, Shared* shared, int writer, uint64_t seed,
                      std::vector<WriteRec>* writes,
                      std::vector<ReadRec>* reads) {
  std::mt19937_64 rng(seed);
  shared->arrived.fetch_add(1);
  while (shared->arrived.load() < kWriters) sched_yield();
  std::vector<uint64_t> words;
  for (uint32_t s = 0; s < kWritesPerThread; ++s) {
    auto [off, len] =
        RandomWriteRange(rng, writer, kSharedBytes, kPrivateBytes);
    WriteRec w{WriteId(writer, s), writer, s, off, len, 0, 0};
    words.resize(len / 8);
    for (size_t i = 0; i < words.size(); ++i)
      words[i] = StampWord(w.id, off + 8 * i);
    w.start = shared->clock.fetch_add(1);
    auto n = f.Pwrite(words.data(), len, off);
    w.end = shared->clock.fetch_add(1);
    if (!n.ok() || *n != len) return "pwrite failed: " + Describe(n.status());
    writes->push_back(w);
    if (rng() % 2 != 0) continue;
    ReadRec rec;
    rec.off = (rng() % ((rng() % 4 != 0 ? kSharedBytes : kFileBytes) / 8)) * 8;
    rec.data.resize(
        std::min<uint64_t>(8 * (1 + rng() % 1024), kFileBytes - rec.off));
    rec.start = shared->clock.fetch_add(1);
    auto r = f.Pread(rec.data.data(), rec.data.size(), rec.off);
    rec.end = shared->clock.fetch_add(1);
    if (!r.ok() || *r != rec.data.size()) return "pread failed or short";
    reads->push_back(std::move(rec));
  }
  return "";
}

// The dump a child leaves: its writes, then its reads with their bytes.
bool Dump(const std::string& path, const std::vector<WriteRec>& writes,
          const std::vector<ReadRec>& reads) {
  FILE* out = fopen(path.c_str(), "wb");
  if (out == nullptr) return false;
  uint64_t counts[2] = {writes.size(), reads.size()};
  bool ok = fwrite(counts, sizeof(counts), 1, out) == 1;
  for (const WriteRec& w : writes)
    ok = ok && fwrite(&w, sizeof(w), 1, out) == 1;
  for (const ReadRec& r : reads) {
    uint64_t head[3] = {r.off, r.start, r.end}, len = r.data.size();
    ok = ok && fwrite(head, sizeof(head), 1, out) == 1 &&
         fwrite(&len, sizeof(len), 1, out) == 1 &&
         fwrite(r.data.data(), 1, len, out) == len;
  }
  return fclose(out) == 0 && ok;
}

bool Load(const std::string& path, std::vector<WriteRec>* writes,
          std::vector<ReadRec>* reads) {
  FILE* in = fopen(path.c_str(), "rb");
  if (in == nullptr) return false;
  uint64_t counts[2];
  bool ok = fread(counts, sizeof(counts), 1, in) == 1;
  for (uint64_t i = 0; ok && i < counts[0]; ++i) {
    WriteRec w;
    ok = fread(&w, sizeof(w), 1, in) == 1;
    writes->push_back(w);
  }
  for (uint64_t i = 0; ok && i < counts[1]; ++i) {
    ReadRec r;
    uint64_t head[3], len = 0;
    ok = fread(head, sizeof(head), 1, in) == 1 &&
         fread(&len, sizeof(len), 1, in) == 1 && len <= kFileBytes;
    if (!ok) break;
    r.off = head[0];
    r.start = head[1];
    r.end = head[2];
    r.data.resize(len);
    ok = fread(r.data.data(), 1, len, in) == len;
    reads->push_back(std::move(r));
  }
  fclose(in);
  return ok;
}

int ChildMain(const std::string& path, const std::string& shared_path,
              int process, uint64_t trial, const std::string& dump_path) {
  auto* shared = AttachShared<Shared>(shared_path);
  if (shared == nullptr) return 2;
  auto opened = File::Open(path, O_RDWR);
  if (!opened.ok()) return 3;
  std::vector<std::vector<WriteRec>> writes(kThreads);
  std::vector<std::vector<ReadRec>> reads(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      int writer = process * kThreads + t;
      auto i = static_cast<size_t>(t);
      errors[i] =
          RunThread(**opened, shared, writer,
                    trial * 1000003 + static_cast<uint64_t>(writer) * 7919 + 1,
                    &writes[i], &reads[i]);
    });
  }
  for (auto& th : threads) th.join();
  std::vector<WriteRec> all_writes;
  std::vector<ReadRec> all_reads;
  for (int t = 0; t < kThreads; ++t) {
    auto i = static_cast<size_t>(t);
    if (!errors[i].empty()) {
      fprintf(stderr, "writer %d: %s\n", process * kThreads + t,
              errors[i].c_str());
      return 4;
    }
    all_writes.insert(all_writes.end(), writes[i].begin(), writes[i].end());
    for (ReadRec& r : reads[i]) all_reads.push_back(std::move(r));
  }
  return Dump(dump_path, all_writes, all_reads) ? 0 : 5;
}

void RunTrial(uint64_t trial) {
  SCOPED_TRACE("trial " + std::to_string(trial));
  TempDir dir;
  std::string path = dir.File("f");
  {
    auto f = File::Open(path, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    TERN_ASSERT_OK((*f)->Truncate(
        kFileBytes));  // a hole: the initial state reads as zeros
  }
  std::string shared_path = dir.File("shared");
  auto* shared = CreateShared<Shared>(shared_path);
  ASSERT_NE(shared, nullptr);
  shared->clock.store(1);
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = SpawnSelf({"--mp-child", path, shared_path, std::to_string(p),
                           std::to_string(trial),
                           dir.File("dump" + std::to_string(p))});
    ASSERT_GT(pid, 0);
    pids.push_back(pid);
  }
  for (int p = 0; p < kProcesses; ++p) {
    int status = 0;
    ASSERT_EQ(waitpid(pids[static_cast<size_t>(p)], &status, 0),
              pids[static_cast<size_t>(p)]);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "process " << p << " failed: status " << status << " (exit code "
        << WEXITSTATUS(status) << ")";
  }

  std::vector<WriteRec> writes;
  std::vector<ReadRec> reads;
  for (int p = 0; p < kProcesses; ++p)
    ASSERT_TRUE(Load(dir.File("dump" + std::to_string(p)), &writes, &reads));
  ASSERT_EQ(writes.size(), static_cast<size_t>(kWriters) * kWritesPerThread);
  std::sort(writes.begin(), writes.end(),
            [](const WriteRec& a, const WriteRec& b) { return a.id < b.id; });
  History history(std::move(writes), kWriters, kFileBlocks);
  for (const ReadRec& rec : reads) {
    history.CheckSnapshot(rec.off, rec.data, history.FinishedBefore(rec.start),
                          rec.end,
                          "read [" + std::to_string(rec.off) + ", " +
                              std::to_string(rec.off + rec.data.size()) + ")");
  }
  auto f = File::Open(path, O_RDONLY);
  TERN_ASSERT_OK(f);
  auto content = ReadAll(**f);
  TERN_ASSERT_OK(content);
  ASSERT_EQ(content->size(), kFileBytes);
  history.CheckSnapshot(0, *content,
                        std::vector<int64_t>(kWriters, kWritesPerThread),
                        shared->clock.load(), "final content");
  history.CheckSerializable();
  for (const std::string& problem : history.failures())
    ADD_FAILURE() << problem;
  std::string t = "trial" + std::to_string(trial) + "_";
  ::testing::Test::RecordProperty(t + "reads_checked",
                                  static_cast<int>(reads.size()));
  ::testing::Test::RecordProperty(t + "order_edges",
                                  static_cast<int>(history.edges()));
}

TEST(MultiProcessTest, WritesOfFourProcessesAreAtomicAndSerializable) {
  for (uint64_t trial = 0; trial < 2 && !HasFailure(); ++trial) RunTrial(trial);
}

}  // namespace
}  // namespace tern::test

int main(int argc, char** argv) {
  if (argc == 7 && std::string(argv[1]) == "--mp-child") {
    tern::test::DieWithParent();
    return tern::test::ChildMain(argv[2], argv[3], std::stoi(argv[4]),
                                 std::stoull(argv[5]), argv[6]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
