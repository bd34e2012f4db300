#include "lib/huge_buffer.h"

#include <sys/mman.h>

#include <cstdint>
#include <utility>

#include "pmem/mapping.h"

namespace tern {

HugeBuffer HugeBuffer::Map(uint64_t bytes) {
  uint64_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  if (size == 0) return {};
  void* base = nullptr;
  if (pmem::ReserveAddressSpace(size, &base) != 0) return {};  // 2 MiB aligned, as huge pages need
  if (mprotect(base, size, PROT_READ | PROT_WRITE) != 0) {
    pmem::ReleaseAddressSpace(base, size);
    return {};
  }
  (void)madvise(base, size, MADV_HUGEPAGE);  // advice: 4 KiB pages work too
  return HugeBuffer(static_cast<uint8_t*>(base), size);
}

HugeBuffer::HugeBuffer(HugeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

HugeBuffer& HugeBuffer::operator=(HugeBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) pmem::ReleaseAddressSpace(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

HugeBuffer::~HugeBuffer() {
  if (data_ != nullptr) pmem::ReleaseAddressSpace(data_, size_);
}

}  // namespace tern
