// A vector whose first N elements live inside it. The engine's per-write lists (the new block
// runs, the claimed blocks, a record's runs) fit there for any write of a few runs, so an ordinary
// write allocates nothing: a signal handler may then write to a tern file while the code it
// interrupted was inside malloc, as write(2) allows (shim/interruption_hold.h). Longer lists go
// to the heap as std::vector would.
//
// T: default-constructible and copyable (block runs, index pairs). Only what the engine uses.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>

namespace tern {

template <typename T, size_t N>
class SmallVector {
 public:
  SmallVector() = default;
  SmallVector(const SmallVector& o) { Assign(o); }
  SmallVector& operator=(const SmallVector& o) {
    if (this != &o) Assign(o);
    return *this;
  }
  ~SmallVector() = default;

  T* begin() { return data(); }
  T* end() { return data() + size_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }
  T* data() { return heap_ ? heap_.get() : inline_; }
  const T* data() const { return heap_ ? heap_.get() : inline_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  T& back() { return data()[size_ - 1]; }
  const T& back() const { return data()[size_ - 1]; }

  void clear() { size_ = 0; }
  void push_back(const T& v) {
    Reserve(size_ + 1);
    data()[size_++] = v;
  }
  template <typename... Args>
  void emplace_back(Args&&... args) {
    push_back(T{std::forward<Args>(args)...});
  }
  void push_front(const T& v) {
    Reserve(size_ + 1);
    T* d = data();
    std::copy_backward(d, d + size_, d + size_ + 1);
    d[0] = v;
    ++size_;
  }
  // Shrinks to n, or grows with default-constructed elements.
  void resize(size_t n) {
    Reserve(n);
    for (size_t i = size_; i < n; ++i) data()[i] = T{};
    size_ = n;
  }

 private:
  void Reserve(size_t n) {
    if (n <= capacity_) return;
    size_t grown = std::max(n, capacity_ * 2);
    auto fresh = std::make_unique<T[]>(grown);
    std::copy(data(), data() + size_, fresh.get());
    heap_ = std::move(fresh);
    capacity_ = grown;
  }
  void Assign(const SmallVector& o) {
    size_ = 0;
    Reserve(o.size_);
    std::copy(o.begin(), o.end(), data());
    size_ = o.size_;
  }

  T inline_[N]{};
  std::unique_ptr<T[]> heap_;
  size_t size_ = 0;
  size_t capacity_ = N;
};

}  // namespace tern
