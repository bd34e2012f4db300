// shim_probe: runs sequences of libc file calls in the current directory and prints what they
// returned, in a form that does not depend on where it ran (no paths, pids or addresses). The shim
// tests run it once on the kernel (a plain directory) and once under `tern run` (a tern root) and
// compare the outputs line by line: same results, same errnos.
//
//   shim_probe errno            errno parity for bad input
//   shim_probe random SEED N    N random operations (open/read/write/pread/pwrite/lseek/truncate/
//                               dup/O_APPEND/fork/stdio) on a few files; prints a digest per read
//   shim_probe fork             offsets shared by parent and child after fork
//   shim_probe exec             offsets shared with an exec'ed program (fd inherited)
//   shim_probe append2 N        two processes appending N records each with O_APPEND
//   shim_probe stdio            fopen/fprintf/fseek/fread/fdopen/freopen(stdout)
//   shim_probe locks            fcntl record locks, OFD locks, flock, lockf
//   shim_probe mmap             read-only and private mappings; shared writable (errno only)
//   shim_probe mmap-pins        (tern only) mappings show the file's blocks until munmap
//   shim_probe fstream          C++ ofstream/ifstream
//   shim_probe dupflags         dup/dup2/fcntl flags and shared offsets
//   shim_probe spawn            posix_spawn with addopen/adddup2 file actions
//   shim_probe splice           splice, sendfile, copy_file_range with offsets
//   shim_probe opath            a program's own O_PATH fd of a file: fstat, dup, /proc reopen
//   shim_probe system           system(3), popen(3) with stdout redirected to a file
//   shim_probe times            times set on a file written and still open
//   shim_probe aio              POSIX AIO: aio_read/write/fsync, lio_listio, notifications, errors
//   shim_probe signals          handlers writing to files mid-write and mid-malloc; dispositions
//   shim_probe cancel           threads cancelled in file I/O, in a FIFO open, a lock wait, a read
//   shim_probe threads          threads appending, reading, dup'ing and reopening at once
//   shim_probe reopen           a file opened again while open here, or just closed
//   shim_probe rawfd            (tern only) system calls that bypass libc on a tern file's fds
//   shim_probe statmake|statcheck  files of every log shape; then stat of each against an fd's fstat
//   shim_probe statrace         stat of a file another process appends to
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tests/shim/shim_probe.h"

namespace shim_probe {

std::string ErrName(int e) {
  const char* n = strerrorname_np(e);
  return n != nullptr ? n : std::to_string(e);
}

std::string Res(long r) { return r < 0 ? "-1 " + ErrName(errno) : "ok " + std::to_string(r); }

void Say(const std::string& what, long r) { printf("%s: %s\n", what.c_str(), Res(r).c_str()); }

uint64_t Fnv(const void* p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(p)[i]) * 1099511628211ULL;
  return h;
}

std::string ReadWhole(const char* path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return "<" + ErrName(errno) + ">";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

}  // namespace shim_probe

namespace {

using namespace shim_probe;

int Errno() {
  umask(022);
  mkdir("dir", 0755);
  int w = open("wo", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  Say("create wo", w >= 0 ? 0 : -1);
  Say("write wo", write(w, "abc", 3));
  char buf[16];
  Say("read on O_WRONLY", read(w, buf, sizeof(buf)));
  Say("pread on O_WRONLY", pread(w, buf, sizeof(buf), 0));
  Say("lseek negative", lseek(w, -1, SEEK_SET));
  Say("lseek cur negative", lseek(w, -100, SEEK_CUR));
  Say("lseek bad whence", lseek(w, 0, 99));
  Say("lseek data past eof", lseek(w, 10, SEEK_DATA));
  Say("lseek hole", lseek(w, 1, SEEK_HOLE));
  Say("lseek data", lseek(w, 1, SEEK_DATA));
  Say("pwrite negative", pwrite(w, "x", 1, -5));
  Say("ftruncate negative", ftruncate(w, -1));
  Say("F_GETFL wo", fcntl(w, F_GETFL));
  close(w);
  int r = open("wo", O_RDONLY);
  Say("write on O_RDONLY", write(r, "x", 1));
  Say("ftruncate on O_RDONLY", ftruncate(r, 0));
  Say("pread negative", pread(r, buf, 1, -1));
  Say("read", read(r, buf, sizeof(buf)));
  Say("read at eof", read(r, buf, sizeof(buf)));
  Say("F_GETFL ro", fcntl(r, F_GETFL));
  struct iovec iov = {buf, 4};
  Say("preadv2 unknown flag", preadv2(r, &iov, 1, 0, 0x4000));
  close(r);
  Say("close twice", close(r));
  Say("open dir for writing", open("dir", O_WRONLY));
  Say("open dir O_RDWR|O_CREAT", open("dir", O_RDWR | O_CREAT, 0644));
  Say("open missing", open("missing", O_RDONLY));
  Say("open missing dir component", open("nodir/f", O_RDWR | O_CREAT, 0644));
  Say("open O_EXCL existing", open("wo", O_WRONLY | O_CREAT | O_EXCL, 0644));
  Say("open file as dir component", open("wo/x", O_RDONLY));
  Say("open O_DIRECTORY on file", open("wo", O_RDONLY | O_DIRECTORY));
  int three = open("wo", O_ACCMODE);
  Say("open access mode 3", three < 0 ? -1 : 0);
  Say("read on access mode 3", read(three, buf, 1));
  close(three);
  Say("open O_CREAT|O_DIRECTORY", open("newdir", O_RDWR | O_CREAT | O_DIRECTORY, 0644));
  Say("open O_TMPFILE read-only", open(".", O_TMPFILE | O_RDONLY, 0644));
  Say("open empty path", open("", O_RDONLY));
  symlink("wo", "link");
  Say("open O_NOFOLLOW symlink", open("link", O_RDONLY | O_NOFOLLOW));
  int l = open("link", O_RDONLY);
  Say("read through symlink", l < 0 ? -1 : read(l, buf, sizeof(buf)));
  close(l);
  // A symlink to a name not there yet: O_CREAT creates its target; without it, ENOENT.
  symlink("made", "dangling");
  Say("open dangling symlink", open("dangling", O_RDONLY));
  int made = open("dangling", O_RDWR | O_CREAT, 0644);
  Say("create through dangling symlink", made < 0 ? -1 : write(made, "via", 3));
  close(made);
  int target = open("made", O_RDONLY);
  Say("read created target", target < 0 ? -1 : read(target, buf, sizeof(buf)));
  close(target);
  Say("open O_EXCL through symlink", open("dangling", O_RDWR | O_CREAT | O_EXCL, 0644));
  symlink("dir", "dirlink");
  int dirfd = open("dirlink", O_RDONLY);
  Say("open symlink to dir", dirfd < 0 ? -1 : 0);
  close(dirfd);
  Say("truncate missing", truncate("missing", 0));
  Say("truncate negative", truncate("wo", -1));
  struct stat st;
  Say("stat size", stat("wo", &st) == 0 ? st.st_size : -1);
  Say("lstat link is link", lstat("link", &st) == 0 ? S_ISLNK(st.st_mode) : -1);
  Say("stat missing", stat("missing", &st));
  Say("unlink", unlink("wo"));
  Say("open after unlink", open("wo", O_RDONLY));
  int big = open("big", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("sparse pwrite", pwrite(big, "end", 3, 100000));
  Say("size after sparse", fstat(big, &st) == 0 ? st.st_size : -1);
  Say("read hole", pread(big, buf, 8, 50000) == 8 && Fnv(buf, 8) == Fnv("\0\0\0\0\0\0\0\0", 8));
  Say("ftruncate grow", ftruncate(big, 200000));
  Say("seek end", lseek(big, 0, SEEK_END));
  Say("write past end", write(big, "z", 1));
  Say("size now", fstat(big, &st) == 0 ? st.st_size : -1);
  close(big);
  if (geteuid() == 0) {
    int secret = open("secret", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    Say("write secret", write(secret, "s", 1));
    close(secret);
    pid_t pid = fork();
    if (pid == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
      int fd = open("secret", O_RDONLY);
      _exit(fd < 0 && errno == EACCES ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("open 0600 file as nobody: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "EACCES" : "not EACCES");
  } else {
    printf("open 0600 file as nobody: EACCES\n");  // not root: nothing to switch to
  }
  return 0;
}

// Random operations on three files through several fds; prints a digest for each read.
int Random(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  const char* names[] = {"r0", "r1", "r2"};
  std::vector<int> fds;
  auto pick = [&](uint32_t k) { return static_cast<uint32_t>(rng() % k); };
  std::vector<char> buf(70000);
  for (int i = 0; i < n; ++i) {
    uint32_t op = pick(16);
    if (fds.empty() || op == 0) {
      int flags = (pick(4) == 0 ? O_APPEND : 0) | O_CREAT | (pick(8) == 0 ? O_TRUNC : 0);
      flags |= pick(5) == 0 ? O_RDONLY : O_RDWR;
      int fd = open(names[pick(3)], flags, 0644);
      printf("%d open: %s\n", i, Res(fd < 0 ? -1 : 0).c_str());
      if (fd >= 0) fds.push_back(fd);
      continue;
    }
    int fd = fds[pick(static_cast<uint32_t>(fds.size()))];
    size_t len = pick(3) == 0 ? pick(70000) : pick(300);
    off_t off = static_cast<off_t>(pick(4) == 0 ? pick(300000) : pick(9000));
    switch (op) {
      case 1: case 2: {
        for (size_t k = 0; k < len; ++k) buf[k] = static_cast<char>(rng());
        printf("%d write: %s\n", i, Res(write(fd, buf.data(), len)).c_str());
        break;
      }
      case 3: {
        for (size_t k = 0; k < len; ++k) buf[k] = static_cast<char>(rng());
        printf("%d pwrite: %s\n", i, Res(pwrite(fd, buf.data(), len, off)).c_str());
        break;
      }
      case 4: case 5: {
        ssize_t r = read(fd, buf.data(), len);
        printf("%d read: %s %016llx\n", i, Res(r).c_str(),
               static_cast<unsigned long long>(r > 0 ? Fnv(buf.data(), static_cast<size_t>(r)) : 0));
        break;
      }
      case 6: {
        ssize_t r = pread(fd, buf.data(), len, off);
        printf("%d pread: %s %016llx\n", i, Res(r).c_str(),
               static_cast<unsigned long long>(r > 0 ? Fnv(buf.data(), static_cast<size_t>(r)) : 0));
        break;
      }
      case 7: printf("%d lseek: %s\n", i, Res(lseek(fd, off - 100, static_cast<int>(pick(3)))).c_str()); break;
      case 8: printf("%d ftruncate: %s\n", i, Res(ftruncate(fd, off)).c_str()); break;
      case 9: {
        int d = dup(fd);
        printf("%d dup: %s\n", i, Res(d < 0 ? -1 : 0).c_str());
        if (d >= 0) fds.push_back(d);
        break;
      }
      case 10: {
        if (fds.size() > 1) {
          size_t k = pick(static_cast<uint32_t>(fds.size()));
          printf("%d close: %s\n", i, Res(close(fds[k])).c_str());
          fds.erase(fds.begin() + static_cast<long>(k));
        }
        break;
      }
      case 11: {
        struct stat st = {};
        long r = fstat(fd, &st);
        printf("%d fstat: %s %lld\n", i, Res(r).c_str(), static_cast<long long>(st.st_size));
        break;
      }
      case 12: {
        // A child writes through the inherited fd; the parent sees the data and the moved offset.
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) _exit(write(fd, "child-wrote", 11) == 11 ? 0 : 1);
        int status = 0;
        waitpid(pid, &status, 0);
        printf("%d fork+child write: %d offset %s\n", i, WEXITSTATUS(status), Res(lseek(fd, 0, SEEK_CUR)).c_str());
        break;
      }
      case 13: {
        int fl = fcntl(fd, F_GETFL);
        printf("%d setfl append: %s\n", i, Res(fcntl(fd, F_SETFL, fl ^ O_APPEND)).c_str());
        break;
      }
      case 14: {
        struct iovec iov[3] = {{buf.data(), 7}, {buf.data() + 100, len % 200}, {buf.data() + 400, 13}};
        if (pick(2) == 0) {
          printf("%d writev: %s\n", i, Res(writev(fd, iov, 3)).c_str());
        } else {
          ssize_t r = readv(fd, iov, 3);
          printf("%d readv: %s\n", i, Res(r).c_str());
        }
        break;
      }
      default: {
        int d = dup(fd);
        FILE* f = d < 0 ? nullptr : fdopen(d, "r");
        if (f == nullptr) {
          printf("%d fdopen: failed\n", i);
          if (d >= 0) close(d);
          break;
        }
        size_t r = fread(buf.data(), 1, 100, f);
        printf("%d fread: %zu %016llx\n", i, r, static_cast<unsigned long long>(Fnv(buf.data(), r)));
        fclose(f);
        break;
      }
    }
  }
  for (int fd : fds) close(fd);
  for (const char* name : names) {
    std::string all = ReadWhole(name);
    printf("final %s: %zu %016llx\n", name, all.size(), static_cast<unsigned long long>(Fnv(all.data(), all.size())));
  }
  return 0;
}


int Stdio() {
  FILE* f = fopen("stdio.txt", "w+");
  if (f == nullptr) return 1;
  fprintf(f, "hello %d\n", 42);
  fputs("second line\n", f);
  Say("ftell", ftell(f));
  Say("fseek", fseek(f, 6, SEEK_SET));
  char buf[64] = {};
  Say("fread", static_cast<long>(fread(buf, 1, 5, f)));
  printf("got: %s\n", buf);
  Say("fileno valid", fileno(f) >= 0);
  fclose(f);
  FILE* a = fopen("stdio.txt", "a");
  fprintf(a, "appended\n");
  fclose(a);
  FILE* r = fopen("stdio.txt", "r");
  while (fgets(buf, sizeof(buf), r) != nullptr) printf("line: %s", buf);
  fclose(r);
  Say("fopen missing", fopen("missing", "r") == nullptr ? -1 : 0);
  Say("fopen x existing", fopen("stdio.txt", "wx") == nullptr ? -1 : 0);
  int fd = open("fdopen.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
  FILE* d = fdopen(fd, "r+");
  fprintf(d, "via fdopen\n");
  fclose(d);
  printf("fdopen content: %s", ReadWhole("fdopen.txt").c_str());
  fflush(stdout);
  int saved = dup(1);
  if (freopen("freopen.txt", "w", stdout) == nullptr) return 2;
  printf("to the reopened stdout\n");
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  return 0;
}

// A record-lock request for [start, start + len) (len 0: to the end).
struct flock Range(short type, off_t start, off_t len) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  return fl;
}

// What another process sees of "locked": F_GETLK of the whole file from a child.
std::string LockSeenByChild() {
  fflush(stdout);
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    struct flock q = Range(F_WRLCK, 0, 0);
    const char* seen = fcntl(open("locked", O_RDWR), F_GETLK, &q) != 0 ? "error" : q.l_type == F_UNLCK ? "unlocked" : "locked";
    ssize_t ignored = write(pipe_fds[1], seen, strlen(seen));
    (void)ignored;
    _exit(0);
  }
  close(pipe_fds[1]);
  char buf[16] = {};
  ssize_t n = read(pipe_fds[0], buf, sizeof(buf) - 1);
  close(pipe_fds[0]);
  waitpid(pid, nullptr, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "nothing";
}

bool LockWholeFile(int fd) {
  struct flock fl = Range(F_WRLCK, 0, 0);
  return fcntl(fd, F_SETLK, &fl) == 0;
}

// POSIX drops a process's record locks on a file when it closes any fd of the file, not only the
// one that took them (a second open, an fopen'ed stream); a dup's close does too.
void LocksDroppedByOtherCloses(int fd) {
  printf("locked: %d\n", LockWholeFile(fd));
  printf("child sees %s\n", LockSeenByChild().c_str());
  int second = open("locked", O_RDONLY);
  printf("second open: child sees %s\n", LockSeenByChild().c_str());
  close(second);
  printf("its close: child sees %s\n", LockSeenByChild().c_str());
  printf("locked: %d\n", LockWholeFile(fd));
  FILE* stream = fopen("locked", "r");
  if (stream != nullptr) fclose(stream);
  printf("fopen+fclose: child sees %s\n", LockSeenByChild().c_str());
  printf("locked: %d\n", LockWholeFile(fd));
  close(dup(fd));
  printf("dup+close: child sees %s\n", LockSeenByChild().c_str());
  printf("locked: %d\n", LockWholeFile(fd));
  struct stat st;
  stat("locked", &st);
  printf("stat: child sees %s\n", LockSeenByChild().c_str());
}

int Locks() {
  int fd = open("locked", O_RDWR | O_CREAT | O_TRUNC, 0644);
  LocksDroppedByOtherCloses(fd);
  Say("write", write(fd, "0123456789", 10));
  struct flock fl = Range(F_WRLCK, 0, 0);
  Say("F_SETLK whole file", fcntl(fd, F_SETLK, &fl));
  struct flock part = Range(F_RDLCK, 100, 10);
  Say("F_SETLK part", fcntl(fd, F_SETLK, &part));
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    int c = open("locked", O_RDWR);
    struct flock q = Range(F_WRLCK, 5, 1);
    int r1 = fcntl(c, F_SETLK, &q);
    int e1 = errno;
    struct flock g = Range(F_WRLCK, 0, 0);
    fcntl(c, F_GETLK, &g);
    printf("child F_SETLK conflicting: %s\n", r1 < 0 ? ErrName(e1).c_str() : "ok");
    printf("child F_GETLK type %s start %lld len %lld\n", g.l_type == F_WRLCK ? "W" : g.l_type == F_RDLCK ? "R" : "U",
           static_cast<long long>(g.l_start), static_cast<long long>(g.l_len));
    printf("child flock LOCK_EX|LOCK_NB: %s\n", Res(flock(c, LOCK_EX | LOCK_NB)).c_str());
    fflush(stdout);
    _exit(0);
  }
  waitpid(pid, nullptr, 0);
  fl.l_type = F_UNLCK;
  Say("unlock", fcntl(fd, F_SETLK, &fl));
  struct flock ofd = Range(F_WRLCK, 0, 0);
  Say("F_OFD_SETLK", fcntl(fd, F_OFD_SETLK, &ofd));
  Say("lockf F_TLOCK", lockf(fd, F_TLOCK, 0));
  Say("flock", flock(fd, LOCK_EX));
  close(fd);
  return 0;
}

int Mmap() {
  int fd = open("mapped", O_RDWR | O_CREAT | O_TRUNC, 0644);
  std::string data;
  for (int i = 0; i < 3000; ++i) data += "line " + std::to_string(i) + "\n";
  Say("write", write(fd, data.data(), data.size()));
  int ro = open("mapped", O_RDONLY);
  void* p = mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, ro, 0);
  Say("mmap shared read-only", p == MAP_FAILED ? -1 : 0);
  if (p != MAP_FAILED) {
    Say("content matches", memcmp(p, data.data(), data.size()) == 0);
    munmap(p, data.size());
  }
  close(ro);
  void* q = mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 4096);
  Say("mmap private", q == MAP_FAILED ? -1 : 0);
  if (q != MAP_FAILED) {
    Say("private content matches", memcmp(q, data.data() + 4096, 8192) == 0);
    static_cast<char*>(q)[0] = '#';
    munmap(q, 8192);
    char c;
    Say("file unchanged by private store", pread(fd, &c, 1, 4096) == 1 && c == data[4096]);
  }
  Say("mmap unaligned offset", mmap(nullptr, 100, PROT_READ, MAP_PRIVATE, fd, 100) == MAP_FAILED ? -1 : 0);
  int wo = open("mapped", O_WRONLY);
  Say("mmap write-only fd", mmap(nullptr, 100, PROT_READ, MAP_PRIVATE, wo, 0) == MAP_FAILED ? -1 : 0);
  close(wo);
  close(fd);
  return 0;
}

int SharedWritableMmap() {
  int fd = open("mapped-rw", O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (write(fd, "abcd", 4) != 4) return 1;
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  Say("mmap shared writable", p == MAP_FAILED ? -1 : 0);
  void* q = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
  Say("mmap shared read-only of a read-write fd", q == MAP_FAILED ? -1 : 0);
  close(fd);
  return 0;
}

int Fstream() {
  {
    std::ofstream out("fstream.txt");
    for (int i = 0; i < 1000; ++i) out << "value " << i << '\n';
  }
  {
    std::ofstream out("fstream.txt", std::ios::app);
    out << "tail\n";
  }
  std::ifstream in("fstream.txt");
  std::string line;
  int lines = 0;
  std::string last;
  while (std::getline(in, line)) {
    ++lines;
    last = line;
  }
  printf("lines %d last %s\n", lines, last.c_str());
  std::fstream rw("fstream.txt", std::ios::in | std::ios::out);
  rw.seekp(6);
  rw << "X";
  rw.seekg(0);
  std::getline(rw, line);
  printf("first %s\n", line.c_str());
  return 0;
}

int DupFlags() {
  int fd = open("duped", O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0644);
  Say("F_GETFL", fcntl(fd, F_GETFL));
  int d = dup(fd);
  Say("write fd", write(fd, "aaaa", 4));
  Say("offset via dup", lseek(d, 0, SEEK_CUR));
  Say("F_SETFL clear append via dup", fcntl(d, F_SETFL, O_RDWR));
  Say("F_GETFL fd", fcntl(fd, F_GETFL));
  Say("lseek 1", lseek(fd, 1, SEEK_SET));
  Say("write dup", write(d, "B", 1));
  sync();
  Say("syncfs", syncfs(d));  // `sync -f FILE`; the kernel refuses it on an O_PATH fd
  int e = dup2(fd, 40);
  Say("dup2", e);
  Say("close fd", close(fd));
  Say("offset via dup2 copy", lseek(e, 0, SEEK_CUR));
  Say("write via dup2 copy", write(e, "C", 1));
  Say("F_GETFD", fcntl(e, F_GETFD));
  Say("F_SETFD", fcntl(e, F_SETFD, FD_CLOEXEC));
  Say("F_GETFD after", fcntl(e, F_GETFD));
  // Above the fds whose entries the shim keeps in its own data (fd_table.h, kStaticFds).
  int f3 = fcntl(e, F_DUPFD_CLOEXEC, 100);
  Say("F_DUPFD_CLOEXEC", f3);
  Say("offset via F_DUPFD copy", lseek(f3, 0, SEEK_CUR));
  Say("write via F_DUPFD copy", write(f3, "D", 1));
  Say("dup3 same", dup3(e, e, 0));
  // Async-I/O owner and signal, a description's (the kernel refuses them on an O_PATH fd).
  Say("F_SETOWN", fcntl(e, F_SETOWN, getpid()));
  printf("F_GETOWN is pid: %d\n", fcntl(e, F_GETOWN) == getpid());
  Say("F_SETSIG", fcntl(e, F_SETSIG, SIGUSR1));
  Say("F_GETSIG via dup", fcntl(d, F_GETSIG));
  Say("F_GETLEASE", fcntl(e, F_GETLEASE));
  close(d);
  close(e);
  close(f3);
  printf("content: %s\n", ReadWhole("duped").c_str());
  return 0;
}


}  // namespace

int main(int argc, char** argv) {
  using namespace shim_probe;
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "errno") return Errno();
  if (cmd == "random" && argc == 4) return Random(static_cast<uint32_t>(atoi(argv[2])), atoi(argv[3]));
  if (cmd == "fork") return Fork();
  if (cmd == "exec") return Exec(argv[0]);
  if (cmd == "exec-child" && argc == 3) return ExecChild(atoi(argv[2]));
  if (cmd == "append2" && argc == 3) return Append2(atoi(argv[2]));
  if (cmd == "stdio") return Stdio();
  if (cmd == "locks") return Locks();
  if (cmd == "mmap") return Mmap();
  if (cmd == "mmap-shared-writable") return SharedWritableMmap();
  if (cmd == "mmap-pins") return MmapPins();
  if (cmd == "fstream") return Fstream();
  if (cmd == "dupflags") return DupFlags();
  if (cmd == "threads") return Threads();
  if (cmd == "fork-while-writing") return ForkWhileWriting();
  if (cmd == "spawn") return Spawn();
  if (cmd == "splice") return Splice();
  if (cmd == "opath") return OPath();
  if (cmd == "system") return SystemPopen();
  if (cmd == "times") return Times();
  if (cmd == "aio") return Aio();
  if (cmd == "signals") return Signals();
  if (cmd == "cancel") return Cancel();
  if (cmd == "reopen") return Reopen();
  if (cmd == "rawfd") return RawFd();
  if (cmd == "statmake") return StatMake();
  if (cmd == "statcheck") return StatCheck();
  if (cmd == "statrace") return StatRace();
  fprintf(stderr, "usage: shim_probe errno|random SEED N|fork|exec|append2 N|stdio|locks|mmap|fstream|dupflags|threads|fork-while-writing|splice|opath|system|times|aio|signals|cancel|reopen|rawfd|statmake|statcheck|statrace\n");
  return 2;
}
