// Anonymous memory for DRAM that the engine fills all at once — the block table of a large file, a
// checkpoint read at open — backed by transparent huge pages where the kernel allows. Its first
// touch then costs one fault per 2 MiB instead of one per 4 KiB page (~5 µs each on this VM, more
// than the copy into it).
//
// Thread-safety: none of its own; the owner serialises.
#pragma once

#include <cstdint>

namespace tern {

class HugeBuffer {
 public:
  static constexpr uint64_t kHugePage = uint64_t{2} << 20;

  HugeBuffer() = default;
  // At least `bytes` of zeroed memory, 2 MiB aligned and a multiple of 2 MiB long. Empty (data() is
  // nullptr) when it cannot be mapped; without huge pages (THP off) it is plain 4 KiB pages.
  static HugeBuffer Map(uint64_t bytes);

  HugeBuffer(HugeBuffer&& other) noexcept;
  HugeBuffer& operator=(HugeBuffer&& other) noexcept;
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;
  ~HugeBuffer();

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  HugeBuffer(uint8_t* data, uint64_t size) : data_(data), size_(size) {}

  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace tern
