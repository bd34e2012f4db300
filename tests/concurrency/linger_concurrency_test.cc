// Lingering (lib/pool.h) under threads: files closed and opened again by several threads while
// another thread ends their lingering at random moments, so that a file's close (its destructor:
// slot, open lock, shared state handed to the spares) runs while other threads open the same file
// anew. Every read sees one whole version of the file, every open succeeds, and at the end
// nothing is left open or published. Also run under ThreadSanitizer.
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lib/backing_cache.h"
#include "lib/file.h"
#include "lib/pool.h"
#include "lib/shared_state_spares.h"
#include "tests/test_util.h"

namespace tern {
namespace {

constexpr size_t kFiles = 4;
constexpr size_t kBytes = 4096;
constexpr int kThreads = 4;
constexpr int kRounds = 2000;
// How many real closes and reopens (Backings kept and adopted again) make the race happen; the
// threads go on past kRounds until they have, at most for kRaceDeadline (a fast run can finish its
// rounds before the ender has ended enough files).
constexpr uint64_t kRacedReopens = 10;
constexpr auto kRaceDeadline = std::chrono::seconds(30);

// A version of a file: 4 KiB of pattern `version`, the version in its first 8 bytes.
std::vector<uint8_t> Version(uint64_t version) {
  std::vector<uint8_t> bytes = test::Pattern(version, 0, kBytes);
  memcpy(bytes.data(), &version, sizeof(version));
  return bytes;
}

TEST(LingerConcurrencyTest, ClosesRacingReopensLoseNothing) {
  test::TempDir dir;
  BackingCache::Default().Enable(dir.File(".spares"), 022);
  SharedStateSpares::Default().Enable();
  Pool::Default().EnableLinger();
  std::vector<std::string> paths;
  for (size_t i = 0; i < kFiles; ++i) {
    paths.push_back(dir.File("f" + std::to_string(i)));
    auto f = File::Open(paths.back(), O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(f);
    std::vector<uint8_t> first = Version(i);
    TERN_ASSERT_OK((*f)->Pwrite(first.data(), first.size(), 0));
  }
  uint64_t adopted = BackingCache::Default().counts().adopted;
  std::atomic<uint64_t> next_version{kFiles};
  std::atomic<int> failures{0};
  std::atomic<bool> done{false};
  auto raced = [&] { return BackingCache::Default().counts().adopted > adopted + kRacedReopens; };
  const auto deadline = std::chrono::steady_clock::now() + kRaceDeadline;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
      for (int round = 0;; ++round) {
        if (round >= kRounds && round % 64 == 0 && (raced() || std::chrono::steady_clock::now() > deadline)) break;
        const std::string& path = paths[rng() % kFiles];
        bool write = rng() % 4 == 0;
        auto f = File::Open(path, write ? O_RDWR : O_RDONLY);
        if (!f.ok()) {
          ADD_FAILURE() << path << ": " << f.status().context();
          ++failures;
          continue;
        }
        std::vector<uint8_t> got(kBytes);
        auto n = (*f)->Pread(got.data(), got.size(), 0);
        uint64_t version = 0;
        memcpy(&version, got.data(), sizeof(version));
        if (!n.ok() || *n != kBytes || got != Version(version)) {
          ADD_FAILURE() << path << ": a read saw no whole version";
          ++failures;
        }
        if (write) {
          std::vector<uint8_t> next = Version(next_version.fetch_add(1));
          if (!(*f)->Pwrite(next.data(), next.size(), 0).ok()) ++failures;
        }
      }
    });
  }
  // What the background thread, unlink and exit do, at random moments.
  std::thread ender([&] {
    std::mt19937_64 rng(99);
    while (!done.load()) {
      switch (rng() % 3) {
        case 0: Pool::Default().EndAllLingering(); break;
        case 1: Pool::Default().EndExpiredLingering(); break;
        default: {
          struct stat st;
          if (stat(paths[rng() % kFiles].c_str(), &st) == 0) Pool::Default().EndLinger(st.st_dev, st.st_ino);
        }
      }
      std::this_thread::yield();
    }
  });
  for (std::thread& t : threads) t.join();
  done.store(true);
  ender.join();
  EXPECT_EQ(failures.load(), 0);
  // The race happened: files closed for real (their Backings kept) and opened again.
  EXPECT_TRUE(raced()) << "fewer than " << kRacedReopens << " real reopens in " << kRaceDeadline.count() << " s";
  Pool::Default().EndAllLingering();
  for (const std::string& path : paths) EXPECT_FALSE(test::OpenSomewhere(path)) << path << " is still open";
  EXPECT_EQ(test::PublishedObjects(dir), 0u);
  SharedStateSpares::Default().DropAll();
  BackingCache::Default().DropSpares();
}

}  // namespace
}  // namespace tern
