#pragma once
// Deadline: the instant by which a request must be answered. A value type;
// thread-safe to share. Deadline::never() never expires.

#include <keel/core/clock.hpp>

#include <algorithm>

namespace keel {

class Deadline {
 public:
  constexpr Deadline() noexcept : at_(TimePoint::max()) {}
  constexpr explicit Deadline(TimePoint at) noexcept : at_(at) {}

  static constexpr Deadline never() noexcept { return Deadline{}; }
  static Deadline after(Duration d, const Clock& clock = system_clock()) noexcept {
    return after(d, clock.now());
  }
  static Deadline after(Duration d, TimePoint now) noexcept {
    if (d <= Duration::zero()) return Deadline{now};
    if (now > TimePoint::max() - d) return never();  // saturate, never wrap
    return Deadline{now + d};
  }

  [[nodiscard]] constexpr TimePoint time() const noexcept { return at_; }
  [[nodiscard]] constexpr bool is_never() const noexcept { return at_ == TimePoint::max(); }
  [[nodiscard]] bool expired(TimePoint now) const noexcept { return now >= at_; }
  [[nodiscard]] bool expired(const Clock& clock = system_clock()) const noexcept { return expired(clock.now()); }
  // Time left, zero once expired, Duration::max() for never().
  [[nodiscard]] Duration remaining(TimePoint now) const noexcept {
    if (is_never()) return Duration::max();
    return now >= at_ ? Duration::zero() : at_ - now;
  }
  [[nodiscard]] Duration remaining(const Clock& clock = system_clock()) const noexcept {
    return remaining(clock.now());
  }
  // The earlier of this deadline and now + timeout (a per-attempt timeout
  // inside the request's deadline).
  [[nodiscard]] Deadline min_with_timeout(Duration timeout, TimePoint now) const noexcept {
    return earliest(*this, after(timeout, now));
  }
  static constexpr Deadline earliest(Deadline a, Deadline b) noexcept {
    return Deadline{std::min(a.at_, b.at_)};
  }

  friend constexpr bool operator==(Deadline a, Deadline b) noexcept { return a.at_ == b.at_; }
  friend constexpr bool operator<(Deadline a, Deadline b) noexcept { return a.at_ < b.at_; }

 private:
  TimePoint at_;
};

}  // namespace keel
