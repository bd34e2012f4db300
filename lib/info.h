// A read-only look at a tern backing file, independent of the engine: the file is read with pread
// (never mapped, never changed), the log is walked and replayed exactly as recovery would, and
// everything found is reported — layout, log chain, entry histogram, block accounting, and the
// first damage that would make the engine refuse the file. `tern info` prints it; `tern fsck`
// (lib/fsck.h) builds its checks and repairs on it. See doc/format/file.md.
//
// Thread-safety: InspectFile keeps no shared state; concurrent calls are fine. A file that other
// processes are writing is seen as of some moment during the scan (FileInfo::in_use says so).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lib/commit.h"
#include "lib/log_block_format.h"
#include "lib/meta_block_format.h"
#include "lib/status.h"

namespace tern {

struct InfoLogBlock {
  uint32_t block = 0;    // logical block
  uint32_t seq = 0;
  uint32_t entries = 0;  // entries before the tail
  LogPos first_pos = 0;  // log position of its slot 0
};

// Why replay stops before an all-zero slot (or cannot start, for a bad checkpoint): the engine
// refuses the file with EUCLEAN for this.
struct InfoDamage {
  LogPos pos = 0;        // log position of the first entry (or log block) that is bad
  std::string cause;     // the engine's words ("extended record checksum mismatch", ...)
};

struct InfoEntryStats {
  uint64_t inline_extend = 0;   // tag 1
  uint64_t inline_keep = 0;     // tag 2
  uint64_t ext_write = 0;       // extended record, kind write
  uint64_t ext_truncate = 0;    // extended record, kind truncate
  uint64_t ext_runs = 0;        // runs in all extended records
  // Blocks mapped per commit: 0 (truncate without a run), 1, 2–4, 5–16, 17–63, 64+.
  uint64_t blocks_hist[6] = {};
};

// The checkpoint log compaction left (lib/checkpoint_format.h): replay starts from it.
struct InfoCheckpoint {
  uint32_t block = 0;       // logical block of the record (0: none)
  uint32_t blocks = 0;      // blocks the record fills
  LogPos position = 0;      // log position it stands for; the live log starts there
  uint64_t generation = 0;
  uint32_t runs = 0;
};

struct FileInfo {
  std::string path;
  dev_t dev = 0;                     // the backing file's, as fstat said
  ino_t ino = 0;
  uint64_t file_bytes = 0;
  uint64_t num_blocks = 0;           // whole blocks in the backing file
  // Blocks the engine sees: a writable first open extends a file whose size the growth rule does
  // not produce (BackingBlocksFor: an interrupted format or grow) before it replays, so references
  // up to here are valid; the missing tail reads as zeros.
  uint64_t effective_blocks = 0;
  bool in_use = false;               // other processes had it open during the scan
  pmem::MetaHeader header{};
  std::string header_problem;        // empty when the header is valid
  InfoCheckpoint checkpoint;         // block 0 when the file was never compacted
  uint32_t chain_first = 0;          // chain index of chain[0] (the checkpoint's log block, or 0)
  std::vector<InfoLogBlock> chain;   // live log blocks reached by the walk, in chain order
  LogPos tail = 0;                   // first position not replayed (free slot, or damage)
  std::optional<InfoDamage> damage;  // set when replay stops at a bad entry or log block
  bool walk_cut = false;             // stopped at InspectOpenFile's max_log_blocks: a prefix only
  uint64_t stale_past_tail = 0;      // non-zero slots after the tail in its block
  uint64_t stale_blocks_linked = 0;  // log blocks linked after the tail's block (recovery unlinks them)
  InfoEntryStats entries;
  uint64_t size = 0;                 // logical size after replay to the tail
  LogPos size_pos = 0;               // position of the entry that set `size` last
  struct Mapping {
    uint32_t lblock;
    LogPos pos;                      // the entry that mapped it
  };
  std::map<uint32_t, Mapping> table;         // virtual block -> logical block, after replay
  std::map<uint32_t, LogPos> record_blocks;  // logical block -> first entry whose record uses it
  // Block accounting after replay: meta + log + record + checkpoint + data (mapped) + free =
  // num_blocks, when no block is counted twice (fsck checks that).
  uint64_t log_blocks() const { return chain.size(); }
  uint64_t data_blocks() const { return table.size(); }
  // Index into `chain` of the log block holding position pos (chain.size() if not reached).
  size_t ChainSlot(LogPos pos) const {
    uint64_t k = (pos - pmem::kMetaSlots) / pmem::kLogSlots;
    return k < chain_first ? chain.size() : std::min<size_t>(chain.size(), k - chain_first);
  }
};

// Inspects the file at `path`. Errors: the errno of open/pread; kNotTernFile when it is not a tern
// file at all (too short, size not a multiple of 4096, wrong magic). A damaged tern file is not an
// error: the damage is in the result.
Result<FileInfo> InspectFile(const std::string& path);
// The same for a file the caller has open (and, for a stable picture, holds the open lock of
// exclusively, lib/open_lock.h). `fd` may be read-only. A caller that only wants a short log read
// (each log block holds 510 entries, replayed one by one) passes `max_log_blocks`: the walk stops
// before reading more and sets walk_cut.
Result<FileInfo> InspectOpenFile(int fd, const std::string& path, uint32_t max_log_blocks = UINT32_MAX);

// DecodeCommit's view of a backing file read with pread (zeros past its end, up to num_blocks).
// Decoded commits point into its buffers, which live as long as the resolver.
class PreadResolver : public BlockResolver {
 public:
  PreadResolver(int fd, uint64_t num_blocks) : fd_(fd), num_blocks_(num_blocks) {}
  const uint8_t* Resolve(LogicalBlock block, uint32_t count) override;

 private:
  int fd_;
  uint64_t num_blocks_;
  std::map<std::pair<uint32_t, uint32_t>, std::unique_ptr<uint8_t[]>> cache_;
};

// `tern info` text: layout, log length and chain, entry histogram, block counts.
std::string FormatInfo(const FileInfo& info);

}  // namespace tern
