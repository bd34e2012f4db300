// Writes fuzz/corpus/: real tern files made through the engine, small enough to keep in git.
//   corpus/image/NAME       sparse images (sparse_image.h): block 0, log blocks, record blocks and
//                           the first data blocks; the rest reads as zeros
//   corpus/open_bytes/NAME  the file cut after its last metadata block (open grows it back), when
//                           that is under 100 KiB
// Usage: fuzz_make_corpus DIR (normally fuzz/corpus). Deterministic except for the format nonce.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "fuzz/sparse_image.h"
#include "lib/file.h"
#include "lib/info.h"

namespace tern::fuzz {
namespace {

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return v;
}

bool Write(File& f, uint64_t off, size_t n, uint8_t seed) {
  auto b = Bytes(n, seed);
  return f.Pwrite(b.data(), n, off).ok();
}

struct Seed {
  const char* name;
  std::function<bool(File&)> make;
  bool add_gap_entry = false;  // copy an entry past a gap after the tail (a crashed file)
};

std::vector<Seed> Seeds() {
  return {
      {"empty", [](File&) { return true; }},
      {"worked_example",
       [](File& f) {
         auto b = Bytes(100, 2);
         return Write(f, 0, 4096, 1) && f.Append(b.data(), b.size()).ok() && f.Truncate(1000).ok();
       }},
      {"mixed",
       [](File& f) {
         return Write(f, 0, 5000, 1) && Write(f, 3000, 5000, 2) && f.Truncate(4100).ok() && Write(f, 9000, 10, 3) &&
                f.Truncate(20000).ok() && Write(f, 8192, 4096, 4);
       }},
      {"big_write", [](File& f) { return Write(f, 4096, 70 * 4096, 5); }},
      {"sparse_far", [](File& f) { return Write(f, 1ull << 30, 10, 6) && Write(f, 4096, 4096, 7); }},
      {"log_block",
       [](File& f) {
         for (int i = 0; i < 600; ++i) {
           if (!Write(f, static_cast<uint64_t>(i % 5) * 100, 60, static_cast<uint8_t>(i))) return false;
         }
         return true;
       }},
      {"two_log_blocks",
       [](File& f) {
         for (int i = 0; i < 1100; ++i) {
           if (!Write(f, static_cast<uint64_t>(i % 3) * 8, 8, static_cast<uint8_t>(i))) return false;
         }
         return true;
       }},
      {"crashed_gap", [](File& f) { return Write(f, 0, 100, 1) && Write(f, 100, 100, 2) && Write(f, 4096, 4096, 3); },
       true},
  };
}

bool Emit(const std::string& dir, const std::string& name, const std::string& path) {
  auto info = InspectFile(path);
  if (!info.ok() || info->damage) return false;
  std::vector<uint32_t> keep = {0};
  for (const InfoLogBlock& b : info->chain) keep.push_back(b.block);
  for (const auto& [b, pos] : info->record_blocks) keep.push_back(b);
  int data = 0;
  for (const auto& [v, m] : info->table) {
    if (data++ < 2) keep.push_back(m.lblock);
  }
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  std::map<uint32_t, Block> blocks;
  for (uint32_t b : keep) {
    Block block(kBlockSize);
    if (pread(fd, block.data(), kBlockSize, static_cast<off_t>(uint64_t{b} * kBlockSize)) !=
        static_cast<ssize_t>(kBlockSize)) {
      return false;
    }
    blocks[b] = block;
  }
  std::vector<uint8_t> sparse = SerializeChunks(blocks);
  WriteWholeFile(dir + "/image/" + name, sparse.data(), sparse.size());
  // The raw prefix up to the last metadata block (data blocks past it read as zeros after open).
  uint32_t last_meta = 0;
  for (const InfoLogBlock& b : info->chain) last_meta = std::max(last_meta, b.block);
  for (const auto& [b, pos] : info->record_blocks) last_meta = std::max(last_meta, b);
  uint64_t raw_bytes = (uint64_t{last_meta} + 1) * kBlockSize;
  if (raw_bytes <= 100 * 1024) {
    std::vector<uint8_t> raw(raw_bytes);
    if (pread(fd, raw.data(), raw.size(), 0) != static_cast<ssize_t>(raw.size())) return false;
    WriteWholeFile(dir + "/open_bytes/" + name, raw.data(), raw.size());
  }
  close(fd);
  printf("%-16s image %6zu bytes (%zu blocks)%s\n", name.c_str(), sparse.size(), blocks.size(),
         raw_bytes <= 100 * 1024 ? (", open_bytes " + std::to_string(raw_bytes) + " bytes").c_str() : "");
  return true;
}

}  // namespace
}  // namespace tern::fuzz

int main(int argc, char** argv) {
  using namespace tern::fuzz;
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_make_corpus DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  mkdir((dir + "/image").c_str(), 0755);
  mkdir((dir + "/open_bytes").c_str(), 0755);
  std::string path = ScratchFile();
  for (const Seed& s : Seeds()) {
    unlink(path.c_str());
    {
      auto f = tern::File::Open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
      if (!f.ok() || !s.make(**f) || !(*f)->Fsync().ok()) {
        fprintf(stderr, "seed %s: engine failed\n", s.name);
        return 1;
      }
    }
    if (s.add_gap_entry) {  // slot 5 = copy of slot 1, with slots 3-4 free: an unacknowledged entry
      int fd = open(path.c_str(), O_RDWR);
      uint64_t entry = 0;
      if (pread(fd, &entry, 8, 64 + 8) != 8 || pwrite(fd, &entry, 8, 64 + 5 * 8) != 8) return 1;
      close(fd);
    }
    if (!Emit(dir, s.name, path)) {
      fprintf(stderr, "seed %s: cannot emit\n", s.name);
      return 1;
    }
  }
  return 0;
}
