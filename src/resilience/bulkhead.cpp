#include <keel/resilience/bulkhead.hpp>
#include <keel/resilience/detail/wait.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace keel {

AimdLimit::AimdLimit(AimdConfig config) : config_(config) {
  auto bad = [](std::string_view field, std::string_view why) {
    throw Error(StatusCode::kInvalidInput, fmt::format("adaptive limit: {} {}", field, why));
  };
  if (config_.min_limit == 0) bad("min_limit", "must be >= 1");
  if (config_.max_limit < config_.min_limit) bad("max_limit", "must be >= min_limit");
  if (config_.initial_limit < config_.min_limit || config_.initial_limit > config_.max_limit) {
    bad("initial_limit", "must be within [min_limit, max_limit]");
  }
  if (!(config_.backoff_ratio >= 0.5 && config_.backoff_ratio < 1.0)) bad("backoff_ratio", "must be in [0.5, 1)");
  if (config_.latency_threshold <= Duration::zero()) bad("latency_threshold", "must be > 0");
  limit_.store(config_.initial_limit);
}

void AimdLimit::on_sample(Duration latency, std::uint32_t in_flight, bool dropped) noexcept {
  const bool drop = dropped || latency > config_.latency_threshold;
  std::uint32_t cur = limit_.load(std::memory_order_relaxed);
  for (;;) {
    std::uint32_t next = cur;
    if (drop) {
      next = std::max(config_.min_limit, static_cast<std::uint32_t>(std::floor(cur * config_.backoff_ratio)));
    } else if (in_flight * 2 >= cur) {
      next = std::min(config_.max_limit, cur + 1);
    }
    if (next == cur || limit_.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return;
  }
}

Bulkhead::Bulkhead(std::string name, Config config, Clock& clock)
    : name_(std::move(name)), config_(std::move(config)), clock_(clock), real_clock_(detail::is_real_clock(clock)) {
  if (config_.max_concurrent == 0 && !config_.adaptive) {
    throw Error(StatusCode::kInvalidInput, fmt::format("bulkhead '{}': max_concurrent must be >= 1", name_));
  }
  if (config_.max_wait < Duration::zero()) {
    throw Error(StatusCode::kInvalidInput, fmt::format("bulkhead '{}': max_wait must be >= 0", name_));
  }
  if (config_.adaptive) aimd_.emplace(*config_.adaptive);
}

std::shared_ptr<Bulkhead> Bulkhead::unlimited(std::string name) {
  BulkheadConfig c;
  c.max_concurrent = std::numeric_limits<std::uint32_t>::max();
  auto b = std::make_shared<Bulkhead>(std::move(name), c);
  b->unlimited_ = true;
  return b;
}

bool Bulkhead::try_take(std::uint32_t& in_flight) noexcept {
  std::uint32_t cur = in_flight_.load(std::memory_order_relaxed);
  for (;;) {
    if (cur >= limit()) return false;
    if (in_flight_.compare_exchange_weak(cur, cur + 1, std::memory_order_acquire, std::memory_order_relaxed)) break;
  }
  in_flight = cur + 1;
  admitted_.fetch_add(1, std::memory_order_relaxed);
  std::uint32_t hi = max_in_flight_.load(std::memory_order_relaxed);
  while (in_flight > hi && !max_in_flight_.compare_exchange_weak(hi, in_flight, std::memory_order_relaxed)) {
  }
  return true;
}

Bulkhead::Permit Bulkhead::try_acquire() noexcept {
  if (unlimited_) return {this, 0};
  std::uint32_t in_flight = 0;
  if (try_take(in_flight)) return {this, in_flight};
  rejections_.fetch_add(1, std::memory_order_relaxed);
  if (aimd_) aimd_->on_sample(Duration::zero(), in_flight_.load(std::memory_order_relaxed), true);
  return {};
}

Bulkhead::Permit Bulkhead::acquire(Deadline deadline) noexcept {
  if (unlimited_) return {this, 0};
  std::uint32_t in_flight = 0;
  if (try_take(in_flight)) return {this, in_flight};
  if (config_.max_wait > Duration::zero()) {
    const TimePoint now = clock_.now();
    const TimePoint until = Deadline::earliest(deadline, Deadline::after(config_.max_wait, now)).time();
    std::unique_lock lock(mu_);
    waiters_.fetch_add(1, std::memory_order_acq_rel);
    const bool got = detail::wait_until(cv_, lock, clock_, real_clock_, until, [&] { return try_take(in_flight); });
    waiters_.fetch_sub(1, std::memory_order_acq_rel);
    if (got) {
      waits_.fetch_add(1, std::memory_order_relaxed);
      return {this, in_flight};
    }
  }
  rejections_.fetch_add(1, std::memory_order_relaxed);
  if (aimd_) aimd_->on_sample(Duration::zero(), in_flight_.load(std::memory_order_relaxed), true);
  return {};
}

void Bulkhead::release_slot(Duration latency, std::uint32_t in_flight, bool dropped, bool sampled) noexcept {
  if (unlimited_) return;
  in_flight_.fetch_sub(1, std::memory_order_release);
  if (aimd_ && sampled) aimd_->on_sample(latency, in_flight, dropped);
  if (waiters_.load(std::memory_order_acquire) > 0) {
    // Taking the lock orders this notify after a waiter's predicate check.
    std::lock_guard lock(mu_);
    cv_.notify_one();
  }
}

BulkheadStats Bulkhead::stats() const noexcept {
  BulkheadStats s;
  s.in_flight = in_flight_.load(std::memory_order_relaxed);
  s.limit = limit();
  s.max_in_flight = max_in_flight_.load(std::memory_order_relaxed);
  s.admitted = admitted_.load(std::memory_order_relaxed);
  s.rejections = rejections_.load(std::memory_order_relaxed);
  s.waits = waits_.load(std::memory_order_relaxed);
  s.waiting = waiters_.load(std::memory_order_relaxed);
  return s;
}

Status Bulkhead::rejection() const {
  return overloaded(fmt::format("bulkhead '{}' full ({} in flight, limit {})", name_,
                                in_flight_.load(std::memory_order_relaxed), limit()));
}

}  // namespace keel
