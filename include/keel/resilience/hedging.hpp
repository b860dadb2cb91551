#pragma once
// Hedging: if an attempt has not answered after a delay, a second copy is
// started and the first good answer wins (Dean & Barroso, "The Tail at
// Scale"). Use a delay near the model's observed p95 so that about 5 % of
// calls pay for a second attempt. Only isolated calls hedge (isolation.hpp):
// an inline call cannot be raced. A value type; thread-safe to share.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>

#include <cstdint>

namespace keel {

struct HedgePolicy {
  // Off (Duration::max()) by default: hedging doubles load on the slow tail.
  Duration delay = Duration::max();
  // Extra copies beyond the first (at most this many hedges per call).
  std::uint32_t max_hedges = 1;

  [[nodiscard]] bool enabled() const noexcept { return delay != Duration::max() && max_hedges > 0; }
  // When the next copy may start, with `launched` copies running since
  // `now`; TimePoint::max() when no more may.
  [[nodiscard]] TimePoint next_at(std::uint32_t launched, TimePoint now) const noexcept {
    if (!enabled() || launched > max_hedges) return TimePoint::max();
    return Deadline::after(delay, now).time();
  }
};

}  // namespace keel
