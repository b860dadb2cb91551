#pragma once
// Result<T>: a T or the Status saying why there is none. Errors are values
// on the request path; value() on an error is a programming mistake and
// throws BadResultAccess (the engine's API never lets that escape).
// Not thread-safe to mutate; safe to read concurrently.

#include <keel/core/status.hpp>

#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace keel {

class BadResultAccess : public std::logic_error {
 public:
  explicit BadResultAccess(const Status& s)
      : std::logic_error("Result::value() on an error: " + s.to_string()) {}
};

template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Status>, "Result<Status> is meaningless");

 public:
  using value_type = T;

  // Implicit from a value or an error, so `return value;` and
  // `return invalid_input("...");` both work.
  Result(const T& value) : v_(std::in_place_index<1>, value) {}             // NOLINT
  Result(T&& value) noexcept(std::is_nothrow_move_constructible_v<T>)       // NOLINT
      : v_(std::in_place_index<1>, std::move(value)) {}
  Result(Status status) : v_(std::in_place_index<0>, std::move(status)) {   // NOLINT
    if (std::get<0>(v_).is_ok()) {
      std::get<0>(v_) = Status(StatusCode::kInternal, "Result constructed from an ok Status without a value");
    }
  }
  template <class... Args>
  explicit Result(std::in_place_t, Args&&... args) : v_(std::in_place_index<1>, std::forward<Args>(args)...) {}

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 1; }
  explicit operator bool() const noexcept { return ok(); }

  // The error; Status::ok() when there is a value.
  [[nodiscard]] Status status() const {
    return ok() ? Status::ok() : std::get<0>(v_);
  }
  [[nodiscard]] StatusCode code() const noexcept { return ok() ? StatusCode::kOk : std::get<0>(v_).code(); }

  T& value() & { check(); return std::get<1>(v_); }
  const T& value() const& { check(); return std::get<1>(v_); }
  T&& value() && { check(); return std::get<1>(std::move(v_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  template <class U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<1>(v_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void check() const {
    if (!ok()) throw BadResultAccess(std::get<0>(v_));
  }
  std::variant<Status, T> v_;
};

}  // namespace keel
