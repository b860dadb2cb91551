#pragma once
// Profile: per-feature statistics of a reference data set (usually the
// training data): count, missing rate, min, max, mean, std, quantiles, a
// histogram with fixed bin edges, and category frequencies; optionally the
// same for the model's output score. Built by ProfileBuilder in one
// streaming pass; saved and loaded as JSON. Value type; thread-safe to read.
//
// Exactness: counts, missing/infinite counts, min, max, histogram counts
// and category frequencies are exact. Quantiles come from a log-linear
// sketch (buckets of 1/64 of an octave): each is within one bucket, i.e.
// within 1.6 % relative error of the true value, and exact for integers
// below 64; min and max are exact. Mean and std are over finite values.

#include <keel/model/model.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel {

// A histogram whose bin edges are fixed by the reference data (near its
// quantiles), so that new data is binned the same way for PSI.
struct Histogram {
  // Interior edges, ascending: bin 0 holds values below edges[0], bin k
  // holds [edges[k-1], edges[k]), the last bin the rest. edge_keys are the
  // same edges as sketch bucket keys; binning compares keys, which keeps it
  // exactly consistent with how the reference was counted.
  std::vector<float> edges;
  std::vector<std::uint32_t> edge_keys;
  std::vector<std::uint64_t> counts;  // edges.size() + 1 bins

  [[nodiscard]] std::size_t num_bins() const noexcept { return counts.size(); }
  // Bin of a non-NaN value (±inf go to the first/last bin).
  [[nodiscard]] std::size_t bin(float v) const noexcept;
  [[nodiscard]] std::uint64_t total() const noexcept;
};
bool operator==(const Histogram&, const Histogram&) noexcept;

inline constexpr std::array<double, 9> kProfileQuantileLevels{0.01, 0.05, 0.10, 0.25, 0.50,
                                                              0.75, 0.90, 0.95, 0.99};

struct FeatureProfile {
  std::string name;
  FeatureType type = FeatureType::kNumeric;
  std::uint64_t count = 0;     // rows seen
  std::uint64_t missing = 0;   // NaN
  std::uint64_t infinite = 0;  // ±inf (not in min/max/mean/std/quantiles)
  // Over finite values; NaN when there are none.
  double min = 0, max = 0, mean = 0, std = 0;
  // Values at kProfileQuantileLevels; NaN when there are no finite values.
  std::array<double, kProfileQuantileLevels.size()> quantiles{};
  Histogram histogram;
  // Categorical features: (id, count) sorted by id, for the ids seen while
  // fewer than ProfileOptions::max_categories were known; the rest, and
  // values that are not ids (negative, fractional), in other_categories.
  std::vector<std::pair<std::int64_t, std::uint64_t>> categories;
  std::uint64_t other_categories = 0;

  [[nodiscard]] std::uint64_t finite() const noexcept { return count - missing - infinite; }
  [[nodiscard]] double missing_rate() const noexcept {
    return count == 0 ? 0.0 : static_cast<double>(missing) / static_cast<double>(count);
  }
  // kProfileQuantileLevels[i] must be 0.5 / 0.25 / 0.75.
  [[nodiscard]] double median() const noexcept { return quantiles[4]; }
  [[nodiscard]] double iqr() const noexcept { return quantiles[5] - quantiles[3]; }
};
// Field by field; NaN equals NaN (a profile with no finite values equals itself).
bool operator==(const FeatureProfile&, const FeatureProfile&) noexcept;

class Profile {
 public:
  std::uint64_t rows = 0;
  std::vector<FeatureProfile> features;
  std::optional<FeatureProfile> score;  // the model's first output, when profiled with a model

  [[nodiscard]] std::size_t num_features() const noexcept { return features.size(); }

  // JSON (format "keel-profile", version 1). from_json throws keel::Error
  // naming the key on a malformed document.
  [[nodiscard]] std::string to_json() const;
  [[nodiscard]] static Profile from_json(std::string_view text);
  void save(const std::filesystem::path& path) const;  // throws keel::Error on I/O failure
  [[nodiscard]] static Profile load(const std::filesystem::path& path);

  friend bool operator==(const Profile&, const Profile&) = default;
};

}  // namespace keel
