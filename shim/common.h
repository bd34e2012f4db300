// Shared vocabulary of the shim: how entry points are exported, the engine re-entry guard, and the
// one helper that turns an error into errno + -1 (STYLE §4, shim boundary).
#pragma once

#include <cxxabi.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <new>

#include "lib/status.h"
#include "shim/interruption_hold.h"

// Every interposed libc function is defined under a C++ name of its own (`TernOpen`) and exported
// under the libc name through an asm label. The libc headers' own declarations (with their own
// exception specifications and fortify wrappers) are never redeclared, and nothing else in the
// library is exported (-fvisibility=hidden, and tern_lib's symbols hidden with --exclude-libs).
#define TERN_EXPORT_AS(sym) __asm__(sym) __attribute__((visibility("default"), used))

// Wraps the body of an entry point: nothing escapes into C callers. std::bad_alloc becomes ENOMEM,
// anything else EIO with one log line. An entry point that is a cancellation point (not noexcept)
// ends with TERN_CANCELLABLE_ENTRY_CATCH: a thread cancellation's unwinding goes on through it
// to the program (interruption_hold.h).
#define TERN_ENTRY_TRY try {
#define TERN_ENTRY_CATCH(fail_value)                       \
  }                                                        \
  TERN_ENTRY_HANDLERS(fail_value)
#define TERN_CANCELLABLE_ENTRY_CATCH(fail_value)           \
  }                                                        \
  catch (const abi::__forced_unwind&) {                    \
    throw;                                                 \
  }                                                        \
  TERN_ENTRY_HANDLERS(fail_value)
#define TERN_ENTRY_HANDLERS(fail_value)                    \
  catch (const std::bad_alloc&) {                          \
    errno = ENOMEM;                                        \
    return fail_value;                                     \
  }                                                        \
  catch (...) {                                            \
    ::tern::shim::LogUnexpectedException(__func__);        \
    errno = EIO;                                           \
    return fail_value;                                     \
  }

namespace tern::shim {

// Depth of engine calls on this thread. While it is non-zero every interposed entry point passes
// straight to the real libc: the engine opens, maps and locks backing files through the same
// symbols the shim exports.
// constinit: no dynamic initialiser, so a use is one %fs-relative load, not a call to a TLS wrapper.
extern constinit thread_local int t_engine_depth __attribute__((tls_model("initial-exec")));

inline bool InEngine() { return t_engine_depth != 0; }

// Engine code takes the engine's locks and allocates: signals and cancellation are held off while
// it runs (interruption_hold.h).
class EngineScope {
 public:
  EngineScope() { ++t_engine_depth; }
  ~EngineScope() { --t_engine_depth; }
  EngineScope(const EngineScope&) = delete;
  EngineScope& operator=(const EngineScope&) = delete;

 private:
  InterruptionsHeld held_;
};

// The shim-boundary conversion: errno = err, return -1.
inline int Fail(int err) {
  errno = err;
  return -1;
}
inline int FailWith(Status s) { return Fail(s.ok() ? EIO : s.err()); }

void LogUnexpectedException(const char* where);

// "/proc/self/fd/N": how the shim reaches what a descriptor names (the tern file behind a program's
// O_PATH fd, a directory fd's path, a backing file opened again). No allocation: usable in a
// fork's child and under a signal handler's call.
class ProcFdPath {
 public:
  explicit ProcFdPath(int fd) { snprintf(text_, sizeof(text_), "/proc/self/fd/%d", fd); }
  const char* c_str() const { return text_; }

 private:
  char text_[32];  // "/proc/self/fd/" and an int
};

}  // namespace tern::shim
