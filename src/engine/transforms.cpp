#include <keel/engine/transforms.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace keel {

namespace {

std::string_view kind_name(PreStep::Kind k) noexcept {
  switch (k) {
    case PreStep::Kind::kDefault: return "default";
    case PreStep::Kind::kClip: return "clip";
    case PreStep::Kind::kLog1p: return "log1p";
    case PreStep::Kind::kStandardise: return "standardise";
  }
  return "?";
}

}  // namespace

Preprocessor::Preprocessor(std::size_t input_width, std::vector<PreStep> steps, std::vector<OneHot> one_hot,
                           std::vector<std::string> names)
    : in_width_(input_width), steps_(std::move(steps)), one_hot_(std::move(one_hot)), names_(std::move(names)) {
  if (!names_.empty() && names_.size() != in_width_) {
    throw Error(invalid_input(fmt::format("preprocess: {} feature names for rows of {}", names_.size(), in_width_)));
  }
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const PreStep& s = steps_[i];
    const std::string where = fmt::format("preprocess[{}] ({})", i, kind_name(s.kind));
    if (s.feature >= in_width_) {
      throw Error(invalid_input(fmt::format("{}.feature: {} is outside rows of {}", where, s.feature, in_width_)));
    }
    if (s.kind == PreStep::Kind::kClip && !(s.lo <= s.hi)) {
      throw Error(invalid_input(fmt::format("{}.min: {} is above max {}", where, s.lo, s.hi)));
    }
    if (s.kind == PreStep::Kind::kStandardise && !(std::isfinite(s.std) && s.std > 0.f && std::isfinite(s.mean))) {
      throw Error(invalid_input(fmt::format("{}.std: must be finite and > 0 (got {})", where, s.std)));
    }
    if (s.kind == PreStep::Kind::kDefault && std::isnan(s.value)) {
      throw Error(invalid_input(fmt::format("{}.value: a default cannot be NaN", where)));
    }
  }
  hot_of_.assign(in_width_, -1);
  out_width_ = in_width_;
  for (std::size_t i = 0; i < one_hot_.size(); ++i) {
    const OneHot& h = one_hot_[i];
    if (h.feature >= in_width_) {
      throw Error(invalid_input(fmt::format("one_hot[{}].feature: {} is outside rows of {}", i, h.feature, in_width_)));
    }
    if (h.categories.empty()) throw Error(invalid_input(fmt::format("one_hot[{}].categories: empty", i)));
    if (hot_of_[h.feature] >= 0) {
      throw Error(invalid_input(fmt::format("one_hot[{}].feature: {} is already expanded", i, h.feature)));
    }
    hot_of_[h.feature] = static_cast<std::int32_t>(i);
    out_width_ += h.categories.size() - 1;
  }
}

Status Preprocessor::apply(std::span<const float> in, std::span<float> out) const noexcept {
  if (in.size() != in_width_ || out.size() != out_width_) {
    return invalid_input(fmt::format("preprocess: row has {} values, expected {}", in.size(), in_width_));
  }
  // Steps act on one input value at a time, then it is written (or
  // expanded) to the output: no scratch row, no allocation.
  auto step_value = [&](std::size_t f, float v, Status& st) noexcept -> float {
    for (const PreStep& s : steps_) {
      if (s.feature != f) continue;
      const float before = v;
      switch (s.kind) {
        case PreStep::Kind::kDefault:
          if (std::isnan(v)) v = s.value;
          break;
        case PreStep::Kind::kClip:
          if (!std::isnan(v)) v = std::clamp(v, s.lo, s.hi);
          break;
        case PreStep::Kind::kLog1p:
          if (!std::isnan(v)) v = std::log1p(v);
          break;
        case PreStep::Kind::kStandardise:
          if (!std::isnan(v)) v = (v - s.mean) / s.std;
          break;
      }
      if (!std::isnan(before) && !std::isfinite(v) && std::isfinite(before)) {
        const std::string name = names_.empty() ? std::string() : fmt::format(" '{}'", names_[f]);
        st = invalid_input(fmt::format("preprocess: feature {}{}: {}({}) is not finite", f, name,
                                       kind_name(s.kind), before));
      }
    }
    return v;
  };
  Status st;
  std::size_t o = 0;
  for (std::size_t f = 0; f < in_width_; ++f) {
    const float v = steps_.empty() ? in[f] : step_value(f, in[f], st);
    if (!st.is_ok()) return st;
    const std::int32_t h = hot_of_[f];
    if (h < 0) {
      out[o++] = v;
      continue;
    }
    for (std::int32_t c : one_hot_[static_cast<std::size_t>(h)].categories) {
      out[o++] = (!std::isnan(v) && v == static_cast<float>(c)) ? 1.f : 0.f;
    }
  }
  return Status::ok();
}

Postprocessor::Postprocessor(Calibration calibration, std::optional<LabelRule> labels, std::size_t top_k)
    : cal_(std::move(calibration)), rule_(std::move(labels)), top_k_(top_k) {
  if (cal_.kind == Calibration::Kind::kPlatt && !(std::isfinite(cal_.a) && std::isfinite(cal_.b))) {
    throw Error(invalid_input("postprocess.calibration: Platt a and b must be finite"));
  }
  if (cal_.kind == Calibration::Kind::kIsotonic) {
    if (cal_.x.empty() || cal_.x.size() != cal_.y.size()) {
      throw Error(invalid_input(fmt::format("postprocess.calibration: isotonic x ({}) and y ({}) must be non-empty "
                                            "and of equal length", cal_.x.size(), cal_.y.size())));
    }
    for (std::size_t i = 0; i < cal_.x.size(); ++i) {
      if (!std::isfinite(cal_.x[i]) || !std::isfinite(cal_.y[i])) {
        throw Error(invalid_input(fmt::format("postprocess.calibration.x[{}]: not finite", i)));
      }
      if (i > 0 && cal_.x[i] <= cal_.x[i - 1]) {
        throw Error(invalid_input(fmt::format("postprocess.calibration.x[{}]: not ascending", i)));
      }
      if (i > 0 && cal_.y[i] < cal_.y[i - 1]) {
        throw Error(invalid_input(fmt::format("postprocess.calibration.y[{}]: decreasing (not isotonic)", i)));
      }
    }
  }
  if (rule_) {
    if (rule_->labels.size() != rule_->thresholds.size() + 1) {
      throw Error(invalid_input(fmt::format("postprocess.labels: {} labels for {} thresholds (need thresholds + 1)",
                                            rule_->labels.size(), rule_->thresholds.size())));
    }
    for (std::size_t i = 1; i < rule_->thresholds.size(); ++i) {
      if (!(rule_->thresholds[i] > rule_->thresholds[i - 1])) {
        throw Error(invalid_input(fmt::format("postprocess.thresholds[{}]: not ascending", i)));
      }
    }
  }
}

std::string Postprocessor::calibration_id() const {
  if (cal_.kind == Calibration::Kind::kNone) return {};
  XXH3_state_t st;
  XXH3_128bits_reset(&st);
  const auto kind = static_cast<std::uint8_t>(cal_.kind);
  XXH3_128bits_update(&st, &kind, 1);
  auto add = [&](double v) { XXH3_128bits_update(&st, &v, sizeof v); };
  if (cal_.kind == Calibration::Kind::kPlatt) {
    add(cal_.a);
    add(cal_.b);
  } else {
    const std::uint64_t n = cal_.x.size();
    XXH3_128bits_update(&st, &n, sizeof n);
    for (double v : cal_.x) add(v);
    for (double v : cal_.y) add(v);
  }
  const XXH128_hash_t h = XXH3_128bits_digest(&st);
  return fmt::format("cal:{:016x}{:016x}", h.high64, h.low64);
}

Status Postprocessor::calibrate(std::span<float> scores) const noexcept {
  if (cal_.kind == Calibration::Kind::kNone) return Status::ok();
  for (std::size_t c = 0; c < scores.size(); ++c) {
    const double s = scores[c];
    double p = s;
    if (cal_.kind == Calibration::Kind::kPlatt) {
      p = 1.0 / (1.0 + std::exp(cal_.a * s + cal_.b));
    } else {
      const auto& x = cal_.x;
      const auto& y = cal_.y;
      if (std::isnan(s)) {
        p = s;
      } else if (s <= x.front()) {
        p = y.front();
      } else if (s >= x.back()) {
        p = y.back();
      } else {
        const std::size_t i = static_cast<std::size_t>(std::upper_bound(x.begin(), x.end(), s) - x.begin());
        const double t = (s - x[i - 1]) / (x[i] - x[i - 1]);
        p = y[i - 1] + t * (y[i] - y[i - 1]);
      }
    }
    if (!std::isfinite(p)) {
      return model_error(fmt::format("postprocess: calibrated score [{}] of {} is not finite", c, s));
    }
    scores[c] = static_cast<float>(p);
  }
  return Status::ok();
}

Result<Labels> Postprocessor::labels(std::span<const float> scores) const {
  Labels out;
  if (rule_) {
    if (rule_->column >= scores.size()) {
      return internal_error(fmt::format("postprocess.labels.column: {} but the model has {} outputs", rule_->column,
                                        scores.size()));
    }
    const double s = scores[rule_->column];
    if (std::isnan(s)) return model_error("postprocess.labels: score is NaN");
    const std::size_t i = static_cast<std::size_t>(
        std::upper_bound(rule_->thresholds.begin(), rule_->thresholds.end(), s) - rule_->thresholds.begin());
    out.label = rule_->labels[i];
  }
  if (top_k_ > 0) {
    std::vector<std::uint32_t> idx(scores.size());
    std::iota(idx.begin(), idx.end(), 0u);
    const std::size_t k = std::min(top_k_, idx.size());
    // Ties go to the lower class index, as argmax does.
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                      [&](std::uint32_t a, std::uint32_t b) {
                        return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
                      });
    idx.resize(k);
    out.top_k = std::move(idx);
  }
  return out;
}

}  // namespace keel
