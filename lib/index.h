// Distinct index types: a logical block (position in the backing file), a virtual block (position
// in the file the application sees) and a block count cannot be mixed by accident. No conversion
// to or comparison with raw integers; only meaningful arithmetic.
#pragma once

#include <compare>
#include <cstdint>
#include <type_traits>

#include "lib/layout_constants.h"

namespace tern {

struct BlockCount {
  uint32_t n = 0;
  constexpr auto operator<=>(const BlockCount&) const = default;
};

template <typename Tag>
class BlockIndex {
 public:
  constexpr BlockIndex() = default;
  constexpr explicit BlockIndex(uint32_t v) : v_(v) {}
  constexpr uint32_t value() const { return v_; }
  constexpr uint64_t ToBytes() const { return uint64_t{v_} * kBlockSize; }
  constexpr auto operator<=>(const BlockIndex&) const = default;
  constexpr BlockIndex operator+(BlockCount c) const { return BlockIndex(v_ + c.n); }
  constexpr BlockCount operator-(BlockIndex o) const { return BlockCount{v_ - o.v_}; }

 private:
  uint32_t v_ = 0;
};

struct LogicalTag {};
struct VirtualTag {};
// Position of a block in the backing file. LogicalBlock(0) is the meta block, so it doubles as
// "no block" (a hole) in mappings.
using LogicalBlock = BlockIndex<LogicalTag>;
// Position of a block in the file as the application sees it (byte offset / 4096).
using VirtualBlock = BlockIndex<VirtualTag>;

inline constexpr LogicalBlock kNoBlock{0};

static_assert(sizeof(LogicalBlock) == 4 && std::is_trivially_copyable_v<LogicalBlock>);
static_assert(sizeof(VirtualBlock) == 4 && std::is_trivially_copyable_v<VirtualBlock>);

}  // namespace tern
