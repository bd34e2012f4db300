// shim_probe mmap-pins: a tern mapping shows the file's own blocks (the backing file is mapped
// where they lie) and keeps showing them while the file is rewritten, until munmap. Only
// meaningful under tern: on the kernel a shared mapping follows the rewrites.
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/shim/shim_probe.h"

namespace shim_probe {
namespace {

constexpr size_t kBlock = 4096;
constexpr size_t kBytes = 64 * kBlock + 100;  // a partial last block: copied, not mapped

std::vector<char> Bytes(int seed, size_t n) {
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>('a' + (i * 7 + static_cast<size_t>(seed) * 13) % 26);
  return v;
}

bool WriteAt(int fd, const std::vector<char>& v, off_t off) {
  return pwrite(fd, v.data(), v.size(), off) == static_cast<ssize_t>(v.size());
}

// The path /proc/self/maps gives for the mapping that starts at p ("" for anonymous memory).
std::string MappedPath(const void* p) {
  FILE* maps = fopen("/proc/self/maps", "r");
  if (maps == nullptr) return "<no maps>";
  char line[4096];
  std::string path;
  while (fgets(line, sizeof(line), maps) != nullptr) {
    if (strtoull(line, nullptr, 16) != reinterpret_cast<uintptr_t>(p)) continue;
    const char* slash = strchr(line, '/');
    if (slash != nullptr) path.assign(slash, strcspn(slash, "\n"));
    break;
  }
  fclose(maps);
  return path;
}

bool EndsWith(const std::string& s, const char* tail) {
  size_t n = strlen(tail);
  return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
}

// Overwrites, truncates and rewrites the file, fsyncing each time: every block the mapping showed
// is superseded, and freed blocks would be reused by the next round.
bool Churn(int fd, int seed) {
  for (int round = 0; round < 6; ++round) {
    if (!WriteAt(fd, Bytes(seed + round, kBytes), 0) || fsync(fd) != 0) return false;
    if (ftruncate(fd, 0) != 0 || !WriteAt(fd, Bytes(seed + round + 50, 2 * kBytes), 0) || fsync(fd) != 0) return false;
  }
  return true;
}

}  // namespace

int MmapPins() {
  // The writer's descriptor; shared mappings come from a read-only one (tern refuses them of a
  // descriptor open for writing, whose owner would expect them to follow its writes).
  int fd = open("pinned", O_RDWR | O_CREAT | O_TRUNC, 0644);
  std::vector<char> first = Bytes(1, kBytes);
  if (fd < 0 || !WriteAt(fd, first, 0) || fsync(fd) != 0) return 1;
  int ro = open("pinned", O_RDONLY);
  auto* p = static_cast<char*>(mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, ro, 0));
  if (p == MAP_FAILED) return 1;
  printf("maps the file itself: %d\n", EndsWith(MappedPath(p), "/pinned"));
  printf("content: %d\n", memcmp(p, first.data(), kBytes) == 0);
  Say("mprotect writable", mprotect(p, kBlock, PROT_READ | PROT_WRITE));
  if (!Churn(fd, 10)) return 1;
  printf("unchanged after rewrites: %d\n", memcmp(p, first.data(), kBytes) == 0);

  pid_t pid = fork();
  if (pid == 0) {
    munmap(p, kBytes);  // the child's copy of the mapping: the parent's pin must stay
    fsync(fd);          // (where the child would free blocks it wrongly thought its own)
    _exit(0);
  }
  waitpid(pid, nullptr, 0);
  if (!Churn(fd, 20)) return 1;
  printf("unchanged after a child's munmap: %d\n", memcmp(p, first.data(), kBytes) == 0);

  munmap(p, 32 * kBlock);
  if (!Churn(fd, 30)) return 1;
  printf("rest unchanged after a partial munmap: %d\n",
         memcmp(p + 32 * kBlock, first.data() + 32 * kBlock, kBytes - 32 * kBlock) == 0);
  munmap(p + 32 * kBlock, kBytes - 32 * kBlock);

  // A private writable mapping: also the file's blocks, stores stay private.
  if (ftruncate(fd, 0) != 0 || !WriteAt(fd, first, 0) || fsync(fd) != 0) return 1;
  auto* q = static_cast<char*>(mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  if (q == MAP_FAILED) return 1;
  printf("private maps the file itself: %d\n", EndsWith(MappedPath(q), "/pinned"));
  q[0] = '#';
  q[kBytes - 1] = '#';
  char c0 = 0, c1 = 0;
  printf("file unchanged by private stores: %d\n", pread(fd, &c0, 1, 0) == 1 && pread(fd, &c1, 1, kBytes - 1) == 1 &&
                                                      c0 == first[0] && c1 == first[kBytes - 1]);
  munmap(q, kBytes);

  // A file in more pieces than a mapping may take (every other block rewritten elsewhere) is
  // copied instead, with the same content.
  {
    int g = open("fragmented", O_RDWR | O_CREAT | O_TRUNC, 0644);
    std::vector<char> content = Bytes(7, 200 * kBlock);
    if (g < 0 || !WriteAt(g, content, 0) || fsync(g) != 0) return 1;
    for (size_t b = 0; b < 200; b += 2) {
      std::vector<char> block = Bytes(8 + static_cast<int>(b), kBlock);
      std::copy(block.begin(), block.end(), content.begin() + static_cast<std::ptrdiff_t>(b * kBlock));
      if (!WriteAt(g, block, static_cast<off_t>(b * kBlock))) return 1;
    }
    int g_ro = open("fragmented", O_RDONLY);
    auto* m = static_cast<char*>(mmap(nullptr, content.size(), PROT_READ, MAP_SHARED, g_ro, 0));
    close(g_ro);  // the mapping stays
    if (m == MAP_FAILED) return 1;
    printf("fragmented maps the file itself: %d\n", EndsWith(MappedPath(m), "/fragmented"));
    printf("fragmented content: %d\n", memcmp(m, content.data(), content.size()) == 0);
    munmap(m, content.size());
    close(g);
  }

  // Pins end at munmap: map, supersede and unmap many times, and the file keeps its size bounded
  // (the test checks the backing file's size).
  // Every other round the mapping is replaced by an anonymous one (MAP_FIXED over it), which ends
  // its pin just as munmap does.
  for (int i = 0; i < 64; ++i) {
    auto* r = static_cast<char*>(mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, ro, 0));
    if (r == MAP_FAILED || !WriteAt(fd, Bytes(100 + i, kBytes), 0) || fsync(fd) != 0) return 1;
    if (r[0] != Bytes(99 + i, 1)[0] && i > 0) return 1;
    if (i % 2 == 0) {
      munmap(r, kBytes);
    } else if (mmap(r, kBytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != r) {
      return 1;  // left mapped: only the replacement can have ended the pin
    }
  }
  printf("done\n");
  close(ro);
  close(fd);
  return 0;
}

}  // namespace shim_probe
