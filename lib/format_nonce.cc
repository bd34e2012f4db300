#include "lib/format_nonce.h"

#include <sys/random.h>
#include <time.h>

#include <atomic>

#include "lib/process_id.h"

namespace tern {
namespace {

// splitmix64's finalizer: a bijection of 64-bit words, so distinct inputs give distinct nonces.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t ProcessSeed() {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), 0) != static_cast<ssize_t>(sizeof(seed))) {
    struct timespec now {};
    clock_gettime(CLOCK_REALTIME, &now);
    seed = Mix(static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec));
  }
  return seed;
}

std::atomic<uint64_t> g_count{0};

}  // namespace

uint64_t NewFormatNonce() {
  static const uint64_t seed = ProcessSeed();
  // A forked child continues the parent's count with its own pid in the high half.
  uint64_t n = g_count.fetch_add(1, std::memory_order_relaxed);
  return Mix(seed ^ (static_cast<uint64_t>(ThisProcessId()) << 32) ^ n);
}

}  // namespace tern
