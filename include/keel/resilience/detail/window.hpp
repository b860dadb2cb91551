#pragma once
// The sliding windows a CircuitBreaker counts outcomes in. Lock-free:
// recording is two or three relaxed atomic RMWs. Tolerated races, by
// design: a reset or a bucket roll-over racing a record may lose that one
// record; counts are never corrupted beyond that (they are kept as deltas
// of slot contents and clamped at zero when read).

#include <keel/core/clock.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

namespace keel::detail {

// Outcome bits of one call.
inline constexpr std::uint8_t kRecorded = 1;
inline constexpr std::uint8_t kFailed = 2;
inline constexpr std::uint8_t kSlow = 4;

struct WindowCounts {
  std::int64_t calls = 0;
  std::int64_t failures = 0;
  std::int64_t slow = 0;
};

// The last N calls: a ring of one-byte outcomes plus running totals.
class CountWindow {
 public:
  explicit CountWindow(std::uint32_t n) : n_(n), slots_(std::make_unique<std::atomic<std::uint8_t>[]>(n)) {
    for (std::uint32_t i = 0; i < n_; ++i) slots_[i].store(0, std::memory_order_relaxed);
  }

  void record(std::uint8_t outcome) noexcept {
    const auto i = next_.fetch_add(1, std::memory_order_relaxed) % n_;
    const std::uint8_t old = slots_[i].exchange(outcome, std::memory_order_relaxed);
    if (old != outcome) apply(old, outcome);
  }
  [[nodiscard]] WindowCounts counts() const noexcept {
    return {std::max<std::int64_t>(0, calls_.load(std::memory_order_relaxed)),
            std::max<std::int64_t>(0, failures_.load(std::memory_order_relaxed)),
            std::max<std::int64_t>(0, slow_.load(std::memory_order_relaxed))};
  }
  void reset() noexcept {
    for (std::uint32_t i = 0; i < n_; ++i) {
      const std::uint8_t old = slots_[i].exchange(0, std::memory_order_relaxed);
      if (old != 0) apply(old, 0);
    }
  }

 private:
  void apply(std::uint8_t old, std::uint8_t now) noexcept {
    auto bit = [](std::uint8_t v, std::uint8_t b) -> std::int64_t { return (v & b) ? 1 : 0; };
    if (const auto d = bit(now, kRecorded) - bit(old, kRecorded)) calls_.fetch_add(d, std::memory_order_relaxed);
    if (const auto d = bit(now, kFailed) - bit(old, kFailed)) failures_.fetch_add(d, std::memory_order_relaxed);
    if (const auto d = bit(now, kSlow) - bit(old, kSlow)) slow_.fetch_add(d, std::memory_order_relaxed);
  }

  std::uint32_t n_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> slots_;
  std::atomic<std::uint64_t> next_{0};
  std::atomic<std::int64_t> calls_{0};
  std::atomic<std::int64_t> failures_{0};
  std::atomic<std::int64_t> slow_{0};
};

// The last N seconds: one bucket per second, reused when its second is
// older than the window.
class TimeWindow {
 public:
  explicit TimeWindow(std::uint32_t seconds) : n_(seconds), buckets_(std::make_unique<Bucket[]>(seconds)) {}

  void record(std::uint8_t outcome, TimePoint now) noexcept {
    const std::int64_t sec = second(now);
    Bucket& b = buckets_[static_cast<std::uint64_t>(sec) % n_];
    std::int64_t e = b.epoch.load(std::memory_order_acquire);
    if (e < sec && b.epoch.compare_exchange_strong(e, sec, std::memory_order_acq_rel)) {
      b.calls.store(0, std::memory_order_relaxed);
      b.failures.store(0, std::memory_order_relaxed);
      b.slow.store(0, std::memory_order_relaxed);
    }
    b.calls.fetch_add(1, std::memory_order_relaxed);
    if (outcome & kFailed) b.failures.fetch_add(1, std::memory_order_relaxed);
    if (outcome & kSlow) b.slow.fetch_add(1, std::memory_order_relaxed);
  }
  [[nodiscard]] WindowCounts counts(TimePoint now) const noexcept {
    const std::int64_t sec = second(now);
    WindowCounts c;
    for (std::uint32_t i = 0; i < n_; ++i) {
      const Bucket& b = buckets_[i];
      const std::int64_t e = b.epoch.load(std::memory_order_acquire);
      if (e <= sec - static_cast<std::int64_t>(n_) || e < 0) continue;  // expired or never used
      c.calls += b.calls.load(std::memory_order_relaxed);
      c.failures += b.failures.load(std::memory_order_relaxed);
      c.slow += b.slow.load(std::memory_order_relaxed);
    }
    return c;
  }
  void reset() noexcept {
    for (std::uint32_t i = 0; i < n_; ++i) buckets_[i].epoch.store(-1, std::memory_order_release);
  }

 private:
  struct Bucket {
    std::atomic<std::int64_t> epoch{-1};
    std::atomic<std::int64_t> calls{0};
    std::atomic<std::int64_t> failures{0};
    std::atomic<std::int64_t> slow{0};
  };
  static std::int64_t second(TimePoint t) noexcept {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  }

  std::uint32_t n_;
  std::unique_ptr<Bucket[]> buckets_;
};

}  // namespace keel::detail
