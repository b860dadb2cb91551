#include <keel/validate/anomaly_detector.hpp>

#include <keel/core/status.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace keel {

namespace {
constexpr float kInfF = std::numeric_limits<float>::infinity();
// IQR / 1.349 estimates the standard deviation of normal data.
constexpr double kIqrToSigma = 1.0 / 1.349;
}  // namespace

std::string_view to_string(AnomalyKind k) noexcept {
  switch (k) {
    case AnomalyKind::kRowLength: return "row_length";
    case AnomalyKind::kOutOfRange: return "out_of_range";
    case AnomalyKind::kOutlier: return "outlier";
    case AnomalyKind::kUnseenCategory: return "unseen_category";
    case AnomalyKind::kUnexpectedMissing: return "unexpected_missing";
  }
  return "unknown";
}

std::string_view to_string(AnomalyPolicy p) noexcept {
  switch (p) {
    case AnomalyPolicy::kFlag: return "flag";
    case AnomalyPolicy::kReject: return "reject";
    case AnomalyPolicy::kRoute: return "route";
  }
  return "unknown";
}

AnomalyPolicy parse_anomaly_policy(std::string_view s) {
  for (AnomalyPolicy p : {AnomalyPolicy::kFlag, AnomalyPolicy::kReject, AnomalyPolicy::kRoute}) {
    if (s == to_string(p)) return p;
  }
  throw Error(invalid_input(fmt::format("anomaly policy '{}' is not flag, reject or route", s)));
}

std::size_t AnomalyReport::anomalous_count() const noexcept {
  std::size_t n = 0;
  for (std::size_t r = 0; r < rows(); ++r) n += anomalous(r) ? 1 : 0;
  return n;
}

std::string AnomalyReport::describe(std::size_t row) const {
  std::string out;
  if (row >= rows()) return out;
  for (const AnomalyFinding& f : findings(row)) {
    if (!out.empty()) out += "; ";
    if (f.kind == AnomalyKind::kRowLength) {
      fmt::format_to(std::back_inserter(out), "row length {}", f.value);
      continue;
    }
    fmt::format_to(std::back_inserter(out), "'{}' (index {}) {} {}", f.feature_name, f.feature, to_string(f.kind), f.value);
    if (!std::isnan(f.z)) fmt::format_to(std::back_inserter(out), " (z {:.3g})", f.z);
  }
  return out;
}

AnomalyDetector::AnomalyDetector(const Profile& profile, AnomalyOptions opts)
    : opts_(opts), z_threshold_(static_cast<float>(opts.z_threshold)) {
  if (!(opts.z_threshold > 0) || !(opts.range_margin >= 0) || !(opts.min_score > 0)) {
    throw Error(invalid_input("anomaly: z_threshold and min_score must be > 0, range_margin >= 0"));
  }
  const std::size_t n = profile.features.size();
  names_.resize(n);
  lo_.resize(n);
  hi_.resize(n);
  median_.resize(n);
  inv_scale_.resize(n);
  missing_ok_.resize(n);
  seen_ = detail::CategorySets(n);
  for (std::size_t j = 0; j < n; ++j) {
    const FeatureProfile& f = profile.features[j];
    names_[j] = f.name;
    missing_ok_[j] = !opts.check_missing || f.missing > 0 || f.count == 0;
    if (f.finite() == 0) {  // never saw a value: every value is out of range
      lo_[j] = kInfF;
      hi_[j] = -kInfF;
      median_[j] = 0;
      inv_scale_[j] = 0;
      continue;
    }
    const double margin = opts.range_margin * (f.max - f.min);
    lo_[j] = static_cast<float>(f.min - margin);
    hi_[j] = static_cast<float>(f.max + margin);
    median_[j] = static_cast<float>(f.median());
    const double scale = f.iqr() * kIqrToSigma;
    // A zero IQR (most values equal) gives no scale: only the range applies
    // (the fast path's z term is then 0, robust_z's NaN).
    inv_scale_[j] = scale > 0 ? static_cast<float>(1.0 / scale) : 0.0f;
    if (opts.check_categories && f.type == FeatureType::kCategorical && !f.categories.empty() &&
        f.other_categories == 0) {
      categorical_.push_back(static_cast<std::uint32_t>(j));
      std::vector<std::int64_t> ids;
      for (const auto& [id, count] : f.categories) ids.push_back(id);
      seen_.set(j, ids);
    }
  }
}

float AnomalyDetector::robust_z(std::size_t j, float v) const noexcept {
  if (inv_scale_[j] == 0.0f) return std::numeric_limits<float>::quiet_NaN();  // no scale: range only
  return std::abs(v - median_[j]) * inv_scale_[j];
}

bool AnomalyDetector::row_clean(const float* row) const noexcept {
  const std::size_t n = lo_.size();
  const float* lo = lo_.data();
  const float* hi = hi_.data();
  const float* med = median_.data();
  const float* inv = inv_scale_.data();
  const std::uint8_t* miss = missing_ok_.data();
  const float zt = z_threshold_;
  unsigned bad = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const float v = row[j];
    const bool nan_ok = (v != v) & (miss[j] != 0);
    const bool in = (v >= lo[j]) & (v <= hi[j]) & (std::abs(v - med[j]) * inv[j] <= zt);
    bad += static_cast<unsigned>(!(nan_ok | in));
  }
  if (bad != 0) return false;
  for (std::uint32_t j : categorical_) {
    const float v = row[j];
    if (v == v && !seen_.contains(j, v)) return false;
  }
  return true;
}

void AnomalyDetector::check_row(std::size_t r, const float* row, AnomalyReport& report) const noexcept {
  const std::size_t n = lo_.size();
  std::size_t next_cat = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const float v = row[j];
    const bool is_cat = next_cat < categorical_.size() && categorical_[next_cat] == j;
    if (is_cat) ++next_cat;
    AnomalyFinding f{static_cast<std::uint32_t>(j), AnomalyKind::kOutOfRange, v,
                     std::numeric_limits<float>::quiet_NaN(), names_[j]};
    if (std::isnan(v)) {
      if (missing_ok_[j]) continue;
      f.kind = AnomalyKind::kUnexpectedMissing;
    } else if (is_cat && !seen_.contains(j, v)) {
      f.kind = AnomalyKind::kUnseenCategory;
    } else if (!(v >= lo_[j] && v <= hi_[j])) {
      f.kind = AnomalyKind::kOutOfRange;
      f.z = robust_z(j, v);
    } else if (const float z = robust_z(j, v); z > z_threshold_) {
      f.kind = AnomalyKind::kOutlier;
      f.z = z;
    } else {
      continue;
    }
    report.add(r, f);
  }
}

void AnomalyDetector::score(std::span<const float> rows, std::size_t n_rows, AnomalyReport& report) const noexcept {
  report.reset(n_rows, opts_.min_score, opts_.max_findings_per_row);
  if (n_rows == 0) return;
  const std::size_t n = lo_.size();
  if (rows.size() != n_rows * n) {
    for (std::size_t r = 0; r < n_rows; ++r) {
      report.add(r, AnomalyFinding{AnomalyFinding::kNoFeature, AnomalyKind::kRowLength,
                                   static_cast<float>(rows.size() / n_rows), std::numeric_limits<float>::quiet_NaN(), {}});
    }
    return;
  }
  for (std::size_t r = 0; r < n_rows; ++r) {
    const float* row = rows.data() + r * n;
    if (!row_clean(row)) check_row(r, row, report);
  }
}

}  // namespace keel
