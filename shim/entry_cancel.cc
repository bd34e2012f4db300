// Entry point: pthread_cancel, so that a cancelled thread can unwind through the shim's frames.
//
// The shim carries its own copy of the C++ runtime and of libgcc's unwinder (linked statically:
// loading the shared ones cost every process start, shim/CMakeLists.txt). A cancellation unwinds
// with glibc's libgcc_s, which calls the shim's personality routine for the shim's frames, and
// that routine sets registers through the shim's copy of the unwinder, whose table of register
// sizes is filled the first time that copy unwinds: before that, the first cancellation that
// crossed a shim frame with a destructor or a catch (a thread blocked in open(2) of a FIFO, or
// cancelled inside a tern write) aborted the program. The table is filled once, here, before any
// thread is cancelled; that costs one short walk of this thread's stack, and only programs that
// cancel threads pay it.
#include <pthread.h>
#include <unwind.h>

#include <cerrno>
#include <mutex>

#include "shim/common.h"
#include "shim/real_libc.h"

extern "C" {
int TernPthreadCancel(pthread_t thread) noexcept TERN_EXPORT_AS("pthread_cancel");
}

namespace {

_Unwind_Reason_Code StopAtFirstFrame(struct _Unwind_Context*, void*) { return _URC_END_OF_STACK; }

void PrepareUnwinder() {
  static std::once_flag once;
  std::call_once(once, [] { _Unwind_Backtrace(StopAtFirstFrame, nullptr); });
}

}  // namespace

int TernPthreadCancel(pthread_t thread) noexcept {
  if (tern::shim::Real().pthread_cancel == nullptr) return ENOSYS;
  PrepareUnwinder();
  return tern::shim::Real().pthread_cancel(thread);
}
