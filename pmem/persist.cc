#include "pmem/persist.h"

#include <immintrin.h>

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

#include "pmem/cpu_features.h"
#include "pmem/persist_backend.h"

#if defined(__SANITIZE_THREAD__)
#define TERN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TERN_TSAN 1
#endif
#endif

#ifdef TERN_TSAN
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

namespace tern::pmem {
namespace {

// tern issues its own cache-line write-backs, fences and non-temporal stores until a file turns
// out to be on real persistent memory (UseLibpmem): loading PMDK libpmem (it needs libndctl,
// libdaxctl, libudev, libkmod, libcrypto, libzstd, liblzma) cost every process that wrote a tern
// file ~1.3 ms here, more than a whole `echo line >> log` takes on the kernel, and its start-up
// runs a dozen CPUID instructions, each a trap to the hypervisor (~8 µs). On emulated PM (tmpfs)
// libpmem would pick what is below: CLWB for flushes, SFENCE, non-temporal stores for copies of
// 256 bytes or more.

// Data copies to and from media are outside the C++ memory model by design: an optimistic reader
// may copy a block while a writer fills it or takes it for a log block (a block freed and taken
// again, a tail appended in place), and finds out by validating the log afterwards.
// ThreadSanitizer is told not to record them (it never saw the stores while libpmem, not
// instrumented, made them); the words of the log (Store64, Cas64, Load64) stay checked.
#ifdef TERN_TSAN
template <void (*kBegin)(const char*, int), void (*kEnd)(const char*, int)>
class TsanIgnores {
 public:
  TsanIgnores() { kBegin(__FILE__, __LINE__); }
  ~TsanIgnores() { kEnd(__FILE__, __LINE__); }
  TsanIgnores(const TsanIgnores&) = delete;
  TsanIgnores& operator=(const TsanIgnores&) = delete;
};
using MediaStores = TsanIgnores<AnnotateIgnoreWritesBegin, AnnotateIgnoreWritesEnd>;
using MediaLoads = TsanIgnores<AnnotateIgnoreReadsBegin, AnnotateIgnoreReadsEnd>;
#else
struct MediaStores {};
struct MediaLoads {};
#endif

constexpr uintptr_t kLine = 64;
constexpr size_t kNonTemporalMin = 256;  // libpmem's default threshold for non-temporal copies

using FlushLinesFn = void (*)(uintptr_t first, uintptr_t end);

__attribute__((target("clwb"))) void FlushLinesClwb(uintptr_t first, uintptr_t end) {
  for (uintptr_t p = first; p < end; p += kLine) _mm_clwb(reinterpret_cast<void*>(p));
}
__attribute__((target("clflushopt"))) void FlushLinesClflushopt(uintptr_t first, uintptr_t end) {
  for (uintptr_t p = first; p < end; p += kLine) _mm_clflushopt(reinterpret_cast<void*>(p));
}
void FlushLinesClflush(uintptr_t first, uintptr_t end) {
  for (uintptr_t p = first; p < end; p += kLine) _mm_clflush(reinterpret_cast<void*>(p));
}

// From the CPU features glibc read at start-up (no CPUID here). CLWB keeps the line cached;
// CLFLUSHOPT evicts it; CLFLUSH, in every x86-64, also serialises.
FlushLinesFn ChooseFlush() {
  if (CPU_FEATURE_ACTIVE(CLWB)) return FlushLinesClwb;
  if (CPU_FEATURE_ACTIVE(CLFLUSHOPT)) return FlushLinesClflushopt;
  return FlushLinesClflush;
}

void FlushRange(const void* addr, size_t len) {
  static const FlushLinesFn flush_lines = ChooseFlush();
  auto start = reinterpret_cast<uintptr_t>(addr);
  flush_lines(start & ~(kLine - 1), start + len);
}

// Non-temporal stores of whole 64-byte lines: dst is line-aligned; src (nullptr: zeros) has no
// alignment. One version per vector width, chosen like the flush.
using StreamLinesFn = void (*)(uint8_t* dst, const uint8_t* src, size_t lines);

__attribute__((target("avx512f"))) void StreamLinesAvx512(uint8_t* dst, const uint8_t* src, size_t lines) {
  for (size_t i = 0; i < lines; ++i, dst += kLine) {
    __m512i v = src == nullptr ? _mm512_setzero_si512() : _mm512_loadu_si512(src + i * kLine);
    _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), v);
  }
}
__attribute__((target("avx"))) void StreamLinesAvx(uint8_t* dst, const uint8_t* src, size_t lines) {
  for (size_t i = 0; i < lines; ++i, dst += kLine) {
    for (size_t half = 0; half < kLine; half += 32) {
      __m256i v = src == nullptr ? _mm256_setzero_si256()
                                 : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i * kLine + half));
      _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + half), v);
    }
  }
}
void StreamLinesSse2(uint8_t* dst, const uint8_t* src, size_t lines) {
  for (size_t i = 0; i < lines; ++i, dst += kLine) {
    for (size_t quarter = 0; quarter < kLine; quarter += 16) {
      __m128i v = src == nullptr ? _mm_setzero_si128()
                                 : _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * kLine + quarter));
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + quarter), v);
    }
  }
}

StreamLinesFn ChooseStream() {
  if (CPU_FEATURE_ACTIVE(AVX512F)) return StreamLinesAvx512;
  if (CPU_FEATURE_ACTIVE(AVX)) return StreamLinesAvx;
  return StreamLinesSse2;
}

// Ordinary stores of len bytes from src (nullptr: zeros) to dst, then flushed.
void StoreCached(uint8_t* dst, const uint8_t* src, size_t len) {
  if (src == nullptr) {
    std::memset(dst, 0, len);
  } else {
    std::memcpy(dst, src, len);
  }
  FlushRange(dst, len);
}

// The whole lines of [dst, dst+len) with non-temporal stores, the partial lines at either end
// with ordinary ones, flushed.
void StoreNonTemporal(uint8_t* dst, const uint8_t* src, size_t len) {
  static const StreamLinesFn stream_lines = ChooseStream();
  auto from = [src](size_t off) { return src == nullptr ? nullptr : src + off; };
  size_t head = std::min<size_t>(len, (0 - reinterpret_cast<uintptr_t>(dst)) & (kLine - 1));
  size_t lines = (len - head) / kLine;
  size_t body_end = head + lines * kLine;
  if (head > 0) StoreCached(dst, src, head);
  stream_lines(dst + head, from(head), lines);
  if (body_end < len) StoreCached(dst + body_end, from(body_end), len - body_end);
}

void WriteNative(uint8_t* dst, const uint8_t* src, size_t len) {
  if (len >= kNonTemporalMin) {
    StoreNonTemporal(dst, src, len);
  } else {
    StoreCached(dst, src, len);
  }
}

const PersistBackend kNative = {"tern", &FlushRange, [] { _mm_sfence(); }, &WriteNative};
std::atomic<const PersistBackend*> g_backend{&kNative};

const PersistBackend& Backend() {
  static const bool forced = [] {
    const char* v = getenv("TERN_PMEM_LIBPMEM");
    if (v != nullptr && strcmp(v, "1") == 0) UseLibpmem();
    return true;
  }();
  (void)forced;
  return *g_backend.load(std::memory_order_acquire);
}

// Writes len bytes from src (nullptr: zeros) to media at dst and flushes them; not fenced.
void WriteMedia(uint8_t* dst, const uint8_t* src, size_t len) {
  [[maybe_unused]] MediaStores stores;
  Backend().write(dst, src, len);
}

}  // namespace

void UseLibpmem() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const PersistBackend* libpmem = LoadLibpmemBackend()) g_backend.store(libpmem, std::memory_order_release);
  });
}

const char* BackendName() { return Backend().name; }

void Flush(const void* addr, size_t len) {
  if (len == 0) return;
  Backend().flush(addr, len);
  if constexpr (kBuildOptions.pmem_trace) trace::OnFlush(addr, len);
}

void Drain() {
  Backend().drain();
  if constexpr (kBuildOptions.pmem_trace) trace::OnFence();
}

void Persist(const void* addr, size_t len) {
  Flush(addr, len);
  Drain();
}

void CopyNoDrain(void* dst, const void* src, size_t len) {
  if (len == 0) return;
  WriteMedia(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), len);
  if constexpr (kBuildOptions.pmem_trace) {
    trace::OnStore(dst, len);
    trace::OnFlush(dst, len);
  }
}

void CopyFromMedia(void* dst, const void* src, size_t len) {
  [[maybe_unused]] MediaLoads loads;
  std::memcpy(dst, src, len);
}

void CopyPersist(void* dst, const void* src, size_t len) {
  CopyNoDrain(dst, src, len);
  Drain();
}

void ZeroNoDrain(void* dst, size_t len) {
  if (len == 0) return;
  WriteMedia(static_cast<uint8_t*>(dst), nullptr, len);
  if constexpr (kBuildOptions.pmem_trace) {
    trace::OnStore(dst, len);
    trace::OnFlush(dst, len);
  }
}

}  // namespace tern::pmem
