// `tern fsck`: checks a tern backing file without the engine (over lib/info.h's read-only scan) and
// repairs what can be repaired by cutting the log. A file is clean when the engine would open it,
// every entry before the tail decodes, and the space the log describes is consistent: no logical
// block is used twice (two mappings, a mapping onto a log or record block), and the bytes past the
// end of the file in its last block are zero (a later grow would expose them otherwise).
//
// Repair truncates the log at the first invalid entry — the first that does not decode, or the
// latest of the entries whose mappings collide — by zeroing that slot and every slot after it in
// its block and unlinking later log blocks (exactly what recovery does to entries past the tail),
// repeats until the log is clean, zeroes stray bytes past the end of the last block, and removes
// any stale shared-state object so the next open rebuilds the free state from the log. It reports
// every entry it dropped, and every virtual block whose kept block a dropped entry had reused (its
// bytes may be newer than the kept log: copy-on-write frees a superseded block at once, so a log
// cut in the middle cannot bring old bytes back). Header damage is not repairable.
//
// Thread-safety: no shared state. Repair requires that nobody has the file open (it takes the open
// lock exclusively for its whole run, so no engine can open the file meanwhile).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lib/info.h"
#include "lib/status.h"

namespace tern {

struct FsckProblem {
  std::string what;    // one sentence
  LogPos cut_at = 0;   // where repair cuts the log for it (when cut)
  bool cut = false;    // repairable by cutting the log at cut_at
};

struct FsckResult {
  FileInfo info;
  std::vector<FsckProblem> problems;  // what makes the file damaged or inconsistent
  std::vector<std::string> notes;     // harmless observations (entries past the tail, in use, ...)
  bool clean() const { return problems.empty(); }
};

// Checks the file at `path`. Errors: as InspectFile (kNotTernFile for a file that is not a tern file).
Result<FsckResult> CheckFile(const std::string& path);

struct RepairResult {
  std::vector<std::string> actions;  // what was changed, one line each, in order
  uint64_t entries_dropped = 0;
  // Virtual blocks whose kept mapping points at a logical block that a dropped entry used: when
  // the dropped entries superseded the kept mapping, its block was freed and may have been reused,
  // so its content can be newer than the kept log says. Listed in `actions` too.
  std::vector<uint32_t> suspect_vblocks;
  FsckResult after;                  // the check of the repaired file
};

// Repairs the file at `path` (see the file comment). Errors: EBUSY when the file is open elsewhere;
// EUCLEAN when its meta header is damaged (not repairable); open/pread/pwrite errnos; kNotTernFile.
Result<RepairResult> RepairFile(const std::string& path);

// Text for one file: "PATH: clean" or the problems and notes, one per line.
std::string FormatFsck(const FsckResult& r);

}  // namespace tern
