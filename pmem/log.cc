#include "pmem/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tern {
namespace {

constexpr int kUnset = -1;
std::atomic<int> g_level{kUnset};
std::atomic<int> g_fd{kUnset};

LogLevel ParseLevel(const char* s) {
  if (s == nullptr) return LogLevel::kWarn;
  if (strcmp(s, "debug") == 0) return LogLevel::kDebug;
  if (strcmp(s, "info") == 0) return LogLevel::kInfo;
  if (strcmp(s, "warn") == 0) return LogLevel::kWarn;
  if (strcmp(s, "error") == 0) return LogLevel::kError;
  if (strcmp(s, "off") == 0) return LogLevel::kOff;
  return LogLevel::kWarn;
}

int OutputFd() {
  int fd = g_fd.load(std::memory_order_acquire);
  if (fd != kUnset) return fd;
  const char* path = getenv("TERN_LOG_FILE");
  int opened = STDERR_FILENO;
  if (path != nullptr && path[0] != '\0') {
    int f = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (f >= 0) opened = f;
  }
  int expected = kUnset;
  if (!g_fd.compare_exchange_strong(expected, opened) && opened != STDERR_FILENO) {
    close(opened);
    return expected;
  }
  return opened;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: break;
  }
  return "off";
}

}  // namespace

LogLevel CurrentLogLevel() {
  int level = g_level.load(std::memory_order_relaxed);
  if (level == kUnset) {
    level = static_cast<int>(ParseLevel(getenv("TERN_LOG")));
    g_level.store(level, std::memory_order_relaxed);
  }
  return static_cast<LogLevel>(level);
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

void LogLine(LogLevel level, const char* fmt, ...) {
  char line[1024];
  int head = snprintf(line, sizeof(line), "tern[%d] %s: ", static_cast<int>(getpid()), LevelName(level));
  if (head < 0) return;
  va_list args;
  va_start(args, fmt);
  int body = vsnprintf(line + head, sizeof(line) - static_cast<size_t>(head) - 1, fmt, args);
  va_end(args);
  if (body < 0) return;
  size_t len = strnlen(line, sizeof(line) - 2);
  line[len++] = '\n';
  ssize_t ignored = write(OutputFd(), line, len);
  (void)ignored;
}

}  // namespace tern
