#include "lib/process_id.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>

namespace tern {
namespace {

std::atomic<uint32_t> g_pid{0};

}  // namespace

void RefreshThisProcessId() { g_pid.store(static_cast<uint32_t>(getpid()), std::memory_order_relaxed); }

uint32_t ThisProcessId() {
  static const bool installed = [] {
    pthread_atfork(nullptr, nullptr, &RefreshThisProcessId);
    RefreshThisProcessId();
    return true;
  }();
  (void)installed;
  return g_pid.load(std::memory_order_relaxed);
}

}  // namespace tern
