#include "fuzz/fuzz_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "lib/file.h"
#include "pmem/log.h"

namespace tern::fuzz {
namespace {

[[noreturn]] void Breach(const char* what, Status s) {
  fprintf(stderr, "tern fuzz: contract breach: %s: errno %d (%s): %s\n", what, s.err(), strerror(s.err()),
          s.context());
  abort();
}

[[noreturn]] void Breach(const char* what) {
  fprintf(stderr, "tern fuzz: contract breach: %s\n", what);
  abort();
}

bool Rejection(Status s) { return s.err() == EUCLEAN || s.err() == kNotTernFile; }

// Reads [offset, offset+len) in pieces; EUCLEAN is an allowed answer for a damaged file.
void ReadRange(File& f, uint64_t offset, uint64_t len) {
  std::vector<uint8_t> buf(64 * 1024);
  while (len > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(len, buf.size()));
    auto n = f.Pread(buf.data(), want, offset);
    if (!n.ok()) {
      if (n.status().err() == EUCLEAN) return;
      Breach("pread", n.status());
    }
    if (*n == 0) Breach("pread returned 0 below the size");
    offset += *n;
    len -= *n;
  }
}

// Opens, looks around, writes and reads back. Returns false if the file was rejected at open.
bool Exercise(const std::string& path, bool write) {
  auto opened = File::Open(path, O_RDWR);
  if (!opened.ok()) {
    if (Rejection(opened.status())) return false;
    Breach("open", opened.status());
  }
  File& f = **opened;
  auto size = f.Size();
  if (!size.ok()) {
    if (size.status().err() == EUCLEAN) return true;
    Breach("size", size.status());
  }
  struct stat st;
  Status s = f.Stat(&st);
  if (!s.ok() && s.err() != EUCLEAN) Breach("stat", s);
  if (s.ok() && static_cast<uint64_t>(st.st_size) != *size) Breach("stat and size disagree");
  // Bounded reads: sizes up to 1 TiB are legal (holes), reading all of them is not the point.
  ReadRange(f, 0, std::min<uint64_t>(*size, 1 << 20));
  if (*size > (1 << 20)) ReadRange(f, *size - (64 << 10), 64 << 10);
  if (!write) return true;
  // A write inside the last block (a CoW partial block) and past the end.
  uint64_t at = std::min<uint64_t>(*size, 1 << 20);
  at = at > 100 ? at - 100 : 0;
  uint8_t data[300];
  for (size_t i = 0; i < sizeof(data); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  auto n = f.Pwrite(data, sizeof(data), at);
  if (!n.ok()) {
    int e = n.status().err();
    if (e == EUCLEAN || e == ENOSPC || e == EFBIG) return true;
    Breach("pwrite", n.status());
  }
  uint8_t back[sizeof(data)];
  auto r = f.Pread(back, sizeof(back), at);
  if (!r.ok() || *r != sizeof(back) || memcmp(back, data, sizeof(data)) != 0) {
    Breach("a write did not read back");
  }
  if (!f.Fsync().ok()) Breach("fsync after a write");
  return true;
}

// The scratch directory, removed at exit (libFuzzer ends runs with exit()).
char g_scratch_dir[64];

void RemoveScratch() {
  std::string dir = g_scratch_dir;
  if (dir.empty()) return;
  std::string shm = dir + "/.shm";
  if (DIR* d = opendir(shm.c_str())) {
    while (struct dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
        unlink((shm + "/" + e->d_name).c_str());
      }
    }
    closedir(d);
  }
  rmdir(shm.c_str());
  unlink((dir + "/file.tern").c_str());
  rmdir(dir.c_str());
}

}  // namespace

const std::string& ScratchFile() {
  static const std::string path = [] {
    char tmpl[] = "/dev/shm/tern-fuzz-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Breach("mkdtemp");
    snprintf(g_scratch_dir, sizeof(g_scratch_dir), "%s", tmpl);
    atexit(RemoveScratch);
    std::string dir = tmpl;
    std::string shm = dir + "/.shm";
    mkdir(shm.c_str(), 0700);
    setenv("TERN_SHM_DIR", shm.c_str(), 1);
    SetLogLevel(LogLevel::kOff);
    return dir + "/file.tern";
  }();
  return path;
}

void WriteWholeFile(const std::string& path, const uint8_t* data, size_t len) {
  unlink(path.c_str());  // a fresh inode: nothing of the last input's file survives
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Breach("create scratch file");
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, data + done, len - done, static_cast<off_t>(done));
    if (n <= 0) Breach("write scratch file");
    done += static_cast<size_t>(n);
  }
  close(fd);
}

void CheckBackingFile(const std::string& path) {
  if (!Exercise(path, /*write=*/true)) return;
  // Again: the first open recovered (scrubbed the tail, maybe grew the file) and wrote; a second
  // first-open must accept what the first one left.
  auto again = File::Open(path, O_RDWR);
  if (!again.ok()) {
    // The first open accepted it; if it now refuses, recovery or the write made it worse.
    if (again.status().err() != EUCLEAN) Breach("reopen", again.status());
    Breach("a file that opened is refused after a write and a reopen", again.status());
  }
  again->reset();
  Exercise(path, /*write=*/false);
}

}  // namespace tern::fuzz
