// Workloads for the crash simulator: operations whose every byte is identifiable, a model of the
// file they define, and running them under the pmem trace (pmem/trace.h) to get the recording the
// simulator replays.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pmem/trace.h"

namespace tern::crash {

enum class OpKind : uint8_t { kWrite, kAppend, kTruncate, kFsync, kCompact };

struct Op {
  OpKind kind = OpKind::kWrite;
  uint64_t offset = 0;  // kWrite: where; kTruncate: the new size
  uint64_t length = 0;  // kWrite, kAppend: how many bytes
  uint64_t seed = 0;    // kWrite, kAppend: the bytes are OpByte(seed, file offset)
  std::string Describe() const;
  // Whether the op commits a log entry (compaction changes the log, not the content).
  bool Mutates() const { return kind != OpKind::kFsync && kind != OpKind::kCompact; }
};

// The byte that the op with `seed` writes at file offset `offset`. Distinct seeds differ almost
// everywhere, so a byte tells which op wrote it.
uint8_t OpByte(uint64_t seed, uint64_t offset);

// The file content the ops define, applied in commit order.
class FileModel {
 public:
  // Applies a mutating op; an append lands at the current end.
  void Apply(const Op& op);
  const std::vector<uint8_t>& content() const { return content_; }
  uint64_t Hash() const { return HashBytes(content_.data(), content_.size()); }
  static uint64_t HashBytes(const uint8_t* data, size_t len);

 private:
  std::vector<uint8_t> content_;
};

struct Workload {
  std::string name;
  std::vector<Op> setup;                 // run and fsynced before tracing starts
  std::vector<std::vector<Op>> threads;  // one op list per thread, run concurrently while tracing
  // Multi-thread workloads may use only kWrite and kFsync (commits are attributed to ops by their
  // block range and bytes; appends and truncates need the model's order).
};

// Marker events, recorded in the trace with the workload's own events so that the simulator knows
// where an fsync started and where it returned.
inline constexpr uint32_t kMarkerRegion = 0xFFFFFFFFu;
inline constexpr uint32_t kMaxThreads = 8;
enum class Marker : uint32_t { kFsyncStart = 0, kFsyncDone = 1 };
inline Marker MarkerKind(const pmem::trace::Event& e) { return static_cast<Marker>(e.offset / kMaxThreads); }
inline uint32_t MarkerThread(const pmem::trace::Event& e) { return static_cast<uint32_t>(e.offset % kMaxThreads); }

struct Recording {
  std::vector<uint8_t> initial;            // backing file bytes when tracing started (all durable)
  uint64_t final_file_size = 0;            // backing file size at the end (it may have grown)
  uint32_t region = 0;                     // trace region of the backing file
  std::vector<pmem::trace::Event> events;  // this file's stores and flushes, all fences, markers
  FileModel setup_model;                   // content after the setup ops
};

// Creates `path` (must not exist), runs the setup ops, fsyncs, snapshots the backing file, then
// runs the threads' ops under the trace. Returns an empty string on success, else what failed.
std::string Record(const std::string& path, const Workload& w, Recording* out);

}  // namespace tern::crash
