#include <keel/model/reference_evaluator.hpp>
#include <keel/model/tree_spec.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

using namespace keel;

namespace {

TreeNode split(SplitKind kind, int f, double thr, int l, int r, bool dl = false) {
  TreeNode n;
  n.kind = kind;
  n.feature = f;
  n.threshold = thr;
  n.left = l;
  n.right = r;
  n.default_left = dl;
  return n;
}
TreeNode leaf(double v) {
  TreeNode n;
  n.leaf_value = v;
  return n;
}

TreeEnsembleSpec one_tree(Tree t, std::size_t features = 2) {
  TreeEnsembleSpec s;
  s.info.num_features = features;
  s.info.features.resize(features);
  s.base_margin = {0.0};
  s.trees.push_back(std::move(t));
  return s;
}

double margin_of(const TreeEnsembleSpec& s, std::vector<double> row) {
  std::vector<double> m(s.info.num_margin_outputs);
  reference_margin(s, row, m);
  return m[0];
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

TEST_CASE("reference: XGBoost numeric split is x < t in float, NaN by default_left", "[model][reference]") {
  Tree t;
  t.nodes = {split(SplitKind::kNumericLess, 0, 0.5, 1, 2, /*dl=*/true), leaf(-1), leaf(1)};
  auto s = one_tree(t);
  REQUIRE(validate(s).is_ok());
  CHECK(margin_of(s, {0.49, 0}) == -1);
  CHECK(margin_of(s, {0.5, 0}) == 1);  // equality goes right
  CHECK(margin_of(s, {kNaN, 0}) == -1);
  CHECK(margin_of(s, {-kInf, 0}) == -1);
  CHECK(margin_of(s, {kInf, 0}) == 1);
}

TEST_CASE("reference: LightGBM numeric split honours the missing type", "[model][reference]") {
  Tree t;
  t.nodes = {split(SplitKind::kNumericLessEqual, 0, -1.0, 1, 2, /*dl=*/true), leaf(-1), leaf(1)};
  auto s = one_tree(t);
  s.arithmetic = Arithmetic::kLightGBM;
  s.category_rule = CategoryRule::kLightGBM;
  s.trees[0].nodes[0].missing = MissingType::kNone;
  CHECK(margin_of(s, {-1.0, 0}) == -1);  // equality goes left
  CHECK(margin_of(s, {kNaN, 0}) == 1);   // NaN -> 0.0 -> right of -1
  s.trees[0].nodes[0].missing = MissingType::kZero;
  CHECK(margin_of(s, {0.0, 0}) == -1);   // zero goes the default way
  CHECK(margin_of(s, {1e-36, 0}) == -1);
  CHECK(margin_of(s, {kNaN, 0}) == -1);
  CHECK(margin_of(s, {1e-30, 0}) == 1);
  s.trees[0].nodes[0].missing = MissingType::kNaN;
  CHECK(margin_of(s, {kNaN, 0}) == -1);
  CHECK(margin_of(s, {0.0, 0}) == 1);
}

TEST_CASE("reference: categorical rules of both libraries", "[model][reference]") {
  Tree t;
  TreeNode c = split(SplitKind::kCategorical, 0, 0, 1, 2, /*dl=*/false);
  c.cat_offset = 0;
  c.cat_words = 1;
  t.category_bits = {0b1010u};  // categories 1 and 3
  t.nodes = {c, leaf(-1), leaf(1)};
  auto s = one_tree(t);
  // XGBoost: listed -> right; unlisted, negative, huge -> left.
  CHECK(margin_of(s, {1, 0}) == 1);
  CHECK(margin_of(s, {1.5, 0}) == 1);
  CHECK(margin_of(s, {3, 0}) == 1);
  CHECK(margin_of(s, {2, 0}) == -1);
  CHECK(margin_of(s, {-0.5, 0}) == -1);
  CHECK(margin_of(s, {33, 0}) == -1);
  CHECK(margin_of(s, {1e10, 0}) == -1);
  CHECK(margin_of(s, {kInf, 0}) == -1);
  CHECK(margin_of(s, {kNaN, 0}) == 1);  // default_left false
  // LightGBM: listed -> left; NaN, negative, past the bitset -> right.
  s.category_rule = CategoryRule::kLightGBM;
  s.arithmetic = Arithmetic::kLightGBM;
  CHECK(margin_of(s, {1, 0}) == -1);
  CHECK(margin_of(s, {2, 0}) == 1);
  CHECK(margin_of(s, {kNaN, 0}) == 1);
  CHECK(margin_of(s, {-1.0, 0}) == 1);
  CHECK(margin_of(s, {99, 0}) == 1);
  CHECK(margin_of(s, {-kInf, 0}) == 1);
}

TEST_CASE("reference: linear leaves fall back to the leaf value on NaN", "[model][reference]") {
  Tree t;
  TreeNode l = leaf(5.0);
  l.linear = true;
  l.linear_const = 1.0;
  l.linear_offset = 0;
  l.linear_count = 2;
  t.linear_terms = {{0, 2.0}, {1, -1.0}};
  t.nodes = {l};
  auto s = one_tree(t);
  s.arithmetic = Arithmetic::kLightGBM;
  CHECK(margin_of(s, {3, 4}) == 1.0 + 6.0 - 4.0);
  CHECK(margin_of(s, {3, kNaN}) == 5.0);
}

TEST_CASE("reference: transforms", "[model][reference]") {
  TreeEnsembleSpec s;
  s.info.num_margin_outputs = 3;
  s.info.num_outputs = 3;
  std::vector<double> m = {1.0, 2.0, 0.5};
  std::vector<float> out(3);
  s.transform = Transform::kSoftmax;
  apply_transform(s, m, out);
  CHECK(out[0] + out[1] + out[2] == Approx(1.0f));
  CHECK(out[1] > out[0]);
  s.transform = Transform::kSoftmaxArgmax;
  s.info.num_outputs = 1;
  apply_transform(s, m, out);
  CHECK(out[0] == 1.0f);
  s.info.num_margin_outputs = 1;
  s.transform = Transform::kSigmoid;
  std::vector<double> neg = {-1e30};
  apply_transform(s, neg, out);
  CHECK(out[0] > 0.0f);  // XGBoost clamps the exponent: ~3e-39, not 0
  CHECK(out[0] < 1e-38f);
}

TEST_CASE("validate: names the tree and node of what is wrong", "[model][reference]") {
  Tree t;
  t.nodes = {split(SplitKind::kNumericLess, 0, 0.5, 1, 7), leaf(-1), leaf(1)};
  auto s = one_tree(t);
  Status st = validate(s);
  REQUIRE_FALSE(st.is_ok());
  CHECK(st.code() == StatusCode::kModelError);
  CHECK_THAT(st.message(), Catch::Contains("tree 0 node 0") && Catch::Contains("child 7"));

  s.trees[0].nodes = {split(SplitKind::kNumericLess, 0, 0.5, 1, 0), leaf(-1)};
  CHECK_THAT(validate(s).message(), Catch::Contains("reached twice"));

  s.trees[0].nodes = {split(SplitKind::kNumericLess, 5, 0.5, 1, 2), leaf(-1), leaf(1)};
  CHECK_THAT(validate(s).message(), Catch::Contains("split feature 5 out of range"));

  s.trees[0].nodes = {split(SplitKind::kNumericLess, 0, kNaN, 1, 2), leaf(-1), leaf(1)};
  CHECK_THAT(validate(s).message(), Catch::Contains("threshold is NaN"));

  s.trees[0].nodes = {leaf(1), leaf(2)};
  CHECK_THAT(validate(s).message(), Catch::Contains("unreachable"));

  s.trees[0].nodes = {leaf(1)};
  s.trees[0].output = 3;
  CHECK_THAT(validate(s).message(), Catch::Contains("outputs [3, +1) out of range"));
}

TEST_CASE("reference model: predicts batches and rejects wrong shapes", "[model][reference]") {
  Tree t;
  t.nodes = {split(SplitKind::kNumericLess, 1, 0.0, 1, 2, true), leaf(-2), leaf(2)};
  auto s = one_tree(t);
  s.transform = Transform::kIdentity;
  auto m = make_reference_model(s);
  REQUIRE(m.ok());
  CHECK((*m)->info().num_trees == 1);
  CHECK((*m)->info().max_depth == 1);
  CHECK((*m)->info().version > 0);
  std::vector<float> rows = {0, -1, 0, 1, 0, std::numeric_limits<float>::quiet_NaN()};
  std::vector<float> out(3);
  REQUIRE((*m)->predict(rows, 3, out).is_ok());
  CHECK(out == std::vector<float>{-2, 2, -2});
  Status bad = (*m)->predict(std::span<const float>(rows).first(5), 3, out);
  CHECK(bad.code() == StatusCode::kInvalidInput);
  CHECK_THAT(bad.message(), Catch::Contains("expected 3 rows x 2 features"));
  auto m2 = make_reference_model(s);
  REQUIRE(m2.ok());
  CHECK((*m2)->info().version != (*m)->info().version);
}
