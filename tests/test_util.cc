#include "tests/test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

#include "lib/file_core.h"
#include "lib/open_lock.h"
#include "lib/shared_state.h"

namespace tern::test {

std::string Describe(Status s) {
  if (s.ok()) return "OK";
  std::string out = "errno " + std::to_string(s.err()) + " (" + strerrorname_np(s.err()) + ")";
  if (s.context() != nullptr && s.context()[0] != '\0') out += std::string(": ") + s.context();
  return out;
}

namespace {

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  remove(path);
  return 0;
}

}  // namespace

TempDir::TempDir() {
  const char* base = getenv("TERN_TEST_DIR");
  std::string tmpl = std::string(base != nullptr && base[0] != '\0' ? base : "/dev/shm") +
                     "/tern-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << ": " << strerror(errno);
    return;
  }
  path_ = buf.data();
  shm_dir_ = path_ + "/.shm";
  if (mkdir(shm_dir_.c_str(), 0700) != 0) ADD_FAILURE() << "mkdir " << shm_dir_;
  const char* old = getenv("TERN_SHM_DIR");
  had_shm_env_ = old != nullptr;
  if (old != nullptr) old_shm_env_ = old;
  setenv("TERN_SHM_DIR", shm_dir_.c_str(), 1);
}

TempDir::~TempDir() {
  if (had_shm_env_) {
    setenv("TERN_SHM_DIR", old_shm_env_.c_str(), 1);
  } else {
    unsetenv("TERN_SHM_DIR");
  }
  if (!path_.empty()) nftw(path_.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

std::vector<std::string> TempDir::ShmEntries() const {
  std::vector<std::string> names;
  DIR* d = opendir(shm_dir_.c_str());
  if (d == nullptr) return names;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    // The sweep's time marker (SharedState::SweepOrphansIfDue) is not a file's state.
    if (name != "." && name != ".." && !name.starts_with(SharedState::kSweepMarkerPrefix)) names.push_back(name);
  }
  closedir(d);
  return names;
}

namespace {

// splitmix64 of (seed, word index): cheap and well mixed; 8 pattern bytes per call.
uint64_t PatternWord(uint64_t seed, uint64_t word) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + word * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

uint8_t PatternByte(uint64_t seed, uint64_t offset) {
  return static_cast<uint8_t>(PatternWord(seed, offset / 8) >> (8 * (offset % 8)));
}

void FillPattern(uint64_t seed, uint64_t offset, uint8_t* out, size_t len) {
  size_t i = 0;
  while (i < len && (offset + i) % 8 != 0) {
    out[i] = PatternByte(seed, offset + i);
    ++i;
  }
  for (; i + 8 <= len; i += 8) {
    uint64_t w = PatternWord(seed, (offset + i) / 8);
    memcpy(out + i, &w, 8);  // little-endian: byte k of the word is offset + i + k
  }
  for (; i < len; ++i) out[i] = PatternByte(seed, offset + i);
}

std::vector<uint8_t> Pattern(uint64_t seed, uint64_t offset, size_t len) {
  std::vector<uint8_t> v(len);
  FillPattern(seed, offset, v.data(), len);
  return v;
}

std::vector<uint8_t> ReadRawFile(const std::string& path) {
  std::vector<uint8_t> out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ADD_FAILURE() << "open " << path << ": " << strerror(errno);
    return out;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ADD_FAILURE() << "fstat " << path;
    close(fd);
    return out;
  }
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n <= 0) {
      ADD_FAILURE() << "pread " << path;
      out.resize(done);
      break;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return out;
}

bool WriteRawBytes(const std::string& path, uint64_t offset, const void* data, size_t len) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = pwrite(fd, data, len, static_cast<off_t>(offset));
  close(fd);
  return n == static_cast<ssize_t>(len);
}

void CreateRoomyFile(const std::string& path, uint64_t backing_bytes) {
  auto f = File::Open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
  ASSERT_TRUE(f.ok()) << path << ": " << Describe(f.status());
  CloseAndSettle(std::move(*f));
  // Closed everywhere and small, so no shared state rests: the next open sizes its allocator from
  // the backing file.
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  EXPECT_EQ(fallocate(fd, 0, 0, static_cast<off_t>(backing_bytes)), 0) << path << ": " << strerror(errno);
  close(fd);
}

bool WritePlainFile(const std::string& path, const std::vector<uint8_t>& content) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  ssize_t n = write(fd, content.data(), content.size());
  close(fd);
  return n == static_cast<ssize_t>(content.size());
}

Result<std::vector<uint8_t>> ReadAll(tern::File& f, size_t chunk) {
  auto size = f.Size();
  if (!size.ok()) return size.status();
  std::vector<uint8_t> out(static_cast<size_t>(*size));
  size_t done = 0;
  while (done < out.size()) {
    size_t want = std::min(chunk, out.size() - done);
    auto n = f.Pread(out.data() + done, want, done);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    done += *n;
  }
  out.resize(done);
  return out;
}

int64_t FirstDifference(const uint8_t* a, const uint8_t* b, size_t len) {
  if (len == 0 || memcmp(a, b, len) == 0) return -1;
  for (size_t i = 0; i < len; ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  }
  return -1;
}

int64_t FirstDifference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  size_t n = std::min(a.size(), b.size());
  int64_t d = FirstDifference(a.data(), b.data(), n);
  if (d >= 0) return d;
  return a.size() == b.size() ? -1 : static_cast<int64_t>(n);
}

std::string ChildOutcome::Describe() const {
  if (exited) return "exited with code " + std::to_string(code);
  std::string name = sigabbrev_np(signal) != nullptr ? sigabbrev_np(signal) : "?";
  return "killed by signal " + std::to_string(signal) + " (SIG" + name + ")";
}

ChildOutcome RunIsolated(const std::function<int()>& fn, unsigned watchdog_seconds) {
  ChildOutcome out;
  pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return out;
  }
  if (pid == 0) {
    alarm(watchdog_seconds);
    int code = fn();
    _exit(code < 0 || code > 254 ? 255 : code);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      ADD_FAILURE() << "waitpid: " << strerror(errno);
      return out;
    }
  }
  if (WIFEXITED(status)) {
    out.exited = true;
    out.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  }
  return out;
}

void CloseAndSettle(std::unique_ptr<tern::File> f) {
  std::string path = f->core().path();
  std::weak_ptr<FileCore> core = f->core().shared_from_this();
  f.reset();
  // Destruction starts once the last reference goes (possibly on the background thread); the open
  // lock goes at its very end.
  while (!core.expired()) usleep(1000);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // renamed or deleted: nothing to look at
  for (int waited_ms = 0;; ++waited_ms) {
    auto elsewhere = OpenedElsewhere(fd);
    if (!elsewhere.ok() || !*elsewhere) break;
    if (waited_ms == 10000) {
      ADD_FAILURE() << path << " still open somewhere after 10 s";
      break;
    }
    usleep(1000);
  }
  close(fd);
}

bool OpenSomewhere(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    ADD_FAILURE() << path << ": " << strerror(errno);
    return false;
  }
  auto elsewhere = OpenedElsewhere(fd);
  close(fd);
  if (!elsewhere.ok()) {
    ADD_FAILURE() << path << ": " << elsewhere.status().context();
    return false;
  }
  return *elsewhere;
}

namespace {
// The child's ends of its pipes (HookedChild), for the hook's callback, a plain function.
int g_hooked_to_parent = -1, g_hooked_from_parent = -1;

void StopAtHookOnce() {
  static bool done = false;
  if (done) return;
  done = true;
  char c = 'h';
  if (write(g_hooked_to_parent, &c, 1) != 1 || read(g_hooked_from_parent, &c, 1) != 1) _exit(10);
}
}  // namespace

std::unique_ptr<HookedChild> HookedChild::Fork(test_hooks::WindowHook& hook, const std::function<int()>& body) {
  int up[2], down[2];
  if (pipe(up) != 0) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    return nullptr;
  }
  if (pipe(down) != 0) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    close(up[0]);
    close(up[1]);
    return nullptr;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(up[0]);
    close(down[1]);
    g_hooked_to_parent = up[1];
    g_hooked_from_parent = down[0];
    char go;
    if (read(down[0], &go, 1) != 1) _exit(9);
    hook.callback.store(StopAtHookOnce);
    _exit(body());
  }
  close(up[1]);
  close(down[0]);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    close(up[0]);
    close(down[1]);
    return nullptr;
  }
  std::unique_ptr<HookedChild> child(new HookedChild);
  child->pid_ = pid;
  child->to_child_ = down[1];
  child->from_child_ = up[0];
  return child;
}

HookedChild::~HookedChild() {
  close(to_child_);
  close(from_child_);
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void HookedChild::Go() {
  char c = 'g';
  if (write(to_child_, &c, 1) != 1) ADD_FAILURE() << "the child is gone before it started";
}

bool HookedChild::Stopped() {
  char c;
  return read(from_child_, &c, 1) == 1;
}

void HookedChild::Resume() {
  char c = 'r';
  if (write(to_child_, &c, 1) != 1) ADD_FAILURE() << "the child is gone while it was stopped";
}

int HookedChild::Wait() {
  int status = WaitExitStatus(pid_);
  pid_ = -1;
  return status;
}

int WaitExitStatus(pid_t pid) {
  int status = 0;
  if (pid <= 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

size_t PublishedObjects(const TempDir& dir) {
  size_t n = 0;
  for (const std::string& name : dir.ShmEntries()) n += name.starts_with(SharedState::kPublishedPrefix);
  return n;
}

int DieWithFileOpen(const std::string& path, uint64_t seed, size_t bytes) {
  pid_t pid = fork();
  if (pid == 0) {
    auto f = tern::File::Open(path, O_RDWR | O_CREAT, 0644);
    std::vector<uint8_t> data = Pattern(seed, 0, bytes);
    _exit(f.ok() && (*f)->Pwrite(data.data(), data.size(), 0).ok() && (*f)->Fsync().ok() ? 0 : 1);
  }
  return WaitExitStatus(pid);
}

int ChildReads(const std::string& path, uint64_t seed, size_t bytes) {
  pid_t pid = fork();
  if (pid == 0) {
    auto f = tern::File::Open(path, O_RDONLY);
    if (!f.ok()) _exit(2);
    std::vector<uint8_t> got(bytes);
    auto n = (*f)->Pread(got.data(), got.size(), 0);
    _exit(n.ok() && *n == bytes && got == Pattern(seed, 0, bytes) ? 0 : 3);
  }
  return WaitExitStatus(pid);
}

}  // namespace tern::test
