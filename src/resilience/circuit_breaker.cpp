#include <keel/resilience/circuit_breaker.hpp>

#include <fmt/format.h>

#include <cmath>

namespace keel {

std::string_view to_string(BreakerState s) noexcept {
  switch (s) {
    case BreakerState::kClosed: return "closed";
    case BreakerState::kOpen: return "open";
    case BreakerState::kHalfOpen: return "half_open";
    case BreakerState::kForcedOpen: return "forced_open";
    case BreakerState::kDisabled: return "disabled";
  }
  return "unknown";
}

namespace {

void check_config(const std::string& name, const CircuitBreakerConfig& c) {
  auto bad = [&](std::string_view field, std::string_view why) {
    throw Error(StatusCode::kInvalidInput, fmt::format("circuit breaker '{}': {} {}", name, field, why));
  };
  if (c.window_size == 0) bad("window_size", "must be > 0");
  if (c.minimum_calls == 0) bad("minimum_calls", "must be > 0");
  if (!(c.failure_rate_threshold > 0.0 && c.failure_rate_threshold <= 1.0)) bad("failure_rate_threshold", "must be in (0, 1]");
  if (!(c.slow_call_rate_threshold > 0.0 && c.slow_call_rate_threshold <= 1.0)) {
    bad("slow_call_rate_threshold", "must be in (0, 1]");
  }
  if (c.slow_call_duration <= Duration::zero()) bad("slow_call_duration", "must be > 0");
  if (c.wait_in_open <= Duration::zero()) bad("wait_in_open", "must be > 0");
  if (!(c.wait_multiplier >= 1.0) || !std::isfinite(c.wait_multiplier)) bad("wait_multiplier", "must be >= 1");
  if (c.max_wait_in_open < c.wait_in_open) bad("max_wait_in_open", "must be >= wait_in_open");
  if (c.half_open_probes == 0 || c.half_open_probes > 0xFFFF) bad("half_open_probes", "must be in [1, 65535]");
  if (c.failure_codes & c.ignored_codes) bad("ignored_codes", "overlap failure_codes");
  if (in_mask(c.failure_codes, StatusCode::kOk)) bad("failure_codes", "must not contain ok");
}

}  // namespace

CircuitBreaker::CircuitBreaker(std::string name, Config config, Clock& clock)
    : name_(std::move(name)), config_(config), clock_(clock), word_(make_word(BreakerState::kClosed, 0, 0, 0)) {
  check_config(name_, config_);
  if (config_.window == Config::Window::kCount) {
    count_window_ = std::make_unique<detail::CountWindow>(config_.window_size);
  } else {
    time_window_ = std::make_unique<detail::TimeWindow>(config_.window_size);
  }
}

std::shared_ptr<CircuitBreaker> CircuitBreaker::never_open(std::string name) {
  auto b = std::make_shared<CircuitBreaker>(std::move(name));
  b->disable();
  return b;
}

CircuitBreaker::Permit CircuitBreaker::acquire(const TimePoint* now_in) noexcept {
  std::uint64_t w = word_.load(std::memory_order_acquire);
  for (;;) {
    switch (state_of(w)) {
      case BreakerState::kClosed: return {generation(w), Permit::Kind::kClosed};
      case BreakerState::kDisabled: return {generation(w), Permit::Kind::kPassThrough};
      case BreakerState::kForcedOpen:
        rejections_.fetch_add(1, std::memory_order_relaxed);
        return {};
      case BreakerState::kOpen: {
        const TimePoint now = now_in ? *now_in : clock_.now();
        if (now.time_since_epoch().count() < open_until_ns_.load(std::memory_order_acquire)) {
          rejections_.fetch_add(1, std::memory_order_relaxed);
          return {};
        }
        transition(generation(w), BreakerState::kHalfOpen, now);
        w = word_.load(std::memory_order_acquire);
        continue;
      }
      case BreakerState::kHalfOpen: {
        if (probes_left(w) == 0) {
          rejections_.fetch_add(1, std::memory_order_relaxed);
          return {};
        }
        // Taking a probe is a CAS on the whole word, so it cannot be taken
        // from a later half-open period than the one it was counted in.
        if (word_.compare_exchange_weak(w, w - (std::uint64_t{1} << 8), std::memory_order_acq_rel)) {
          return {generation(w), Permit::Kind::kProbe};
        }
        continue;  // w reloaded by the failed CAS
      }
    }
    return {};
  }
}

void CircuitBreaker::release(Permit p) noexcept {
  if (!p.probe()) return;
  std::uint64_t w = word_.load(std::memory_order_acquire);
  while (generation(w) == p.gen_ && state_of(w) == BreakerState::kHalfOpen) {
    if (word_.compare_exchange_weak(w, w + (std::uint64_t{1} << 8), std::memory_order_acq_rel)) return;
  }
}

void CircuitBreaker::record_slow_path(Permit p, StatusCode code, Duration elapsed, TimePoint now) noexcept {
  if (!p) return;
  if (in_mask(config_.ignored_codes, code)) {
    ignored_.fetch_add(1, std::memory_order_relaxed);
    release(p);
    return;
  }
  const bool failed = in_mask(config_.failure_codes, code);
  const bool slow = elapsed >= config_.slow_call_duration;
  (failed ? failures_ : successes_).fetch_add(1, std::memory_order_relaxed);
  if (slow) slow_.fetch_add(1, std::memory_order_relaxed);

  std::uint64_t w = word_.load(std::memory_order_acquire);
  if (generation(w) != p.gen_) return;  // issued before a transition: stale
  switch (p.kind_) {
    case Permit::Kind::kClosed: {
      const std::uint8_t outcome =
          detail::kRecorded | (failed ? detail::kFailed : std::uint8_t{0}) | (slow ? detail::kSlow : std::uint8_t{0});
      window_record(outcome, now);
      if (!failed && !slow) return;  // a success cannot raise a rate
      const detail::WindowCounts c = window_counts(now);
      if (c.calls < static_cast<std::int64_t>(config_.minimum_calls)) return;
      const double calls = static_cast<double>(c.calls);
      const bool trip = static_cast<double>(c.failures) >= config_.failure_rate_threshold * calls ||
                        (measures_duration() && static_cast<double>(c.slow) >= config_.slow_call_rate_threshold * calls);
      if (trip) transition(p.gen_, BreakerState::kOpen, clock_.now());
      return;
    }
    case Permit::Kind::kProbe: {
      if (failed || slow) {
        transition(p.gen_, BreakerState::kOpen, clock_.now());
        return;
      }
      while (generation(w) == p.gen_ && state_of(w) == BreakerState::kHalfOpen) {
        if (word_.compare_exchange_weak(w, w + (std::uint64_t{1} << 24), std::memory_order_acq_rel)) {
          if (probe_ok(w) + 1 >= config_.half_open_probes) transition(p.gen_, BreakerState::kClosed, now);
          return;
        }
      }
      return;
    }
    case Permit::Kind::kPassThrough:
    case Permit::Kind::kRejected: return;
  }
}

bool CircuitBreaker::transition(std::optional<std::uint32_t> gen, BreakerState to, TimePoint now) noexcept {
  std::lock_guard lock(mu_);
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  if (gen && generation(w) != *gen) return false;
  const BreakerState from = state_of(w);
  if (gen && from == to) return false;
  std::uint32_t probes = 0;
  switch (to) {
    case BreakerState::kOpen: {
      if (from == BreakerState::kHalfOpen) {
        ++consecutive_trips_;
      } else {
        consecutive_trips_ = 1;
      }
      double wait = static_cast<double>(config_.wait_in_open.count()) *
                    std::pow(config_.wait_multiplier, static_cast<double>(consecutive_trips_ - 1));
      wait = std::min(wait, static_cast<double>(config_.max_wait_in_open.count()));
      open_until_ns_.store(now.time_since_epoch().count() + static_cast<std::int64_t>(wait), std::memory_order_release);
      break;
    }
    case BreakerState::kHalfOpen: probes = config_.half_open_probes; break;
    case BreakerState::kClosed:
      consecutive_trips_ = 0;
      if (count_window_) count_window_->reset();
      if (time_window_) time_window_->reset();
      break;
    case BreakerState::kForcedOpen:
    case BreakerState::kDisabled: break;
  }
  word_.store(make_word(to, probes, 0, generation(w) + 1), std::memory_order_release);
  transitions_.fetch_add(1, std::memory_order_relaxed);
  for (const Listener& l : listeners_) {
    try {
      l(*this, from, to);
    } catch (...) {
      // A listener's failure must not break the breaker (this is the request path).
    }
  }
  return true;
}

BreakerStats CircuitBreaker::stats() const {
  BreakerStats s;
  s.state = state();
  s.successes = successes_.load(std::memory_order_relaxed);
  s.failures = failures_.load(std::memory_order_relaxed);
  s.slow_calls = slow_.load(std::memory_order_relaxed);
  s.ignored = ignored_.load(std::memory_order_relaxed);
  s.calls = s.successes + s.failures + s.ignored;
  s.rejections = rejections_.load(std::memory_order_relaxed);
  s.transitions = transitions_.load(std::memory_order_relaxed);
  const detail::WindowCounts c = window_counts(clock_.now());
  s.window_calls = c.calls;
  s.window_failures = c.failures;
  s.window_slow = c.slow;
  return s;
}

Status CircuitBreaker::rejection() const {
  return unavailable(fmt::format("circuit '{}' is {}", name_, to_string(state())));
}

void CircuitBreaker::add_listener(Listener l) {
  std::lock_guard lock(mu_);
  listeners_.push_back(std::move(l));
}

void CircuitBreaker::force_open() { transition(std::nullopt, BreakerState::kForcedOpen, clock_.now()); }
void CircuitBreaker::disable() { transition(std::nullopt, BreakerState::kDisabled, clock_.now()); }
void CircuitBreaker::reset() { transition(std::nullopt, BreakerState::kClosed, clock_.now()); }

}  // namespace keel
