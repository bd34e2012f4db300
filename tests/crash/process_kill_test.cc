// Process crashes: a writer process is killed with SIGKILL at random moments, many times; after
// each kill the file must reopen with every completed write whole, the one write that was in flight
// either whole or absent (never torn), nothing else changed, and it must take further writes.
//
// The writer is this binary re-executed with --kill-child (a fresh process, nothing inherited from
// the test). It performs a deterministic sequence of operations numbered from a start sequence
// number; op n is, by a hash of n, an aligned overwrite of a 2-block slot, an unaligned overwrite of
// a 3001-byte slot that straddles blocks, or an append of 24..9023 bytes. Every op writes a
// self-checking record (tests/record.h) of writer 0 and sequence number n. After
// each op returns, the child reports n on a pipe; so the parent knows every completed op, and that
// at most op C+1 (C = last reported) was in flight.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lib/file.h"
#include "lib/file_core.h"
#include "lib/layout_constants.h"
#include "tests/process_util.h"
#include "tests/record.h"
#include "tests/test_util.h"

namespace tern {
namespace {

constexpr uint32_t kSlots = 16;
constexpr uint64_t kAlignedLen = 2 * kBlockSize;
constexpr uint64_t kAlignedBase = 0;  // slots [0, 128 KiB)
constexpr uint64_t kUnalignedLen = 3001;
constexpr uint64_t kUnalignedBase = kSlots * kAlignedLen + 100;  // odd offsets, straddling blocks
constexpr uint64_t kAppendBase = 192 * 1024;  // initial size; appends land after it
constexpr int kRounds = 60;

enum class OpKind { kAligned, kUnaligned, kAppend };

uint64_t Mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct Op {
  uint64_t seq;
  OpKind kind;
  uint32_t slot;  // aligned / unaligned
  uint64_t len;

  explicit Op(uint64_t n) : seq(n) {
    uint64_t h = Mix(n * 0x9E3779B97F4A7C15ull);
    kind = static_cast<OpKind>(h % 3);
    slot = static_cast<uint32_t>((h >> 8) % kSlots);
    len = kind == OpKind::kAligned ? kAlignedLen
          : kind == OpKind::kUnaligned ? kUnalignedLen
                                       : test::kRecordHeaderBytes + (h >> 20) % 9000;
  }
  uint64_t SlotOffset() const {
    return kind == OpKind::kAligned ? kAlignedBase + slot * kAlignedLen : kUnalignedBase + slot * kUnalignedLen;
  }
  std::vector<uint8_t> Bytes() const { return test::MakeRecord(0, seq, len); }
};

// The child: performs ops start, start+1, ... and reports each completed one on fd `ack`.
int ChildMain(const char* path, uint64_t start, int ack) {
  auto r = File::Open(path, O_RDWR);
  if (!r.ok()) return 10;
  File& f = **r;
  for (uint64_t n = start; n < start + 100000; ++n) {
    Op op(n);
    std::vector<uint8_t> bytes = op.Bytes();
    if (op.kind == OpKind::kAppend) {
      if (!f.Append(bytes.data(), bytes.size()).ok()) return 11;
    } else {
      auto w = f.Pwrite(bytes.data(), bytes.size(), op.SlotOffset());
      if (!w.ok() || *w != bytes.size()) return 12;
    }
    if (n % 64 == 0 && !f.Fsync().ok()) return 13;
    if (write(ack, &n, sizeof(n)) != sizeof(n)) return 14;
  }
  return 0;
}

// What the parent knows the file holds.
struct Model {
  uint64_t slot_seq[2][kSlots] = {};  // last committed op per slot (0: never written)
  std::vector<uint64_t> appends;      // committed append ops, in order
  uint64_t AppendEnd() const {
    uint64_t end = kAppendBase;
    for (uint64_t n : appends) end += Op(n).len;
    return end;
  }
};

class ProcessKillTest : public ::testing::Test {
 protected:
  // Re-executes this binary as the writer child; returns its pid. `ack_fd` is the pipe's write end.
  pid_t SpawnChild(uint64_t start, int ack_fd) {
    return test::SpawnSelf({"--kill-child", path_, std::to_string(start), std::to_string(ack_fd)});
  }

  // Checks the file against the model with op `in_flight` maybe committed; updates the model.
  void VerifyAndResolve(const Model& before, uint64_t in_flight, Model* after, int round) {
    SCOPED_TRACE("round " + std::to_string(round) + ", op in flight " + std::to_string(in_flight));
    std::unique_ptr<File> opened;
    if (held_ == nullptr) {  // the first opener after the crash: recovery runs here
      auto r = File::Open(path_, O_RDWR);
      ASSERT_TRUE(r.ok()) << "reopen after kill: " << test::Describe(r.status());
      opened = std::move(r).value();
    }
    File& f = held_ != nullptr ? *held_ : *opened;
    auto content = test::ReadAll(f);
    ASSERT_TRUE(content.ok()) << test::Describe(content.status());
    const std::vector<uint8_t>& c = *content;
    *after = before;
    Op flying(in_flight);

    // Slots: the last committed record, or (only the slot in flight) the in-flight one.
    for (int kind = 0; kind < 2; ++kind) {
      for (uint32_t s = 0; s < kSlots; ++s) {
        Op probe(1);
        probe.kind = kind == 0 ? OpKind::kAligned : OpKind::kUnaligned;
        probe.slot = s;
        probe.len = kind == 0 ? kAlignedLen : kUnalignedLen;
        uint64_t off = probe.SlotOffset();
        ASSERT_LE(off + probe.len, c.size());
        std::vector<uint8_t> want(probe.len, 0);
        if (uint64_t n = before.slot_seq[kind][s]; n != 0) want = Op(n).Bytes();
        bool is_old = memcmp(c.data() + off, want.data(), want.size()) == 0;
        bool targeted = flying.kind == probe.kind && flying.slot == s;
        if (!is_old && targeted) {
          std::vector<uint8_t> fresh = flying.Bytes();
          if (memcmp(c.data() + off, fresh.data(), fresh.size()) == 0) {
            after->slot_seq[kind][s] = in_flight;
            continue;
          }
        }
        EXPECT_TRUE(is_old) << (kind == 0 ? "aligned" : "unaligned") << " slot " << s
                            << " is torn or lost: expected op " << before.slot_seq[kind][s]
                            << (targeted ? " or the op in flight" : "");
      }
    }
    // Appends: the committed ones in order, then maybe the one in flight; the size ends exactly
    // there (a torn append would leave a size without its bytes, or bytes without their size).
    uint64_t end = before.AppendEnd();
    ASSERT_GE(c.size(), end) << "committed appends are missing";
    uint64_t at = kAppendBase;
    for (uint64_t n : before.appends) {
      std::vector<uint8_t> want = Op(n).Bytes();
      ASSERT_EQ(test::FirstDifference(c.data() + at, want.data(), want.size()), -1) << "append of op " << n;
      at += want.size();
    }
    if (c.size() != end) {
      ASSERT_EQ(flying.kind, OpKind::kAppend) << "size " << c.size() << ", expected " << end;
      ASSERT_EQ(c.size(), end + flying.len) << "torn append";
      std::vector<uint8_t> want = flying.Bytes();
      ASSERT_EQ(test::FirstDifference(c.data() + end, want.data(), want.size()), -1) << "torn append";
      after->appends.push_back(in_flight);
    }
    // Whatever the dead writer had allocated and not committed comes back: at recovery for a first
    // opener; for one that kept the file open, by reclaiming the dead process's slot and GC's full
    // sweep.
    if (held_ != nullptr) {
      auto dead = f.core().ReclaimDeadSlots();
      ASSERT_TRUE(dead.ok()) << test::Describe(dead.status());
      auto gc = f.core().Compact();
      ASSERT_TRUE(gc.ok()) << test::Describe(gc.status());
    }
    // In use and unreferenced, only the record arena of our own open may be (records of entries
    // the compaction above took into a checkpoint): it stays ours while the file is open.
    auto unreferenced = f.core().UnreferencedInUse();
    ASSERT_TRUE(unreferenced.ok()) << test::Describe(unreferenced.status());
    uint32_t own = UINT32_MAX;
    for (const ProcessInfo& p : f.core().AttachedProcesses()) {
      if (p.pid == static_cast<uint32_t>(getpid())) own = p.slot;
    }
    std::string leaked;
    for (auto [b, owner] : *unreferenced) {
      if (held_ != nullptr && owner == OwnerOf(own)) continue;
      leaked += " " + std::to_string(b) + "(owner " + std::to_string(owner) + ")";
    }
    EXPECT_EQ(leaked, "") << "blocks leaked by the killed writer";
  }

  void Run();

  test::TempDir dir_;
  std::unique_ptr<File> held_;  // the parent's own open of the file, when it keeps one
  std::string path_ = dir_.File("f");
};

void ProcessKillTest::Run() {
  Model model;
  uint64_t next = 1;
  std::mt19937_64 rng(12345);
  int kills = 0, mid_open = 0;
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = SpawnChild(next, fds[1]);
    ASSERT_GT(pid, 0);
    close(fds[1]);
    // Let the child complete a random number of ops (0: kill it while it opens and recovers), then
    // a random amount of spinning more, then kill it wherever it is.
    uint64_t wait_for = rng() % 4 == 0 ? 0 : rng() % 40;
    uint64_t last = next - 1;
    bool child_exited = false;
    for (uint64_t got = 0; got < wait_for; ++got) {
      uint64_t n;
      ssize_t k = read(fds[0], &n, sizeof(n));
      if (k != sizeof(n)) {
        child_exited = true;
        break;
      }
      last = n;
    }
    test::SpinFor(rng() % 200000);
    int status = test::KillAndReap(pid);
    ASSERT_NE(status, -1) << "waitpid";
    ASSERT_FALSE(WIFEXITED(status)) << "the writer stopped by itself with code " << WEXITSTATUS(status)
                                    << (child_exited ? " before the kill" : "");
    uint64_t n;
    while (read(fds[0], &n, sizeof(n)) == sizeof(n)) last = n;
    close(fds[0]);
    ++kills;
    if (last == next - 1) ++mid_open;

    // Ops up to `last` completed; op last+1 may or may not have landed.
    for (uint64_t m = next; m <= last; ++m) {
      Op op(m);
      if (op.kind == OpKind::kAppend) {
        model.appends.push_back(m);
      } else {
        model.slot_seq[op.kind == OpKind::kAligned ? 0 : 1][op.slot] = m;
      }
    }
    Model resolved;
    VerifyAndResolve(model, last + 1, &resolved, round);
    if (HasFailure()) return;
    model = resolved;
    next = last + 2;  // the child of the next round starts after the resolved op
  }
  RecordProperty("kills", kills);
  RecordProperty("kills_before_first_op", mid_open);

  // The file still takes writes and keeps them.
  held_.reset();
  std::vector<uint8_t> tail = test::Pattern(77, 0, 5000);
  Op probe(next);
  std::vector<uint8_t> bytes = probe.Bytes();
  {
    auto r = File::Open(path_, O_RDWR);
    TERN_ASSERT_OK(r);
    auto at = (*r)->Append(tail.data(), tail.size());
    TERN_ASSERT_OK(at);
    EXPECT_EQ(*at, model.AppendEnd());
    if (probe.kind != OpKind::kAppend) {
      auto w = (*r)->Pwrite(bytes.data(), bytes.size(), probe.SlotOffset());
      TERN_ASSERT_OK(w);
    }
  }
  auto again = File::Open(path_, O_RDONLY);
  TERN_ASSERT_OK(again);
  std::vector<uint8_t> got(tail.size());
  auto n = (*again)->Pread(got.data(), got.size(), model.AppendEnd());
  TERN_ASSERT_OK(n);
  EXPECT_EQ(got, tail);
  if (probe.kind != OpKind::kAppend) {
    std::vector<uint8_t> slot(bytes.size());
    auto m = (*again)->Pread(slot.data(), slot.size(), probe.SlotOffset());
    TERN_ASSERT_OK(m);
    EXPECT_EQ(slot, bytes);
  }
}

// Nobody else has the file open: each reopen after a kill is the first open and recovers the file.
TEST_F(ProcessKillTest, KilledWriterNeverLeavesATornWrite) {
  {
    auto r = File::Open(path_, O_RDWR | O_CREAT, 0644);
    TERN_ASSERT_OK(r);
    TERN_ASSERT_OK((*r)->Truncate(kAppendBase));
  }
  Run();
}

// The test process keeps the file open the whole time: the writer dies while another process has
// the file open (no recovery at open), and that process keeps reading, sees the same guarantees and
// takes back what the dead writer had allocated.
TEST_F(ProcessKillTest, KilledWriterWhileAnotherProcessHasTheFileOpen) {
  auto r = File::Open(path_, O_RDWR | O_CREAT, 0644);
  TERN_ASSERT_OK(r);
  held_ = std::move(r).value();
  TERN_ASSERT_OK(held_->Truncate(kAppendBase));
  Run();
}

}  // namespace
}  // namespace tern

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--kill-child") {
    tern::test::DieWithParent();
    return tern::ChildMain(argv[2], std::stoull(argv[3]), std::stoi(argv[4]));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
