#include <keel/core/clock.hpp>

#include <thread>

namespace keel {

void SteadyClock::sleep_until(TimePoint t) { std::this_thread::sleep_until(t); }

Clock& system_clock() noexcept {
  static SteadyClock clock;
  return clock;
}

void ManualClock::sleep_until(TimePoint t) {
  if (auto_advance_.load()) {
    set(t);
    return;
  }
  std::unique_lock lock(mu_);
  ++sleepers_;
  cv_.wait(lock, [&] { return now() >= t; });
  --sleepers_;
}

void ManualClock::advance(Duration d) {
  {
    std::lock_guard lock(mu_);
    now_ns_.fetch_add(d.count(), std::memory_order_acq_rel);
  }
  cv_.notify_all();
}

void ManualClock::set(TimePoint t) {
  {
    std::lock_guard lock(mu_);
    const auto target = t.time_since_epoch().count();
    auto cur = now_ns_.load();
    while (cur < target && !now_ns_.compare_exchange_weak(cur, target)) {
    }
  }
  cv_.notify_all();
}

}  // namespace keel
