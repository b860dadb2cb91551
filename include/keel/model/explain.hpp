#pragma once
// Explanations next to predict(): exact SHAP contributions (path-dependent
// TreeSHAP, the attribution XGBoost's pred_contribs and LightGBM's
// pred_contrib compute) and leaf indices. Model::contributions and
// Model::leaf_indices (model.hpp) are the entry points; this header gives
// their shapes and the tree-ensemble explainer loaders attach.
//
// Trees: each tree's contribution to feature j is the Shapley value of
//   f(S) = sum over leaves l of v_l * prod over the path's features k of
//          (k in S ? [x follows every k-split on the path] : Z_lk),
// Z_lk the product of cover(child) / cover(parent) over the path's k-splits.
// The bias is f({}) plus the base margin. Covers come from the file (XGBoost
// sum_hessian, LightGBM internal_count / leaf_count); a model without them
// explains leaf indices but not contributions (kModelError naming the tree).
// LightGBM linear-leaf trees have no exact TreeSHAP and are refused alike.
//
// Linear models: contribution j = x_j * w_j (0 when x_j is missing), the bias
// is the intercept, as XGBoost's gblinear reports.

#include <keel/core/reason.hpp>
#include <keel/model/model.hpp>
#include <keel/model/tree_spec.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

// Values per row of Model::contributions: num_margin_outputs * (num_features + 1).
[[nodiscard]] inline std::size_t contributions_width(const ModelInfo& mi) noexcept {
  return mi.num_margin_outputs * (mi.num_features + 1);
}
// Values per row of Model::leaf_indices: one per tree.
[[nodiscard]] inline std::size_t leaf_indices_width(const ModelInfo& mi) noexcept { return mi.num_trees; }

// The explanation engine of one model. Immutable; thread-safe. Allocates
// only the first time a thread uses it with a larger model than before
// (a per-thread workspace), never afterwards.
class Explainer {
 public:
  virtual ~Explainer() = default;
  [[nodiscard]] virtual Status contributions(std::span<const float> rows, std::size_t n_rows,
                                             std::span<float> out) const noexcept = 0;
  [[nodiscard]] virtual Status contributions(std::span<const double> rows, std::size_t n_rows,
                                             std::span<float> out) const noexcept = 0;
  [[nodiscard]] virtual Status leaf_indices(std::span<const float> rows, std::size_t n_rows,
                                            std::span<std::int32_t> out) const noexcept = 0;
  [[nodiscard]] virtual Status leaf_indices(std::span<const double> rows, std::size_t n_rows,
                                            std::span<std::int32_t> out) const noexcept = 0;
};

// Reason codes: the features that moved one row's score most, from one
// output's block of its contributions. A code names the feature, the row's
// value of it and its contribution.
struct ReasonCode {
  std::uint32_t feature = 0;  // index into the model's features
  std::string_view name;      // points into the names passed in
  double value = 0.0;         // the row's value (NaN = missing)
  float contribution = 0.0f;
};

// ReasonMode: core/reason.hpp.

// The names reason codes carry: the model's feature names, "f0".."fN-1"
// (XGBoost's default names) where the file has none.
[[nodiscard]] std::vector<std::string> reason_code_names(const ModelInfo& mi);

// Writes the top out.size() codes of one row, best first, into out and
// returns how many it wrote (fewer when fewer features qualify). A zero
// contribution is never a reason. Ties keep the lower feature index first.
// contributions: one output's block, num_features values optionally
// followed by the bias (ignored); names and values: num_features each.
// Errors (kInvalidInput): sizes that disagree, a NaN contribution.
// Allocation-free and thread-safe; O(num_features * out.size()).
[[nodiscard]] Result<std::size_t> top_reason_codes(std::span<const float> contributions,
                                                   std::span<const std::string> names,
                                                   std::span<const double> values, ReasonMode mode,
                                                   std::span<ReasonCode> out) noexcept;
[[nodiscard]] Result<std::size_t> top_reason_codes(std::span<const float> contributions,
                                                   std::span<const std::string> names,
                                                   std::span<const float> values, ReasonMode mode,
                                                   std::span<ReasonCode> out) noexcept;

// The same into a new vector of at most k codes.
[[nodiscard]] Result<std::vector<ReasonCode>> reason_codes(std::span<const float> contributions,
                                                           std::span<const std::string> names,
                                                           std::span<const double> values, std::size_t k,
                                                           ReasonMode mode = ReasonMode::kMagnitude);
[[nodiscard]] Result<std::vector<ReasonCode>> reason_codes(std::span<const float> contributions,
                                                           std::span<const std::string> names,
                                                           std::span<const float> values, std::size_t k,
                                                           ReasonMode mode = ReasonMode::kMagnitude);

// Builds the explainer of a validated (validate()) tree-ensemble spec: its own layout of
// the trees (preorder nodes, cover ratios, quadrature tables), independent
// of the spec afterwards. Throws std::bad_alloc only.
[[nodiscard]] std::shared_ptr<const Explainer> make_tree_explainer(const TreeEnsembleSpec& spec);

// Loaders call this last, before building the model: sets
// spec.info.explainer = make_tree_explainer(spec). An invalid spec is left
// without one (building the model reports why); errors only when memory runs out.
[[nodiscard]] Status attach_tree_explainer(TreeEnsembleSpec& spec) noexcept;

}  // namespace keel
