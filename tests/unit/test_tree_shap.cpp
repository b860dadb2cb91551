// TreeSHAP contributions: against XGBoost's own pred_contribs on every
// fixture, against a brute-force Shapley oracle (every feature subset, the
// path-dependent conditional expectation) on random trees of both
// libraries' semantics, and the axioms (efficiency, null feature, symmetry).
#include <keel/model/explain.hpp>
#include <keel/model/linear_model.hpp>
#include <keel/model/loaders.hpp>
#include <keel/model/reference_evaluator.hpp>
#include <keel/model/tree_spec.hpp>

#include "explain_testing.hpp"
#include "support/fixture_csv.hpp"
#include "tree_ensemble_testing.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

using namespace keel;
using namespace keel::testing;
using keel::test::DiffStats;
using keel::test::read_csv;
using keel::test::read_csv64;
using keel::test::read_file;

namespace {

// Random covers: leaves get a positive count (sometimes 0), a parent the
// sum of its children, sometimes off by a little (files round their sums).
void add_covers(std::mt19937_64& rng, TreeEnsembleSpec& spec) {
  std::uniform_real_distribution<double> u(0.5, 20.0);
  for (Tree& t : spec.trees) {
    t.cover.assign(t.nodes.size(), 0.0);
    // Children have larger indices than parents in random_spec: fill backwards.
    for (std::size_t i = t.nodes.size(); i-- > 0;) {
      const TreeNode& n = t.nodes[i];
      if (n.kind == SplitKind::kLeaf) {
        t.cover[i] = rng() % 16 == 0 ? 0.0 : std::floor(u(rng));
      } else {
        double c = t.cover[static_cast<std::size_t>(n.left)] + t.cover[static_cast<std::size_t>(n.right)];
        if (rng() % 4 == 0) c *= 1.0 + 1e-3 * u(rng);
        t.cover[i] = c > 0 ? c : 1.0;
      }
    }
  }
}

// The expected value of tree t given that the features in `known` (a bit
// mask) take the row's values: follow the row on known features, average
// by cover ratio on the others.
double cond_expect(const TreeEnsembleSpec& spec, const Tree& t, std::int32_t i, const std::vector<double>& row,
                   std::uint32_t known) {
  const TreeNode& n = t.nodes[static_cast<std::size_t>(i)];
  if (n.kind == SplitKind::kLeaf) {
    return spec.arithmetic == Arithmetic::kXGBoost
               ? static_cast<double>(static_cast<float>(n.leaf_value) * static_cast<float>(t.weight))
               : n.leaf_value * t.weight;
  }
  if (known & (1u << n.feature)) {
    const bool left = reference_goes_left(spec, t, n, row[static_cast<std::size_t>(n.feature)]);
    return cond_expect(spec, t, left ? n.left : n.right, row, known);
  }
  const double c = t.cover[static_cast<std::size_t>(i)];
  return t.cover[static_cast<std::size_t>(n.left)] / c * cond_expect(spec, t, n.left, row, known) +
         t.cover[static_cast<std::size_t>(n.right)] / c * cond_expect(spec, t, n.right, row, known);
}

// Brute-force Shapley values: K blocks of F + 1 (bias last).
std::vector<double> oracle(const TreeEnsembleSpec& spec, const std::vector<double>& row) {
  const std::size_t F = spec.info.num_features;
  const std::size_t K = spec.info.num_margin_outputs;
  const std::uint32_t all = (1u << F) - 1;
  std::vector<double> fact(F + 1, 1.0);
  for (std::size_t i = 1; i <= F; ++i) fact[i] = fact[i - 1] * static_cast<double>(i);
  std::vector<double> phi(K * (F + 1), 0.0);
  std::vector<double> v(std::size_t{1} << F);
  for (std::size_t k = 0; k < K; ++k) phi[k * (F + 1) + F] = static_cast<float>(spec.base_margin[k]);
  for (const Tree& t : spec.trees) {
    for (std::uint32_t s = 0; s <= all; ++s) v[s] = cond_expect(spec, t, 0, row, s);
    double* p = phi.data() + t.output * (F + 1);
    p[F] += v[0];
    for (std::size_t j = 0; j < F; ++j) {
      for (std::uint32_t s = 0; s <= all; ++s) {
        if (s & (1u << j)) continue;
        const int size = __builtin_popcount(s);
        const double w = fact[static_cast<std::size_t>(size)] * fact[F - static_cast<std::size_t>(size) - 1] / fact[F];
        p[j] += w * (v[s | (1u << j)] - v[s]);
      }
    }
  }
  return phi;
}

std::vector<float> explain(const Explainer& e, const std::vector<double>& row, std::size_t width) {
  std::vector<float> out(width);
  REQUIRE(e.contributions(std::span<const double>(row), 1, out).is_ok());
  return out;
}

}  // namespace

TEST_CASE("contributions: XGBoost's pred_contribs on every tree fixture", "[explain][shap][xgboost]") {
  const std::size_t visited = for_each_xgboost_tree_fixture([](const std::string& name, const Model& model,
                                                               const keel::test::Table& in) {
    const auto want = read_csv(kXgbDir + name + ".contribs.csv");
    const std::size_t w = contributions_width(model.info());
    REQUIRE(w == want.cols());
    std::vector<float> got(in.rows * w);
    REQUIRE(model.contributions(std::span<const float>(in.values), in.rows, got).is_ok());
    DiffStats d;
    for (std::size_t i = 0; i < got.size(); ++i) {
      d.add(got[i], want.values[i], 1e-5, "row " + std::to_string(i / w) + " column " + want.header[i % w]);
    }
    INFO("max abs " << d.max_abs << ", max rel " << d.max_rel);
    CHECK(d.failures == 0);
    CHECK(d.first_failure == "");
    // Each block sums to the model's margin.
    const std::size_t K = model.info().num_margin_outputs;
    std::vector<float> margin(in.rows * K);
    REQUIRE(model.predict(std::span<const float>(in.values), in.rows, margin, {OutputKind::kMargin}).is_ok());
    const std::size_t F = model.info().num_features;
    for (std::size_t r = 0; r < in.rows; ++r) {
      for (std::size_t k = 0; k < K; ++k) {
        double sum = 0;
        for (std::size_t j = 0; j <= F; ++j) sum += got[r * w + k * (F + 1) + j];
        CHECK(sum == Approx(margin[r * K + k]).epsilon(1e-5).margin(1e-4));
      }
    }
  });
  CHECK(visited >= 40);
}

TEST_CASE("contributions: LightGBM fixtures sum to LightGBM's raw score", "[explain][shap][lightgbm]") {
  const auto cases = nlohmann::json::parse(read_file(kLgbDir + "cases.json"));
  std::size_t checked = 0;
  for (const auto& c : cases["cases"]) {
    const std::string name = c["name"];
    INFO(name);
    const auto in = read_csv64(kLgbDir + name + ".input.csv");
    const auto raw = read_csv64(kLgbDir + name + ".raw.csv");
    auto m = load_lightgbm_text(read_file(kLgbDir + name + ".model.txt"));
    REQUIRE(m.ok());
    const Model& model = **m;
    const std::size_t w = contributions_width(model.info());
    std::vector<float> got(in.rows * w);
    const Status s = model.contributions(std::span<const double>(in.values), in.rows, got);
    if (c["linear_tree"].get<bool>()) {
      CHECK(s.code() == StatusCode::kModelError);
      CHECK_THAT(s.message(), Catch::Contains("linear leaves"));
      continue;
    }
    REQUIRE(s.is_ok());
    const std::size_t F = model.info().num_features;
    const std::size_t K = model.info().num_margin_outputs;
    REQUIRE(raw.cols() == K);
    for (std::size_t r = 0; r < in.rows; ++r) {
      for (std::size_t k = 0; k < K; ++k) {
        double sum = 0;
        for (std::size_t j = 0; j <= F; ++j) sum += got[r * w + k * (F + 1) + j];
        INFO("row " << r << " class " << k);
        CHECK(sum == Approx(raw.values[r * K + k]).epsilon(1e-5).margin(1e-5));
      }
    }
    ++checked;
  }
  CHECK(checked >= 17);
}

TEST_CASE("contributions: brute-force Shapley oracle on random trees", "[explain][shap][oracle]") {
  std::mt19937_64 rng(16);
  std::size_t trees_checked = 0;
  for (int round = 0; round < 100; ++round) {
    SpecShape s;
    s.lightgbm = round % 2 == 1;
    s.features = 1 + rng() % 8;
    s.trees = 1 + rng() % 6;
    s.outputs = round % 5 == 0 ? 2 : 1;
    s.trees = std::max(s.trees, s.outputs);
    s.max_depth = 1 + rng() % 7;  // deep enough for repeated features on a path
    s.categorical = round % 3 == 0 ? 0.3 : 0.0;
    s.dart = !s.lightgbm && round % 4 == 2;
    TreeEnsembleSpec spec = random_spec(rng, s);
    add_covers(rng, spec);
    REQUIRE(validate(spec).is_ok());
    const auto e = make_tree_explainer(spec);
    const std::size_t F = s.features;
    const std::size_t width = s.outputs * (F + 1);
    const auto rows = random_rows(rng, 6, F);
    for (std::size_t r = 0; r < 6; ++r) {
      std::vector<double> row(rows.begin() + static_cast<long>(r * F), rows.begin() + static_cast<long>((r + 1) * F));
      const std::vector<float> got = explain(*e, row, width);
      const std::vector<double> want = oracle(spec, row);
      for (std::size_t i = 0; i < width; ++i) {
        INFO("round " << round << " row " << r << " value " << i << (s.lightgbm ? " lightgbm" : " xgboost"));
        CHECK(got[i] == Approx(want[i]).epsilon(1e-5).margin(1e-6));
      }
    }
    trees_checked += spec.trees.size();
  }
  CHECK(trees_checked >= 200);
}

TEST_CASE("contributions: deep paths with many repeats use wide quadrature exactly", "[explain][shap][oracle]") {
  std::mt19937_64 rng(99);
  for (int round = 0; round < 8; ++round) {
    SpecShape s;
    s.lightgbm = round % 2 == 0;
    s.features = 10;
    s.trees = 2;
    s.max_depth = 14;  // up to 10 distinct features a path: 8-point rule
    s.leaf_prob = 0.25;
    s.max_nodes = 400;
    TreeEnsembleSpec spec = random_spec(rng, s);
    add_covers(rng, spec);
    const auto e = make_tree_explainer(spec);
    const auto rows = random_rows(rng, 3, s.features);
    for (std::size_t r = 0; r < 3; ++r) {
      std::vector<double> row(rows.begin() + static_cast<long>(r * 10), rows.begin() + static_cast<long>(r * 10 + 10));
      const auto got = explain(*e, row, 11);
      const auto want = oracle(spec, row);
      for (std::size_t i = 0; i < 11; ++i) {
        INFO("round " << round << " row " << r << " value " << i);
        CHECK(got[i] == Approx(want[i]).epsilon(1e-5).margin(1e-6));
      }
    }
  }
}

TEST_CASE("contributions: efficiency and a feature no tree uses on larger models", "[explain][shap][axioms]") {
  std::mt19937_64 rng(7);
  for (bool lgb : {false, true}) {
    SpecShape s;
    s.lightgbm = lgb;
    s.features = 30;
    s.trees = 40;
    s.outputs = 3;
    s.max_depth = 9;
    s.categorical = 0.1;
    TreeEnsembleSpec spec = random_spec(rng, s);
    // Feature 29 is never split on.
    for (Tree& t : spec.trees) {
      for (TreeNode& n : t.nodes) {
        if (n.kind != SplitKind::kLeaf && n.feature == 29) n.feature = 28;
      }
    }
    add_covers(rng, spec);
    const auto e = make_tree_explainer(spec);
    const auto rows = random_rows(rng, 50, s.features);
    const std::size_t w = 3 * 31;
    std::vector<float> out(50 * w);
    REQUIRE(e->contributions(std::span<const float>(rows), 50, out).is_ok());
    std::vector<double> margin(3);
    for (std::size_t r = 0; r < 50; ++r) {
      std::vector<double> row(rows.begin() + static_cast<long>(r * 30), rows.begin() + static_cast<long>(r * 30 + 30));
      reference_margin(spec, row, margin);
      for (std::size_t k = 0; k < 3; ++k) {
        double sum = 0;
        for (std::size_t j = 0; j <= 30; ++j) sum += out[r * w + k * 31 + j];
        CHECK(sum == Approx(margin[k]).epsilon(1e-5).margin(1e-5));
        CHECK(out[r * w + k * 31 + 29] == 0.0f);
      }
    }
  }
}

TEST_CASE("contributions: symmetric features get equal shares", "[explain][shap][axioms]") {
  // v = 1 when x0 >= 0.5 and x1 >= 0.5 (in either order in the two trees), equal covers.
  TreeEnsembleSpec spec;
  spec.info.num_features = 3;
  spec.info.features.resize(3);
  spec.base_margin = {0.0};
  for (int order = 0; order < 2; ++order) {
    Tree t;
    t.nodes.resize(5);
    t.nodes[0] = TreeNode{SplitKind::kNumericLess, MissingType::kNaN, false, order, 1, 2, 0.5};
    t.nodes[1].leaf_value = 0.0;
    t.nodes[2] = TreeNode{SplitKind::kNumericLess, MissingType::kNaN, false, 1 - order, 3, 4, 0.5};
    t.nodes[3].leaf_value = 0.0;
    t.nodes[4].leaf_value = 1.0;
    t.cover = {4, 2, 2, 1, 1};
    spec.trees.push_back(t);
  }
  REQUIRE(validate(spec).is_ok());
  const auto e = make_tree_explainer(spec);
  for (const std::vector<double>& row : {std::vector<double>{1, 1, 7}, {0, 0, 7}, {1, 1, -3}}) {
    const auto got = explain(*e, row, 4);
    CHECK(got[0] == Approx(got[1]).margin(1e-12));
    CHECK(got[2] == 0.0f);
    CHECK(got[3] == Approx(0.5));  // 2 trees x E = 1/4
  }
  // Both in: 2 x (1 - 1/4) split evenly, 0.75 each.
  CHECK(explain(*e, {1, 1, 0}, 4)[0] == Approx(0.75));
}

TEST_CASE("contributions: a file without covers is an error naming the tree; leaves still work", "[explain][shap]") {
  std::mt19937_64 rng(3);
  SpecShape s;
  s.trees = 4;
  TreeEnsembleSpec spec = random_spec(rng, s);
  add_covers(rng, spec);
  spec.trees[2].cover.clear();
  const auto e = make_tree_explainer(spec);
  const auto rows = random_rows(rng, 1, s.features);
  std::vector<float> out(s.features + 1);
  const Status st = e->contributions(std::span<const float>(rows), 1, out);
  CHECK(st.code() == StatusCode::kModelError);
  CHECK_THAT(st.message(), Catch::Contains("tree 2") && Catch::Contains("covers"));
  std::vector<std::int32_t> leaves(4);
  CHECK(e->leaf_indices(std::span<const float>(rows), 1, leaves).is_ok());
  std::vector<double> row(rows.begin(), rows.end());
  std::vector<std::int32_t> want(4);
  reference_leaves(spec, row, want);
  CHECK(leaves == want);

  // A zero parent cover is refused too, not divided by.
  add_covers(rng, spec);
  spec.trees[1].cover[0] = 0.0;
  const Status z = make_tree_explainer(spec)->contributions(std::span<const float>(rows), 1, out);
  CHECK(z.code() == StatusCode::kModelError);
  CHECK_THAT(z.message(), Catch::Contains("tree 1 node 0"));
}

TEST_CASE("contributions: vector leaves are refused by name; leaves still work", "[explain][shap]") {
  std::mt19937_64 rng(5);
  SpecShape s;
  s.trees = 3;
  s.outputs = 2;
  TreeEnsembleSpec spec = random_spec(rng, s);
  add_covers(rng, spec);
  Tree& t = spec.trees[1];
  t.output = 0;
  t.leaf_width = 2;
  for (TreeNode& nd : t.nodes) {
    if (nd.kind != SplitKind::kLeaf) continue;
    nd.leaf_vector_offset = static_cast<std::uint32_t>(t.leaf_vectors.size());
    t.leaf_vectors.push_back(nd.leaf_value);
    t.leaf_vectors.push_back(-nd.leaf_value);
  }
  REQUIRE(validate(spec).is_ok());
  const auto e = make_tree_explainer(spec);
  const auto rows = random_rows(rng, 1, s.features);
  std::vector<float> out(2 * (s.features + 1));
  const Status st = e->contributions(std::span<const float>(rows), 1, out);
  CHECK(st.code() == StatusCode::kModelError);
  CHECK_THAT(st.message(), Catch::Contains("tree 1") && Catch::Contains("vector leaves"));
  std::vector<std::int32_t> leaves(3);
  CHECK(e->leaf_indices(std::span<const float>(rows), 1, leaves).is_ok());
}

TEST_CASE("contributions: linear models attribute x * w, bias the intercept", "[explain][shap][linear]") {
  for (const std::string name : {"gblinear", "gblinear_multiclass"}) {
    INFO(name);
    auto m = load_model(kXgbDir + name + ".json");
    REQUIRE(m.ok());
    const auto in = read_csv(kXgbDir + name + ".input.csv");
    const auto margin = read_csv(kXgbDir + name + ".margin.csv");
    const std::size_t F = (*m)->info().num_features;
    const std::size_t K = (*m)->info().num_margin_outputs;
    const std::size_t w = contributions_width((*m)->info());
    std::vector<float> got(in.rows * w);
    REQUIRE((*m)->contributions(std::span<const float>(in.values), in.rows, got).is_ok());
    const auto& lm = dynamic_cast<const LinearModel&>(**m);
    for (std::size_t r = 0; r < in.rows; ++r) {
      for (std::size_t k = 0; k < K; ++k) {
        double sum = 0;
        for (std::size_t j = 0; j < F; ++j) {
          const float x = in.values[r * F + j];
          const float c = got[r * w + k * (F + 1) + j];
          CHECK(c == (std::isnan(x) ? 0.0f : x * lm.spec().weights[j * K + k]));
          sum += c;
        }
        sum += got[r * w + k * (F + 1) + F];
        if (std::isfinite(margin.values[r * K + k])) {
          CHECK(sum == Approx(margin.values[r * K + k]).epsilon(1e-5).margin(1e-4));
        }
      }
    }
  }
}
