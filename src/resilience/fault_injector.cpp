#include <keel/resilience/detail/wait.hpp>
#include <keel/resilience/fault_injector.hpp>
#include <keel/core/deadline.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace keel {

namespace {

void check(const FaultConfig& c) {
  auto rate = [](std::string_view field, double v) {
    if (!(v >= 0.0 && v <= 1.0)) {
      throw Error(StatusCode::kInvalidInput, fmt::format("fault injector: {} must be in [0, 1], got {}", field, v));
    }
  };
  rate("error_rate", c.error_rate);
  rate("nan_rate", c.nan_rate);
  rate("hang_rate", c.hang_rate);
  rate("tail_rate", c.tail_rate);
  if (c.latency < Duration::zero() || c.latency_jitter < Duration::zero() || c.tail_latency < Duration::zero()) {
    throw Error(StatusCode::kInvalidInput, "fault injector: latencies must be >= 0");
  }
  if (c.hang_limit <= Duration::zero()) throw Error(StatusCode::kInvalidInput, "fault injector: hang_limit must be > 0");
  if (c.error_code == StatusCode::kOk) throw Error(StatusCode::kInvalidInput, "fault injector: error_code must not be ok");
}

}  // namespace

FaultInjector::FaultInjector(ModelPtr inner, FaultConfig config, std::uint64_t seed, Clock& clock)
    : inner_(std::move(inner)), clock_(clock), rng_(seed), config_(config) {
  if (!inner_) throw Error(StatusCode::kInvalidInput, "fault injector: inner model is null");
  check(config_);
}

void FaultInjector::set_config(FaultConfig config) {
  check(config);
  std::lock_guard lock(mu_);
  config_ = config;
}

FaultConfig FaultInjector::config() const {
  std::lock_guard lock(mu_);
  return config_;
}

void FaultInjector::set_enabled(bool on) {
  std::lock_guard lock(mu_);
  config_.enabled = on;
}

void FaultInjector::fail_next(std::uint32_t n, StatusCode code) {
  if (code == StatusCode::kOk) throw Error(StatusCode::kInvalidInput, "fault injector: fail_next code must not be ok");
  std::lock_guard lock(mu_);
  fail_n_ = n;
  fail_code_ = code;
}
void FaultInjector::hang_next(std::uint32_t n) {
  std::lock_guard lock(mu_);
  hang_n_ = n;
}
void FaultInjector::nan_next(std::uint32_t n) {
  std::lock_guard lock(mu_);
  nan_n_ = n;
}
void FaultInjector::delay_next(std::uint32_t n, Duration d) {
  std::lock_guard lock(mu_);
  delay_n_ = n;
  delay_d_ = d;
}

void FaultInjector::release_hangs() {
  {
    std::lock_guard lock(mu_);
    ++release_gen_;
  }
  cv_.notify_all();
}

// Called with mu_ held.
FaultInjector::Plan FaultInjector::take_script() const {
  if (hang_n_ > 0) {
    --hang_n_;
    return {Fault::kHang, StatusCode::kOk, Duration::zero()};
  }
  if (fail_n_ > 0) {
    --fail_n_;
    return {Fault::kError, fail_code_, Duration::zero()};
  }
  if (nan_n_ > 0) {
    --nan_n_;
    return {Fault::kNan, StatusCode::kOk, Duration::zero()};
  }
  if (delay_n_ > 0) {
    --delay_n_;
    return {Fault::kDelay, StatusCode::kOk, delay_d_};
  }
  return {};
}

void FaultInjector::hang(TimePoint started, Duration limit) const {
  hangs_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  const std::uint64_t gen = release_gen_;
  const TimePoint until = Deadline::after(limit, started).time();
  hanging_.fetch_add(1, std::memory_order_acq_rel);
  detail::wait_until(cv_, lock, clock_, detail::is_real_clock(clock_), until, [&] { return release_gen_ != gen; });
  hanging_.fetch_sub(1, std::memory_order_acq_rel);
}

Status FaultInjector::before_call(bool& nan) const noexcept {
  calls_.fetch_add(1, std::memory_order_relaxed);
  FaultConfig cfg;
  Plan plan;
  {
    std::lock_guard lock(mu_);
    cfg = config_;
    plan = take_script();
  }
  const TimePoint started = clock_.now();
  const bool random = cfg.enabled;
  // Draw every uniform on every call so that a seed replays the same
  // sequence whatever the rates are.
  const double u_hang = rng_.uniform(), u_err = rng_.uniform(), u_tail = rng_.uniform(), u_jit = rng_.uniform(),
               u_nan = rng_.uniform();

  if (plan.scripted == Fault::kHang || (random && u_hang < cfg.hang_rate)) {
    hang(started, cfg.hang_limit);
    return deadline_exceeded(fmt::format("model '{}': injected hang ended", inner_->info().id));
  }
  if (plan.scripted == Fault::kError || (random && u_err < cfg.error_rate)) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    const StatusCode code = plan.scripted == Fault::kError ? plan.code : cfg.error_code;
    return {code, fmt::format("model '{}': injected fault", inner_->info().id)};
  }
  Duration delay = plan.delay;
  if (random) {
    delay += cfg.latency + Duration{static_cast<Duration::rep>(u_jit * static_cast<double>(cfg.latency_jitter.count()))};
    if (u_tail < cfg.tail_rate) delay += cfg.tail_latency;
  }
  if (delay > Duration::zero()) {
    delayed_.fetch_add(1, std::memory_order_relaxed);
    clock_.sleep_until(started + delay);
  }
  nan = plan.scripted == Fault::kNan || (random && u_nan < cfg.nan_rate);
  return Status::ok();
}

template <class In, class Out>
Status FaultInjector::call(std::span<const In> rows, std::size_t n_rows, std::span<Out> out,
                           const PredictOptions& opts) const noexcept {
  bool nan = false;
  if (Status f = before_call(nan); !f) return f;
  Status s = inner_->predict(rows, n_rows, out, opts);
  if (!s) return s;
  if (nan) {
    nans_.fetch_add(1, std::memory_order_relaxed);
    std::fill(out.begin(), out.end(), std::numeric_limits<Out>::quiet_NaN());
  }
  return s;
}

Status FaultInjector::predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                              const PredictOptions& opts) const noexcept {
  return call(rows, n_rows, out, opts);
}

Status FaultInjector::predict(std::span<const double> rows, std::size_t n_rows, std::span<float> out,
                              const PredictOptions& opts) const noexcept {
  return call(rows, n_rows, out, opts);
}

Status FaultInjector::predict(std::span<const double> rows, std::size_t n_rows, std::span<double> out,
                              const PredictOptions& opts) const noexcept {
  return call(rows, n_rows, out, opts);
}

FaultStats FaultInjector::stats() const noexcept {
  return {calls_.load(std::memory_order_relaxed), errors_.load(std::memory_order_relaxed),
          nans_.load(std::memory_order_relaxed),  hangs_.load(std::memory_order_relaxed),
          delayed_.load(std::memory_order_relaxed), hanging_.load(std::memory_order_relaxed)};
}

}  // namespace keel
