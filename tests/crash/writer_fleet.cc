#include "tests/crash/writer_fleet.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "lib/file_core.h"
#include "tests/process_util.h"
#include "tests/test_util.h"
#include "tests/record.h"
#include "tests/test_util.h"

namespace tern::test {
namespace {

uint64_t Mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Records carry writer and place, so a record found anywhere else shows.
uint32_t RecordOwner(int g, uint32_t place) {
  return static_cast<uint32_t>(g) * 256 + place;
}

bool IsAligned(uint32_t place) { return place < kFleetSlots; }
uint64_t PlaceLen(uint32_t place) {
  return IsAligned(place) ? kFleetAlignedLen : kFleetUnalignedLen;
}
uint64_t PlaceOffset(int g, uint32_t place) {
  uint64_t index = uint64_t{place % kFleetSlots} * kFleetMaxWriters +
                   static_cast<uint64_t>(g);
  return IsAligned(place) ? index * kFleetAlignedLen
                          : kFleetUnalignedBase + index * kFleetUnalignedLen;
}

struct PlannedOp {
  uint32_t place;
  uint64_t len;
};

// Op n of writer g, by a hash: 40% aligned, 40% unaligned overwrites, 20%
// appends of 24..2023 bytes.
PlannedOp Plan(int g, uint64_t n) {
  uint64_t h =
      Mix((static_cast<uint64_t>(g) << 48) ^ (n * 0x9E3779B97F4A7C15ull));
  auto slot = static_cast<uint32_t>((h >> 8) % kFleetSlots);
  switch (h % 5) {
    case 0:
    case 1:
      return {slot, kFleetAlignedLen};
    case 2:
    case 3:
      return {kFleetSlots + slot, kFleetUnalignedLen};
    default:
      return {kAppendPlace, kRecordHeaderBytes + (h >> 20) % 2000};
  }
}

// A writer's error code: the step that failed (3: open, 20: size, 21: append,
// 22: pwrite, 23: fsync) times 1000 plus its errno (0 for a short write), so
// that a failure says why.
int WriterError(int step, const Status& status) {
  return step * 1000 + (status.ok() ? 0 : status.err());
}

// Runs writer g's ops from w.next_start on; returns 0 after `max_ops` of them
// (0: never), else an error code (WriterError).
int WriterLoop(File& f, FleetWriter& w, int g, uint64_t max_ops) {
  for (uint64_t n = w.next_start.load(), ran = 0;; ++n) {
    if (max_ops != 0 && ran++ == max_ops) {
      w.next_start.store(n);  // where this writer's next File carries on
      return 0;
    }
    PlannedOp op = Plan(g, n);
    if (op.place == kAppendPlace) {
      auto size = f.Size();
      if (!size.ok()) return WriterError(20, size.status());
      if (*size >= kFleetAppendCap)
        op = {op.place % kFleetSlots, kFleetAlignedLen};
    }
    w.place.store(op.place);
    w.started.store(n);
    std::vector<uint8_t> bytes =
        MakeRecord(RecordOwner(g, op.place), n, op.len);
    if (op.place == kAppendPlace) {
      if (auto appended = f.Append(bytes.data(), bytes.size()); !appended.ok())
        return WriterError(21, appended.status());
      w.appends.fetch_add(1);
    } else {
      auto r = f.Pwrite(bytes.data(), bytes.size(), PlaceOffset(g, op.place));
      if (!r.ok() || *r != bytes.size())
        return WriterError(22, r.ok() ? Status::Ok() : r.status());
      w.slot_seq[op.place].store(n);
    }
    if (n % 64 == 0) {
      if (Status synced = f.Fsync(); !synced.ok())
        return WriterError(23, synced);
    }
    w.done.store(n);
  }
}

class Problems {
 public:
  void Add(std::string s) {
    if (list_.size() < 12) list_.push_back(std::move(s));
  }
  std::string Joined() const {
    std::string out;
    for (const std::string& s : list_) out += s + "\n";
    return out;
  }

 private:
  std::vector<std::string> list_;
};

bool AllZero(const uint8_t* p, size_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

// What a slot that is no whole record holds instead: which bytes match the
// record its header names, and which match the last completed op (a torn write
// shows as a mix of the two).
std::string DescribeBytes(const uint8_t* at, uint64_t len, uint32_t owner,
                          uint64_t completed) {
  if (AllZero(at, len)) return "all zeros";
  uint32_t writer;
  uint64_t seq;
  memcpy(&writer, at + 4, sizeof(writer));
  memcpy(&seq, at + 8, sizeof(seq));
  auto runs = [&](const std::vector<uint8_t>& want) {
    std::string out;
    for (uint64_t i = 0; i < len;) {
      uint64_t j = i;
      bool same = at[i] == want[i];
      while (j < len && (at[j] == want[j]) == same) ++j;
      if (same && j - i >= 16)
        out += " [" + std::to_string(i) + "," + std::to_string(j) + ")";
      i = j;
    }
    return out.empty() ? std::string(" nothing") : out;
  };
  return "header names writer " + std::to_string(writer) + " op " +
         std::to_string(seq) +
         "; bytes matching that record:" + runs(MakeRecord(writer, seq, len)) +
         "; matching completed op " + std::to_string(completed) + ":" +
         runs(MakeRecord(owner, completed, len));
}

void CheckHole(File& f, uint64_t start, uint64_t end, Problems* problems) {
  std::string where =
      "hole [" + std::to_string(start) + ", " + std::to_string(end) + ")";
  std::vector<uint8_t> buf(end - start);
  auto n = f.Pread(buf.data(), buf.size(), start);
  if (!n.ok() || *n != buf.size() || !AllZero(buf.data(), buf.size())) {
    problems->Add(where + " does not read as zeros");
  }
  auto hole = f.Seek(SEEK_HOLE, start);
  if (!hole.ok() || *hole != start)
    problems->Add(where + ": SEEK_HOLE does not find it");
  auto data = f.Seek(SEEK_DATA, start);
  if (data.ok() ? *data < end : data.status().err() != ENXIO) {
    problems->Add(where + ": SEEK_DATA finds data inside it");
  }
}

}  // namespace

Status CreateFleetFile(const std::string& path) {
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<File> f,
                        File::Open(path, O_RDWR | O_CREAT, 0644));
  TERN_TRY(f->Truncate(kFleetAppendBase));
  return f->Fsync();
}

int FleetChildMain(const std::string& path, const std::string& shared_path,
                   int process) {
  auto* shared = AttachShared<FleetShared>(shared_path);
  if (shared == nullptr) return 2;
  auto threads = static_cast<int>(shared->threads_per_process.load());
  uint32_t reopen_every = shared->reopen_every.load();
  // Open throughout, unless the writers reopen it: then each thread opens, writes a while and
  // closes, again and again (a process's opens of one path share one engine, which the process's
  // last close ends).
  std::unique_ptr<File> held;
  if (reopen_every == 0) {
    auto opened = File::Open(path, O_RDWR);
    if (!opened.ok()) return 3;
    held = std::move(*opened);
  }
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      int g = process * threads + t;
      FleetWriter& w = shared->writers[g];
      int err = 0;
      while (err == 0) {
        if (held != nullptr) {
          err = WriterLoop(*held, w, g, 0);
        } else {
          auto opened = File::Open(path, O_RDWR);
          err = opened.ok() ? WriterLoop(**opened, w, g, reopen_every)
                            : WriterError(3, opened.status());
        }
      }
      w.error.store(static_cast<uint32_t>(err));
    });
  }
  for (auto& th : workers) th.join();  // only after an error
  return 4;
}

std::string CheckFleet(File& f, FleetShared* shared, int writers,
                       const WriterState* states) {
  Problems problems;
  // What completed before the snapshot: the lower bounds.
  std::vector<std::vector<uint64_t>> lo(static_cast<size_t>(writers));
  std::vector<uint64_t> lo_appends(static_cast<size_t>(writers));
  for (int g = 0; g < writers; ++g) {
    FleetWriter& w = shared->writers[g];
    for (uint32_t p = 0; p < 2 * kFleetSlots; ++p)
      lo[static_cast<size_t>(g)].push_back(w.slot_seq[p].load());
    lo_appends[static_cast<size_t>(g)] = w.appends.load();
  }
  // One read per region: the engine serves each as one atomic snapshot.
  std::vector<uint8_t> aligned(kFleetAlignedEnd),
      unaligned(kFleetUnalignedEnd - kFleetUnalignedBase);
  auto size = f.Size();
  auto a = f.Pread(aligned.data(), aligned.size(), 0);
  auto u = f.Pread(unaligned.data(), unaligned.size(), kFleetUnalignedBase);
  for (const Status& st : {size.status(), a.status(), u.status()}) {
    if (!st.ok()) return "the file cannot be read: " + Describe(st);
  }
  if (*a != aligned.size() || *u != unaligned.size() ||
      *size < kFleetAppendBase) {
    return "the file is shorter than its slots: size " + std::to_string(*size);
  }
  std::vector<uint8_t> appended(*size - kFleetAppendBase);
  auto ap = f.Pread(appended.data(), appended.size(), kFleetAppendBase);
  if (!ap.ok()) return "the appends cannot be read: " + Describe(ap.status());
  if (*ap != appended.size()) return "short read of the appends";

  for (int g = 0; g < writers; ++g) {
    FleetWriter& w = shared->writers[g];
    WriterState state = states[g];
    uint64_t started = w.started.load();  // after the reads: an upper bound
    uint32_t flying = w.place.load();
    std::string who = "writer " + std::to_string(g);
    for (uint32_t p = 0; p < 2 * kFleetSlots; ++p) {
      uint64_t off = PlaceOffset(g, p), len = PlaceLen(p);
      const uint8_t* at = IsAligned(p)
                              ? aligned.data() + off
                              : unaligned.data() + (off - kFleetUnalignedBase);
      uint64_t low = lo[static_cast<size_t>(g)][p];
      std::string where = who + " place " + std::to_string(p) + " (offset " +
                          std::to_string(off) + ")";
      auto rec = ParseRecord(at, len);
      if (!rec.has_value()) {
        if (low != 0 || !AllZero(at, len)) {
          std::vector<uint8_t> again(len);
          auto n = f.Pread(again.data(), len, off);
          problems.Add(
              where + ": torn or lost; last completed op " +
              std::to_string(low) + "; " +
              DescribeBytes(at, len, RecordOwner(g, p), low) +
              "; read again: " +
              (n.ok() && *n == len
                   ? DescribeBytes(again.data(), len, RecordOwner(g, p), low)
                   : "fails"));
        }
        continue;
      }
      bool in_flight =
          state == WriterState::kDead && flying == p && rec->seq == started;
      if (rec->writer != RecordOwner(g, p) || rec->len != len) {
        problems.Add(where + ": holds a record of another writer or place");
      } else if (rec->seq < low) {
        problems.Add(where + ": op " + std::to_string(rec->seq) +
                     " is older than completed op " + std::to_string(low));
      } else if (rec->seq > started) {
        problems.Add(where + ": op " + std::to_string(rec->seq) +
                     " had not started");
      } else if (state != WriterState::kRunning && rec->seq != low &&
                 !in_flight) {
        problems.Add(where + ": op " + std::to_string(rec->seq) +
                     " of a killed writer was never completed nor in flight");
      } else if (in_flight) {
        w.slot_seq[p].store(rec->seq);
      }
    }
  }

  // Appends: whole records, back to back, each writer's in increasing order,
  // none missing.
  std::vector<uint64_t> count(static_cast<size_t>(writers), 0),
      last(static_cast<size_t>(writers), 0);
  for (uint64_t at = 0; at < appended.size();) {
    auto rec = ParseRecord(appended.data() + at, appended.size() - at);
    std::string where = "append at " + std::to_string(kFleetAppendBase + at);
    if (!rec.has_value()) {
      problems.Add(
          where +
          ": not a whole record (a torn append, or a size without its bytes)");
      break;
    }
    auto g = static_cast<size_t>(rec->writer / 256);
    if (rec->writer % 256 != kAppendPlace ||
        g >= static_cast<size_t>(writers)) {
      problems.Add(where + ": a record that is no append");
      break;
    }
    if (rec->seq <= last[g])
      problems.Add(where + ": writer " + std::to_string(g) +
                   "'s appends out of order");
    last[g] = rec->seq;
    ++count[g];
    at += rec->len;
  }
  for (int g = 0; g < writers; ++g) {
    auto i = static_cast<size_t>(g);
    FleetWriter& w = shared->writers[g];
    bool extra_ok = states[g] == WriterState::kDead &&
                    w.place.load() == kAppendPlace &&
                    last[i] == w.started.load();
    if (count[i] < lo_appends[i]) {
      problems.Add("writer " + std::to_string(g) + ": " +
                   std::to_string(lo_appends[i] - count[i]) +
                   " completed appends are missing");
    } else if (states[g] != WriterState::kRunning &&
               count[i] > lo_appends[i] + (extra_ok ? 1 : 0)) {
      problems.Add("writer " + std::to_string(g) +
                   " (killed): more appends than it completed");
    }
    if (states[g] == WriterState::kDead) {
      w.appends.store(count[i]);
      w.done.store(w.started.load());
      w.next_start.store(w.started.load() + 1);
      w.place.store(kNoPlace);  // resolved: no longer in flight
    }
  }

  CheckHole(f, kFleetAlignedEnd, kFleetAlignedEnd + kFleetHoleLen, &problems);
  CheckHole(f, kFleetHole2, kFleetAppendBase, &problems);
  return problems.Joined();
}

}  // namespace tern::test

namespace tern::test {

int CompactorChildMain(const std::string& path,
                       const std::string& shared_path) {
  auto* shared = AttachShared<CompactorShared>(shared_path);
  if (shared == nullptr) return 2;
  auto opened = File::Open(path, O_RDWR);
  if (!opened.ok()) {
    fprintf(stderr, "compactor: open %s: %s\n", path.c_str(), Describe(opened.status()).c_str());
    shared->error.store(static_cast<uint32_t>(opened.status().err()));
    return 3;
  }
  File& f = **opened;
  uint64_t last_position = 0;
  for (;;) {
    shared->attempts.fetch_add(1);
    shared->in_compaction.store(1);
    auto stats = f.core().Compact(FileCore::GcMode::kAuto);
    shared->in_compaction.store(0);
    if (!stats.ok()) {
      if (stats.status().err() != EBUSY) {
        fprintf(stderr, "compactor: %s\n", Describe(stats.status()).c_str());
        shared->error.store(static_cast<uint32_t>(stats.status().err()));
        return 5;
      }
      shared->busy.fetch_add(1);
    } else if (stats->checkpoint_runs > 0) {
      // A compaction that wrote a checkpoint must have moved it forward. (How
      // much log is left depends on how fast the writers were meanwhile.)
      if (stats->checkpoint_position <= last_position) {
        fprintf(stderr, "compactor: checkpoint at %llu, the previous one at %llu\n",
                static_cast<unsigned long long>(stats->checkpoint_position),
                static_cast<unsigned long long>(last_position));
        shared->error.store(1000);
        return 6;
      }
      last_position = stats->checkpoint_position;
      shared->compactions.fetch_add(1);
    }
    sched_yield();  // let the writers refill the log
  }
}

}  // namespace tern::test
