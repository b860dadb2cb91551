#pragma once
// Linear models: margin[k] = intercept[k] + sum_j x[j] * weights[j][k] over
// non-missing x[j] (NaN contributes nothing), then the output transform.
// XGBoost `gblinear` files load as one of these, and so does Keel's own
// linear JSON format:
//
//   {
//     "keel_linear": 1,                      // format version, required
//     "num_features": 3,                     // required, >= 1
//     "feature_names": ["age", "income", "x"],  // optional, num_features strings
//     "outputs": 1,                          // optional, default 1 (K)
//     "weights": [[0.5], [-1.25], [2]],      // required: num_features rows of K
//                                            //   (or a flat list when K == 1)
//     "intercept": [0.1],                    // optional, K values (or one number), default 0
//     "link": "logistic"                     // optional: identity (default) | logistic |
//                                            //   softmax (K >= 2) | exp
//   }
//
// Unknown top-level fields are an error (a typo must not silently change a
// model). Weights are stored as float32, and margins are accumulated in
// float32.
//
// Accumulation. A model with `exact_order` (XGBoost gblinear) sums exactly
// as XGBoost does: float(intercept) then + x*w feature by feature, without
// FMA, so results are bit-identical to XGBoost. Otherwise one row uses
// several FMA accumulators and a batch uses a matrix product (Eigen); these
// differ from the strict order only by float rounding.
//
// Immutable after construction; predict() is thread-safe.

#include <keel/model/model.hpp>
#include <keel/model/tree_spec.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace keel {

struct LinearSpec {
  // format, objective, booster, features, widths, base_score; filled by the
  // loader. num_margin_outputs is K; num_outputs is 1 for kSoftmaxArgmax.
  ModelInfo info;
  std::vector<float> weights;    // num_features * K, row-major [feature][output]
  std::vector<float> intercept;  // K values (XGBoost: bias + base margin, added in float)
  Transform transform = Transform::kIdentity;  // with XGBoost (float) arithmetic
  bool exact_order = false;
};

class LinearModel final : public Model {
 public:
  explicit LinearModel(LinearSpec spec);  // use make_linear_model(), which validates

  [[nodiscard]] const ModelInfo& info() const noexcept override { return spec_.info; }
  [[nodiscard]] const LinearSpec& spec() const noexcept { return spec_; }

  [[nodiscard]] Status predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                               const PredictOptions& opts = {}) const noexcept override;
  using Model::predict;

  // Exact attribution of the margin (explain.hpp): contribution j of output
  // k is x_j * w[j][k] (0 when x_j is missing), the bias is intercept[k].
  [[nodiscard]] Status contributions(std::span<const float> rows, std::size_t n_rows,
                                     std::span<float> out) const noexcept override;
  [[nodiscard]] Status contributions(std::span<const double> rows, std::size_t n_rows,
                                     std::span<float> out) const noexcept override;
  using Model::leaf_indices;

  // One sparse row for wide (e.g. hashed) models: pairs (idx[i], val[i]),
  // any order, absent features contribute nothing, NaN values are skipped.
  // out holds info().width(opts.output) floats. kInvalidInput when the spans
  // disagree or an index is >= num_features (naming the pair).
  [[nodiscard]] Status predict_sparse(std::span<const std::uint32_t> idx, std::span<const float> val,
                                      std::span<float> out, const PredictOptions& opts = {}) const noexcept;

 private:
  void margin_row(const float* x, float* m) const noexcept;
  void finish_row(float* m, float* out, const PredictOptions& opts) const noexcept;
  template <class T>
  Status contrib(std::span<const T> rows, std::size_t n_rows, std::span<float> out) const noexcept;

  LinearSpec spec_;
};

// Checks the spec (sizes, finite weights, transform vs K) and builds the model.
[[nodiscard]] Result<std::shared_ptr<const LinearModel>> make_linear_model(LinearSpec spec);

}  // namespace keel
