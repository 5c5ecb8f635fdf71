// result.h — Result<T>: a value or an Error, for runtime failures that callers
// must handle (Redis down, timeouts, malformed input). Shaped like
// std::expected, which GCC 12 offers only in C++23.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace mailgate {

struct Error {
  enum class Kind { Unavailable, Timeout, Protocol, Server, Invalid };
  Kind kind = Kind::Unavailable;
  std::string message;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Unit {};
using Status = Result<Unit>;
inline Status okStatus() { return Unit{}; }

}  // namespace mailgate
