#pragma once
// Clock: where every policy reads time, so that tests drive time by hand
// instead of sleeping. SteadyClock is the real one; ManualClock moves only
// when told to. Both are thread-safe.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace keel {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint now() const noexcept = 0;
  // Blocks the calling thread until `t` (returns at once if it has passed).
  // ManualClock returns when another thread advances time to `t`, or at
  // once when auto-advance is on.
  virtual void sleep_until(TimePoint t) = 0;
  void sleep_for(Duration d) { sleep_until(now() + d); }
};

// The process's steady clock. Thread-safe.
class SteadyClock final : public Clock {
 public:
  [[nodiscard]] TimePoint now() const noexcept override { return std::chrono::steady_clock::now(); }
  void sleep_until(TimePoint t) override;
};

// The shared SteadyClock instance; what every component uses by default.
Clock& system_clock() noexcept;

// A clock for tests: time stands still until advance() or set(). Thread-safe.
// With auto_advance on, sleep_until() moves time forward to its target
// itself, so single-threaded code that backs off runs instantly and the
// total simulated wait can be read back from now().
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint{} + std::chrono::hours(1), bool auto_advance = false)
      : now_ns_(start.time_since_epoch().count()), auto_advance_(auto_advance) {}

  [[nodiscard]] TimePoint now() const noexcept override {
    return TimePoint{Duration{now_ns_.load(std::memory_order_acquire)}};
  }
  void sleep_until(TimePoint t) override;

  void advance(Duration d);
  void set(TimePoint t);  // never moves backwards
  void set_auto_advance(bool on) noexcept { auto_advance_.store(on); }
  // Number of threads currently blocked in sleep_until (lets a test wait
  // until a worker is parked before it advances time).
  [[nodiscard]] int sleepers() const noexcept { return sleepers_.load(); }

 private:
  std::atomic<std::int64_t> now_ns_;
  std::atomic<bool> auto_advance_;
  std::atomic<int> sleepers_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace keel
