// Raising a shared high-water mark (a durable position, a block count, the highest slot or fd
// used) that many threads or processes may raise at once and nobody lowers.
#pragma once

#include <atomic>

namespace tern {

// Makes `mark` at least `at_least`; a concurrent larger value wins. seq_cst, as a plain store.
template <typename T>
void RaiseAtomic(std::atomic<T>& mark, T at_least) {
  T cur = mark.load();
  while (cur < at_least && !mark.compare_exchange_weak(cur, at_least)) {
  }
}

}  // namespace tern
