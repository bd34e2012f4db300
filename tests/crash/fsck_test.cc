// tern info and tern fsck: what they report about healthy, crashed and damaged files, what repair
// drops, that a repaired file opens in the engine with the content of the log prefix it kept, and
// the commands' exit codes.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lib/checkpoint_format.h"
#include "lib/crc32c.h"
#include "lib/entry_format.h"
#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/fsck.h"
#include "lib/info.h"
#include "lib/log_block_format.h"
#include "lib/meta_block_format.h"
#include "pmem/log.h"
#include "tests/crash/scratch_dir.h"
#include "tests/crash/workload.h"
#include "tests/test_util.h"

namespace tern::tools {
int RunFsck(int argc, char** argv);
int RunInfo(int argc, char** argv);
}  // namespace tern::tools

namespace tern::crash {
namespace {

uint64_t ReadU64(const std::string& path, uint64_t off) {
  uint64_t v = 0;
  int fd = open(path.c_str(), O_RDONLY);
  EXPECT_EQ(pread(fd, &v, 8, static_cast<off_t>(off)), 8);
  close(fd);
  return v;
}

template <typename T>
void WriteAt(const std::string& path, uint64_t off, T v) {
  int fd = open(path.c_str(), O_WRONLY);
  ASSERT_EQ(pwrite(fd, &v, sizeof(v), static_cast<off_t>(off)), static_cast<ssize_t>(sizeof(v)));
  close(fd);
}

uint64_t SlotOffset(LogPos pos) { return offsetof(pmem::MetaBlock, slots) + pos * 8; }

int RunCmd(int (*cmd)(int, char**), std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  fflush(stdout);
  return cmd(static_cast<int>(argv.size()), argv.data());
}

class FsckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogLevel(LogLevel::kOff);
    ASSERT_TRUE(dir_.ok());
    path_ = dir_.File("f.tern");
  }

  // Runs ops through the engine (each op also into the model history), then closes the file.
  void Make(const std::vector<Op>& ops) {
    auto f = File::Open(path_, O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(f.ok());
    history_.push_back(model_.content());
    for (const Op& op : ops) {
      std::vector<uint8_t> bytes(op.length);
      uint64_t at = op.kind == OpKind::kAppend ? model_.content().size() : op.offset;
      for (uint64_t i = 0; i < op.length; ++i) bytes[i] = OpByte(op.seed, at + i);
      if (op.kind == OpKind::kTruncate) {
        ASSERT_TRUE((*f)->Truncate(op.offset).ok());
      } else if (op.kind == OpKind::kFsync) {
        ASSERT_TRUE((*f)->Fsync().ok());
      } else if (op.kind == OpKind::kCompact) {
        auto stats = (*f)->core().Compact();
        ASSERT_TRUE(stats.ok());
        ASSERT_GT(stats->checkpoint_runs, 0u);
      } else {
        ASSERT_TRUE((*f)->Pwrite(bytes.data(), bytes.size(), at).ok());
      }
      model_.Apply(op);
      history_.push_back(model_.content());
    }
    ASSERT_TRUE((*f)->Fsync().ok());
  }

  std::vector<uint8_t> EngineContent() {
    auto f = File::Open(path_, O_RDONLY);
    EXPECT_TRUE(f.ok()) << "engine refuses the file: errno " << f.status().err();
    if (!f.ok()) return {};
    auto size = (*f)->Size();
    std::vector<uint8_t> out(size.ok() ? *size : 0);
    if (!out.empty()) {
      EXPECT_TRUE((*f)->Pread(out.data(), out.size(), 0).ok());
    }
    return out;
  }

  int EngineOpenErrno() {
    auto f = File::Open(path_, O_RDWR);
    return f.ok() ? 0 : f.status().err();
  }

  ScratchDir dir_;
  std::string path_;
  FileModel model_;
  std::vector<std::vector<uint8_t>> history_;  // content after 0, 1, 2, ... ops
};

std::vector<Op> SomeOps(int n) {
  std::vector<Op> ops;
  for (int i = 0; i < n; ++i) {
    if (i % 4 == 3) {
      ops.push_back({OpKind::kTruncate, static_cast<uint64_t>(1000 * i + 123), 0, 0});
    } else {
      ops.push_back({OpKind::kWrite, static_cast<uint64_t>(i) * 3000, 5000, static_cast<uint64_t>(i + 1)});
    }
  }
  return ops;
}

// Block-aligned writes to fresh space far past everything: they supersede (free) nothing, so a log
// cut before them brings back exactly the earlier content.
std::vector<Op> FreshWrites(int n, uint64_t seed0) {
  std::vector<Op> ops;
  for (int i = 0; i < n; ++i) {
    ops.push_back({OpKind::kWrite, (256 + static_cast<uint64_t>(i)) * kBlockSize, kBlockSize, seed0 + static_cast<uint64_t>(i)});
  }
  return ops;
}

TEST_F(FsckTest, HealthyFileIsCleanAndDescribed) {
  Make(SomeOps(8));
  auto info = InspectFile(path_);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->tail, 8u);
  EXPECT_FALSE(info->damage.has_value());
  EXPECT_EQ(info->size, model_.content().size());
  EXPECT_EQ(info->entries.ext_truncate, 2u);
  EXPECT_EQ(info->entries.inline_extend + info->entries.inline_keep + info->entries.ext_write, 6u);
  std::string text = FormatInfo(*info);
  EXPECT_NE(text.find("8 entries"), std::string::npos) << text;
  EXPECT_NE(text.find("truncate 2"), std::string::npos) << text;
  auto r = CheckFile(path_);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->clean()) << FormatFsck(*r);
  EXPECT_EQ(RunCmd(tools::RunFsck, {"fsck", path_}), 0);
  EXPECT_EQ(RunCmd(tools::RunInfo, {"info", path_}), 0);
}

TEST_F(FsckTest, InvalidEntryIsFoundAndCutAndTheFileOpensAgain) {
  std::vector<Op> ops = SomeOps(6), fresh = FreshWrites(4, 100);
  ops.insert(ops.end(), fresh.begin(), fresh.end());
  Make(ops);
  WriteAt<uint64_t>(path_, SlotOffset(6), 0x4);  // tag 0 with other bits: a malformed entry
  EXPECT_EQ(EngineOpenErrno(), EUCLEAN);
  auto r = CheckFile(path_);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->clean());
  EXPECT_NE(r->problems[0].what.find("log position 6"), std::string::npos) << FormatFsck(*r);
  EXPECT_EQ(RunCmd(tools::RunFsck, {"fsck", path_}), 1);
  auto fixed = RepairFile(path_);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->entries_dropped, 4u);  // positions 6..9
  EXPECT_TRUE(fixed->after.clean()) << FormatFsck(fixed->after);
  ASSERT_FALSE(fixed->actions.empty());
  EXPECT_NE(fixed->actions[0].find("cut the log at position 6"), std::string::npos) << fixed->actions[0];
  EXPECT_TRUE(fixed->suspect_vblocks.empty());
  EXPECT_EQ(EngineContent(), history_[6]);
  EXPECT_EQ(RunCmd(tools::RunFsck, {"fsck", path_}), 0);
}

TEST_F(FsckTest, RepairNamesBlocksThatDroppedEntriesReused) {
  // Position 2 damaged; later overwrites freed the blocks position 1 mapped and reused them
  // (a superseded block is freed once the commit superseding it is durable: hence the fsyncs).
  Make({{OpKind::kWrite, 0, 2 * kBlockSize, 1}, {OpKind::kWrite, 0, 2 * kBlockSize, 2},
        {OpKind::kFsync, 0, 0, 0}, {OpKind::kWrite, 0, 2 * kBlockSize, 3},
        {OpKind::kFsync, 0, 0, 0}, {OpKind::kWrite, 0, 2 * kBlockSize, 4},
        {OpKind::kFsync, 0, 0, 0}, {OpKind::kWrite, 0, 2 * kBlockSize, 5}});
  WriteAt<uint64_t>(path_, SlotOffset(2), 0x4);
  auto fixed = RepairFile(path_);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->entries_dropped, 3u);
  EXPECT_TRUE(fixed->after.clean());
  EXPECT_FALSE(fixed->suspect_vblocks.empty());
  EXPECT_NE(fixed->actions.back().find("rebuilt from the log"), std::string::npos);
}

TEST_F(FsckTest, RecordChecksumMismatchIsCut) {
  std::vector<Op> ops = {{OpKind::kWrite, 0, 5000, 1}, {OpKind::kWrite, 9000, 100, 2}, {OpKind::kWrite, 20, 30, 3},
                         {OpKind::kTruncate, 50000, 0, 0}};
  std::vector<Op> fresh = FreshWrites(3, 100);
  ops.insert(ops.end(), fresh.begin(), fresh.end());
  Make(ops);
  // The truncate (up) at position 3 is an extended record: damage its new_size.
  uint64_t entry = ReadU64(path_, SlotOffset(3));
  auto p = pmem::DecodeExtended(entry);
  ASSERT_TRUE(p.has_value());
  WriteAt<uint64_t>(path_, p->block.ToBytes() + p->offset + offsetof(pmem::ExtRecordHeader, new_size), 77);
  EXPECT_EQ(EngineOpenErrno(), EUCLEAN);
  auto fixed = RepairFile(path_);
  ASSERT_TRUE(fixed.ok());
  EXPECT_TRUE(fixed->after.clean());
  EXPECT_EQ(EngineContent(), history_[3]);
}

TEST_F(FsckTest, DoubleMappingIsFoundAndTheLaterEntryCut) {
  Make(SomeOps(3));  // blocks written; then map virtual block 100 onto a block already mapped
  auto info = InspectFile(path_);
  ASSERT_TRUE(info.ok());
  uint32_t used = info->table.begin()->second.lblock;
  WriteAt<uint64_t>(path_, SlotOffset(3), pmem::EncodeInline({VirtualBlock(100), LogicalBlock(used), 1, true}));
  auto r = CheckFile(path_);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->problems.size(), 1u) << FormatFsck(*r);
  EXPECT_NE(r->problems[0].what.find("used twice"), std::string::npos);
  EXPECT_EQ(EngineOpenErrno(), 0) << "the engine does not check space; fsck does";
  auto fixed = RepairFile(path_);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->entries_dropped, 1u);
  EXPECT_TRUE(fixed->after.clean());
  EXPECT_EQ(EngineContent(), history_[3]);
}

TEST_F(FsckTest, BadLogBlockIsUnlinked) {
  // Room for every write: the blocks the dropped entries superseded must not have been reused,
  // which a writer short of blocks does once it has made its log durable.
  test::CreateRoomyFile(path_, 2u << 20);
  std::vector<Op> ops;
  for (int i = 0; i < 504; ++i) ops.push_back({OpKind::kWrite, static_cast<uint64_t>(i % 7) * 100, 50, static_cast<uint64_t>(i + 1)});
  std::vector<Op> fresh = FreshWrites(16, 1000);
  ops.insert(ops.end(), fresh.begin(), fresh.end());
  Make(ops);
  auto info = InspectFile(path_);
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->chain.size(), 1u);
  EXPECT_EQ(info->tail, 520u);
  uint64_t trailer = uint64_t{info->chain[0].block} * kBlockSize + offsetof(pmem::LogBlock, trailer);
  WriteAt<uint32_t>(path_, trailer + offsetof(pmem::LogBlockTrailer, seq), 5);
  EXPECT_EQ(EngineOpenErrno(), EUCLEAN);
  auto fixed = RepairFile(path_);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->entries_dropped, 16u);
  EXPECT_TRUE(fixed->after.clean());
  EXPECT_EQ(EngineContent(), history_[504]);
}

TEST_F(FsckTest, CompactedFileIsReadFromItsCheckpoint) {
  std::vector<Op> ops;
  // Compaction needs the log past the meta block and its first log block (1014 entries).
  for (int i = 0; i < 1100; ++i) ops.push_back({OpKind::kWrite, static_cast<uint64_t>(i % 9) * 300, 64, static_cast<uint64_t>(i + 1)});
  ops.push_back({OpKind::kCompact, 0, 0, 0});
  std::vector<Op> fresh = FreshWrites(50, 5000);
  ops.insert(ops.end(), fresh.begin(), fresh.end());
  Make(ops);
  auto info = InspectFile(path_);
  ASSERT_TRUE(info.ok());
  ASSERT_NE(info->checkpoint.block, 0u);
  EXPECT_EQ(info->tail, 1150u);
  EXPECT_FALSE(info->damage.has_value()) << info->damage->cause;
  EXPECT_EQ(info->size, model_.content().size());
  EXPECT_NE(FormatInfo(*info).find("checkpoint at position"), std::string::npos) << FormatInfo(*info);
  auto r = CheckFile(path_);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->clean()) << FormatFsck(*r);
  EXPECT_EQ(EngineContent(), model_.content());

  // An entry after the checkpoint: cut there, as without one.
  const InfoLogBlock& b = info->chain[info->ChainSlot(1120)];
  WriteAt<uint64_t>(path_, uint64_t{b.block} * kBlockSize + (1120 - pmem::kMetaSlots) % pmem::kLogSlots * 8, 0x4);
  EXPECT_EQ(EngineOpenErrno(), EUCLEAN);
  auto fixed = RepairFile(path_);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->entries_dropped, 30u);
  EXPECT_TRUE(fixed->after.clean()) << FormatFsck(fixed->after);
  EXPECT_EQ(EngineContent(), history_[1121]);  // 1120 entries and the compaction

  // The checkpoint itself: reported, not repairable by cutting.
  WriteAt<uint8_t>(path_, uint64_t{info->checkpoint.block} * kBlockSize + 60, 0x5A);
  auto damaged = CheckFile(path_);
  ASSERT_TRUE(damaged.ok());
  ASSERT_FALSE(damaged->clean());
  EXPECT_NE(damaged->problems[0].what.find("checkpoint"), std::string::npos) << FormatFsck(*damaged);
  auto refused = RepairFile(path_);
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->after.clean());
}

// Runs out of vblock order in a checkpoint whose checksum is right: the engine refuses to open it,
// and info and fsck call it damaged with the engine's words (one check, lib/checkpoint_check.h).
TEST_F(FsckTest, CheckpointRunsOutOfOrderAreDamageToTheToolsAsToTheEngine) {
  std::vector<Op> ops;
  for (uint64_t v = 0; v < 6; v += 2) ops.push_back({OpKind::kWrite, v * kBlockSize, kBlockSize, v + 1});  // 3 runs
  for (int i = 0; i < 1100; ++i) ops.push_back({OpKind::kWrite, 64, 64, static_cast<uint64_t>(i + 10)});
  ops.push_back({OpKind::kCompact, 0, 0, 0});
  Make(ops);
  auto info = InspectFile(path_);
  ASSERT_TRUE(info.ok());
  ASSERT_FALSE(info->damage.has_value()) << info->damage->cause;
  ASSERT_GE(info->checkpoint.runs, 2u);

  // Swap the first two runs and seal the record again.
  uint64_t at = uint64_t{info->checkpoint.block} * kBlockSize;
  std::vector<uint8_t> record(pmem::CheckpointBytes(info->checkpoint.runs));
  int fd = open(path_.c_str(), O_RDWR);
  ASSERT_EQ(pread(fd, record.data(), record.size(), static_cast<off_t>(at)), static_cast<ssize_t>(record.size()));
  pmem::ExtRun runs[2];
  memcpy(runs, record.data() + sizeof(pmem::CheckpointHeader), sizeof(runs));
  std::swap(runs[0], runs[1]);
  memcpy(record.data() + sizeof(pmem::CheckpointHeader), runs, sizeof(runs));
  pmem::CheckpointHeader h;
  memcpy(&h, record.data(), sizeof(h));
  h.crc = 0;
  memcpy(record.data(), &h, sizeof(h));
  h.crc = Crc32c(record.data(), record.size());
  memcpy(record.data(), &h, sizeof(h));
  ASSERT_EQ(pwrite(fd, record.data(), record.size(), static_cast<off_t>(at)), static_cast<ssize_t>(record.size()));
  close(fd);

  EXPECT_EQ(EngineOpenErrno(), EUCLEAN);
  auto damaged = InspectFile(path_);
  ASSERT_TRUE(damaged.ok());
  ASSERT_TRUE(damaged->damage.has_value());
  EXPECT_EQ(damaged->damage->cause, "checkpoint runs out of order");
  auto checked = CheckFile(path_);
  ASSERT_TRUE(checked.ok());
  ASSERT_FALSE(checked->clean());
  EXPECT_NE(checked->problems[0].what.find("checkpoint runs out of order"), std::string::npos) << FormatFsck(*checked);
}

TEST_F(FsckTest, StrayBytesPastTheEndAreZeroed) {
  Make({{OpKind::kWrite, 0, 5000, 1}});
  auto info = InspectFile(path_);
  ASSERT_TRUE(info.ok());
  uint32_t last = info->table.at(1).lblock;
  WriteAt<uint8_t>(path_, uint64_t{last} * kBlockSize + 4000, 0xAB);
  auto r = CheckFile(path_);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->clean());
  auto fixed = RepairFile(path_);
  ASSERT_TRUE(fixed.ok());
  EXPECT_TRUE(fixed->after.clean());
  EXPECT_EQ(fixed->entries_dropped, 0u);
  EXPECT_EQ(EngineContent(), history_[1]);
}

TEST_F(FsckTest, EntriesPastTheTailAreANoteNotAProblem) {
  Make(SomeOps(5));
  WriteAt<uint64_t>(path_, SlotOffset(9), ReadU64(path_, SlotOffset(1)));  // a gap, then an entry
  auto r = CheckFile(path_);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->clean()) << FormatFsck(*r);
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_NE(r->notes[0].find("1 entries after the log tail"), std::string::npos) << r->notes[0];
}

TEST_F(FsckTest, HeaderDamageIsReportedNotRepaired) {
  Make(SomeOps(2));
  WriteAt<uint32_t>(path_, offsetof(pmem::MetaHeader, flags), 1);
  auto r = CheckFile(path_);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->clean());
  auto fixed = RepairFile(path_);
  EXPECT_EQ(fixed.status().err(), EUCLEAN);
  EXPECT_EQ(RunCmd(tools::RunFsck, {"fsck", "--repair", path_}), 1);
}

TEST_F(FsckTest, RepairRefusesAFileThatIsOpen) {
  Make(SomeOps(2));
  auto f = File::Open(path_, O_RDWR);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(RepairFile(path_).status().err(), EBUSY);
  auto info = InspectFile(path_);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->in_use);
}

TEST_F(FsckTest, TreeWalkSkipsOtherFilesAndExitCodesHold) {
  Make(SomeOps(3));
  int fd = open(dir_.File("plain.txt").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_EQ(write(fd, "hello", 5), 5);
  close(fd);
  EXPECT_EQ(InspectFile(dir_.File("plain.txt")).status().err(), kNotTernFile);
  EXPECT_EQ(RunCmd(tools::RunFsck, {"fsck", dir_.path()}), 0);
  EXPECT_EQ(RunCmd(tools::RunFsck, {"fsck"}), 2);
  EXPECT_EQ(RunCmd(tools::RunFsck, {"fsck", "--bogus", path_}), 2);
  EXPECT_EQ(RunCmd(tools::RunInfo, {"info"}), 2);
  EXPECT_EQ(RunCmd(tools::RunInfo, {"info", dir_.File("plain.txt")}), 1);
  WriteAt<uint64_t>(path_, SlotOffset(1), 0x4);
  EXPECT_EQ(RunCmd(tools::RunFsck, {"fsck", "-q", dir_.path()}), 1);
  EXPECT_EQ(RunCmd(tools::RunFsck, {"fsck", "--repair", dir_.path()}), 0);
  EXPECT_EQ(RunCmd(tools::RunFsck, {"fsck", dir_.path()}), 0);
}

}  // namespace
}  // namespace tern::crash
