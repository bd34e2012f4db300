#include "lib/huge_buffer.h"

#include <sys/mman.h>

#include <cstdint>
#include <utility>

namespace tern {

HugeBuffer HugeBuffer::Map(uint64_t bytes) {
  uint64_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  if (size == 0) return {};
  // Huge pages need 2 MiB alignment: map one huge page more and trim both ends.
  void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return {};
  auto start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > start) munmap(raw, aligned - start);
  munmap(reinterpret_cast<void*>(aligned + size), start + kHugePage - aligned);
  (void)madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);  // advice: 4 KiB pages work too
  return HugeBuffer(reinterpret_cast<uint8_t*>(aligned), size);
}

HugeBuffer::HugeBuffer(HugeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

HugeBuffer& HugeBuffer::operator=(HugeBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

HugeBuffer::~HugeBuffer() {
  if (data_ != nullptr) munmap(data_, size_);
}

}  // namespace tern
