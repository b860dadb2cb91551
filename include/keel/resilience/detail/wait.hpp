#pragma once
// Waiting on a condition variable until a predicate holds or an injected
// Clock reaches a time point. With the real SteadyClock the wait is exact;
// with any other clock (ManualClock in tests) time only moves when someone
// moves it, so the wait re-reads the clock every kPollSlice of real time.
// That slice is a bounded cv wait, not a sleep: a notify ends it at once.

#include <keel/core/clock.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace keel::detail {

inline constexpr Duration kPollSlice = std::chrono::milliseconds(1);

inline bool is_real_clock(const Clock& clock) noexcept { return dynamic_cast<const SteadyClock*>(&clock) != nullptr; }

// Returns pred() at the end: false means the clock reached `until` first.
template <class Pred>
bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, const Clock& clock, bool real,
                TimePoint until, Pred pred) {
  while (!pred()) {
    const TimePoint now = clock.now();
    if (now >= until) return pred();
    const Duration left = until - now;
    if (real) {
      // Bounded so that a far deadline never overflows the wait's arithmetic.
      cv.wait_for(lock, std::min<Duration>(left, std::chrono::hours(1)));
    } else {
      cv.wait_for(lock, std::min(left, kPollSlice));
    }
  }
  return true;
}

}  // namespace keel::detail
