#pragma once
// Pre- and post-processing around the model, declared in config or code.
//
// Preprocessor: per-feature steps on the caller's row (defaults for missing,
// clip, log1p, standardise), applied in declaration order, then one-hot
// expansion of categorical columns, which changes the row's width: the
// output row is what the model sees. NaN stays "missing" through every step
// except a default. A step that yields a non-finite value from a finite one
// (log1p of -2) fails that row with kInvalidInput naming the feature.
//
// Postprocessor: calibration of the scores (Platt or isotonic), then the
// derived views: a label from thresholds, the top-k classes. A non-finite
// calibrated score fails the row (kModelError) rather than leak out.
//
// Both are immutable after construction and thread-safe; apply() is
// noexcept and allocation-free. Bad declarations throw keel::Error at
// construction, naming the step ("preprocess[2].std: must be > 0").

#include <keel/core/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace keel {

struct PreStep {
  enum class Kind : std::uint8_t { kDefault, kClip, kLog1p, kStandardise } kind = Kind::kDefault;
  std::size_t feature = 0;
  float value = 0.f;  // kDefault
  float lo = 0.f, hi = 0.f;  // kClip
  float mean = 0.f, std = 1.f;  // kStandardise
};

struct OneHot {
  std::size_t feature = 0;
  // Category ids, in output order. A missing or unknown id gives all zeros.
  std::vector<std::int32_t> categories;
};

class Preprocessor {
 public:
  Preprocessor() = default;
  // `input_width`: the caller's row length. `names` (optional) name the
  // input features in errors.
  Preprocessor(std::size_t input_width, std::vector<PreStep> steps, std::vector<OneHot> one_hot = {},
               std::vector<std::string> names = {});

  [[nodiscard]] bool empty() const noexcept { return steps_.empty() && one_hot_.empty(); }
  [[nodiscard]] std::size_t input_width() const noexcept { return in_width_; }
  [[nodiscard]] std::size_t output_width() const noexcept { return out_width_; }

  // in: input_width() floats; out: output_width() floats (not aliasing in).
  [[nodiscard]] Status apply(std::span<const float> in, std::span<float> out) const noexcept;

 private:
  std::size_t in_width_ = 0;
  std::size_t out_width_ = 0;
  std::vector<PreStep> steps_;
  std::vector<OneHot> one_hot_;
  std::vector<std::int32_t> hot_of_;  // per input column: index into one_hot_, or -1
  std::vector<std::string> names_;
};

struct Calibration {
  enum class Kind : std::uint8_t { kNone, kPlatt, kIsotonic } kind = Kind::kNone;
  double a = -1.0, b = 0.0;     // Platt: p = 1 / (1 + exp(a * s + b))
  std::vector<double> x, y;     // isotonic: ascending x, non-decreasing y; linear between, flat outside
};

struct LabelRule {
  // labels.size() == thresholds.size() + 1; score < thresholds[0] ->
  // labels[0], ... (applied to score column `column`).
  std::vector<double> thresholds;
  std::vector<std::string> labels;
  std::size_t column = 0;
};

struct Labels {
  std::string label;                    // empty without a LabelRule
  std::vector<std::uint32_t> top_k;     // class indices, best first; empty unless top_k > 0
};

class Postprocessor {
 public:
  Postprocessor() = default;
  Postprocessor(Calibration calibration, std::optional<LabelRule> labels, std::size_t top_k);

  [[nodiscard]] bool calibrates() const noexcept { return cal_.kind != Calibration::Kind::kNone; }
  [[nodiscard]] bool labels_anything() const noexcept { return rule_.has_value() || top_k_ > 0; }
  [[nodiscard]] std::size_t top_k() const noexcept { return top_k_; }

  // What calibrate() computes, the same in every process: "" without a
  // calibration, else "cal:" and 32 hex digits (XXH3-128 of the kind and
  // the exact parameters). The engine puts it in cache keys, since the
  // cache holds calibrated scores.
  [[nodiscard]] std::string calibration_id() const;
  // Calibrates scores in place (each column).
  [[nodiscard]] Status calibrate(std::span<float> scores) const noexcept;
  // Derives the label and top-k from (calibrated) scores.
  [[nodiscard]] Result<Labels> labels(std::span<const float> scores) const;

 private:
  Calibration cal_;
  std::optional<LabelRule> rule_;
  std::size_t top_k_ = 0;
};

}  // namespace keel
