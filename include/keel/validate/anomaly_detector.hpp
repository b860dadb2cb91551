#pragma once
// AnomalyDetector: scores rows against a reference Profile. A feature is
// anomalous when its value lies outside the profile's [min, max] (plus an
// optional margin), when its robust z-score |v - median| / (IQR / 1.349)
// exceeds a threshold, when a categorical id was never seen in the
// profile, or when it is missing although the profile had no missing
// values. A row's score is the number of anomalous features; the row is
// anomalous when the score reaches AnomalyOptions::min_score, and the
// policy says what the engine does with it (flag, reject, or route to the
// fallback chain). Immutable after construction; thread-safe.

#include <keel/validate/detail/category_set.hpp>
#include <keel/validate/detail/row_findings.hpp>
#include <keel/validate/profile.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

enum class AnomalyKind : std::uint8_t {
  kRowLength,          // the row has the wrong length (score: +inf)
  kOutOfRange,         // outside the profile's [min, max]
  kOutlier,            // inside the range, robust z above the threshold
  kUnseenCategory,     // a categorical id the profile never saw
  kUnexpectedMissing,  // NaN where the profile had none
};
std::string_view to_string(AnomalyKind k) noexcept;

enum class AnomalyPolicy : std::uint8_t {
  kFlag,    // score the row, mark the response (observe before enforce)
  kReject,  // InvalidInput
  kRoute,   // skip the primary model, answer from the fallback chain
};
std::string_view to_string(AnomalyPolicy p) noexcept;
// "flag", "reject", "route"; throws keel::Error otherwise.
[[nodiscard]] AnomalyPolicy parse_anomaly_policy(std::string_view s);

struct AnomalyFinding {
  static constexpr std::uint32_t kNoFeature = std::numeric_limits<std::uint32_t>::max();
  std::uint32_t feature = kNoFeature;
  AnomalyKind kind = AnomalyKind::kOutOfRange;
  float value = 0.0f;
  float z = 0.0f;  // robust z-score; NaN when not applicable (missing, category, IQR of 0)
  std::string_view feature_name;  // points into the detector: valid while it lives
};

struct AnomalyOptions {
  double z_threshold = 6.0;
  // Slack beyond the profile's range, as a fraction of (max - min).
  double range_margin = 0.0;
  double min_score = 1.0;
  AnomalyPolicy policy = AnomalyPolicy::kFlag;
  bool check_missing = true;
  bool check_categories = true;
  std::size_t max_findings_per_row = 16;
};

// Per-row anomaly scores and findings of a batch; reused across calls so
// that scoring allocates nothing once warm. Not thread-safe.
class AnomalyReport {
 public:
  void reset(std::size_t n_rows, double min_score, std::size_t max_per_row) {
    findings_.reset(n_rows, max_per_row);
    scores_.assign(n_rows, 0.0);
    min_score_ = min_score;
  }
  void add(std::size_t row, const AnomalyFinding& f) noexcept {
    findings_.add(row, f);
    scores_[row] = f.kind == AnomalyKind::kRowLength ? std::numeric_limits<double>::infinity() : scores_[row] + 1.0;
  }

  [[nodiscard]] std::size_t rows() const noexcept { return scores_.size(); }
  [[nodiscard]] double score(std::size_t row) const noexcept { return scores_[row]; }
  [[nodiscard]] bool anomalous(std::size_t row) const noexcept { return scores_[row] >= min_score_ && scores_[row] > 0; }
  [[nodiscard]] std::size_t anomalous_count() const noexcept;
  [[nodiscard]] std::span<const AnomalyFinding> findings(std::size_t row) const noexcept { return findings_.of(row); }
  // "'age' (index 2) out_of_range 300 (z 41.2); ..." for Response::anomaly_reason.
  [[nodiscard]] std::string describe(std::size_t row) const;

 private:
  detail::RowFindings<AnomalyFinding> findings_;
  std::vector<double> scores_;
  double min_score_ = 1.0;
};

class AnomalyDetector {
 public:
  // Throws keel::Error when the options are out of range.
  explicit AnomalyDetector(const Profile& profile, AnomalyOptions opts = {});

  [[nodiscard]] std::size_t num_features() const noexcept { return names_.size(); }
  [[nodiscard]] const AnomalyOptions& options() const noexcept { return opts_; }

  // Scores n_rows row-major rows into `report` (reset first). A size that
  // is not n_rows * num_features() gives every row a kRowLength finding.
  void score(std::span<const float> rows, std::size_t n_rows, AnomalyReport& report) const noexcept;

 private:
  [[nodiscard]] bool row_clean(const float* row) const noexcept;
  void check_row(std::size_t r, const float* row, AnomalyReport& report) const noexcept;
  [[nodiscard]] float robust_z(std::size_t j, float v) const noexcept;

  AnomalyOptions opts_;
  std::vector<std::string> names_;
  std::vector<float> lo_, hi_, median_, inv_scale_;
  std::vector<std::uint8_t> missing_ok_;
  float z_threshold_;
  std::vector<std::uint32_t> categorical_;  // features checked against seen ids
  detail::CategorySets seen_;
};

}  // namespace keel
