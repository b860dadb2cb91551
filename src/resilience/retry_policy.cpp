#include <keel/resilience/retry_policy.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace keel {

namespace {

[[noreturn]] void bad(std::string_view what, std::string_view field, std::string_view why) {
  throw Error(StatusCode::kInvalidInput, fmt::format("{}: {} {}", what, field, why));
}

bool non_negative(double v) { return std::isfinite(v) && v >= 0.0; }

}  // namespace

RetryBudget::RetryBudget(RetryBudgetConfig config, Clock& clock) : config_(config), clock_(clock) {
  if (!non_negative(config_.ratio)) bad("retry budget", "ratio", "must be finite and >= 0");
  if (!non_negative(config_.min_retries_per_second)) bad("retry budget", "min_retries_per_second", "must be finite and >= 0");
  if (!non_negative(config_.max_tokens) || config_.max_tokens < 1.0) bad("retry budget", "max_tokens", "must be >= 1");
  per_request_ = static_cast<std::int64_t>(std::llround(config_.ratio * kUnit));
  max_ = static_cast<std::int64_t>(std::llround(config_.max_tokens * kUnit));
  const double start = std::min(config_.max_tokens, config_.min_retries_per_second);
  balance_.store(static_cast<std::int64_t>(std::llround(start * kUnit)));
  last_refill_ns_ = clock_.now().time_since_epoch().count();
}

bool RetryBudget::try_withdraw() noexcept {
  if (config_.min_retries_per_second > 0.0) {
    std::lock_guard lock(mu_);
    const std::int64_t now = clock_.now().time_since_epoch().count();
    const std::int64_t elapsed = now - last_refill_ns_;
    if (elapsed > 0) {
      const double add = config_.min_retries_per_second * static_cast<double>(elapsed) * 1e-9;
      const auto units = static_cast<std::int64_t>(add * kUnit);
      if (units > 0) {
        last_refill_ns_ = now;
        std::int64_t cur = balance_.load(std::memory_order_relaxed);
        while (!balance_.compare_exchange_weak(cur, std::min(max_, cur + units), std::memory_order_relaxed)) {
        }
      }
    }
  }
  std::int64_t cur = balance_.load(std::memory_order_relaxed);
  while (cur >= kUnit) {
    if (balance_.compare_exchange_weak(cur, cur - kUnit, std::memory_order_relaxed)) {
      withdrawals_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  exhausted_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

RetryBudgetStats RetryBudget::stats() const noexcept {
  return {deposits_.load(std::memory_order_relaxed), withdrawals_.load(std::memory_order_relaxed),
          exhausted_.load(std::memory_order_relaxed),
          static_cast<double>(balance_.load(std::memory_order_relaxed)) / kUnit};
}

RetryPolicy::RetryPolicy(RetryConfig config, std::shared_ptr<RetryBudget> budget)
    : config_(config), budget_(std::move(budget)), rng_(config.seed) {
  if (config_.max_attempts == 0) bad("retry policy", "max_attempts", "must be >= 1");
  if (config_.initial_backoff < Duration::zero()) bad("retry policy", "initial_backoff", "must be >= 0");
  if (config_.max_backoff < config_.initial_backoff) bad("retry policy", "max_backoff", "must be >= initial_backoff");
  if (!std::isfinite(config_.multiplier) || config_.multiplier < 1.0) bad("retry policy", "multiplier", "must be >= 1");
}

std::shared_ptr<RetryPolicy> RetryPolicy::no_retry() {
  RetryConfig c;
  c.max_attempts = 1;
  auto p = std::make_shared<RetryPolicy>(c);
  p->counting_ = false;  // the null object stays off the hot path's counters
  return p;
}

Duration RetryPolicy::backoff(std::uint32_t retry_number, Duration previous_backoff) noexcept {
  const double init = static_cast<double>(config_.initial_backoff.count());
  const double cap = static_cast<double>(config_.max_backoff.count());
  const double exp = std::min(cap, init * std::pow(config_.multiplier, static_cast<double>(retry_number) - 1.0));
  double b = exp;
  switch (config_.jitter) {
    case Jitter::kNone: break;
    case Jitter::kFull: b = rng_.uniform() * exp; break;
    case Jitter::kEqual: b = exp / 2 + rng_.uniform() * (exp / 2); break;
    case Jitter::kDecorrelated: {
      const double prev = std::max(init, static_cast<double>(previous_backoff.count()));
      const double hi = std::max(init, prev * 3.0);
      b = std::min(cap, init + rng_.uniform() * (hi - init));
      break;
    }
  }
  return Duration{static_cast<Duration::rep>(std::clamp(b, 0.0, cap))};
}

RetryDecision RetryPolicy::next(const Status& error, std::uint32_t attempts_made, Duration previous_backoff,
                                Deadline deadline, TimePoint now) noexcept {
  if (error.is_ok()) return {};
  if (!error.retryable()) {
    non_retryable_.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  if (attempts_made >= config_.max_attempts) {
    attempts_exhausted_.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  const Duration b = backoff(attempts_made, previous_backoff);
  // Never plan a sleep that ends at or past the deadline: the retry would
  // have no time left to run.
  if (deadline.remaining(now) <= b) {
    deadline_stops_.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  if (budget_ && !budget_->try_withdraw()) {
    budget_stops_.fetch_add(1, std::memory_order_relaxed);
    return {};
  }
  retries_.fetch_add(1, std::memory_order_relaxed);
  return {true, b, now + b};
}

RetryStats RetryPolicy::stats() const noexcept {
  return {requests_.load(std::memory_order_relaxed),       retries_.load(std::memory_order_relaxed),
          non_retryable_.load(std::memory_order_relaxed),  attempts_exhausted_.load(std::memory_order_relaxed),
          deadline_stops_.load(std::memory_order_relaxed), budget_stops_.load(std::memory_order_relaxed)};
}

}  // namespace keel
