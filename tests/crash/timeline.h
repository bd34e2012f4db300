// Replays a Recording (workload.h) event by event through a MediaModel and says, at every moment a
// power failure is worth simulating — just before each fence, and at the end — what recovery may
// and must bring back: commits are attributed to the workload's ops as their CAS appears in the
// trace, and fsync markers tell which commits were acknowledged.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/crash/media_model.h"
#include "tests/crash/workload.h"

namespace tern::crash {

struct CrashPoint {
  const MediaModel* media;
  size_t event_index;   // the power fails just before this event (events.size(): at the end)
  uint64_t min_prefix;  // log entries acknowledged by a completed fsync: recovery keeps them all
  uint64_t max_prefix;  // log entries committed, contiguous from position 0: recovery keeps at most these
};

class Timeline {
 public:
  Timeline(const Recording& r, const Workload& w) : r_(r), w_(w) {}

  // Replays the whole recording, calling fn at each crash point. Returns "" or why the recording
  // cannot be judged (a commit that matches no op of the workload).
  std::string Walk(const std::function<void(const CrashPoint&)>& fn);

  // After Walk: hash of the file content after the first j commits, j = 0..commits.
  const std::vector<uint64_t>& prefix_hashes() const { return prefix_hashes_; }
  // After Walk: the content after the first j commits.
  FileModel ModelAt(uint64_t j) const;
  // After Walk: the op of log position j.
  const Op& OpAt(uint64_t j) const { return *log_ops_.at(j); }
  uint64_t commits() const { return prefix_; }

 private:
  void Reset();
  // Byte offset of an absolute log position's slot in the backing file (UINT64_MAX: not linked).
  uint64_t SlotOffset(uint64_t pos) const;
  std::string OnStore(const pmem::trace::Event& e);
  std::string OnCommit(uint64_t pos, uint64_t entry);
  // Does committing `op` at log position pos produce `entry`? (Checked against the media as the CPU
  // sees it: mapped range, and every byte of the op in the blocks the entry maps.)
  bool Matches(const Op& op, uint64_t pos, uint64_t entry, std::string* why) const;

  const Recording& r_;
  const Workload& w_;
  std::unique_ptr<MediaModel> media_;
  std::vector<uint32_t> chain_;                 // log blocks in chain order
  std::map<uint64_t, const Op*> log_ops_;       // log position -> op
  std::vector<size_t> next_op_;                 // per thread: index of its next op to commit
  std::vector<uint64_t> fsync_start_;           // per thread: max_prefix when its fsync started
  uint64_t base_ = 0;                           // log length when tracing started
  uint64_t prefix_ = 0;                         // commits since then, contiguous
  uint64_t min_prefix_ = 0;
  FileModel ordered_;                           // content after prefix_ commits
  std::vector<uint64_t> prefix_hashes_;
};

}  // namespace tern::crash
