#pragma once
// A small metrics registry: counters, gauges and histograms with fixed
// buckets, labels fixed at registration (low cardinality by construction:
// a family refuses more than max_series_per_family label sets), rendered in
// the Prometheus text exposition format (version 0.0.4).
//
// The hot path is one relaxed add on a cell owned by (usually) only this
// thread: counters and histograms are split over kMetricCells cache-line
// sized cells, picked per thread, and summed when rendered. Metric objects
// are thread-safe; registration is thread-safe and may throw keel::Error
// (bad name, type clash, too many series), so do it at configuration time.

#include <keel/core/clock.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

namespace detail {
inline constexpr std::size_t kMetricCells = 16;
// This thread's cell, assigned round-robin on first use.
std::size_t metric_cell() noexcept;
}  // namespace detail

// A monotonically increasing count. Thread-safe.
class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept {
    cells_[detail::metric_cell()].v.fetch_add(n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t value() const noexcept;

 private:
  struct alignas(64) Cell {
    std::atomic<std::uint64_t> v{0};
  };
  std::array<Cell, detail::kMetricCells> cells_{};
};

// A value that goes up and down. Thread-safe.
class Gauge {
 public:
  void set(double v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }
  [[nodiscard]] double value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0.0};
};

// Counts observations into fixed buckets (upper bounds, ascending; +Inf is
// implicit) and keeps their sum. Thread-safe.
class HistogramMetric {
 public:
  explicit HistogramMetric(std::span<const double> upper_bounds);
  void observe(double v) noexcept;
  void observe(Duration d) noexcept { observe(std::chrono::duration<double>(d).count()); }

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf (= count)
    double sum = 0.0;
    std::uint64_t count = 0;
  };
  [[nodiscard]] Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::size_t stride_ = 0;  // counters per cell, padded to a cache line
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  struct alignas(64) Sum {
    std::atomic<double> v{0.0};
  };
  std::array<Sum, detail::kMetricCells> sums_{};
};

// Latency buckets in seconds, 1 us to 10 s: scoring is microseconds, a
// remote stage milliseconds.
std::span<const double> default_latency_buckets() noexcept;

class MetricsRegistry {
 public:
  explicit MetricsRegistry(std::size_t max_series_per_family = 64);
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;
  ~MetricsRegistry();

  // Registering the same name and labels again returns the same metric.
  // Counter names should end in _total (Prometheus convention).
  Counter& counter(std::string_view name, std::string_view help, MetricLabels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, MetricLabels labels = {});
  HistogramMetric& histogram(std::string_view name, std::string_view help, std::span<const double> upper_bounds,
                       MetricLabels labels = {});
  // Values read when rendering (component state: breaker state, cache
  // entries, drift). `fn` must be thread-safe and outlive the registry's use.
  void gauge_fn(std::string_view name, std::string_view help, MetricLabels labels, std::function<double()> fn);
  void counter_fn(std::string_view name, std::string_view help, MetricLabels labels, std::function<double()> fn);

  // A whole gauge family computed at render time: each call returns the
  // series (labels, value) to print, e.g. one per feature of a drift monitor.
  using SeriesFn = std::function<std::vector<std::pair<MetricLabels, double>>()>;
  void gauge_family_fn(std::string_view name, std::string_view help, SeriesFn fn);

  // Prometheus text exposition format.
  [[nodiscard]] std::string render() const;

 private:
  struct Family;
  Family& family(std::string_view name, std::string_view help, int type);

  std::size_t max_series_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;  // guarded by mu_; registration order
};

}  // namespace keel
