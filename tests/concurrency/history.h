// The judge of the concurrency tests (file_concurrency_test,
// multi_process_test): writes whose every 8-byte word names the write and the
// word's own position, reads of any range, and the check that one serial order
// of all writes explains every read and the final content.
//
// Each write and read carries two tickets from one shared clock, taken before
// the call and after it returned (real time). What is checked:
//  - no read returns a word that no write produced at that position (garbage,
//  misplaced data) or a
//    write that had not started when the read ended;
//  - no write is half-visible: if a read shows write A over part of write X's
//  range while showing X
//    (or X must be visible, see below), then X committed before A. A write that
//    must be visible (it finished before the read started, or a later write of
//    its thread is visible) may not show initial zeros anywhere in the read;
//  - all those "X before A" facts, from every read and the final content,
//  together with each
//    thread's program order, are acyclic, and none contradicts real time (A
//    finished before X started). So one serial order of all writes explains
//    every read and the final file: the final content is the sequential replay
//    of the writes in that order.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace tern::test {

// The word write `id` stores at file offset `offset` (8-aligned).
uint64_t StampWord(uint32_t id, uint64_t offset);

// A random range for writer `thread` in a file of one shared region [0,
// shared_bytes) and one private region of private_bytes per writer after it:
// mostly the shared region, where writers race; block-aligned or only 8-byte
// aligned (partial blocks at either end).
std::pair<uint64_t, uint64_t> RandomWriteRange(std::mt19937_64& rng, int thread,
                                               uint64_t shared_bytes,
                                               uint64_t private_bytes);

struct WriteRec {
  uint32_t id =
      0;  // 1-based; 0 = the initial zeros. Ids of one thread are consecutive.
  int thread = 0;
  uint32_t seq = 0;
  uint64_t off = 0;
  uint64_t len = 0;
  uint64_t start = 0,
           end = 0;  // tickets taken before the call and after it returned
  bool Overlaps(uint64_t a, uint64_t b) const {
    return off < b && a < off + len;
  }
};

struct ReadRec {
  uint64_t off = 0;
  std::vector<uint8_t> data;
  uint64_t start = 0, end = 0;
};

// Everything that happened, and the checks over it.
class History {
 public:
  // `writes` indexed by id - 1; `threads` writer threads; the file has
  // `file_blocks` blocks.
  History(std::vector<WriteRec> writes, int threads, uint64_t file_blocks);

  const WriteRec& Write(uint32_t id) const { return writes_[id - 1]; }

  // Checks one snapshot of [off, off + data.size()). `visible` says, per
  // thread, the highest seq known to be committed (-1: none); it is extended
  // with what the snapshot shows.
  void CheckSnapshot(uint64_t off, const std::vector<uint8_t>& data,
                     std::vector<int64_t> visible, uint64_t read_end_ticket,
                     const std::string& what);
  // Per thread, the highest seq of a write that finished before `ticket` (-1:
  // none).
  std::vector<int64_t> FinishedBefore(uint64_t ticket) const;
  // Program order plus every observed "before" edge must be acyclic.
  void CheckSerializable();

  size_t edges() const { return edges_.size(); }
  const std::vector<std::string>& failures() const { return failures_; }

 private:
  void Fail(std::string s);
  std::string Describe(uint32_t id) const;

  std::vector<WriteRec> writes_;
  int threads_;
  std::vector<std::vector<uint32_t>> by_block_;
  std::vector<uint64_t> stamp_;
  uint64_t current_stamp_ = 0;
  std::vector<std::pair<uint32_t, uint32_t>> edges_;
  std::vector<std::string> failures_;
};

}  // namespace tern::test
