#include "lib/fsck.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>

#include "lib/log_block_format.h"
#include "lib/open_lock.h"
#include "lib/shared_state.h"

namespace tern {
namespace {

constexpr size_t kMaxListed = 20;  // entries described one by one in a repair report

std::string Num(uint64_t v) { return std::to_string(v); }

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Who uses a logical block, for the space check.
struct Use {
  enum Kind { kLog, kRecord, kData, kCheckpoint } kind;
  LogPos pos;       // the entry (or, for a log block, its first position) that put it there
  uint64_t detail;  // log: chain index; data: virtual block
};

std::string DescribeUse(const Use& u) {
  switch (u.kind) {
    case Use::kLog:
      return "log block #" + Num(u.detail + 1) + " (positions from " + Num(u.pos) + ")";
    case Use::kRecord:
      return "an extended record (entry at position " + Num(u.pos) + ")";
    case Use::kData:
      return "data of virtual block " + Num(u.detail) + " (entry at position " + Num(u.pos) + ")";
    case Use::kCheckpoint:
      return "the checkpoint record";
  }
  return "?";
}

void CheckSpace(const FileInfo& info, std::vector<FsckProblem>* problems) {
  std::map<uint32_t, std::vector<Use>> uses;
  for (size_t k = 0; k < info.chain.size(); ++k) {
    uses[info.chain[k].block].push_back({Use::kLog, info.chain[k].first_pos, info.chain_first + k});
  }
  for (uint32_t i = 0; i < info.checkpoint.blocks; ++i) {
    uses[info.checkpoint.block + i].push_back({Use::kCheckpoint, info.checkpoint.position, 0});
  }
  for (const auto& [block, pos] : info.record_blocks) uses[block].push_back({Use::kRecord, pos, 0});
  // Mappings the checkpoint holds count as made at its position: a cut cannot go before it.
  for (const auto& [v, m] : info.table) {
    uses[m.lblock].push_back({Use::kData, std::max(m.pos, info.checkpoint.position), v});
  }
  for (const auto& [block, list] : uses) {
    if (list.size() < 2) continue;
    FsckProblem p;
    p.what = "logical block " + Num(block) + " is used twice: ";
    for (size_t i = 0; i < list.size() && i < 3; ++i) p.what += (i ? " and " : "") + DescribeUse(list[i]);
    if (list.size() > 3) p.what += " and " + Num(list.size() - 3) + " more";
    // The latest of the colliding entries is the invalid one: the log was fine before it.
    for (const Use& u : list) p.cut_at = std::max(p.cut_at, u.pos);
    // Cutting the log at the checkpoint's position would leave the collision in the checkpoint.
    p.cut = info.checkpoint.block == 0 || p.cut_at > info.checkpoint.position;
    if (!p.cut) p.what += " (inside the checkpoint: not repairable by cutting the log)";
    problems->push_back(std::move(p));
  }
}

// Bytes past the end of the file in its last block must be zero (engine invariant: a file that
// grows again shows zeros there). Returns the block and the offset where the stray bytes start.
bool StrayBytesPastEnd(int fd, const FileInfo& info, uint32_t* lblock, uint32_t* from) {
  if (info.size % kBlockSize == 0) return false;
  auto it = info.table.find(static_cast<uint32_t>(info.size / kBlockSize));
  if (it == info.table.end()) return false;
  std::vector<uint8_t> block(kBlockSize, 0);
  if (pread(fd, block.data(), kBlockSize, static_cast<off_t>(uint64_t{it->second.lblock} * kBlockSize)) < 0) {
    return false;
  }
  auto start = static_cast<uint32_t>(info.size % kBlockSize);
  for (uint32_t i = start; i < kBlockSize; ++i) {
    if (block[i] != 0) {
      *lblock = it->second.lblock;
      *from = start;
      return true;
    }
  }
  return false;
}

FsckResult Check(int fd, FileInfo info) {
  FsckResult r;
  if (!info.header_problem.empty()) {
    r.problems.push_back({"meta block: " + info.header_problem + " (the engine refuses this file; not repairable)", 0, false});
  }
  if (info.damage) {
    bool in_checkpoint = info.damage->cause.rfind("checkpoint", 0) == 0;
    if (in_checkpoint) {
      r.problems.push_back({"meta block's checkpoint: " + info.damage->cause +
                                " (the engine refuses this file; not repairable: the checkpoint holds the log before it)",
                            0, false});
    } else {
      r.problems.push_back({"log position " + Num(info.damage->pos) + ": " + info.damage->cause +
                                " (the engine refuses this file)",
                            info.damage->pos, true});
    }
  }
  if (info.header.format_version == pmem::kFormatVersion) CheckSpace(info, &r.problems);
  uint32_t lblock = 0, from = 0;
  if (StrayBytesPastEnd(fd, info, &lblock, &from)) {
    r.problems.push_back({"bytes past the end of the file (size " + Num(info.size) + ") in its last block (logical " +
                              Num(lblock) + ", from byte " + Num(from) + ") are not zero",
                          0, false});
  }
  if (info.in_use) r.notes.push_back("open elsewhere while checked: this is a snapshot of a live file");
  if (info.stale_past_tail > 0 || info.stale_blocks_linked > 0) {
    r.notes.push_back(Num(info.stale_past_tail) + " entries after the log tail and " + Num(info.stale_blocks_linked) +
                      " log blocks linked after it: never acknowledged by fsync; the next first open drops them");
  }
  if (info.effective_blocks != info.num_blocks) {
    r.notes.push_back("backing file is " + Num(info.num_blocks) +
                      " blocks, not whole 2 MiB steps (an interrupted format or grow); the next open extends it");
  }
  r.info = std::move(info);
  return r;
}

// Describes a dropped entry and notes the logical blocks it used (data and record).
std::string DescribeEntry(LogPos pos, uint64_t entry, PreadResolver& resolver, uint64_t num_blocks,
                          std::set<uint32_t>* used) {
  std::string head = "position " + Num(pos) + " (" + Hex(entry) + "): ";
  auto c = DecodeCommit(entry, num_blocks, resolver, /*verify_crc=*/true);
  if (!c.ok()) return head + "invalid: " + c.status().context();
  c->ForEachRun([&](const MapRun& r) {
    for (uint32_t i = 0; r.lblock != kNoBlock && i < r.count; ++i) used->insert(r.lblock.value() + i);
  });
  for (uint32_t i = 0; i < c->record.count; ++i) used->insert(c->record.start.value() + i);
  if (c->runs == nullptr) {
    const MapRun& r = c->inline_run;
    return head + "map virtual " + Num(r.vblock.value()) + ".." + Num(r.vblock.value() + r.count - 1) + " -> logical " +
           Num(r.lblock.value()) + (c->size_rule == Commit::SizeRule::kExtendToEnd ? ", size extends" : ", size kept");
  }
  return head + (c->unmap_beyond ? "truncate to " : "write of ") + Num(c->nruns) + " runs" +
         (c->unmap_beyond ? "" : ", size ") + (c->unmap_beyond ? "" : Num(c->size)) +
         (c->unmap_beyond ? " (size " + Num(c->size) + ")" : "");
}

// Zeroes slots [first, nslots) of the block at `slots_off` and describes what was there.
Status DropSlots(int fd, uint64_t slots_off, uint64_t first, uint64_t nslots, LogPos pos0, PreadResolver& resolver,
                 uint64_t num_blocks, RepairResult* out, size_t* listed, std::set<uint32_t>* used) {
  std::vector<uint64_t> slots(nslots, 0);
  if (pread(fd, slots.data(), nslots * 8, static_cast<off_t>(slots_off)) < 0) return Status::Error(errno, "pread");
  bool any = false;
  for (uint64_t i = first; i < nslots; ++i) {
    if (slots[i] == 0) continue;
    any = true;
    ++out->entries_dropped;
    std::string what = DescribeEntry(pos0 + i, slots[i], resolver, num_blocks, used);
    if ((*listed)++ < kMaxListed) out->actions.push_back("  dropped " + what);
  }
  if (!any) return Status::Ok();
  std::vector<uint64_t> zeros(nslots - first, 0);
  if (pwrite(fd, zeros.data(), zeros.size() * 8, static_cast<off_t>(slots_off + first * 8)) !=
      static_cast<ssize_t>(zeros.size() * 8)) {
    return Status::Error(errno == 0 ? EIO : errno, "pwrite");
  }
  return Status::Ok();
}

// Cuts the log at `cut`: as recovery scrubs past the tail, and without regard for validity.
Status CutLog(int fd, const FileInfo& info, LogPos cut, RepairResult* out, std::set<uint32_t>* used) {
  PreadResolver resolver(fd, info.effective_blocks);
  uint64_t before = out->entries_dropped;
  size_t listed = 0;
  uint64_t link_off;
  uint64_t first_unlinked = 0;  // chain index of the first block hanging off the link we zero
  std::string where;
  if (cut < pmem::kMetaSlots) {
    TERN_TRY(DropSlots(fd, offsetof(pmem::MetaBlock, slots), cut, pmem::kMetaSlots, 0, resolver,
                       info.effective_blocks, out, &listed, used));
    link_off = offsetof(pmem::MetaHeader, log_head);
    where = "the meta block, slot " + Num(cut);
  } else {
    uint64_t k = (cut - pmem::kMetaSlots) / pmem::kLogSlots;  // chain index
    uint64_t i = (cut - pmem::kMetaSlots) % pmem::kLogSlots;
    size_t idx = info.ChainSlot(cut);                           // index into info.chain
    if (idx < info.chain.size()) {
      uint64_t base = uint64_t{info.chain[idx].block} * kBlockSize;
      TERN_TRY(DropSlots(fd, base, i, pmem::kLogSlots, cut - i, resolver, info.effective_blocks, out, &listed, used));
      link_off = base + offsetof(pmem::LogBlock, trailer) + offsetof(pmem::LogBlockTrailer, next);
      first_unlinked = k + 1;
      where = "log block " + Num(info.chain[idx].block) + ", slot " + Num(i);
    } else {  // the cut is the start of a log block that could not be followed: unlink it
      link_off = idx == 0 ? offsetof(pmem::MetaHeader, log_head)
                          : uint64_t{info.chain[idx - 1].block} * kBlockSize + offsetof(pmem::LogBlock, trailer) +
                                offsetof(pmem::LogBlockTrailer, next);
      first_unlinked = k;
      where = "the link to log block #" + Num(k + 1);
    }
  }
  uint32_t next = 0;
  if (pread(fd, &next, 4, static_cast<off_t>(link_off)) != 4) return Status::Error(EIO, "pread link");
  std::string unlinked;
  if (next != 0) {
    // Entries in the blocks that hang off this link are dropped too: count and list them.
    uint32_t b = next;
    for (int n = 0; b != 0 && b < info.effective_blocks && n < 1 << 20; ++n) {
      pmem::LogBlock block{};
      if (pread(fd, &block, sizeof(block), static_cast<off_t>(uint64_t{b} * kBlockSize)) < 0) break;
      unlinked += (unlinked.empty() ? "" : ", ") + Num(b);
      used->insert(b);
      if (block.trailer.magic != pmem::kLogMagic) break;
      for (uint64_t i = 0; i < pmem::kLogSlots; ++i) {
        if (block.slots[i] == 0) continue;
        ++out->entries_dropped;
        LogPos pos = pmem::kMetaSlots + (first_unlinked + static_cast<uint64_t>(n)) * pmem::kLogSlots + i;
        std::string what = DescribeEntry(pos, block.slots[i], resolver, info.effective_blocks, used);
        if (listed++ < kMaxListed) out->actions.push_back("  dropped (unlinked, block " + Num(b) + ") " + what);
      }
      b = block.trailer.next;
    }
    uint32_t zero = 0;
    if (pwrite(fd, &zero, 4, static_cast<off_t>(link_off)) != 4) return Status::Error(EIO, "pwrite link");
  }
  uint64_t dropped = out->entries_dropped - before;
  std::string line = "cut the log at position " + Num(cut) + " (" + where + "): dropped " + Num(dropped) + " entr" +
                     (dropped == 1 ? "y" : "ies");
  if (!unlinked.empty()) line += "; unlinked log blocks " + unlinked;
  if (listed > kMaxListed) line += " (" + Num(listed - kMaxListed) + " not listed)";
  // The summary goes before the per-entry lines it introduces.
  out->actions.insert(out->actions.end() - static_cast<long>(std::min(listed, kMaxListed)), line);
  return Status::Ok();
}

}  // namespace

Result<FsckResult> CheckFile(const std::string& path) {
  TERN_ASSIGN_OR_RETURN(FileInfo info, InspectFile(path));
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::Error(errno, "open");
  FsckResult r = Check(fd, std::move(info));
  close(fd);
  return r;
}

Result<RepairResult> RepairFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::Error(errno, "open");
  struct Closer {
    int fd;
    bool locked = false;
    ~Closer() {
      if (locked) Unlock(fd);
      close(fd);
    }
  } closer{fd};
  auto exclusive = TryLockExclusive(fd);
  if (!exclusive.ok()) return exclusive.status();
  if (!*exclusive) return Status::Error(EBUSY, "the file is open elsewhere");
  closer.locked = true;

  RepairResult out;
  FsckResult now;
  std::set<uint32_t> used_by_dropped;
  for (int round = 0;; ++round) {
    TERN_ASSIGN_OR_RETURN(FileInfo info, InspectOpenFile(fd, path));
    now = Check(fd, std::move(info));
    if (!now.info.header_problem.empty()) return Status::Error(EUCLEAN, "meta block damaged: not repairable");
    LogPos cut = UINT64_MAX;
    for (const FsckProblem& p : now.problems) {
      if (p.cut) cut = std::min(cut, p.cut_at);
    }
    if (cut == UINT64_MAX || round == 64) break;
    TERN_TRY(CutLog(fd, now.info, cut, &out, &used_by_dropped));
  }
  for (const auto& [v, m] : now.info.table) {
    if (used_by_dropped.count(m.lblock) != 0) out.suspect_vblocks.push_back(v);
  }
  if (!out.suspect_vblocks.empty()) {
    std::string list;
    for (size_t i = 0; i < out.suspect_vblocks.size() && i < 16; ++i) list += (i ? ", " : "") + Num(out.suspect_vblocks[i]);
    if (out.suspect_vblocks.size() > 16) list += ", ...";
    out.actions.push_back(Num(out.suspect_vblocks.size()) + " virtual blocks (" + list +
                          ") map blocks that dropped entries reused: their bytes may be newer than the kept log");
  }
  uint32_t lblock = 0, from = 0;
  if (StrayBytesPastEnd(fd, now.info, &lblock, &from)) {
    std::vector<uint8_t> zeros(kBlockSize - from, 0);
    if (pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(uint64_t{lblock} * kBlockSize + from)) !=
        static_cast<ssize_t>(zeros.size())) {
      return Status::Error(errno == 0 ? EIO : errno, "pwrite");
    }
    out.actions.push_back("zeroed bytes " + Num(from) + "..4095 of logical block " + Num(lblock) +
                          " (past the end of the file)");
  }
  if (!out.actions.empty() && fdatasync(fd) != 0) return Status::Error(errno, "fdatasync");
  // The free state is not on media: it is rebuilt from the (now cut) log when next needed. A stale
  // shared-state object (left by a crashed process) is removed so nothing outlives the repair.
  struct stat st;
  if (fstat(fd, &st) == 0) {
    std::string shared = SharedState::NameFor(st, now.info.header.nonce);
    if (access(shared.c_str(), F_OK) == 0) {
      SharedState::Remove(shared);
      out.actions.push_back("removed stale shared state " + shared);
    }
  }
  TERN_ASSIGN_OR_RETURN(FileInfo info, InspectOpenFile(fd, path));
  out.after = Check(fd, std::move(info));
  const FileInfo& a = out.after.info;
  if (!out.actions.empty()) {
    uint64_t used = 1 + a.log_blocks() + a.record_blocks.size() + a.checkpoint.blocks + a.data_blocks();
    out.actions.push_back("free state: " + Num(used) + " blocks in use (1 meta, " + Num(a.log_blocks()) + " log, " +
                          Num(a.record_blocks.size()) + " record, " + Num(a.checkpoint.blocks) + " checkpoint, " +
                          Num(a.data_blocks()) + " data), " +
                          Num(a.effective_blocks > used ? a.effective_blocks - used : 0) +
                          " free; rebuilt from the log at the next write");
  }
  return out;
}

std::string FormatFsck(const FsckResult& r) {
  std::string out = r.info.path + ": ";
  if (r.clean()) {
    out += "clean (" + Num(r.info.tail) + " log entries, size " + Num(r.info.size) + ")\n";
  } else {
    out += Num(r.problems.size()) + " problem" + (r.problems.size() == 1 ? "" : "s") + "\n";
  }
  for (const FsckProblem& p : r.problems) out += "  problem: " + p.what + "\n";
  for (const std::string& n : r.notes) out += "  note: " + n + "\n";
  return out;
}

}  // namespace tern
