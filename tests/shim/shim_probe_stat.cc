// shim_probe statmake / statcheck: what stat shows of files nobody has open. Under tern, a stat
// of a closed tern file reads the file's log with pread (shim/ops.cc, PeekLogicalStat) instead of
// opening it; an open fd's fstat asks the engine. `statmake` writes files of every shape the log
// can take (a size set by an extended record, holes, truncates both ways, appends in place, a log
// that runs over several log blocks, a file past the size that is read that way); `statcheck`, in
// a later process, prints for each what stat, lstat, fstatat and statx show against the fstat of
// an open descriptor. The kernel's run and tern's must print the same.
//
// shim_probe statrace: a child appends 128-byte records (fsync every 64) while the parent stats
// the file over and over: every size seen is one the file had (a whole number of records, never
// shrinking), no stat fails, and the last equals what the child wrote.
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "tests/shim/shim_probe.h"

namespace shim_probe {
namespace {

const char* const kStatFiles[] = {"empty", "odd", "aligned", "sparse", "grown", "shrunk", "appended", "overwritten", "large"};

void WriteAt(int fd, size_t n, off_t at, char fill) {
  std::string bytes(n, fill);
  if (pwrite(fd, bytes.data(), n, at) != static_cast<ssize_t>(n)) printf("pwrite failed: %s\n", ErrName(errno).c_str());
}

}  // namespace

int StatMake() {
  auto make = [](const char* name) { return open(name, O_RDWR | O_CREAT | O_TRUNC, 0644); };
  close(make("empty"));
  int fd = make("odd");
  WriteAt(fd, 5000, 0, 'o');
  close(fd);
  fd = make("aligned");
  WriteAt(fd, 8192, 0, 'a');
  close(fd);
  fd = make("sparse");
  WriteAt(fd, 100, 1 << 20, 's');
  close(fd);
  fd = make("grown");
  WriteAt(fd, 3000, 0, 'g');
  Say("ftruncate up", ftruncate(fd, 3 << 20));
  close(fd);
  fd = make("shrunk");
  WriteAt(fd, 200000, 0, 'h');
  Say("ftruncate down", ftruncate(fd, 10001));
  close(fd);
  fd = open("appended", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  for (int i = 0; i < 100; ++i) WriteAt(fd, 37, 0, static_cast<char>('a' + i % 26));
  close(fd);
  // More commits than the meta block's slots hold: the log runs on through log blocks.
  fd = make("overwritten");
  std::mt19937 rng(7);
  for (int i = 0; i < 1500; ++i) WriteAt(fd, 4096, static_cast<off_t>(rng() % 16) * 4096, static_cast<char>('0' + i % 10));
  WriteAt(fd, 10, 70000, 'e');
  close(fd);
  fd = make("large");  // past the size whose log a stat reads without opening the file
  WriteAt(fd, 9 << 20, 0, 'l');
  close(fd);
  return 0;
}

int StatCheck() {
  for (const char* name : kStatFiles) {
    struct stat by_name, by_lname, by_at, by_fd;
    struct statx by_statx;
    bool ok = stat(name, &by_name) == 0 && lstat(name, &by_lname) == 0 && fstatat(AT_FDCWD, name, &by_at, 0) == 0 &&
              statx(AT_FDCWD, name, 0, STATX_BASIC_STATS, &by_statx) == 0;
    int fd = open(name, O_RDONLY);
    ok = ok && fd >= 0 && fstat(fd, &by_fd) == 0;
    if (fd >= 0) close(fd);
    if (!ok) {
      printf("%s: %s\n", name, ErrName(errno).c_str());
      continue;
    }
    printf("%s: size %lld; as an open fd shows: size %d%d%d%d blocks %d%d%d%d\n", name,
           static_cast<long long>(by_name.st_size), by_name.st_size == by_fd.st_size,
           by_lname.st_size == by_fd.st_size, by_at.st_size == by_fd.st_size,
           by_statx.stx_size == static_cast<uint64_t>(by_fd.st_size), by_name.st_blocks == by_fd.st_blocks,
           by_lname.st_blocks == by_fd.st_blocks, by_at.st_blocks == by_fd.st_blocks,
           by_statx.stx_blocks == static_cast<uint64_t>(by_fd.st_blocks));
  }
  return 0;
}

int StatRace() {
  constexpr int kRecords = 20000;  // 2.5 MB: the backing file stays within what a stat reads itself
  constexpr off_t kRecord = 128;  // never across a page: the kernel grows a file a page at a time
  int fd = open("growing", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  if (fd < 0) return 2;
  close(fd);
  int ready[2];
  if (pipe(ready) != 0) return 2;
  pid_t child = fork();
  if (child < 0) return 2;
  if (child == 0) {
    int w = open("growing", O_WRONLY | O_APPEND);
    std::string record(kRecord, 'r');
    char c = 'g';
    if (w < 0 || write(ready[1], &c, 1) != 1) _exit(3);
    for (int i = 0; i < kRecords; ++i) {
      if (write(w, record.data(), record.size()) != kRecord) _exit(4);
      if (i % 64 == 63 && fsync(w) != 0) _exit(5);
    }
    close(w);
    _exit(0);
  }
  char c;
  if (read(ready[0], &c, 1) != 1) return 2;
  off_t last = 0;
  long stats = 0, failed = 0, shrank = 0, torn = 0;
  for (;;) {
    bool done = waitpid(child, nullptr, WNOHANG) == child;
    struct stat st;
    ++stats;
    if (stat("growing", &st) != 0) {
      ++failed;
    } else {
      shrank += st.st_size < last;
      torn += st.st_size % kRecord != 0;
      last = st.st_size;
    }
    if (done) break;
  }
  printf("stats failed %ld, sizes that shrank %ld, sizes between records %ld, last is the whole file %d, "
         "many stats %d\n", failed, shrank, torn, last == kRecords * kRecord, stats > 10);
  return 0;
}

}  // namespace shim_probe
