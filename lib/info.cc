#include "lib/info.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "lib/checkpoint_check.h"
#include "lib/checkpoint_format.h"
#include "lib/crc32c.h"
#include "lib/log_block_format.h"
#include "lib/open_lock.h"

namespace tern {
namespace {

int HistBucket(uint64_t blocks) {
  if (blocks == 0) return 0;
  if (blocks == 1) return 1;
  if (blocks <= 4) return 2;
  if (blocks <= 16) return 3;
  if (blocks <= 63) return 4;
  return 5;
}

// Replays one decoded commit into the info, as FileCore::ApplyLocked does.
void Apply(const Commit& c, LogPos pos, FileInfo* info) {
  if (c.unmap_beyond) {
    auto keep = static_cast<uint32_t>(BlocksFor(c.size));
    info->table.erase(info->table.lower_bound(keep), info->table.end());
  }
  uint64_t mapped = 0;
  c.ForEachRun([&](const MapRun& r) {
    for (uint32_t i = 0; i < r.count; ++i) {
      uint32_t v = r.vblock.value() + i;
      if (r.lblock == kNoBlock) {
        info->table.erase(v);
      } else {
        info->table[v] = FileInfo::Mapping{r.lblock.value() + i, pos};
        ++mapped;
      }
    }
  });
  switch (c.size_rule) {
    case Commit::SizeRule::kExtendToEnd: {
      uint64_t end = (c.inline_run.vblock + BlockCount{c.inline_run.count}).ToBytes();
      if (end > info->size) {
        info->size = end;
        info->size_pos = pos;
      }
      break;
    }
    case Commit::SizeRule::kKeep:
      break;
    case Commit::SizeRule::kSet:
      info->size = c.size;
      info->size_pos = pos;
      break;
  }
  InfoEntryStats& s = info->entries;
  if (c.runs == nullptr) {
    (c.size_rule == Commit::SizeRule::kExtendToEnd ? s.inline_extend : s.inline_keep)++;
  } else {
    (c.unmap_beyond ? s.ext_truncate : s.ext_write)++;
    s.ext_runs += c.nruns;
    for (uint32_t i = 0; i < c.record.count; ++i) info->record_blocks.emplace(c.record.start.value() + i, pos);
  }
  s.blocks_hist[HistBucket(mapped)]++;
}

// Reads and checks the log block that `link` names as chain position k (0-based). Empty on success.
std::string CheckLogBlock(int fd, uint64_t num_blocks, uint32_t link, uint32_t k, pmem::LogBlock* out) {
  if (link >= num_blocks) return "log block index out of range";
  memset(out, 0, sizeof(*out));  // past the end of an unfinished grow: zeros
  if (pread(fd, out, sizeof(*out), static_cast<off_t>(uint64_t{link} * kBlockSize)) < 0) {
    return "log block unreadable";
  }
  const pmem::LogBlockTrailer& t = out->trailer;
  if (t.magic != pmem::kLogMagic) return "log block has a bad magic";
  if (t.seq != k + 1) return "cycle or misplaced block in the log chain";
  uint32_t fixed[2] = {t.magic, t.seq};
  if (t.checksum != Crc32c(fixed, sizeof(fixed))) return "log block checksum mismatch";
  return "";
}

// Loads the checkpoint the meta block names into `info` (table, size) and reads the log block its
// position is in. Empty on success, else the engine's cause (FileCore::ReadCheckpoint).
std::string LoadCheckpoint(PreadResolver& resolver, int fd, uint64_t at, FileInfo* info, pmem::LogBlock* block) {
  uint64_t nblocks = info->effective_blocks;
  if (at > UINT32_MAX) return "checkpoint pointer out of range";
  auto b = static_cast<uint32_t>(at);
  const uint8_t* p = b < nblocks ? resolver.Resolve(LogicalBlock(b), 1) : nullptr;
  if (p == nullptr) return "checkpoint block index out of range";
  pmem::CheckpointHeader h;
  memcpy(&h, p, sizeof(h));
  uint64_t span = 0;
  if (const char* bad = CheckpointHeaderDamage(h, b, nblocks, &span)) return bad;
  p = resolver.Resolve(LogicalBlock(b), static_cast<uint32_t>(span));
  if (p == nullptr) return "checkpoint runs past the end of the file";
  uint64_t mapped = 0;
  if (const char* bad = CheckpointDamage(p, nblocks, &mapped)) return bad;
  for (uint32_t i = 0; i < h.nruns; ++i) {
    pmem::ExtRun r;
    memcpy(&r, p + sizeof(h) + uint64_t{i} * sizeof(r), sizeof(r));
    for (uint32_t j = 0; j < r.nblocks; ++j) info->table[r.vblock + j] = FileInfo::Mapping{r.lblock + j, 0};
  }
  std::string bad = CheckLogBlock(fd, nblocks, h.chain_block, h.chain_index, block);
  if (!bad.empty()) return "checkpoint names a block that is not its log block";
  info->size = h.size;
  info->checkpoint = InfoCheckpoint{b, static_cast<uint32_t>(span), h.position, h.generation, h.nruns};
  info->chain_first = h.chain_index;
  info->chain.push_back({h.chain_block, h.chain_index + 1, 0, pmem::kMetaSlots + uint64_t{h.chain_index} * pmem::kLogSlots});
  return "";
}

// Walks and replays the log from position 0 (or the checkpoint) to the first free slot or the
// first damage, reading at most max_log_blocks log blocks.
void WalkLog(int fd, const pmem::MetaBlock& meta, uint32_t max_log_blocks, FileInfo* info) {
  PreadResolver resolver(fd, info->effective_blocks);
  const uint64_t* slots = meta.slots;
  uint64_t nslots = pmem::kMetaSlots;
  uint32_t link = meta.header.log_head;
  auto block = std::make_unique<pmem::LogBlock>();
  LogPos pos = 0;
  uint64_t first = 0;  // first slot of the current block to replay
  if (meta.header.checkpoint != 0) {
    // Compacted: everything before the checkpoint's position is in the checkpoint; the blocks that
    // held it may have been freed and reused, so they are never read.
    std::string bad = LoadCheckpoint(resolver, fd, meta.header.checkpoint, info, block.get());
    if (!bad.empty()) {
      info->damage = InfoDamage{0, bad};
      return;
    }
    pos = info->checkpoint.position;
    slots = block->slots;
    nslots = pmem::kLogSlots;
    link = block->trailer.next;
    first = (pos - pmem::kMetaSlots) % pmem::kLogSlots;
  }
  for (;;) {
    // Replay this block's slots.
    uint64_t i = first;
    first = 0;
    for (; i < nslots; ++i, ++pos) {
      if (slots[i] == 0) break;
      auto c = DecodeCommit(slots[i], info->effective_blocks, resolver, /*verify_crc=*/true);
      if (!c.ok()) {
        info->damage = InfoDamage{pos, c.status().context()};
        break;
      }
      Apply(*c, pos, info);
      if (!info->chain.empty()) info->chain.back().entries++;
    }
    if (i < nslots) {  // the tail (or damage) is in this block
      info->tail = pos;
      if (!info->damage) {
        for (uint64_t j = i + 1; j < nslots; ++j) info->stale_past_tail += slots[j] != 0;
        // Log blocks still linked after the tail's block: recovery unlinks them.
        pmem::LogBlock probe;
        for (uint32_t next = link, k = static_cast<uint32_t>(info->chain_first + info->chain.size());
             next != 0 && k < 1u << 20; ++k) {
          if (!CheckLogBlock(fd, info->effective_blocks, next, k, &probe).empty()) break;
          info->stale_blocks_linked++;
          next = probe.trailer.next;
        }
      }
      return;
    }
    // Every slot of this block is used: the log continues in the next log block, if linked.
    if (link == 0) {
      info->tail = pos;
      return;
    }
    if (info->chain.size() >= max_log_blocks) {
      info->tail = pos;
      info->walk_cut = true;
      return;
    }
    auto k = static_cast<uint32_t>(info->chain_first + info->chain.size());
    std::string bad = CheckLogBlock(fd, info->effective_blocks, link, k, block.get());
    if (!bad.empty()) {
      info->tail = pos;
      info->damage = InfoDamage{pos, bad};
      return;
    }
    info->chain.push_back({link, block->trailer.seq, 0, pos});
    slots = block->slots;  // the previous block's slots are done with: the buffer is reused
    nslots = pmem::kLogSlots;
    link = block->trailer.next;
  }
}

}  // namespace

const uint8_t* PreadResolver::Resolve(LogicalBlock block, uint32_t count) {
  if (count == 0 || uint64_t{block.value()} + count > num_blocks_) return nullptr;
  auto key = std::make_pair(block.value(), count);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second.get();
  uint64_t bytes = uint64_t{count} * kBlockSize;
  if (bytes > (64u << 20)) return nullptr;  // a record of more than 64 MiB is damage; not read
  std::unique_ptr<uint8_t[]> buf(new uint8_t[bytes]());
  // Short reads leave zeros: past the end of an unfinished grow, as the engine would see it.
  if (pread(fd_, buf.get(), bytes, static_cast<off_t>(block.ToBytes())) < 0) return nullptr;
  return cache_.emplace(key, std::move(buf)).first->second.get();
}

Result<FileInfo> InspectFile(const std::string& path) {
  FileInfo info;
  info.path = path;
  // Read-write when allowed, only to probe the open lock: while we hold it exclusively nobody can
  // open (and change) the file, so the scan sees it whole. Nothing is ever written.
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  bool exclusive = false;
  if (fd >= 0) {
    auto locked = TryLockExclusive(fd);
    exclusive = locked.ok() && *locked;
    info.in_use = !exclusive;
  } else {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return Status::Error(errno, "open");
  }
  struct Closer {
    int fd;
    bool exclusive;
    ~Closer() {
      if (exclusive) Unlock(fd);
      close(fd);
    }
  } closer{fd, exclusive};

  auto result = InspectOpenFile(fd, path);
  if (result.ok()) result->in_use = info.in_use;
  return result;
}

Result<FileInfo> InspectOpenFile(int fd, const std::string& path, uint32_t max_log_blocks) {
  FileInfo info;
  info.path = path;
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::Error(errno, "fstat");
  if (S_ISDIR(st.st_mode)) return Status::Error(EISDIR, "a directory");
  if (!S_ISREG(st.st_mode)) return Status::Error(kNotTernFile, "not a regular file");
  info.dev = st.st_dev;
  info.ino = st.st_ino;
  info.file_bytes = static_cast<uint64_t>(st.st_size);
  if (info.file_bytes < kBlockSize || info.file_bytes % kBlockSize != 0) {
    return Status::Error(kNotTernFile, "not a tern file");
  }
  info.num_blocks = info.file_bytes / kBlockSize;
  info.effective_blocks = BackingBlocksFor(info.num_blocks);
  auto meta = std::make_unique<pmem::MetaBlock>();
  if (pread(fd, meta.get(), sizeof(*meta), 0) != static_cast<ssize_t>(sizeof(*meta))) return Status::Error(EIO, "read meta block");
  info.header = meta->header;
  const pmem::MetaHeader& h = meta->header;
  if (h.magic != pmem::kMetaMagic) return Status::Error(kNotTernFile, "not a tern file");
  if (h.format_version != pmem::kFormatVersion) {
    info.header_problem = "unknown format version " + std::to_string(h.format_version);
    return info;  // nothing else can be read with confidence
  }
  if (h.checksum != pmem::MetaChecksum(h)) {
    info.header_problem = "meta block checksum mismatch";
  } else if (h.flags != 0) {
    info.header_problem = "meta block has unknown flags";
  }
  WalkLog(fd, *meta, max_log_blocks, &info);
  return info;
}

namespace {

std::string Num(uint64_t v) { return std::to_string(v); }

}  // namespace

std::string FormatInfo(const FileInfo& info) {
  std::string out;
  auto line = [&](const char* key, const std::string& value) {
    char head[16];
    snprintf(head, sizeof(head), "%-11s ", key);
    out += head + value + "\n";
  };
  line("file", info.path + "  (" + Num(info.file_bytes) + " bytes, " + Num(info.num_blocks) + " blocks of 4096)" +
                   (info.in_use ? "  [open elsewhere: a snapshot]" : ""));
  char nonce[32];
  snprintf(nonce, sizeof(nonce), "%016llx", static_cast<unsigned long long>(info.header.nonce));
  line("format", "version " + Num(info.header.format_version) + ", nonce " + nonce + ", header " +
                     (info.header_problem.empty() ? "ok" : "DAMAGED: " + info.header_problem));
  if (info.header.format_version != pmem::kFormatVersion) return out;
  std::string log;
  if (info.checkpoint.block != 0) {
    const InfoCheckpoint& c = info.checkpoint;
    log = "checkpoint at position " + Num(c.position) + " (generation " + Num(c.generation) + ", " + Num(c.runs) +
          " runs, block " + Num(c.block) + "), then " + Num(info.tail - std::min(info.tail, c.position)) + " entries";
  } else {
    log = Num(info.tail) + " entries (" + Num(std::min<uint64_t>(info.tail, pmem::kMetaSlots)) + " in the meta block";
    if (!info.chain.empty()) {
      log += ", " + Num(info.tail - std::min<uint64_t>(info.tail, pmem::kMetaSlots)) + " in " + Num(info.chain.size()) +
             " log block" + (info.chain.size() == 1 ? "" : "s");
    }
    log += ")";
  }
  log += "; tail at position " + Num(info.tail);
  line("log", log);
  if (!info.chain.empty()) {
    std::string chain;
    for (size_t i = 0; i < info.chain.size(); ++i) {
      if (i == 8 && info.chain.size() > 10) {
        chain += " -> ... (" + Num(info.chain.size() - 9) + " more)";
        i = info.chain.size() - 1;
      }
      const InfoLogBlock& b = info.chain[i];
      chain += (i ? " -> " : "") + Num(b.block) + " (seq " + Num(b.seq) + ", " + Num(b.entries) + ")";
    }
    line("chain", chain);
  }
  if (info.damage) {
    line("DAMAGE", "at log position " + Num(info.damage->pos) + ": " + info.damage->cause +
                       " (the engine refuses this file; `tern fsck --repair` truncates the log there)");
  }
  if (info.stale_past_tail > 0 || info.stale_blocks_linked > 0) {
    line("past tail", Num(info.stale_past_tail) + " entries after the tail in its block, " +
                          Num(info.stale_blocks_linked) + " log blocks linked after it (never acknowledged; "
                          "the next first open drops them)");
  }
  const InfoEntryStats& s = info.entries;
  line("entries", "inline " + Num(s.inline_extend + s.inline_keep) + " (extend " + Num(s.inline_extend) +
                      ", keep size " + Num(s.inline_keep) + "), extended " + Num(s.ext_write + s.ext_truncate) +
                      " (write " + Num(s.ext_write) + ", truncate " + Num(s.ext_truncate) + ", " + Num(s.ext_runs) +
                      " runs)");
  line("per commit", "blocks mapped: 0: " + Num(s.blocks_hist[0]) + ", 1: " + Num(s.blocks_hist[1]) +
                         ", 2-4: " + Num(s.blocks_hist[2]) + ", 5-16: " + Num(s.blocks_hist[3]) +
                         ", 17-63: " + Num(s.blocks_hist[4]) + ", 64+: " + Num(s.blocks_hist[5]));
  uint64_t vblocks = BlocksFor(info.size);
  line("content", Num(info.size) + " bytes (" + Num(vblocks) + " blocks: " + Num(info.data_blocks()) +
                      " mapped, " + Num(vblocks > info.data_blocks() ? vblocks - info.data_blocks() : 0) +
                      " holes)");
  uint64_t used = 1 + info.log_blocks() + info.record_blocks.size() + info.checkpoint.blocks + info.data_blocks();
  line("blocks", "1 meta, " + Num(info.log_blocks()) + " log, " + Num(info.record_blocks.size()) + " record, " +
                     (info.checkpoint.blocks ? Num(info.checkpoint.blocks) + " checkpoint, " : std::string()) +
                     Num(info.data_blocks()) + " data, " +
                     (used <= info.num_blocks ? Num(info.num_blocks - used) : std::string("-")) + " free" +
                     (info.damage ? " (as far as the log could be read)" : ""));
  return out;
}

}  // namespace tern
