#include <keel/model/model.hpp>

#include <fmt/format.h>

#include <atomic>
#include <vector>

namespace keel {

std::string_view to_string(ModelFormat f) noexcept {
  switch (f) {
    case ModelFormat::kXGBoostJson: return "xgboost-json";
    case ModelFormat::kXGBoostUbjson: return "xgboost-ubjson";
    case ModelFormat::kLightGBMText: return "lightgbm-text";
    case ModelFormat::kKeelLinearJson: return "keel-linear-json";
    case ModelFormat::kCustom: return "custom";
  }
  return "unknown";
}

std::string_view to_string(FeatureType t) noexcept {
  switch (t) {
    case FeatureType::kNumeric: return "numeric";
    case FeatureType::kInteger: return "integer";
    case FeatureType::kIndicator: return "indicator";
    case FeatureType::kCategorical: return "categorical";
  }
  return "unknown";
}

std::uint64_t next_model_version() noexcept {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

Status Model::check_shapes(std::size_t rows_size, std::size_t n_rows, std::size_t out_size,
                           const PredictOptions& opts) const noexcept {
  try {
    const ModelInfo& mi = info();
    if (rows_size != n_rows * mi.num_features) {
      return invalid_input(fmt::format("rows: expected {} rows x {} features = {} values, got {}", n_rows,
                                       mi.num_features, n_rows * mi.num_features, rows_size));
    }
    const std::size_t w = mi.width(opts.output);
    if (out_size != n_rows * w) {
      return invalid_input(fmt::format("out: expected {} rows x {} outputs = {} values, got {}", n_rows, w,
                                       n_rows * w, out_size));
    }
    return Status::ok();
  } catch (...) {
    return internal_error("check_shapes: allocation failed");
  }
}

Status Model::predict(std::span<const double> rows, std::size_t n_rows, std::span<float> out,
                      const PredictOptions& opts) const noexcept {
  try {
    std::vector<float> narrowed(rows.begin(), rows.end());
    return predict(std::span<const float>(narrowed), n_rows, out, opts);
  } catch (...) {
    return internal_error("predict(double): allocation failed");
  }
}

Status Model::predict(std::span<const double> rows, std::size_t n_rows, std::span<double> out,
                      const PredictOptions& opts) const noexcept {
  try {
    std::vector<float> narrow(out.size());
    if (Status s = predict(rows, n_rows, std::span<float>(narrow), opts); !s) return s;
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = narrow[i];
    return Status::ok();
  } catch (...) {
    return internal_error("predict(double -> double): allocation failed");
  }
}

}  // namespace keel
