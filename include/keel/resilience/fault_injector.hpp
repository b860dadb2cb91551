#pragma once
// FaultInjector: a Model wrapper that misbehaves on purpose, for tests and
// chaos drills: errors, latency, hangs and NaN outputs, at configured rates
// (seeded, so a run replays) or scripted for the next N calls. Everything
// can be switched at run time. Thread-safe.
//
// Latency and hangs go through the injected Clock: with a ManualClock a
// test decides when a slow call ends, and nothing really sleeps. A hang
// lasts until release_hangs() (or, with hang_limit set, until the clock
// passes that long after the call started).

#include <keel/core/clock.hpp>
#include <keel/model/model.hpp>
#include <keel/resilience/detail/rng.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace keel {

struct FaultConfig {
  bool enabled = true;
  double error_rate = 0.0;  // share of calls failing with error_code
  StatusCode error_code = StatusCode::kUnavailable;
  double nan_rate = 0.0;    // share of answers replaced by NaN
  double hang_rate = 0.0;   // share of calls that hang
  // Latency added to every call: latency + uniform [0, latency_jitter],
  // plus tail_latency on a tail_rate share of calls.
  Duration latency = Duration::zero();
  Duration latency_jitter = Duration::zero();
  double tail_rate = 0.0;
  Duration tail_latency = Duration::zero();
  // Hangs end by themselves after this long on the clock (max = never).
  Duration hang_limit = Duration::max();
};

struct FaultStats {
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  std::uint64_t nans = 0;
  std::uint64_t hangs = 0;
  std::uint64_t delayed = 0;
  int hanging_now = 0;
};

class FaultInjector final : public Model {
 public:
  // Throws keel::Error (kInvalidInput) on a null model or a rate outside [0, 1].
  FaultInjector(ModelPtr inner, FaultConfig config = {}, std::uint64_t seed = 1, Clock& clock = system_clock());

  [[nodiscard]] const ModelInfo& info() const noexcept override { return inner_->info(); }
  [[nodiscard]] Status predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                               const PredictOptions& opts = {}) const noexcept override;
  // float64 rows reach the inner model as doubles (a LightGBM model
  // compares in double), with the same faults.
  [[nodiscard]] Status predict(std::span<const double> rows, std::size_t n_rows, std::span<float> out,
                               const PredictOptions& opts = {}) const noexcept override;
  [[nodiscard]] Status predict(std::span<const double> rows, std::size_t n_rows, std::span<double> out,
                               const PredictOptions& opts = {}) const noexcept override;
  // Explanations are the inner model's, without faults (a drill breaks
  // scoring, not the explanation of an answer that was given).
  [[nodiscard]] Status contributions(std::span<const float> rows, std::size_t n_rows,
                                     std::span<float> out) const noexcept override {
    return inner_->contributions(rows, n_rows, out);
  }
  [[nodiscard]] Status contributions(std::span<const double> rows, std::size_t n_rows,
                                     std::span<float> out) const noexcept override {
    return inner_->contributions(rows, n_rows, out);
  }
  [[nodiscard]] Status leaf_indices(std::span<const float> rows, std::size_t n_rows,
                                    std::span<std::int32_t> out) const noexcept override {
    return inner_->leaf_indices(rows, n_rows, out);
  }
  [[nodiscard]] Status leaf_indices(std::span<const double> rows, std::size_t n_rows,
                                    std::span<std::int32_t> out) const noexcept override {
    return inner_->leaf_indices(rows, n_rows, out);
  }

  void set_config(FaultConfig config);  // throws like the constructor
  [[nodiscard]] FaultConfig config() const;
  void set_enabled(bool on);

  // Scripted faults, taken before any random ones, one per call; they apply
  // even when the random faults are switched off (enabled = false).
  void fail_next(std::uint32_t n, StatusCode code = StatusCode::kUnavailable);
  void hang_next(std::uint32_t n);
  void nan_next(std::uint32_t n);
  void delay_next(std::uint32_t n, Duration d);

  // Ends every hang in progress (later hangs still hang).
  void release_hangs();
  // Calls blocked in a hang right now (lets a test wait until one is).
  [[nodiscard]] int hanging() const noexcept { return hanging_.load(std::memory_order_acquire); }
  [[nodiscard]] FaultStats stats() const noexcept;
  [[nodiscard]] const ModelPtr& inner() const noexcept { return inner_; }

 private:
  enum class Fault : std::uint8_t { kNone, kError, kHang, kNan, kDelay };
  struct Plan {
    Fault scripted = Fault::kNone;
    StatusCode code = StatusCode::kUnavailable;
    Duration delay = Duration::zero();
  };
  Plan take_script() const;
  // The faults before the inner call: a non-ok status is the call's answer;
  // `nan` says to overwrite the inner model's outputs with NaN.
  Status before_call(bool& nan) const noexcept;
  template <class In, class Out>
  Status call(std::span<const In> rows, std::size_t n_rows, std::span<Out> out, const PredictOptions& opts) const noexcept;
  void hang(TimePoint started, Duration limit) const;

  ModelPtr inner_;
  Clock& clock_;
  mutable detail::SplitMix rng_;
  mutable std::mutex mu_;  // guards config_, the script and the hang generation
  mutable std::condition_variable cv_;
  FaultConfig config_;
  mutable std::uint32_t fail_n_ = 0;
  StatusCode fail_code_ = StatusCode::kUnavailable;
  mutable std::uint32_t hang_n_ = 0;
  mutable std::uint32_t nan_n_ = 0;
  mutable std::uint32_t delay_n_ = 0;
  Duration delay_d_ = Duration::zero();
  std::uint64_t release_gen_ = 0;
  mutable std::atomic<int> hanging_{0};
  mutable std::atomic<std::uint64_t> calls_{0};
  mutable std::atomic<std::uint64_t> errors_{0};
  mutable std::atomic<std::uint64_t> nans_{0};
  mutable std::atomic<std::uint64_t> hangs_{0};
  mutable std::atomic<std::uint64_t> delayed_{0};
};

}  // namespace keel
