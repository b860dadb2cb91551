#pragma once
// THE reference evaluator: the oracle. A plain, obviously-correct walk of a
// TreeEnsembleSpec, one row at a time, written for clarity and not speed
// (src/model/trees/reference_evaluator.cpp). It states each training
// library's semantics once: XGBoost's float comparisons and float32
// accumulation in tree order, LightGBM's double comparisons, missing types
// and zero band, both libraries' category rules, linear and vector leaves.
//
// Every fast path (TreeEnsemble's scalar, AVX2 and AVX-512 kernels, the
// single-row walk, float64 rows, leaf indices, TreeSHAP's routing) is tested
// against it (tests/unit/test_tree_ensemble.cpp, test_tree_double_rows.cpp,
// tree_ensemble_testing.hpp, ...), and it is tested against the training
// libraries' own outputs (tests/data fixtures: test_xgboost_loader.cpp,
// test_lightgbm_loader.cpp, test_tree_spec.cpp). A new kernel is correct
// when it agrees with this evaluator bit for bit; change this evaluator only
// with a fixture showing the training library does the same.

#include <keel/model/model.hpp>
#include <keel/model/tree_spec.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace keel {

// The margins of one row: `row` has info.num_features values; margin must
// hold num_margin_outputs doubles (XGBoost's float sums widened).
void reference_margin(const TreeEnsembleSpec& spec, std::span<const double> row, std::span<double> margin) noexcept;

// The leaf index (node index in Tree::nodes) each tree reaches.
void reference_leaves(const TreeEnsembleSpec& spec, std::span<const double> row, std::span<std::int32_t> leaves) noexcept;

// One split: true when the row whose feature n.feature is x goes to n's left
// child (x as given, before LightGBM's zero-band reading). Fast evaluators
// call it for nodes they do not specialise.
[[nodiscard]] bool reference_goes_left(const TreeEnsembleSpec& spec, const Tree& t, const TreeNode& n,
                                       double x) noexcept;

// A batch of float64 rows with float64 outputs, for Model::predict(double
// rows, double out). Checks shapes like Model::check_shapes.
[[nodiscard]] Status reference_predict(const TreeEnsembleSpec& spec, std::span<const double> rows, std::size_t n_rows,
                                       std::span<double> out, const PredictOptions& opts) noexcept;

// A Model over a validated spec, evaluated by the reference evaluator.
// (The hot-path TreeEnsemble replaces it where a faster kernel applies.)
[[nodiscard]] Result<ModelPtr> make_reference_model(TreeEnsembleSpec spec);

}  // namespace keel
