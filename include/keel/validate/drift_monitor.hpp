#pragma once
// DriftMonitor: how far recent inputs have moved from a reference Profile.
// Over a sliding window of observed rows it keeps, per feature, counts in
// the profile's own histogram bins and a missing count, and the same for
// the model's output score; snapshot() turns them into the population
// stability index (PSI = sum (q - p) ln(q / p) over bins, proportions
// floored at epsilon) and missing rates. Rule of thumb: PSI < 0.1 stable,
// 0.1-0.25 moderate, > 0.25 a real shift.
//
// Thread-safe: observe() may run from any number of threads. Calls go
// round robin to `shards` independently locked shards (a batch to one
// shard), each with its
// own window of window_rows / shards rows kept in window_blocks blocks;
// the window slides a block at a time, so it holds between (blocks - 1)
// and blocks blocks of rows. snapshot() locks the shards one at a time:
// it sees each shard consistently, not all shards at one instant.

#include <keel/validate/profile.hpp>
#include <keel/validate/row_source.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace keel {

struct DriftOptions {
  std::size_t window_rows = 10000;  // 0: everything observed since the last reset()
  std::size_t window_blocks = 10;
  std::size_t shards = 8;
  double epsilon = 1e-4;
};

struct FeatureDrift {
  std::string name;
  std::size_t index = 0;
  double psi = 0.0;                     // 0 while the window has no value for the feature
  double missing_rate = 0.0;            // in the window
  double reference_missing_rate = 0.0;  // in the profile
};

// One gauge for a metrics registry: name, the feature label ("" for none), value.
struct DriftGauge {
  std::string name;
  std::string feature;
  double value = 0.0;
};

struct DriftSnapshot {
  std::uint64_t rows = 0;      // rows in the window
  std::uint64_t observed = 0;  // rows observed since the last reset
  std::uint64_t ignored = 0;   // rows of the wrong length, not counted
  std::vector<FeatureDrift> features;  // in feature order
  std::uint64_t scores = 0;            // scores in the window
  // PSI of the score against the profile's score; empty without a
  // reference score or without scores in the window.
  std::optional<double> score_psi;

  [[nodiscard]] double max_psi() const noexcept;
  // The k features with the highest PSI, highest first (ties by index).
  [[nodiscard]] std::vector<FeatureDrift> top(std::size_t k = std::numeric_limits<std::size_t>::max()) const;
  // {"features": [{"name", "index", "psi", "missing_rate", "reference_missing_rate"}, ...]} by PSI, highest first.
  [[nodiscard]] std::string to_json() const;
  // keel_drift_psi{feature}, keel_drift_missing_rate{feature},
  // keel_drift_max_psi, keel_drift_window_rows, keel_drift_score_psi.
  [[nodiscard]] std::vector<DriftGauge> gauges() const;
};

class DriftMonitor {
 public:
  // Throws keel::Error on bad options.
  explicit DriftMonitor(const Profile& reference, DriftOptions opts = {});
  ~DriftMonitor();
  DriftMonitor(const DriftMonitor&) = delete;
  DriftMonitor& operator=(const DriftMonitor&) = delete;

  [[nodiscard]] std::size_t num_features() const noexcept;
  // True when the reference profile has a score histogram, so snapshots
  // report score_psi once scores are observed.
  [[nodiscard]] bool has_score_reference() const noexcept;

  // One row and, optionally, its score (NaN: none). A row of the wrong
  // length is counted as ignored.
  void observe(std::span<const float> row, float score = std::numeric_limits<float>::quiet_NaN()) noexcept;
  // n_rows rows under one lock; scores empty or one per row.
  void observe(std::span<const float> rows, std::size_t n_rows, std::span<const float> scores) noexcept;

  [[nodiscard]] DriftSnapshot snapshot() const;
  void reset() noexcept;

 private:
  struct Shard;
  struct Layout;
  std::unique_ptr<Layout> layout_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<std::size_t> next_shard_{0};
  DriftOptions opts_;
};

// The drift of a whole source against a profile (an unbounded window): what
// `keel drift` prints. Read errors are returned.
[[nodiscard]] Result<DriftSnapshot> measure_drift(const Profile& reference, RowSource& source,
                                                  const std::function<void(std::uint64_t, double)>& progress = {},
                                                  std::size_t chunk_rows = 4096);

}  // namespace keel
