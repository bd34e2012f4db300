// shim_probe's scenarios with more than one process or thread: fork, exec, two appending processes,
// threads sharing a description, posix_spawn file actions, and the zero-copy calls (splice,
// sendfile, copy_file_range). See shim_probe.cc for how the tests use them.
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

#include <atomic>
#include <cerrno>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/shim/shim_probe.h"

extern "C" char** environ;

namespace shim_probe {
namespace {

// The parent's half of fork and exec: waits for the child that wrote through the inherited fd,
// then shows the shared offset, writes after it and prints the file.
int ParentAfterChild(pid_t pid, int fd, const char* path) {
  int status = 0;
  waitpid(pid, &status, 0);
  Say("child status", WEXITSTATUS(status));
  Say("offset after child", lseek(fd, 0, SEEK_CUR));
  Say("write parent", write(fd, "parent-2\n", 9));
  close(fd);
  printf("content: %s", ReadWhole(path).c_str());
  return 0;
}

}  // namespace

int Fork() {
  int fd = open("forked", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("write parent", write(fd, "parent-1\n", 9));
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) _exit(write(fd, "child\n", 6) == 6 ? 0 : 1);
  return ParentAfterChild(pid, fd, "forked");
}

int Exec(const char* self) {
  int fd = open("execed", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("write parent", write(fd, "parent-1\n", 9));
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    std::string arg = std::to_string(fd);
    execl(self, self, "exec-child", arg.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return ParentAfterChild(pid, fd, "execed");
}

int ExecChild(int fd) {
  if (write(fd, "exec-child\n", 11) != 11) return 1;
  return lseek(fd, 0, SEEK_CUR) == 20 ? 0 : 2;
}

int Append2(int n) {
  int fd = open("appended", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  close(fd);
  fflush(stdout);
  pid_t kids[2];
  for (int k = 0; k < 2; ++k) {
    kids[k] = fork();
    if (kids[k] == 0) {
      int a = open("appended", O_WRONLY | O_APPEND);
      char rec[64];
      for (int i = 0; i < n; ++i) {
        snprintf(rec, sizeof(rec), "proc%d-rec%06d-%s\n", k, i, "xxxxxxxxxxxxxxxxxxxxxxxxxx");
        if (write(a, rec, strlen(rec)) != static_cast<ssize_t>(strlen(rec))) _exit(1);
      }
      _exit(0);
    }
  }
  for (pid_t pid : kids) waitpid(pid, nullptr, 0);
  std::string all = ReadWhole("appended");
  int seen[2] = {0, 0};
  size_t pos = 0, bad = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    std::string line = all.substr(pos, nl - pos);
    int k, i;
    if (sscanf(line.c_str(), "proc%d-rec%d-", &k, &i) == 2 && (k == 0 || k == 1) && i == seen[k] && line.size() == 42) {
      ++seen[k];
    } else {
      ++bad;
    }
    pos = nl == std::string::npos ? all.size() : nl + 1;
  }
  printf("records %d %d bad %zu size %zu\n", seen[0], seen[1], bad, all.size());
  return 0;
}

// Threads sharing one O_APPEND description: writers append fixed-size records, readers check that
// every record they see is whole, a third kind dups, seeks and closes the fd meanwhile, and another
// opens and closes other files (fd numbers are reused under the lookups).
int Threads() {
  constexpr int kWriters = 4, kRecords = 2000, kSize = 32;
  int fd = open("threaded", O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0644);
  std::atomic<int> writers_left{kWriters};
  std::atomic<long> torn{0}, dup_errors{0}, churn_errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      char rec[kSize + 1];
      for (int i = 0; i < kRecords; ++i) {
        snprintf(rec, sizeof(rec), "w%d-%06d-%-21s\n", w, i, "payload");
        if (write(fd, rec, kSize) != kSize) torn.fetch_add(1000000);
      }
      writers_left.fetch_sub(1);
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937 rng(static_cast<unsigned>(r));
      char rec[kSize];
      while (writers_left.load() > 0) {
        struct stat st;
        if (fstat(fd, &st) != 0 || st.st_size < kSize) continue;
        off_t at = static_cast<off_t>(rng() % static_cast<unsigned>(st.st_size / kSize)) * kSize;
        if (pread(fd, rec, kSize, at) != kSize || rec[0] != 'w' || rec[kSize - 1] != '\n') torn.fetch_add(1);
      }
    });
  }
  threads.emplace_back([&] {
    while (writers_left.load() > 0) {
      int d = dup(fd);
      if (d < 0 || lseek(d, 0, SEEK_CUR) < 0 || close(d) != 0) dup_errors.fetch_add(1);
    }
  });
  threads.emplace_back([&] {
    char name[32];
    for (int i = 0; writers_left.load() > 0; ++i) {
      snprintf(name, sizeof(name), "churn%d", i % 4);
      int c = open(name, O_RDWR | O_CREAT, 0644);
      if (c < 0 || pwrite(c, name, strlen(name), 0) < 0 || close(c) != 0) churn_errors.fetch_add(1);
    }
  });
  for (auto& t : threads) t.join();
  close(fd);
  std::string all = ReadWhole("threaded");
  std::vector<int> next(kWriters, 0);
  long bad = 0;
  for (size_t pos = 0; pos + kSize <= all.size(); pos += kSize) {
    int w = -1, i = -1;
    if (sscanf(all.c_str() + pos, "w%d-%d-", &w, &i) != 2 || w < 0 || w >= kWriters || next[static_cast<size_t>(w)] != i) {
      ++bad;
      continue;
    }
    ++next[static_cast<size_t>(w)];
  }
  printf("size %zu bad %ld torn %ld dup-errors %ld churn-errors %ld\n", all.size(), bad, torn.load(),
         dup_errors.load(), churn_errors.load());
  return 0;
}

// Threads write at a description's offset while the main thread forks children that each write
// one record through it too. Under tern a description's offset is the process's own until a child
// is about to share it; the fork moves it to the shared region while the writers run, and no write
// may land on another's bytes: every record whole, none lost.
int ForkWhileWriting() {
  constexpr int kRounds = 6, kWriters = 2, kRecords = 1500, kChildren = 12, kSize = 16;
  for (int round = 0; round < kRounds; ++round) {
    char name[32];
    snprintf(name, sizeof(name), "forked%d", round);
    int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);  // a new description each round
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([fd, w] {
        char rec[kSize + 1];
        for (int i = 0; i < kRecords; ++i) {
          snprintf(rec, sizeof(rec), "w%d-%05d-------\n", w, i);
          if (write(fd, rec, kSize) != kSize) _exit(3);
        }
      });
    }
    long child_failures = 0;
    for (int c = 0; c < kChildren; ++c) {
      pid_t pid = fork();
      if (pid == 0) {
        char rec[kSize + 1];
        snprintf(rec, sizeof(rec), "c%02d------------\n", c);
        _exit(write(fd, rec, kSize) == kSize ? 0 : 1);
      }
      int status = 0;
      if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) ++child_failures;
    }
    for (auto& t : writers) t.join();
    close(fd);
    std::string all = ReadWhole(name);
    long writer_records = 0, child_records = 0, bad = 0;
    for (size_t pos = 0; pos + kSize <= all.size(); pos += kSize) {
      if (all[pos] == 'w' && all[pos + kSize - 1] == '\n') {
        ++writer_records;
      } else if (all[pos] == 'c' && all[pos + kSize - 1] == '\n') {
        ++child_records;
      } else {
        ++bad;
      }
    }
    printf("round %d size %zu writer-records %ld child-records %ld bad %ld child-failures %ld\n", round, all.size(),
           writer_records, child_records, bad, child_failures);
  }
  return 0;
}

// posix_spawn with file actions that open a file and dup an existing fd onto stdout.
int Spawn() {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "spawned", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  char* args1[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>("echo a; /bin/echo b"), nullptr};
  pid_t pid;
  Say("posix_spawnp addopen", posix_spawnp(&pid, "sh", &fa, nullptr, args1, environ));
  waitpid(pid, nullptr, 0);
  posix_spawn_file_actions_destroy(&fa);
  printf("spawned: %s", ReadWhole("spawned").c_str());
  int fd = open("spawned", O_WRONLY | O_APPEND);
  Say("write parent", write(fd, "parent\n", 7));
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, 1);
  char* args2[] = {const_cast<char*>("/bin/echo"), const_cast<char*>("child"), nullptr};
  Say("posix_spawn adddup2", posix_spawn(&pid, "/bin/echo", &fa, nullptr, args2, environ));
  waitpid(pid, nullptr, 0);
  posix_spawn_file_actions_destroy(&fa);
  Say("write parent again", write(fd, "parent2\n", 8));
  close(fd);
  printf("spawned: %s", ReadWhole("spawned").c_str());
  return 0;
}

// Zero-copy calls with a file on one side: splice, sendfile, copy_file_range with explicit offsets.
int Splice() {
  int src = open("zsrc", O_RDWR | O_CREAT | O_TRUNC, 0644);
  std::string data;
  for (int i = 0; i < 5000; ++i) data += std::to_string(i) + ",";
  Say("write", write(src, data.data(), data.size()));
  int p[2];
  if (pipe(p) != 0) return 1;
  loff_t off = 100;
  Say("splice file->pipe", splice(src, &off, p[1], nullptr, 4000, 0));
  Say("off advanced to", off);
  Say("offset untouched", lseek(src, 0, SEEK_CUR));
  int dst = open("zdst", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("splice pipe->file", splice(p[0], nullptr, dst, nullptr, 4000, 0));
  Say("dst offset", lseek(dst, 0, SEEK_CUR));
  off_t soff = 50;
  Say("sendfile file->pipe", sendfile(p[1], src, &soff, 1000));
  Say("sendfile off", soff);
  char buf[2000];
  Say("read pipe", read(p[0], buf, sizeof(buf)));
  Say("matches", memcmp(buf, data.data() + 50, 1000) == 0);
  loff_t in_off = 10, out_off = 20000;
  Say("copy_file_range with offsets", copy_file_range(src, &in_off, dst, &out_off, 3000, 0));
  Say("in_off", in_off);
  Say("out_off", out_off);
  Say("rewind", lseek(src, 7, SEEK_SET));
  Say("copy_file_range at offsets", copy_file_range(src, nullptr, dst, nullptr, 1 << 20, 0));
  Say("copy_file_range at eof", copy_file_range(src, nullptr, dst, nullptr, 1 << 20, 0));
  struct stat st;
  Say("dst size", fstat(dst, &st) == 0 ? st.st_size : -1);
  // Neither sendfile nor splice appends: a destination open with O_APPEND is refused.
  int app = open("zapp", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  soff = 0;
  Say("sendfile to O_APPEND", sendfile(app, src, &soff, 10));
  Say("write pipe", write(p[1], "0123456789", 10));
  Say("splice to O_APPEND", splice(p[0], nullptr, app, nullptr, 10, 0));
  close(app);
  close(src);
  close(dst);
  close(p[0]);
  close(p[1]);
  std::string out = ReadWhole("zdst");
  printf("zdst digest %016llx\n", static_cast<unsigned long long>(Fnv(out.data(), out.size())));
  return 0;
}

// A program's own O_PATH descriptor of a file: fstat through it (and fstatat, statx with
// AT_EMPTY_PATH) describes the file, reads through it fail, its dups do the same, and an open of
// /proc/self/fd/N opens the file.
int OPath() {
  int fd = open("pathed", O_RDWR | O_CREAT | O_TRUNC, 0644);
  Say("write", write(fd, "hello, path", 11));
  close(fd);
  int p = open("pathed", O_PATH);
  auto size_via = [](int f) {
    struct stat st;
    return fstat(f, &st) == 0 ? static_cast<long>(st.st_size) : -1L;
  };
  Say("fstat size", size_via(p));
  struct stat st;
  Say("fstatat empty path size", fstatat(p, "", &st, AT_EMPTY_PATH) == 0 ? st.st_size : -1);
  struct statx sx;
  Say("statx empty path size", statx(p, "", AT_EMPTY_PATH, STATX_SIZE, &sx) == 0 ? static_cast<long>(sx.stx_size) : -1L);
  char buf[32] = {};
  Say("read", read(p, buf, sizeof(buf)));
  int d = dup(p);
  close(p);
  Say("dup's fstat size", size_via(d));
  Say("F_DUPFD's fstat size", size_via(fcntl(d, F_DUPFD_CLOEXEC, 60)));
  Say("dup2's fstat size", size_via(dup2(d, 70)));
  char proc[64];
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", d);
  int r = open(proc, O_RDONLY);
  Say("reopen through /proc, read", read(r, buf, 11));
  printf("reopened: %.11s\n", buf);
  close(r);
  close(d);
  close(70);
  // The numbers go to other files: nothing of the old mark shows.
  int q[2];
  Say("pipe", pipe(q));
  Say("dup2 a pipe over 70", dup2(q[0], 70));
  Say("fstat of it is a fifo", fstat(70, &st) == 0 && S_ISFIFO(st.st_mode));
  return 0;
}

// system(3) and popen(3), whose children glibc starts itself, with stdout redirected to a file: the
// children write at the file's shared offset, after what the program wrote.
int SystemPopen() {
  fflush(stdout);
  int saved = dup(1);
  int fd = open("sysout", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 1);
  close(fd);
  printf("parent one\n");
  fflush(stdout);
  int rc = system("echo child by system");
  printf("parent two\n");
  fflush(stdout);
  FILE* p = popen("cat; echo child by popen", "w");
  if (p != nullptr) {
    fputs("piped line\n", p);
    pclose(p);
  }
  printf("parent three\n");
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  Say("system", rc);
  printf("sysout:\n%s", ReadWhole("sysout").c_str());
  return 0;
}

// Times a program sets on a file it has written and still holds open (cp -p, tar, unzip, touch)
// stay what it set when it closes the file; a write after them moves the mtime again.
int Times() {
  auto mtime = [] {
    struct stat st;
    return stat("timed", &st) == 0 ? static_cast<long>(st.st_mtim.tv_sec) : -1L;
  };
  int fd = open("timed", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  Say("write", write(fd, "abc", 3));
  struct timespec ts[2] = {{1, 0}, {2, 0}};
  Say("utimensat by path", utimensat(AT_FDCWD, "timed", ts, 0));
  close(fd);
  Say("mtime after close", mtime());
  fd = open("timed", O_WRONLY);
  Say("write", write(fd, "d", 1));
  struct utimbuf times = {3, 4};
  Say("utime", utime("timed", &times));
  close(fd);
  Say("mtime after close", mtime());
  fd = open("timed", O_WRONLY);
  int other = open("timed", O_RDWR);
  Say("write through another fd", write(other, "e", 1));
  struct timespec ts2[2] = {{5, 0}, {6, 0}};
  Say("futimens", futimens(fd, ts2));
  close(other);
  close(fd);
  Say("mtime after closes", mtime());
  fd = open("timed", O_WRONLY);
  Say("write", write(fd, "f", 1));
  struct timeval tv[2] = {{7, 0}, {8, 0}};
  Say("utimes", utimes("timed", tv));
  Say("write after", write(fd, "g", 1));
  close(fd);
  Say("moved by the later write", mtime() > 8);
  return 0;
}

}  // namespace shim_probe
