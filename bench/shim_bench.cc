// The single-thread matrix through the shim (issue 3): a plain libc program, with no tern code in
// it, timed once on the kernel and once under `tern run` (bench/run_shim.sh runs both and writes
// results/shim.md). Every case prints one JSON line: the median ns per operation over --reps
// repetitions of --ops operations.
//
//   overwrite      4 KiB pwrite at a random block of a --file_mib file, then fsync
//   append         4 KiB write to an O_APPEND file, then fsync (a fresh file per repetition)
//   logappend      1,000-byte record written to an O_APPEND file, then fsync: a synced write-ahead
//                  log (records end inside blocks; a fresh file per repetition)
//   randread       4 KiB pread at a random block
//   seqread        4 KiB read, sequentially, rewinding at the end
//   mmaptable      LevelDB's table open: open, stat, mmap(PROT_READ, MAP_SHARED) a 2 MiB file, close,
//                  read one byte per 4 KiB page, munmap (one operation = one table; --ops / 100)
//   openread       open(O_RDONLY) + 4 KiB pread + close of one 4 KiB file, over and over
//   openclosed     the same round robin over 64 files, each closed since its last open (more files
//                  than a process keeps open after their close: lib/pool.h, lingering)
//   stat           stat of 64 closed 4 KiB files, round robin (nobody has them open)
//   create         a new file: open(O_CREAT|O_TRUNC) + 100-byte write + close (one operation = one
//                  file; --ops / 10; they are deleted after the timing)
//   spawn          posix_spawn /bin/true and wait: a process start, with the shim loaded in the
//                  child on the tern side (--ops / 100)
//   spawncat       posix_spawn `cat FILE` (a 4 KiB file in --dir, output to /dev/null) and wait
//                  (--ops / 100)
//   firstopen      the first open(O_RDONLY) + 4 KiB pread + close of a process: this program
//                  started anew (posix_spawn) times them inside (the spawn is not counted; --ops / 100)
//   passthru_file  4 KiB pread + pwrite on a file the shim leaves to the kernel (outside the root):
//                  run with and without the shim to see what interposition costs
//   passthru_pipe  64-byte write + read through a pipe (never a tern file), with and without the shim
//   passthru_socket  the same through an AF_UNIX stream socketpair
//
// The pass-through cases also time the same loop issued with syscall(2), which no preload can
// interpose, in chunks of 1,000 operations alternating with the libc loop inside the process:
// "libc/syscall" with the shim loaded minus the same without it is the shim's per-call cost, free
// of the between-process drift that dominates comparing two runs (JSON: sys_ns_per_op_median).
//
// usage: shim_bench --dir=DIR --case=NAME [--ops=N] [--reps=N] [--file_mib=N]
#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr size_t kIo = 4096;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "shim_bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::string Option(int argc, char** argv, const std::string& name, const std::string& fallback) {
  std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
  }
  return fallback;
}

void WriteAll(int fd, const void* p, size_t n, off_t at) {
  if (pwrite(fd, p, n, at) != static_cast<ssize_t>(n)) Fail("pwrite");
}

int CreateFilled(const std::string& path, uint64_t bytes, const char* buf) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Fail("open " + path);
  for (uint64_t at = 0; at < bytes; at += kIo) WriteAll(fd, buf, kIo, static_cast<off_t>(at));
  if (fsync(fd) != 0) Fail("fsync");
  return fd;
}

// One repetition of `ops` operations; returns ns per operation.
double RunOnce(const std::string& name, const std::string& dir, uint64_t ops, uint64_t file_bytes,
               int rep, char* buf) {
  std::mt19937_64 rng(static_cast<uint64_t>(rep) + 1);
  uint64_t blocks = file_bytes / kIo;
  std::string path = dir + "/shim_bench." + name + "." + std::to_string(getpid());
  uint64_t start = 0, end = 0;
  if (name == "overwrite" || name == "randread" || name == "seqread") {
    int fd = CreateFilled(path, file_bytes, buf);
    start = NowNs();
    for (uint64_t i = 0; i < ops; ++i) {
      auto at = static_cast<off_t>((rng() % blocks) * kIo);
      if (name == "overwrite") {
        WriteAll(fd, buf, kIo, at);
        if (fsync(fd) != 0) Fail("fsync");
      } else if (name == "randread") {
        if (pread(fd, buf, kIo, at) != static_cast<ssize_t>(kIo)) Fail("pread");
      } else {
        if (i % blocks == 0 && lseek(fd, 0, SEEK_SET) != 0) Fail("lseek");
        if (read(fd, buf, kIo) != static_cast<ssize_t>(kIo)) Fail("read");
      }
    }
    end = NowNs();
    close(fd);
  } else if (name == "append" || name == "logappend") {
    size_t record = name == "append" ? kIo : 1000;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd < 0) Fail("open " + path);
    start = NowNs();
    for (uint64_t i = 0; i < ops; ++i) {
      if (write(fd, buf, record) != static_cast<ssize_t>(record)) Fail("write");
      if (fsync(fd) != 0) Fail("fsync");
    }
    end = NowNs();
    close(fd);
  } else if (name == "mmaptable") {
    constexpr uint64_t kTable = 2 << 20;
    close(CreateFilled(path, kTable, buf));
    ops = std::max<uint64_t>(ops / 100, 1);
    uint64_t sum = 0;
    start = NowNs();
    for (uint64_t i = 0; i < ops; ++i) {
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) Fail("open " + path);
      struct stat st;
      if (stat(path.c_str(), &st) != 0) Fail("stat");
      auto len = static_cast<size_t>(st.st_size);
      void* m = mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
      if (m == MAP_FAILED) Fail("mmap");
      close(fd);
      for (size_t at = 0; at < len; at += kIo) sum += static_cast<const volatile uint8_t*>(m)[at];
      munmap(m, len);
    }
    end = NowNs();
    if (sum == 1) std::fputs("", stderr);  // keeps the reads
  } else if (name == "openread") {
    close(CreateFilled(path, kIo, buf));
    start = NowNs();
    for (uint64_t i = 0; i < ops; ++i) {
      int fd = open(path.c_str(), O_RDONLY);
      if (fd < 0) Fail("open " + path);
      if (pread(fd, buf, kIo, 0) != static_cast<ssize_t>(kIo)) Fail("pread");
      close(fd);
    }
    end = NowNs();
  } else if (name == "openclosed" || name == "stat") {
    constexpr uint64_t kFiles = 64;
    std::vector<std::string> paths;
    for (uint64_t f = 0; f < kFiles; ++f) {
      paths.push_back(path + "." + std::to_string(f));
      close(CreateFilled(paths.back(), kIo, buf));
    }
    bool open_read = name == "openclosed";
    struct stat st;
    start = NowNs();
    for (uint64_t i = 0; i < ops; ++i) {
      const std::string& each = paths[i % kFiles];
      if (open_read) {
        int fd = open(each.c_str(), O_RDONLY);
        if (fd < 0) Fail("open " + each);
        if (pread(fd, buf, kIo, 0) != static_cast<ssize_t>(kIo)) Fail("pread");
        close(fd);
      } else if (stat(each.c_str(), &st) != 0 || st.st_size != static_cast<off_t>(kIo)) {
        Fail("stat " + each);
      }
    }
    end = NowNs();
    for (const std::string& each : paths) unlink(each.c_str());
  } else if (name == "create") {
    ops = std::max<uint64_t>(ops / 10, 1);
    start = NowNs();
    for (uint64_t i = 0; i < ops; ++i) {
      std::string each = path + "." + std::to_string(i);
      int fd = open(each.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) Fail("open " + each);
      if (write(fd, buf, 100) != 100) Fail("write");
      close(fd);
    }
    end = NowNs();
    for (uint64_t i = 0; i < ops; ++i) unlink((path + "." + std::to_string(i)).c_str());
  } else if (name == "firstopen") {
    close(CreateFilled(path, kIo, buf));
    ops = std::max<uint64_t>(ops / 100, 1);
    std::string self = "/proc/self/exe";
    std::string child_arg = "--first-open-child=" + path;
    std::vector<char*> args = {self.data(), child_arg.data(), nullptr};
    for (uint64_t i = 0; i < ops; ++i) {
      int pipe_fds[2];
      if (pipe(pipe_fds) != 0) Fail("pipe");
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
      pid_t pid;
      if (posix_spawn(&pid, self.c_str(), &actions, nullptr, args.data(), environ) != 0) Fail("posix_spawn");
      posix_spawn_file_actions_destroy(&actions);
      close(pipe_fds[1]);
      uint64_t child_ns = 0;
      bool got = read(pipe_fds[0], &child_ns, sizeof(child_ns)) == static_cast<ssize_t>(sizeof(child_ns));
      close(pipe_fds[0]);
      int status = 0;
      if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !got) {
        Fail("first-open child failed");
      }
      end += child_ns;
    }
  } else if (name == "spawn" || name == "spawncat") {
    if (name == "spawncat") close(CreateFilled(path, kIo, buf));
    ops = std::max<uint64_t>(ops / 100, 1);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    std::string program = name == "spawn" ? "/bin/true" : "/bin/cat";
    std::vector<char*> args = {program.data()};
    if (name == "spawncat") args.push_back(path.data());
    args.push_back(nullptr);
    start = NowNs();
    for (uint64_t i = 0; i < ops; ++i) {
      pid_t pid;
      if (posix_spawn(&pid, program.c_str(), &actions, nullptr, args.data(), environ) != 0) Fail("posix_spawn");
      int status = 0;
      if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) Fail(program + " failed");
    }
    end = NowNs();
    posix_spawn_file_actions_destroy(&actions);
  } else {
    std::fprintf(stderr, "shim_bench: unknown case %s\n", name.c_str());
    std::exit(2);
  }
  unlink(path.c_str());
  return static_cast<double>(end - start) / static_cast<double>(ops);
}

struct Passthru {
  double libc_ns, sys_ns;  // per operation
};

// One repetition of a pass-through case: `ops` operations through libc and `ops` through
// syscall(2), alternating in chunks so that both see the same moments of the VM.
Passthru RunPassthru(const std::string& name, const std::string& dir, uint64_t ops, uint64_t file_bytes, int rep,
                     char* buf) {
  constexpr uint64_t kChunk = 1000;
  std::mt19937_64 rng(static_cast<uint64_t>(rep) + 1);
  uint64_t blocks = file_bytes / kIo;
  std::string path = dir + "/shim_bench." + name + "." + std::to_string(getpid());
  int fds[2] = {-1, -1};
  bool file = name == "passthru_file";
  if (file) {
    fds[0] = CreateFilled(path, file_bytes, buf);
  } else if (name == "passthru_pipe" ? pipe(fds) != 0 : socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
    Fail(name);
  }
  auto op = [&](bool sys) {
    if (file) {
      auto at = static_cast<off_t>((rng() % blocks) * kIo);
      long r = sys ? syscall(SYS_pread64, fds[0], buf, kIo, at) : pread(fds[0], buf, kIo, at);
      if (r != static_cast<long>(kIo)) Fail("pread");
      r = sys ? syscall(SYS_pwrite64, fds[0], buf, kIo, at) : pwrite(fds[0], buf, kIo, at);
      if (r != static_cast<long>(kIo)) Fail("pwrite");
    } else {
      long r = sys ? syscall(SYS_write, fds[1], buf, 64) : write(fds[1], buf, 64);
      if (r != 64) Fail("write");
      r = sys ? syscall(SYS_read, fds[0], buf, 64) : read(fds[0], buf, 64);
      if (r != 64) Fail("read");
    }
  };
  uint64_t libc_ns = 0, sys_ns = 0;
  for (uint64_t done = 0; done < ops; done += kChunk) {
    uint64_t n = std::min(kChunk, ops - done);
    for (int sys = 0; sys < 2; ++sys) {
      bool first_sys = (done / kChunk) % 2 == 1;  // alternate which goes first
      bool use_sys = (sys == 1) != first_sys;
      uint64_t t0 = NowNs();
      for (uint64_t i = 0; i < n; ++i) op(use_sys);
      (use_sys ? sys_ns : libc_ns) += NowNs() - t0;
    }
  }
  close(fds[0]);
  if (fds[1] >= 0) close(fds[1]);
  if (file) unlink(path.c_str());
  return {static_cast<double>(libc_ns) / static_cast<double>(ops), static_cast<double>(sys_ns) / static_cast<double>(ops)};
}

}  // namespace

// The child of `firstopen`: times its first open + pread + close of `path`, reports the ns on stdout.
int FirstOpenChild(const std::string& path) {
  char buf[kIo];
  uint64_t start = NowNs();
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0 || pread(fd, buf, kIo, 0) != static_cast<ssize_t>(kIo)) return 1;
  close(fd);
  uint64_t ns = NowNs() - start;
  return write(STDOUT_FILENO, &ns, sizeof(ns)) == static_cast<ssize_t>(sizeof(ns)) ? 0 : 1;
}

int main(int argc, char** argv) {
  std::string first_open = Option(argc, argv, "first-open-child", "");
  if (!first_open.empty()) return FirstOpenChild(first_open);
  std::string dir = Option(argc, argv, "dir", "");
  std::string name = Option(argc, argv, "case", "");
  if (dir.empty() || name.empty()) {
    std::fprintf(stderr, "usage: shim_bench --dir=DIR --case=NAME [--ops=N] [--reps=N] [--file_mib=N]\n");
    return 2;
  }
  uint64_t ops = std::stoull(Option(argc, argv, "ops", "20000"));
  int reps = std::stoi(Option(argc, argv, "reps", "5"));
  uint64_t file_bytes = std::stoull(Option(argc, argv, "file_mib", "64")) << 20;
  // Page-aligned, so both sides copy from the same kind of buffer (where malloc puts it differs
  // with the shim loaded).
  auto* buf = static_cast<char*>(std::aligned_alloc(kIo, kIo));
  if (buf == nullptr) Fail("aligned_alloc");
  std::memset(buf, 'x', kIo);
  std::vector<double> ns, sys_ns;
  bool passthru = name.rfind("passthru_", 0) == 0;
  for (int r = 0; r < reps; ++r) {
    if (passthru) {
      Passthru p = RunPassthru(name, dir, ops, file_bytes, r, buf);
      ns.push_back(p.libc_ns);
      sys_ns.push_back(p.sys_ns);
    } else {
      ns.push_back(RunOnce(name, dir, ops, file_bytes, r, buf));
    }
  }
  std::free(buf);
  std::sort(ns.begin(), ns.end());
  std::sort(sys_ns.begin(), sys_ns.end());
  std::printf("{\"case\": \"%s\", \"dir\": \"%s\", \"preloaded\": %s, \"ops\": %llu, \"reps\": %d, "
              "\"ns_per_op_median\": %.1f, \"ns_per_op_min\": %.1f, \"ns_per_op_max\": %.1f",
              name.c_str(), dir.c_str(), getenv("LD_PRELOAD") != nullptr ? "true" : "false",
              static_cast<unsigned long long>(ops), reps, ns[ns.size() / 2], ns.front(), ns.back());
  if (passthru) std::printf(", \"sys_ns_per_op_median\": %.1f", sys_ns[sys_ns.size() / 2]);
  std::printf("}\n");
  return 0;
}
