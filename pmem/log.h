// Process-wide logging for every layer of tern. It lives in pmem/ because pmem/ is the lowest layer
// and every other layer may log.
//
// Level from TERN_LOG=debug|info|warn|error|off (default warn); output to stderr, or appended to the
// file TERN_LOG_FILE. Lines are written with one write(2) each, so lines from concurrent threads and
// processes do not interleave, and no stdio or iostream is used (safe inside an LD_PRELOAD shim).
// Thread-safe. Never fails visibly: a line that cannot be written is dropped.
#pragma once

#include <cstdarg>

namespace tern {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// The level read from the environment at first use.
LogLevel CurrentLogLevel();
// Overrides the level (tests).
void SetLogLevel(LogLevel level);

void LogLine(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace tern

#define TERN_LOG_AT(level, ...)                                        \
  do {                                                                 \
    if (static_cast<int>(level) >= static_cast<int>(::tern::CurrentLogLevel())) \
      ::tern::LogLine(level, __VA_ARGS__);                             \
  } while (0)
#define TERN_LOG_DEBUG(...) TERN_LOG_AT(::tern::LogLevel::kDebug, __VA_ARGS__)
#define TERN_LOG_INFO(...) TERN_LOG_AT(::tern::LogLevel::kInfo, __VA_ARGS__)
#define TERN_LOG_WARN(...) TERN_LOG_AT(::tern::LogLevel::kWarn, __VA_ARGS__)
#define TERN_LOG_ERROR(...) TERN_LOG_AT(::tern::LogLevel::kError, __VA_ARGS__)
