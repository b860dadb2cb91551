#pragma once
// The generic tree-ensemble description every loader produces and every
// evaluator consumes. It states each training library's semantics
// explicitly (comparison, missing handling, categories, accumulation), so
// the reference evaluator and the SIMD kernels need no knowledge of file
// formats. Built once at load; immutable afterwards. Not on the hot path:
// the fast evaluators flatten it into their own layouts.

#include <keel/model/model.hpp>

#include <cstdint>
#include <vector>

namespace keel {

enum class SplitKind : std::uint8_t {
  kLeaf,
  // XGBoost: NaN -> default_left; otherwise left iff float(x) < float(threshold).
  kNumericLess,
  // LightGBM: per `missing` (below); otherwise left iff double(x) <= threshold.
  kNumericLessEqual,
  // Category test against the node's bitset; see CategoryRule.
  kCategorical,
};

// LightGBM's missing types for kNumericLessEqual (XGBoost nodes use kNaN).
//  kNone: NaN is replaced by 0.0, then compared.
//  kZero: NaN is replaced by 0.0; |x| <= 1e-35 (kZeroThreshold) goes the default way.
//  kNaN:  NaN goes the default way.
enum class MissingType : std::uint8_t { kNone, kZero, kNaN };

// How a float becomes a category id, and where non-categories go.
//  kXGBoost:  NaN -> default_left; x < 0, x >= 2^24, inf -> "not in set";
//             else id = trunc(x). In set -> RIGHT, not in set -> LEFT.
//  kLightGBM: NaN -> right; id = trunc(x) (so -0.5 -> 0); id < 0 or beyond
//             int range -> right; in set -> LEFT, not in set or past the
//             bitset -> RIGHT.
enum class CategoryRule : std::uint8_t { kXGBoost, kLightGBM };

struct TreeNode {
  SplitKind kind = SplitKind::kLeaf;
  MissingType missing = MissingType::kNaN;
  bool default_left = false;
  std::int32_t feature = -1;   // split feature, < num_features
  std::int32_t left = -1;      // child node indices in Tree::nodes
  std::int32_t right = -1;
  double threshold = 0.0;
  // kCategorical: [cat_offset, cat_offset + cat_words) in Tree::category_bits;
  // bit (id % 32) of word (id / 32) set means id is in the set.
  std::uint32_t cat_offset = 0;
  std::uint32_t cat_words = 0;
  // kLeaf: the leaf's value (already shrunk / scaled by the library).
  double leaf_value = 0.0;
  // kLeaf of a LightGBM linear tree: leaf = linear_const + sum coeff * x over
  // Tree::linear_terms[linear_offset, +linear_count); if any such x is NaN,
  // leaf_value is used instead.
  bool linear = false;
  double linear_const = 0.0;
  std::uint32_t linear_offset = 0;
  std::uint32_t linear_count = 0;
  // kLeaf of a vector-leaf tree (Tree::leaf_width > 1): the leaf's values are
  // Tree::leaf_vectors[leaf_vector_offset, + leaf_width); leaf_value unused.
  std::uint32_t leaf_vector_offset = 0;
};

struct LinearTerm {
  std::int32_t feature = 0;
  double coeff = 0.0;
};

struct Tree {
  std::vector<TreeNode> nodes;  // nodes[0] is the root
  std::vector<std::uint32_t> category_bits;
  std::vector<LinearTerm> linear_terms;
  std::uint32_t output = 0;  // margin column this tree adds to (the first, for vector leaves)
  // XGBoost DART weight_drop: leaf * weight in float32 before adding. 1 otherwise.
  double weight = 1.0;
  // XGBoost multi_strategy=multi_output_tree: every leaf holds leaf_width
  // values, value c added to margin column output + c. 1 = scalar leaves.
  // The SIMD kernels do not walk these; make_tree_ensemble routes such
  // models to the reference evaluator.
  std::uint32_t leaf_width = 1;
  std::vector<double> leaf_vectors;
  // Per node (parallel to nodes), for explanations: the training weight that
  // reached it (XGBoost sum_hessian, LightGBM internal_count / leaf_count);
  // empty when the file has none, and contributions are then an error.
  std::vector<double> cover;
  // Per node, the training library's own number for it (XGBoost node id,
  // LightGBM leaf index for leaves and split index otherwise), as leaf
  // indices report it; empty means the index in nodes.
  std::vector<std::int32_t> source_id;
};

enum class Transform : std::uint8_t {
  kIdentity,
  kSigmoid,        // 1 / (1 + exp(-sigmoid_scale * m)), per column (binary, multiclassova)
  kSoftmax,        // across columns
  kSoftmaxArgmax,  // XGBoost multi:softmax: one column, the first arg-max of the margins
  kExp,            // poisson, gamma, tweedie, survival
  kHinge,          // 1 if m > 0 else 0
  kLog1pExp,       // LightGBM cross_entropy_lambda
  kSignedSquare,   // LightGBM regression with sqrt: sign(m) * m^2
};

// Which library's arithmetic to reproduce.
//  kXGBoost:  margin starts at float(base_margin), adds float leaves (times
//             float weight) in tree order in float32; transforms use expf;
//             the sigmoid clamps its exponent; softmax sums in double.
//  kLightGBM: raw score accumulates in double from 0 (base_margin 0), leaves
//             in tree order; transforms in double; average_output divides by
//             num_iterations before transforming.
enum class Arithmetic : std::uint8_t { kXGBoost, kLightGBM };

struct TreeEnsembleSpec {
  ModelInfo info;  // filled by the loader (format, objective, features, widths, ...)
  std::vector<Tree> trees;
  std::vector<double> base_margin;  // per margin output, already in margin space
  Transform transform = Transform::kIdentity;
  double sigmoid_scale = 1.0;
  Arithmetic arithmetic = Arithmetic::kXGBoost;
  CategoryRule category_rule = CategoryRule::kXGBoost;
  bool average_output = false;       // LightGBM rf
  std::size_t num_iterations = 0;    // divisor for average_output
};

// Checks a spec for everything an evaluator relies on: child, feature,
// category and linear-term indices in range, every node reachable exactly
// once from the root (no cycles, no sharing), finite thresholds on numeric
// splits, tree outputs < num_margin_outputs, widths consistent. Errors name
// the tree and node. Loaders call it before building a model.
[[nodiscard]] Status validate(const TreeEnsembleSpec& spec);

// Fills info.num_trees and info.max_depth from the trees.
void compute_shape(TreeEnsembleSpec& spec);

// Applies the output transform to one row's margins (num_margin_outputs
// values) writing info.num_outputs values.
void apply_transform(const TreeEnsembleSpec& spec, std::span<const double> margin, std::span<float> out) noexcept;
// The same in double: for Arithmetic::kLightGBM the transform's double
// result unrounded (LightGBM returns doubles); for kXGBoost the float
// result widened.
void apply_transform(const TreeEnsembleSpec& spec, std::span<const double> margin, std::span<double> out) noexcept;

// The same transform without a spec, for other model kinds that share the
// objectives (linear models): margin.size() columns in, 1 (kSoftmaxArgmax)
// or margin.size() out. No average_output division.
void apply_transform(Transform transform, Arithmetic arithmetic, double sigmoid_scale, std::span<const double> margin,
                     std::span<float> out) noexcept;

// True when some tree has vector leaves (leaf_width > 1).
[[nodiscard]] bool has_vector_leaves(const TreeEnsembleSpec& spec) noexcept;

// The reference evaluator (the oracle the kernels are tested against) is
// declared in <keel/model/reference_evaluator.hpp>.

}  // namespace keel
