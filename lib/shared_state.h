// The per-file shared-memory object: state that every process with the file open shares and that
// can always be rebuilt from the file itself — the free-block bitmap, the backing file's block
// count, live counters. It lives in DRAM (a file in TERN_SHM_DIR, default /dev/shm), never on PM, so
// allocation needs no flush. It exists while somebody has the file open: the first opener (who
// holds the open lock exclusively, see open_lock.h) builds it from the log; the last closer removes it.
//
// Thread-safety: all fields are atomics shared across processes.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "lib/layout_constants.h"
#include "lib/status.h"

namespace tern {

inline constexpr uint64_t kSharedMagic = 0x5348535445524E31ull;
inline constexpr uint32_t kSharedVersion = 1;

struct SharedCounters {
  std::atomic<uint64_t> commits;
  std::atomic<uint64_t> conflicts;   // failed commit CAS (OCC retries)
  std::atomic<uint64_t> recopies;    // partial blocks recopied after a conflict
  std::atomic<uint64_t> read_retries;
};

struct SharedHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t reserved0;
  std::atomic<uint64_t> num_blocks;  // blocks in the backing file; grows only
  std::atomic<uint64_t> alloc_hint;  // bitmap word where the next allocation scan starts
  SharedCounters counters;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(sizeof(SharedHeader) <= kBlockSize);

class SharedState {
 public:
  static constexpr uint64_t kBitmapWords = kMaxBlocks / 64;
  static constexpr uint64_t kObjectSize = kBlockSize + kBitmapWords * sizeof(uint64_t);

  // The object's path for a data file (dev, ino, format nonce).
  static std::string NameFor(const struct stat& st, uint64_t nonce);

  // Builds a fresh, empty object (num_blocks set, bitmap all free) that is not yet visible to
  // others. Owner and mode follow `like` (the data file's stat) minus execute bits.
  static Result<std::unique_ptr<SharedState>> CreateUnpublished(const struct stat& like,
                                                                uint64_t num_blocks);
  // Makes an object built by CreateUnpublished visible at `path`, replacing any stale one.
  Status Publish(const std::string& path);
  // Maps an existing object. ENOENT if there is none.
  static Result<std::unique_ptr<SharedState>> Attach(const std::string& path);
  static void Remove(const std::string& path);

  SharedState(int fd, void* base) : fd_(fd), base_(base) {}
  ~SharedState();
  SharedState(const SharedState&) = delete;
  SharedState& operator=(const SharedState&) = delete;

  SharedHeader* header() const { return static_cast<SharedHeader*>(base_); }
  std::atomic<uint64_t>* bitmap() const {
    return reinterpret_cast<std::atomic<uint64_t>*>(static_cast<char*>(base_) + kBlockSize);
  }

 private:
  int fd_;
  void* base_;
};

// TERN_SHM_DIR or /dev/shm.
const char* SharedStateDir();

}  // namespace tern
