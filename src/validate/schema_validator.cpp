#include <keel/validate/schema_validator.hpp>

#include <keel/core/status.hpp>

#include "validate/validate_kernels.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace keel {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kMaxFinite = std::numeric_limits<float>::max();

using detail::is_integral;

[[noreturn]] void bad_schema(const FeatureSchema& f, std::size_t j, std::string_view what) {
  throw Error(invalid_input(fmt::format("schema: feature '{}' (index {}): {}", f.name, j, what)));
}

// The rule (if any) a type check breaks: kType for a value of the wrong
// kind, kUnknownCategory for an id outside the set (decided by the caller).
bool type_ok(FeatureType t, float v) noexcept {
  switch (t) {
    case FeatureType::kNumeric: return true;
    case FeatureType::kInteger: return is_integral(v);
    case FeatureType::kIndicator: return v == 0.0f || v == 1.0f;
    case FeatureType::kCategorical: return v >= 0.0f && is_integral(v) && v < 2147483648.0f;
  }
  return true;
}

float clamp_type(FeatureType t, float v) noexcept {
  switch (t) {
    case FeatureType::kIndicator: return v >= 0.5f ? 1.0f : 0.0f;
    case FeatureType::kCategorical: return std::min(std::nearbyint(std::max(v, 0.0f)), 2147483520.0f);
    default: return std::nearbyint(v);
  }
}

}  // namespace

SchemaValidator::SchemaValidator(Schema schema) : schema_(std::move(schema)), clean_(detail::best_clean_kernel()) {
  const std::size_t n = schema_.features.size();
  lo_.resize(n);
  hi_.resize(n);
  nan_ok_.resize(n);
  whole_.resize(n);
  categories_ = detail::CategorySets(n);
  for (std::size_t j = 0; j < n; ++j) {
    const FeatureSchema& f = schema_.features[j];
    if (std::isnan(f.min) || std::isnan(f.max) || f.min > f.max) bad_schema(f, j, "min must not exceed max");
    for (Rule r : {Rule::kMissing, Rule::kUnknownCategory}) {
      if (f.action(r) == Action::kClamp) bad_schema(f, j, fmt::format("'clamp' is no policy for rule {}", to_string(r)));
    }
    if (f.action(Rule::kRowLength) != Action::kReject) bad_schema(f, j, "row_length can only reject");
    bool needs_impute = false;
    for (std::size_t r = 0; r < kNumRules; ++r) needs_impute |= f.policy[r] == Action::kImpute;
    if (needs_impute) {
      if (!f.impute) bad_schema(f, j, "policy 'impute' without an impute value");
      const float v = *f.impute;
      if (!std::isfinite(v) || v < f.min || v > f.max || !type_ok(f.type, v)) {
        bad_schema(f, j, fmt::format("impute value {} breaks the feature's own rules", v));
      }
    }
    const bool inf_ok = f.allow_inf;
    lo_[j] = f.min == -kInf ? (inf_ok ? -kInf : -kMaxFinite) : f.min;
    hi_[j] = f.max == kInf ? (inf_ok ? kInf : kMaxFinite) : f.max;
    if (f.type == FeatureType::kIndicator) {
      lo_[j] = std::max(lo_[j], 0.0f);
      hi_[j] = std::min(hi_[j], 1.0f);
    } else if (f.type == FeatureType::kCategorical) {
      lo_[j] = std::max(lo_[j], 0.0f);
      hi_[j] = std::min(hi_[j], 2147483520.0f);  // the largest float below 2^31
    }
    if (inf_ok) {  // ±inf passes whatever the finite bounds
      lo_[j] = -kInf;
      hi_[j] = kInf;
    }
    nan_ok_[j] = f.allow_missing && !f.required ? 1 : 0;
    whole_[j] = f.type != FeatureType::kNumeric ? 1 : 0;
    if (f.type == FeatureType::kCategorical && !f.categories.empty()) {
      const std::int32_t top = *std::max_element(f.categories.begin(), f.categories.end());
      if (*std::min_element(f.categories.begin(), f.categories.end()) < 0) bad_schema(f, j, "negative category id");
      if (top > (1 << 24)) bad_schema(f, j, "category ids above 2^24 are not exact in float");
      const std::vector<std::int64_t> ids(f.categories.begin(), f.categories.end());
      categories_.set(j, ids);
      category_features_.push_back(static_cast<std::uint32_t>(j));
    }
  }
  // Narrow rows: tile the tables so that validate() checks kBlockRows rows per loop.
  if (n > 0 && n <= kMaxTiledFeatures) {
    block_ = kBlockRows;
    for (auto* t : {&lo_, &hi_}) {
      t->resize(n * block_);
      for (std::size_t k = 1; k < block_; ++k) std::copy_n(t->begin(), n, t->begin() + static_cast<std::ptrdiff_t>(k * n));
    }
    for (auto* t : {&nan_ok_, &whole_}) {
      t->resize(n * block_);
      for (std::size_t k = 1; k < block_; ++k) std::copy_n(t->begin(), n, t->begin() + static_cast<std::ptrdiff_t>(k * n));
    }
  }
}

bool SchemaValidator::values_clean(const float* v, std::size_t count) const noexcept {
  return clean_(v, detail::CleanTables{lo_.data(), hi_.data(), nan_ok_.data(), whole_.data()}, count);
}

namespace detail {

bool values_clean_portable(const float* v, const CleanTables& t, std::size_t count) noexcept {
  std::int32_t bad = 0;
  for (std::size_t j = 0; j < count; ++j) {
    const float x = v[j];
    const std::int32_t in = (x >= t.lo[j]) & (x <= t.hi[j]);
    const std::int32_t nan_allowed = (x != x) & t.nan_ok[j];
    // Whole-number test that vectorises (no libm call, no float->int
    // conversion): for |x| < 2^23, |x| + 2^23 lies where floats are 1
    // apart, so subtracting 2^23 again rounds |x| to an integer; |x| >= 2^23
    // is always whole. Needs round-to-nearest and no -ffast-math.
    const float a = std::abs(x);
    const std::int32_t is_whole = (a >= 8388608.0f) | (((a + 8388608.0f) - 8388608.0f) == a);
    bad |= (1 - (in | nan_allowed)) | (t.whole[j] & (1 - is_whole) & in);
  }
  return bad == 0;
}

CleanKernel best_clean_kernel() noexcept {
  static const CleanKernel k = __builtin_cpu_supports("avx2") ? &values_clean_avx2 : &values_clean_portable;
  return k;
}

}  // namespace detail

bool SchemaValidator::categories_ok(const float* row) const noexcept {
  for (std::uint32_t j : category_features_) {
    const float v = row[j];
    if (v == v && !categories_.contains(j, v)) return false;  // NaN passed the first loop: allowed
  }
  return true;
}

bool SchemaValidator::row_clean(const float* row) const noexcept {
  return values_clean(row, schema_.features.size()) && categories_ok(row);
}

void SchemaValidator::check_row(std::size_t r, const float* in, float* out, ValidationReport& report) const noexcept {
  const std::size_t n = schema_.features.size();
  for (std::size_t j = 0; j < n; ++j) {
    const FeatureSchema& f = schema_.features[j];
    float v = in[j];
    // Applies the rule's policy to the current value; false when the
    // feature needs no further checks (missing, rejected).
    auto apply = [&](Rule rule, Action action, float clamped) {
      float replaced = v;
      if (action == Action::kClamp) replaced = clamped;
      if (action == Action::kImpute) replaced = *f.impute;  // checked at construction
      report.add(r, Violation{static_cast<std::uint32_t>(j), rule, action, v, replaced, f.name});
      if (out != nullptr) out[j] = replaced;
      v = replaced;
      return action != Action::kReject;
    };
    if (std::isnan(v)) {
      if (f.required) {
        apply(Rule::kMissing, Action::kReject, v);
      } else if (!f.allow_missing) {
        apply(Rule::kMissing, f.action(Rule::kMissing), v);
      }
      continue;  // missing (kept, flagged or rejected) or imputed with a valid value
    }
    if (std::isinf(v)) {
      if (f.allow_inf) continue;
      const float bound = v > 0 ? (f.max == kInf ? kMaxFinite : f.max) : (f.min == -kInf ? -kMaxFinite : f.min);
      if (!apply(Rule::kInfinite, f.action(Rule::kInfinite), bound)) continue;
      if (std::isinf(v)) continue;  // flagged: no range to check
    }
    if (v < f.min) {
      if (!apply(Rule::kBelowMin, f.action(Rule::kBelowMin), f.min)) continue;
    } else if (v > f.max) {
      if (!apply(Rule::kAboveMax, f.action(Rule::kAboveMax), f.max)) continue;
    }
    if (!type_ok(f.type, v)) {
      if (!apply(Rule::kType, f.action(Rule::kType), clamp_type(f.type, v))) continue;
      if (!type_ok(f.type, v)) continue;  // flagged: not an id, so no category check
    }
    if (f.type == FeatureType::kCategorical && !categories_.contains(j, v)) {
      apply(Rule::kUnknownCategory, f.action(Rule::kUnknownCategory), v);
    }
  }
}

void SchemaValidator::validate(std::span<const float> rows, std::size_t n_rows, std::span<float> fixed,
                               ValidationReport& report) const noexcept {
  report.reset(n_rows);
  if (n_rows == 0) return;
  const std::size_t n = schema_.features.size();
  const bool write = !fixed.empty() && fixed.size() == rows.size();
  if (write && fixed.data() != rows.data()) std::memcpy(fixed.data(), rows.data(), rows.size_bytes());
  if (rows.size() != n_rows * n) {
    report.reject_row_length(rows.size() / n_rows);
    return;
  }
  std::size_t r = 0;
  // Blocks of block_ clean rows pass in one loop over their values (the
  // tables are tiled block_ times); a block with any finding goes row by row.
  if (block_ > 1) {
    for (; r + block_ <= n_rows; r += block_) {
      const float* in = rows.data() + r * n;
      const bool values = values_clean(in, n * block_);
      if (values && category_features_.empty()) continue;
      for (std::size_t k = 0; k < block_; ++k) {
        const float* row = in + k * n;
        if (values ? categories_ok(row) : row_clean(row)) continue;
        check_row(r + k, row, write ? fixed.data() + (r + k) * n : nullptr, report);
      }
    }
  }
  for (; r < n_rows; ++r) {
    const float* in = rows.data() + r * n;
    if (row_clean(in)) continue;
    check_row(r, in, write ? fixed.data() + r * n : nullptr, report);
  }
}

}  // namespace keel
