// YCSB core workloads A–F on LevelDB (Debian's, unmodified), for issue 3: run once with the database
// in a plain directory (the kernel) and once under `tern run` with it under the tern root
// (bench/run_ycsb.sh). Workloads as YCSB's core definitions: records of 1 KB values (one field),
// keys "user" + a hashed key number, request distribution zipfian (skew 0.99, scrambled) except D
// (latest) and the load (sequential insert order):
//   A 50% read / 50% update          B 95% read / 5% update       C 100% read
//   D 95% read latest / 5% insert    E 95% scan (1–100 records) / 5% insert
//   F 50% read / 50% read-modify-write
// Prints one JSON line per phase: {"phase": "load"|"A"..., "ops", "seconds", "ops_per_s"}.
//
// usage: ycsb_leveldb --db=DIR [--records=N] [--ops=N] [--workloads=ABCDEF]
#include <leveldb/db.h>
#include <leveldb/options.h>
#include <leveldb/write_batch.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>

namespace {

constexpr size_t kValueBytes = 1000;

std::string Option(int argc, char** argv, const std::string& name, const std::string& fallback) {
  std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
  }
  return fallback;
}

uint64_t Fnv64(uint64_t v) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int i = 0; i < 8; ++i) {
    h ^= v & 0xff;
    h *= 1099511628211ull;
    v >>= 8;
  }
  return h;
}

std::string Key(uint64_t n) { return "user" + std::to_string(Fnv64(n)); }

// YCSB's ZipfianGenerator (Gray et al.), items [0, n), constant 0.99.
class Zipfian {
 public:
  explicit Zipfian(uint64_t n) : n_(n) {
    zeta2_ = Zeta(2);
    zetan_ = Zeta(n);
    alpha_ = 1.0 / (1.0 - kTheta);
    eta_ = (1 - std::pow(2.0 / static_cast<double>(n_), 1 - kTheta)) / (1 - zeta2_ / zetan_);
  }
  uint64_t Next(std::mt19937_64& rng) {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, kTheta)) return 1;
    auto v = static_cast<uint64_t>(static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1, alpha_));
    return v < n_ ? v : n_ - 1;
  }

 private:
  static constexpr double kTheta = 0.99;
  double Zeta(uint64_t n) const {
    double s = 0;
    for (uint64_t i = 1; i <= n; ++i) s += 1.0 / std::pow(static_cast<double>(i), kTheta);
    return s;
  }
  uint64_t n_;
  double zeta2_ = 0, zetan_ = 0, alpha_ = 0, eta_ = 0;
};

[[noreturn]] void Die(const std::string& what, const leveldb::Status& s) {
  std::fprintf(stderr, "ycsb_leveldb: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

void Report(const char* phase, uint64_t ops, double seconds) {
  std::printf("{\"phase\": \"%s\", \"ops\": %llu, \"seconds\": %.3f, \"ops_per_s\": %.1f}\n", phase,
              static_cast<unsigned long long>(ops), seconds, static_cast<double>(ops) / seconds);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = Option(argc, argv, "db", "");
  if (dir.empty()) {
    std::fprintf(stderr, "usage: ycsb_leveldb --db=DIR [--records=N] [--ops=N] [--workloads=ABCDEF]\n");
    return 2;
  }
  uint64_t records = std::stoull(Option(argc, argv, "records", "1000000"));
  uint64_t ops = std::stoull(Option(argc, argv, "ops", "1000000"));
  std::string workloads = Option(argc, argv, "workloads", "ABCDEF");

  leveldb::Options options;
  options.create_if_missing = true;
  options.error_if_exists = true;
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(options, dir, &raw);
  if (!s.ok()) Die("open " + dir, s);
  std::unique_ptr<leveldb::DB> db(raw);
  std::mt19937_64 rng(42);
  std::string value(kValueBytes, 'v');
  auto fill = [&](uint64_t n) {
    for (size_t i = 0; i < value.size(); i += 8) std::memcpy(&value[i], &n, std::min<size_t>(8, value.size() - i));
  };

  auto start = std::chrono::steady_clock::now();
  for (uint64_t n = 0; n < records; ++n) {
    fill(n);
    s = db->Put(leveldb::WriteOptions(), Key(n), value);
    if (!s.ok()) Die("load", s);
  }
  Report("load", records, Seconds(start));

  uint64_t inserted = records;  // keys [0, inserted) exist
  Zipfian zipf(records);
  std::string got;
  auto read = [&](uint64_t n) {
    s = db->Get(leveldb::ReadOptions(), Key(n), &got);
    if (!s.ok() && !s.IsNotFound()) Die("read", s);
  };
  auto update = [&](uint64_t n) {
    fill(n ^ 0x5555);
    s = db->Put(leveldb::WriteOptions(), Key(n), value);
    if (!s.ok()) Die("update", s);
  };
  // Scrambled zipfian over existing keys, and "latest": most recent inserts most popular.
  auto pick = [&]() { return Fnv64(zipf.Next(rng)) % inserted; };
  auto latest = [&]() { return inserted - 1 - zipf.Next(rng) % inserted; };
  auto insert = [&]() {
    fill(inserted);
    s = db->Put(leveldb::WriteOptions(), Key(inserted), value);
    if (!s.ok()) Die("insert", s);
    ++inserted;
  };
  std::uniform_int_distribution<int> pct(0, 99);
  for (char w : workloads) {
    char phase[2] = {w, 0};
    start = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < ops; ++i) {
      int p = pct(rng);
      switch (w) {
        case 'A': p < 50 ? read(pick()) : update(pick()); break;
        case 'B': p < 95 ? read(pick()) : update(pick()); break;
        case 'C': read(pick()); break;
        case 'D': p < 95 ? read(latest()) : insert(); break;
        case 'E':
          if (p < 95) {
            std::unique_ptr<leveldb::Iterator> it(db->NewIterator(leveldb::ReadOptions()));
            int len = 1 + static_cast<int>(rng() % 100);
            for (it->Seek(Key(pick())); it->Valid() && len > 0; it->Next(), --len) got.assign(it->value().data(), it->value().size());
          } else {
            insert();
          }
          break;
        case 'F':
          if (p < 50) {
            read(pick());
          } else {
            uint64_t n = pick();
            read(n);
            update(n);
          }
          break;
        default:
          std::fprintf(stderr, "ycsb_leveldb: unknown workload %c\n", w);
          return 2;
      }
    }
    Report(phase, ops, Seconds(start));
  }
  return 0;
}
