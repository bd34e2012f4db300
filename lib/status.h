// tern::Status and tern::Result<T>: the error model inside tern.
//
// A Status is a positive errno (0 = OK) plus an optional string-literal context that says what
// failed; it never allocates, so the OK path is free. The errno is the one the kernel would give
// (EUCLEAN for a damaged tern file) and is never folded into another. Result<T> is a value or a
// non-OK Status. Propagate with TERN_TRY / TERN_ASSIGN_OR_RETURN.
#pragma once

#include <cassert>
#include <cerrno>
#include <utility>
#include <variant>

namespace tern {

// errno used by File::Open for "this file is not a tern file" (the shim then serves it from the
// kernel). EMEDIUMTYPE: "wrong medium type".
inline constexpr int kNotTernFile = EMEDIUMTYPE;

class [[nodiscard]] Status {
 public:
  constexpr Status() = default;
  static constexpr Status Ok() { return Status(); }
  static constexpr Status Error(int err, const char* context = "") { return Status(err, context); }

  constexpr bool ok() const { return errno_ == 0; }
  constexpr int err() const { return errno_; }
  constexpr const char* context() const { return context_; }

 private:
  constexpr Status(int err, const char* context) : errno_(err), context_(context) {
    assert(err > 0);
  }
  int errno_ = 0;
  const char* context_ = "";
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit on purpose, like StatusOr
  Result(Status status) : v_(status) { assert(!status.ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tern

#define TERN_CONCAT_INNER(a, b) a##b
#define TERN_CONCAT(a, b) TERN_CONCAT_INNER(a, b)

#define TERN_TRY(expr)                       \
  do {                                       \
    ::tern::Status _tern_st = (expr);        \
    if (!_tern_st.ok()) return _tern_st;     \
  } while (0)

#define TERN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define TERN_ASSIGN_OR_RETURN(lhs, expr) \
  TERN_ASSIGN_OR_RETURN_IMPL(TERN_CONCAT(_tern_res_, __LINE__), lhs, expr)
