// A commit entry decoded and validated: what one committed operation did to the file. Produced by
// DecodeCommit from the 8-byte entry (and its extended record, read in place on media, which is
// immutable once committed). See doc/format/file.md.
#pragma once

#include <cstdint>
#include <string>

#include "lib/allocator.h"
#include "lib/entry_format.h"
#include "lib/ext_record_format.h"
#include "lib/index.h"
#include "lib/status.h"

namespace tern {

// Position in the commit log: slots of the meta block first, then kLogSlots per log block.
using LogPos = uint64_t;

struct MapRun {
  VirtualBlock vblock;
  LogicalBlock lblock;  // kNoBlock: unmap (hole)
  uint32_t count;
};

struct Commit {
  enum class SizeRule : uint8_t { kExtendToEnd, kKeep, kSet };
  SizeRule size_rule = SizeRule::kKeep;
  bool unmap_beyond = false;          // truncate: unmap every block at or past ceil(size / 4096)
  uint64_t size = 0;                  // kSet: the size after this commit
  MapRun inline_run{};                // when runs == nullptr
  const pmem::ExtRun* runs = nullptr; // extended record's runs, on media
  uint32_t nruns = 0;
  BlockRun record{};                  // blocks holding the extended record (count 0 if inline)

  template <typename Fn>
  void ForEachRun(Fn&& fn) const {
    if (runs == nullptr) {
      fn(inline_run);
      return;
    }
    for (uint32_t i = 0; i < nruns; ++i) {
      fn(MapRun{VirtualBlock(runs[i].vblock), LogicalBlock(runs[i].lblock), runs[i].nblocks});
    }
  }
};

// Resolves a logical block to its mapped address (nullptr when out of range).
class BlockResolver {
 public:
  virtual ~BlockResolver() = default;
  virtual const uint8_t* Resolve(LogicalBlock block, uint32_t count) = 0;
};

// Decodes and checks an entry. num_blocks bounds every block index. Damage gives EUCLEAN with a cause.
// `verify_crc` checks the extended record's checksum (done once, at replay).
Result<Commit> DecodeCommit(uint64_t entry, uint64_t num_blocks, BlockResolver& blocks, bool verify_crc);

}  // namespace tern
