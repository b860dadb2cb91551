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

#include <keel/model/model.hpp>
#include <keel/model/tree_spec.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

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

// Builds the explainer of a validated (validate()) tree-ensemble spec: its own layout of
// the trees (preorder nodes, cover ratios, quadrature tables), independent
// of the spec afterwards. Throws std::bad_alloc only.
[[nodiscard]] std::shared_ptr<const Explainer> make_tree_explainer(const TreeEnsembleSpec& spec);

// Loaders call this last, before building the model: sets
// spec.info.explainer = make_tree_explainer(spec). An invalid spec is left
// without one (building the model reports why); errors only when memory runs out.
[[nodiscard]] Status attach_tree_explainer(TreeEnsembleSpec& spec) noexcept;

}  // namespace keel
