// YCSB's core workloads A–F (workloads/workload{a..f} in YCSB 0.17): operation
// mix and request distribution. Everything else follows CoreWorkload's
// defaults: hashed insert order, zipfian constant 0.99, scans of 1..100 records
// (uniform), reads of all fields.
#pragma once

#include <string>

namespace tern::ycsb {

enum class Distribution { kZipfian, kLatest };

struct Workload {
  char name;  // 'a'..'f'
  const char* what;
  double read, update, insert, scan,
      read_modify_write;  // proportions, summing to 1
  Distribution distribution;
};

inline constexpr Workload kWorkloads[] = {
    {'a', "update heavy: 50% read, 50% update, zipfian", 0.5, 0.5, 0, 0, 0,
     Distribution::kZipfian},
    {'b', "read mostly: 95% read, 5% update, zipfian", 0.95, 0.05, 0, 0, 0,
     Distribution::kZipfian},
    {'c', "read only: 100% read, zipfian", 1.0, 0, 0, 0, 0,
     Distribution::kZipfian},
    {'d', "read latest: 95% read, 5% insert, latest", 0.95, 0, 0.05, 0, 0,
     Distribution::kLatest},
    {'e', "short ranges: 95% scan (1-100 records), 5% insert, zipfian", 0, 0,
     0.05, 0.95, 0, Distribution::kZipfian},
    {'f', "read-modify-write: 50% read, 50% read-modify-write, zipfian", 0.5, 0,
     0, 0, 0.5, Distribution::kZipfian},
};

inline const Workload* FindWorkload(char name) {
  for (const Workload& w : kWorkloads)
    if (w.name == name) return &w;
  return nullptr;
}

// YCSB's record defaults: 10 fields of 100 bytes.
inline constexpr int kFieldCount = 10;
inline constexpr int kFieldLength = 100;

}  // namespace tern::ycsb
