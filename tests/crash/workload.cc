#include "tests/crash/workload.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <thread>

#include "lib/file.h"
#include "lib/file_core.h"

namespace tern::crash {

std::string Op::Describe() const {
  switch (kind) {
    case OpKind::kWrite:
      return "pwrite(" + std::to_string(length) + " @ " + std::to_string(offset) + ", seed " + std::to_string(seed) + ")";
    case OpKind::kAppend:
      return "append(" + std::to_string(length) + ", seed " + std::to_string(seed) + ")";
    case OpKind::kTruncate:
      return "truncate(" + std::to_string(offset) + ")";
    case OpKind::kFsync:
      return "fsync";
    case OpKind::kCompact:
      return "compact";
  }
  return "?";
}

uint8_t OpByte(uint64_t seed, uint64_t offset) {
  uint64_t z = (seed + 1) * 0x9E3779B97F4A7C15ull + offset * 0xD1342543DE82EF95ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint8_t>(z ^ (z >> 31));
}

void FileModel::Apply(const Op& op) {
  switch (op.kind) {
    case OpKind::kWrite:
    case OpKind::kAppend: {
      uint64_t at = op.kind == OpKind::kAppend ? content_.size() : op.offset;
      if (content_.size() < at + op.length) content_.resize(at + op.length, 0);
      for (uint64_t i = 0; i < op.length; ++i) content_[at + i] = OpByte(op.seed, at + i);
      break;
    }
    case OpKind::kTruncate:
      content_.resize(op.offset, 0);
      break;
    case OpKind::kFsync:
    case OpKind::kCompact:
      break;
  }
}

uint64_t FileModel::HashBytes(const uint8_t* data, size_t len) {
  uint64_t h = 0xCBF29CE484222325ull ^ len;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t v;
    memcpy(&v, data + i, 8);
    h = (h ^ v) * 0x100000001B3ull;
    h ^= h >> 29;
  }
  for (; i < len; ++i) h = (h ^ data[i]) * 0x100000001B3ull;
  return h;
}

namespace {

uint8_t* MarkerBase() {
  static uint8_t markers[kMaxThreads * 2];
  static const bool registered = [] {
    pmem::trace::RegisterRegion(kMarkerRegion, markers, sizeof(markers), 0);
    return true;
  }();
  (void)registered;
  return markers;
}

void Mark(Marker m, uint32_t thread) {
  pmem::trace::OnStore(MarkerBase() + static_cast<uint32_t>(m) * kMaxThreads + thread, 1);
}

std::string RunOp(File& f, const Op& op, uint32_t thread) {
  std::vector<uint8_t> bytes;
  switch (op.kind) {
    case OpKind::kWrite: {
      bytes.resize(op.length);
      for (uint64_t i = 0; i < op.length; ++i) bytes[i] = OpByte(op.seed, op.offset + i);
      auto n = f.Pwrite(bytes.data(), bytes.size(), op.offset);
      if (!n.ok() || *n != op.length) return op.Describe() + " failed";
      return "";
    }
    case OpKind::kAppend: {
      auto size = f.Size();  // single-threaded workloads only: the end does not move meanwhile
      if (!size.ok()) return "size failed";
      bytes.resize(op.length);
      for (uint64_t i = 0; i < op.length; ++i) bytes[i] = OpByte(op.seed, *size + i);
      auto at = f.Append(bytes.data(), bytes.size());
      if (!at.ok() || *at != *size) return op.Describe() + " failed";
      return "";
    }
    case OpKind::kTruncate:
      if (!f.Truncate(op.offset).ok()) return op.Describe() + " failed";
      return "";
    case OpKind::kFsync: {
      Mark(Marker::kFsyncStart, thread);
      bool ok = f.Fsync().ok();
      Mark(Marker::kFsyncDone, thread);
      return ok ? "" : "fsync failed";
    }
    case OpKind::kCompact: {
      auto stats = f.core().Compact();
      if (!stats.ok()) return "compact failed: errno " + std::to_string(stats.status().err());
      return stats->checkpoint_runs > 0 ? "" : "compact did nothing";
    }
  }
  return "bad op";
}

std::string ReadBacking(const std::string& path, std::vector<uint8_t>* out, uint32_t* region) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "open backing file: " + std::string(strerror(errno));
  struct stat st;
  fstat(fd, &st);
  *region = static_cast<uint32_t>(st.st_ino);
  out->resize(static_cast<size_t>(st.st_size));
  ssize_t n = pread(fd, out->data(), out->size(), 0);
  close(fd);
  return n == static_cast<ssize_t>(out->size()) ? "" : "read backing file";
}

constexpr off_t kRoomyBackingBytes = 2 << 20;

}  // namespace

std::string Record(const std::string& path, const Workload& w, Recording* out) {
  if (w.threads.empty() || w.threads.size() > kMaxThreads) return "bad thread count";
  MarkerBase();
  {
    auto created = File::Open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (!created.ok()) return "create " + path + ": errno " + std::to_string(created.status().err());
  }
  // A 2 MiB backing, room for every workload here: the media model knows the file only from the
  // stores it saw, and a grow (fallocate) is filesystem metadata the trace does not show.
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  bool grown = fd >= 0 && fallocate(fd, 0, 0, kRoomyBackingBytes) == 0;
  int grow_errno = errno;
  if (fd >= 0) close(fd);
  if (!grown) return "grow " + path + ": " + strerror(grow_errno);
  auto opened = File::Open(path, O_RDWR);
  if (!opened.ok()) return "open " + path + ": errno " + std::to_string(opened.status().err());
  std::unique_ptr<File> f = std::move(*opened);
  for (const Op& op : w.setup) {
    std::string err = RunOp(*f, op, 0);
    if (!err.empty()) return "setup: " + err;
    out->setup_model.Apply(op);
  }
  if (!f->Fsync().ok()) return "setup fsync failed";
  std::string err = ReadBacking(path, &out->initial, &out->region);
  if (!err.empty()) return err;

  std::vector<std::string> errors(w.threads.size());
  pmem::trace::Start();
  if (w.threads.size() == 1) {
    for (const Op& op : w.threads[0]) {
      errors[0] = RunOp(*f, op, 0);
      if (!errors[0].empty()) break;
    }
  } else {
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < w.threads.size(); ++t) {
      threads.emplace_back([&, t] {
        for (const Op& op : w.threads[t]) {
          errors[t] = RunOp(*f, op, t);
          if (!errors[t].empty()) break;
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  std::vector<pmem::trace::Event> events = pmem::trace::Stop();
  f.reset();
  for (const std::string& e : errors) {
    if (!e.empty()) return e;
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "stat backing file";
  out->final_file_size = static_cast<uint64_t>(st.st_size);
  for (pmem::trace::Event& e : events) {
    if (e.kind == pmem::trace::EventKind::kFence || e.region == out->region || e.region == kMarkerRegion) {
      out->events.push_back(std::move(e));
    }
  }
  return "";
}

}  // namespace tern::crash
