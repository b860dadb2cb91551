#pragma once
// RetryPolicy: whether and when to try a failed call again, and
// RetryBudget: a cap on retries as a share of recent requests, so a failing
// dependency sees at most (1 + ratio) times its normal load instead of a
// retry storm (Finagle's RetryBudget, gRPC's retry throttling).
//
// Backoff for retry n (n = 1 after the first failure) is
//   b(n) = min(max_backoff, initial_backoff * multiplier^(n-1))
// with jitter:
//   kNone          b(n)
//   kFull          uniform [0, b(n)]                      (the default; AWS's advice)
//   kEqual         b(n)/2 + uniform [0, b(n)/2]
//   kDecorrelated  min(max_backoff, uniform [initial_backoff, 3 * previous backoff])
// A retry happens only when the error is retryable (Status::retryable()),
// attempts remain, the budget has a token, and the retry would start
// before the request's deadline: the policy never plans a sleep past it.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/status.hpp>
#include <keel/resilience/detail/rng.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

namespace keel {

struct RetryBudgetConfig {
  // Each request deposits `ratio` of a retry; each retry withdraws one.
  double ratio = 0.2;
  // A floor so that low traffic can still retry: tokens added per second of
  // clock time (the bucket starts with one second's worth).
  double min_retries_per_second = 10.0;
  // The most tokens the bucket holds ("recent" requests only).
  double max_tokens = 100.0;
};

struct RetryBudgetStats {
  std::uint64_t deposits = 0;
  std::uint64_t withdrawals = 0;  // retries allowed
  std::uint64_t exhausted = 0;    // retries refused for lack of tokens
  double balance = 0.0;
};

// Thread-safe. deposit() is lock-free (a load when the bucket is full);
// try_withdraw() is on the failure path and takes a mutex for the time
// refill.
class RetryBudget {
 public:
  // Throws keel::Error (kInvalidInput) on a negative or non-finite field.
  explicit RetryBudget(RetryBudgetConfig config = {}, Clock& clock = system_clock());

  void deposit() noexcept {
    // Fixed point, 1 token = kUnit, so deposits are integer atomics.
    if (balance_.load(std::memory_order_relaxed) >= max_) return;
    balance_.fetch_add(per_request_, std::memory_order_relaxed);
    deposits_.fetch_add(1, std::memory_order_relaxed);
  }
  [[nodiscard]] bool try_withdraw() noexcept;
  [[nodiscard]] RetryBudgetStats stats() const noexcept;
  [[nodiscard]] const RetryBudgetConfig& config() const noexcept { return config_; }

 private:
  static constexpr std::int64_t kUnit = 1'000'000;
  RetryBudgetConfig config_;
  Clock& clock_;
  std::int64_t per_request_;
  std::int64_t max_;
  std::atomic<std::int64_t> balance_;
  std::atomic<std::uint64_t> deposits_{0};
  std::atomic<std::uint64_t> withdrawals_{0};
  std::atomic<std::uint64_t> exhausted_{0};
  std::mutex mu_;                   // guards last_refill_ns_
  std::int64_t last_refill_ns_;
};

enum class Jitter : std::uint8_t { kNone, kFull, kEqual, kDecorrelated };

struct RetryConfig {
  // Total attempts including the first; 1 means no retry.
  std::uint32_t max_attempts = 3;
  Duration initial_backoff = std::chrono::milliseconds(1);
  double multiplier = 2.0;
  Duration max_backoff = std::chrono::milliseconds(50);
  Jitter jitter = Jitter::kFull;
  std::uint64_t seed = 0x6b65656c;  // "keel"
};

struct RetryDecision {
  bool retry = false;
  Duration backoff{0};  // how long to wait before the next attempt
  TimePoint at{};       // when the next attempt may start (now + backoff)
};

struct RetryStats {
  std::uint64_t requests = 0;         // on_request() calls
  std::uint64_t retries = 0;          // retries granted
  std::uint64_t non_retryable = 0;    // stopped: error not retryable
  std::uint64_t attempts_exhausted = 0;
  std::uint64_t deadline_stops = 0;   // stopped: the backoff would end past the deadline
  std::uint64_t budget_stops = 0;     // stopped: retry budget empty
};

// Thread-safe: decisions draw jitter from a shared atomic generator and
// count in atomics; the policy holds no per-request state.
class RetryPolicy {
 public:
  // Throws keel::Error (kInvalidInput) naming the bad field. The budget may
  // be shared by several policies (e.g. all stages calling one service).
  explicit RetryPolicy(RetryConfig config = {}, std::shared_ptr<RetryBudget> budget = nullptr);

  // The null object: one attempt, never a retry.
  static std::shared_ptr<RetryPolicy> no_retry();

  // Call once per request before its first attempt (feeds the budget).
  void on_request() noexcept {
    if (counting_) requests_.fetch_add(1, std::memory_order_relaxed);
    if (budget_) budget_->deposit();
  }
  // After `attempts_made` attempts, the last failing with `error`:
  // `previous_backoff` is the last decision's backoff (zero at first).
  [[nodiscard]] RetryDecision next(const Status& error, std::uint32_t attempts_made, Duration previous_backoff,
                                   Deadline deadline, TimePoint now) noexcept;
  // The backoff alone (no budget, no deadline); exposed for tests and tools.
  [[nodiscard]] Duration backoff(std::uint32_t retry_number, Duration previous_backoff) noexcept;

  [[nodiscard]] const RetryConfig& config() const noexcept { return config_; }
  [[nodiscard]] const RetryBudget* budget() const noexcept { return budget_.get(); }
  [[nodiscard]] RetryStats stats() const noexcept;

 private:
  RetryConfig config_;
  std::shared_ptr<RetryBudget> budget_;
  bool counting_ = true;
  detail::SplitMix rng_;
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> retries_{0};
  std::atomic<std::uint64_t> non_retryable_{0};
  std::atomic<std::uint64_t> attempts_exhausted_{0};
  std::atomic<std::uint64_t> deadline_stops_{0};
  std::atomic<std::uint64_t> budget_stops_{0};
};

}  // namespace keel
