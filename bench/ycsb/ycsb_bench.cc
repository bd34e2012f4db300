// ycsb_bench: YCSB core workloads A–F on LevelDB (issue 3), our own C++ driver
// linking Debian's libleveldb unmodified. No tern code: bench/run_shim.sh runs
// it once with the database in a plain directory on /dev/shm (the kernel) and
// once under `tern run` with the database under the tern root on the same
// mount. LevelDB reads its tables through mmap, so under the shim that path is
// measured too.
//
// What follows YCSB 0.17's CoreWorkload: keys "user" + fnvhash64(keynum)
// (hashed insert order), records of 10 fields × 100 random printable bytes, the
// load phase inserting keys 0..records-1 in order, request distributions
// (scrambled zipfian 0.99, skewed latest for D), the key chooser skipping keys
// not inserted yet, inserts during the run taking the next key number, scans of
// uniform 1..100 records, reads of all fields. Where a key-value store forces a
// choice: a record is one LevelDB value (the 10 fields concatenated: 1,000
// bytes), an update writes the whole record (as `writeallfields=true`; YCSB's
// default rewrites one field, which its LevelDB/RocksDB bindings turn into a
// read-merge-write), read-modify-write is a Get then a Put of a new record.
// LevelDB options are its defaults (4 MiB write buffer, 8 MiB block cache,
// Snappy), writes not synced unless --sync=1 (YCSB's LevelDB bindings do not
// sync either).
//
// usage: ycsb_bench --db=DIR [--records=N] [--ops=N]
// [--phases=load,a,b,c,f,d,load,e] [--seed=N]
//                   [--sync=0|1]
// Phases run in order on one database; "load" first destroys it. The default
// order is YCSB's own recommendation (A, B, C, F, D on one load; reload before
// E). Prints one JSON line per phase.
#include <dirent.h>
#include <leveldb/db.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/write_batch.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/ycsb/generators.h"
#include "bench/ycsb/workload.h"

namespace tern::ycsb {
namespace {

[[noreturn]] void Fail(const std::string& what, const leveldb::Status& s) {
  std::fprintf(stderr, "ycsb_bench: %s: %s\n", what.c_str(),
               s.ToString().c_str());
  std::exit(1);
}

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

std::string Option(int argc, char** argv, const std::string& name,
                   const std::string& fallback) {
  std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0)
      return argv[i] + prefix.size();
  }
  return fallback;
}

// CoreWorkload.buildKeyName with insertorder=hashed and zeropadding=1.
std::string KeyName(uint64_t keynum) {
  return "user" + std::to_string(FnvHash64(keynum));
}

// kFieldCount fields of kFieldLength random printable bytes (YCSB's
// RandomByteIterator draws from ' ' + 0..95; Snappy finds nothing to compress
// in either).
void FillRecord(Random* r, std::string* value) {
  value->resize(kFieldCount * kFieldLength);
  char* p = value->data();
  size_t n = value->size();
  for (size_t i = 0; i < n;) {
    uint64_t bits = r->Next();
    for (int k = 0; k < 10 && i < n; ++k, ++i, bits >>= 6)
      p[i] = static_cast<char>(' ' + (bits & 63));
  }
}

uint64_t DirBytes(const std::string& dir) {
  uint64_t total = 0;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    struct stat st;
    std::string path = dir + "/" + e->d_name;
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
      total += static_cast<uint64_t>(st.st_size);
  }
  closedir(d);
  return total;
}

// Per-operation latencies of one kind, in ns.
struct Latencies {
  std::vector<uint64_t> ns;
  void Add(uint64_t v) { ns.push_back(v); }
  // "read": {count, mean_us, p50_us, p99_us} as JSON fields.
  std::string Json(const char* kind) {
    if (ns.empty()) return "";
    std::sort(ns.begin(), ns.end());
    double sum = 0;
    for (uint64_t v : ns) sum += static_cast<double>(v);
    auto pct = [&](double q) {
      auto i =
          static_cast<size_t>(std::ceil(q * static_cast<double>(ns.size())));
      return static_cast<double>(ns[std::clamp<size_t>(i, 1, ns.size()) - 1]) /
             1000.0;
    };
    char buf[256];
    std::snprintf(buf, sizeof(buf),
                  ", \"%s_count\": %zu, \"%s_mean_us\": %.3f, \"%s_p50_us\": "
                  "%.3f, \"%s_p99_us\": %.3f",
                  kind, ns.size(), kind,
                  sum / static_cast<double>(ns.size()) / 1000.0, kind, pct(0.5),
                  kind, pct(0.99));
    return buf;
  }
};

class Driver {
 public:
  Driver(std::string dir, uint64_t records, uint64_t ops, uint64_t seed,
         bool sync)
      : dir_(std::move(dir)), records_(records), ops_(ops), rng_(seed) {
    write_options_.sync = sync;
    options_.create_if_missing = true;
  }

  // Destroys the database, inserts records 0..records-1 (hashed keys) into a
  // fresh one.
  void Load() {
    db_.reset();
    leveldb::Status s = leveldb::DestroyDB(dir_, options_);
    if (!s.ok()) Fail("destroy " + dir_, s);
    Open();
    Latencies insert;
    uint64_t start = NowNs();
    for (uint64_t k = 0; k < records_; ++k) Insert(k, &insert);
    uint64_t end = NowNs();
    next_insert_ = records_;
    Report("load", records_, end - start, {insert.Json("insert")});
  }

  void Run(const Workload& w) {
    if (!db_) Open();
    // CoreWorkload: zipfian over the loaded keys plus the expected inserts,
    // skipping any key not inserted yet; latest follows the insert counter.
    auto expected_new =
        static_cast<uint64_t>(static_cast<double>(ops_) * w.insert * 2.0);
    ScrambledZipfian zipf(0, records_ + expected_new - 1);
    SkewedLatest latest(next_insert_);
    auto next_key = [&] {
      if (w.distribution == Distribution::kLatest)
        return latest.Next(&rng_, next_insert_ - 1);
      uint64_t k;
      do {
        k = zipf.Next(&rng_);
      } while (k > next_insert_ - 1);
      return k;
    };
    Latencies read, update, insert, scan, rmw;
    std::string value;
    uint64_t found = 0, scanned = 0;
    uint64_t start = NowNs();
    for (uint64_t i = 0; i < ops_; ++i) {
      double u = rng_.NextDouble();
      uint64_t t0 = NowNs();
      if ((u -= w.read) < 0) {
        found += Get(KeyName(next_key()), &value);
        read.Add(NowNs() - t0);
      } else if ((u -= w.update) < 0) {
        Put(KeyName(next_key()));
        update.Add(NowNs() - t0);
      } else if ((u -= w.insert) < 0) {
        Insert(next_insert_++, &insert);
      } else if ((u -= w.scan) < 0) {
        scanned += Scan(KeyName(next_key()), rng_.Uniform(1, 100));
        scan.Add(NowNs() - t0);
      } else {
        std::string key = KeyName(next_key());
        found += Get(key, &value);
        Put(key);
        rmw.Add(NowNs() - t0);
      }
    }
    uint64_t end = NowNs();
    char extra[128];
    std::snprintf(extra, sizeof(extra), ", \"found\": %llu, \"scanned\": %llu",
                  static_cast<unsigned long long>(found),
                  static_cast<unsigned long long>(scanned));
    Report(std::string(1, w.name), ops_, end - start,
           {read.Json("read"), update.Json("update"), insert.Json("insert"),
            scan.Json("scan"), rmw.Json("rmw"), extra});
  }

 private:
  void Open() {
    leveldb::DB* db = nullptr;
    leveldb::Status s = leveldb::DB::Open(options_, dir_, &db);
    if (!s.ok()) Fail("open " + dir_, s);
    db_.reset(db);
  }

  void Put(const std::string& key) {
    FillRecord(&rng_, &record_);
    leveldb::Status s = db_->Put(write_options_, key, record_);
    if (!s.ok()) Fail("put", s);
  }

  void Insert(uint64_t keynum, Latencies* lat) {
    uint64_t t0 = NowNs();
    Put(KeyName(keynum));
    lat->Add(NowNs() - t0);
  }

  // 1 when found. YCSB reads all fields: the value is copied out.
  uint64_t Get(const std::string& key, std::string* value) {
    leveldb::Status s = db_->Get(read_options_, key, value);
    if (s.ok()) return 1;
    if (!s.IsNotFound()) Fail("get", s);
    return 0;
  }

  // Reads up to `n` records from `start` on; returns how many.
  uint64_t Scan(const std::string& start, uint64_t n) {
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(read_options_));
    uint64_t got = 0;
    for (it->Seek(start); it->Valid() && got < n; it->Next(), ++got) {
      scan_copy_.assign(it->value().data(), it->value().size());
    }
    if (!it->status().ok()) Fail("scan", it->status());
    return got;
  }

  void Report(const std::string& phase, uint64_t ops, uint64_t ns,
              std::initializer_list<std::string> fields) {
    double sec = static_cast<double>(ns) / 1e9;
    std::string line;
    char head[256];
    std::snprintf(head, sizeof(head),
                  "{\"phase\": \"%s\", \"records\": %llu, \"ops\": %llu, "
                  "\"seconds\": %.3f, "
                  "\"ops_per_s\": %.1f, \"db_bytes\": %llu",
                  phase.c_str(), static_cast<unsigned long long>(records_),
                  static_cast<unsigned long long>(ops), sec,
                  static_cast<double>(ops) / sec,
                  static_cast<unsigned long long>(DirBytes(dir_)));
    line = head;
    for (const std::string& f : fields) line += f;
    line += "}\n";
    std::fputs(line.c_str(), stdout);
    std::fflush(stdout);
  }

  std::string dir_;
  uint64_t records_, ops_;
  Random rng_;
  leveldb::Options options_;
  leveldb::WriteOptions write_options_;
  leveldb::ReadOptions read_options_;
  std::unique_ptr<leveldb::DB> db_;
  uint64_t next_insert_ = 0;
  std::string record_, scan_copy_;
};

}  // namespace
}  // namespace tern::ycsb

int main(int argc, char** argv) {
  using namespace tern::ycsb;
  std::string dir = Option(argc, argv, "db", "");
  if (dir.empty()) {
    std::fprintf(stderr,
                 "usage: ycsb_bench --db=DIR [--records=N] [--ops=N] "
                 "[--phases=load,a,b,c,f,d,load,e] "
                 "[--seed=N] [--sync=0|1]\n");
    return 2;
  }
  uint64_t records = std::stoull(Option(argc, argv, "records", "1000000"));
  uint64_t ops = std::stoull(Option(argc, argv, "ops", "1000000"));
  std::string phases = Option(argc, argv, "phases", "load,a,b,c,f,d,load,e");
  uint64_t seed = std::stoull(Option(argc, argv, "seed", "1"));
  bool sync = Option(argc, argv, "sync", "0") == "1";
  Driver driver(dir, records, ops, seed, sync);
  bool loaded = false;
  size_t pos = 0;
  while (pos <= phases.size()) {
    size_t comma = phases.find(',', pos);
    std::string p = phases.substr(
        pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? phases.size() + 1 : comma + 1;
    if (p == "load") {
      driver.Load();
      loaded = true;
    } else if (const Workload* w = p.size() == 1 ? FindWorkload(p[0]) : nullptr;
               w != nullptr) {
      if (!loaded) {
        std::fprintf(stderr, "ycsb_bench: phase %s before any load\n",
                     p.c_str());
        return 2;
      }
      driver.Run(*w);
    } else {
      std::fprintf(stderr, "ycsb_bench: unknown phase '%s'\n", p.c_str());
      return 2;
    }
  }
  return 0;
}
