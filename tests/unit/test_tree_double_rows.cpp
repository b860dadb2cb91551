// Float64 rows of LightGBM models on the float kernels (tree_double_rows.hpp):
// bit-identical to the reference evaluator on rows built to sit on, beside
// and between the model's own thresholds, on every kernel and layout.

#include <keel/model/loaders.hpp>
#include <keel/model/reference_evaluator.hpp>
#include <keel/model/tree_ensemble.hpp>

#include "model/trees/tree_double_rows.hpp"
#include "tree_ensemble_testing.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

using namespace keel;
using namespace keel::testing;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

float floor_float(double t) {
  float f = static_cast<float>(t);
  if (static_cast<double>(f) > t) f = std::nextafter(f, -kInff);
  return f;
}

// Values that a float row cannot tell apart from a threshold unless it is
// mapped with care: the threshold itself, its double neighbours, the floats
// around it and points between.
std::vector<std::vector<double>> awkward_values(const TreeEnsembleSpec& spec) {
  std::vector<std::vector<double>> v(spec.info.num_features);
  for (const Tree& t : spec.trees) {
    for (const TreeNode& n : t.nodes) {
      if (n.kind == SplitKind::kLeaf) continue;
      auto& out = v[static_cast<std::size_t>(n.feature)];
      if (n.kind == SplitKind::kCategorical) {
        for (double c : {0.3, 1.7, -0.4, -1.2, 5.999999999, 31.5, 2147483647.5, 2147483648.5}) out.push_back(c);
        continue;
      }
      const double th = n.threshold;
      const float lo = floor_float(th);
      const double hi = static_cast<double>(std::nextafter(lo, kInff));
      for (double x : {th, std::nextafter(th, kInf), std::nextafter(th, -kInf), static_cast<double>(lo), hi,
                       (static_cast<double>(lo) + th) / 2, (th + hi) / 2, -th}) {
        out.push_back(x);
      }
    }
  }
  return v;
}

std::vector<double> awkward_rows(std::mt19937_64& rng, const TreeEnsembleSpec& spec, std::size_t n) {
  const auto values = awkward_values(spec);
  const std::size_t nf = spec.info.num_features;
  std::uniform_real_distribution<double> u(-3.0, 3.0);
  std::vector<double> rows(n * nf);
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t f = 0; f < nf; ++f) {
      double& x = rows[r * nf + f];
      const auto& vf = values[f];
      switch (rng() % 6) {
        case 0: x = static_cast<double>(pick_value(rng)); break;
        case 1: x = u(rng); break;
        default: x = vf.empty() ? u(rng) : vf[rng() % vf.size()];
      }
    }
  }
  return rows;
}

struct Answers {
  std::vector<float> margin, transformed;
  std::vector<double> margin_d, transformed_d;  // predict(double rows, double out)
};

Answers run(const Model& m, const std::vector<double>& rows, std::size_t n, bool one_by_one) {
  const ModelInfo& mi = m.info();
  Answers a;
  for (OutputKind kind : {OutputKind::kMargin, OutputKind::kTransformed}) {
    std::vector<float>& out = kind == OutputKind::kMargin ? a.margin : a.transformed;
    const std::size_t w = mi.width(kind), nf = mi.num_features;
    out.assign(n * w, 0.0f);
    PredictOptions opts;
    opts.output = kind;
    std::vector<double>& out_d = kind == OutputKind::kMargin ? a.margin_d : a.transformed_d;
    out_d.assign(n * w, 0.0);
    if (!one_by_one) {
      REQUIRE(m.predict(std::span<const double>(rows).first(n * nf), n, out, opts).is_ok());
      REQUIRE(m.predict(std::span<const double>(rows).first(n * nf), n, std::span<double>(out_d), opts).is_ok());
      continue;
    }
    for (std::size_t r = 0; r < n; ++r) {
      const auto row = std::span<const double>(rows).subspan(r * nf, nf);
      REQUIRE(m.predict(row, 1, std::span<float>(out).subspan(r * w, w), opts).is_ok());
      REQUIRE(m.predict(row, 1, std::span<double>(out_d).subspan(r * w, w), opts).is_ok());
    }
  }
  return a;
}

// Every kernel and layout that takes the spec answers as the reference does.
void check_double_rows(const TreeEnsembleSpec& spec, const std::vector<double>& rows, std::size_t n) {
  auto ref = make_reference_model(spec);
  REQUIRE(ref.ok());
  const Answers want = run(**ref, rows, n, false);
  const std::size_t few = std::min<std::size_t>(n, 12);
  for (TreeLayout layout : {TreeLayout::kCompact, TreeLayout::kHeap}) {
    for (TreeKernel kernel : available_kernels()) {
      auto m = make_tree_ensemble(spec, {kernel, layout});
      if (!m.ok()) continue;  // the heap layout refuses deep or categorical models
      INFO("kernel " << to_string(tree_kernel_of(**m)) << ", layout " << to_string(tree_layout_of(**m)));
      const Answers got = run(**m, rows, n, false);
      CHECK(same_bits(got.margin, want.margin));
      CHECK(same_bits(got.transformed, want.transformed));
      CHECK(same_bits(got.margin_d, want.margin_d));
      CHECK(same_bits(got.transformed_d, want.transformed_d));
      const Answers one = run(**m, rows, few, true);
      CHECK(same_bits(one.margin, std::vector<float>(want.margin.begin(), want.margin.begin() + one.margin.size())));
      CHECK(same_bits(one.transformed_d,
                      std::vector<double>(want.transformed_d.begin(), want.transformed_d.begin() + one.transformed_d.size())));
    }
  }
}

}  // namespace

TEST_CASE("double rows: random LightGBM ensembles, rows on and between their thresholds", "[model][double_rows]") {
  std::mt19937_64 rng(41);
  for (int round = 0; round < 6; ++round) {
    SpecShape s;
    s.lightgbm = true;
    s.features = 5 + static_cast<std::size_t>(round);
    s.trees = 24;
    s.max_depth = round % 2 ? 12 : 6;             // compact and heap
    s.categorical = round >= 4 ? 0.2 : 0.0;       // the scalar compact walk with categorical splits
    s.outputs = round == 3 ? 3 : 1;
    INFO("round " << round);
    const auto spec = random_spec(rng, s);
    const std::size_t n = 300;
    check_double_rows(spec, awkward_rows(rng, spec, n), n);
  }
}

TEST_CASE("double rows: a mapped row reaches the same leaf in every tree", "[model][double_rows]") {
  std::mt19937_64 rng(42);
  std::size_t mapped = 0, unmapped = 0;
  for (int round = 0; round < 6; ++round) {
    SpecShape s;
    s.lightgbm = true;
    s.features = 4;
    s.trees = 30;
    s.max_depth = 10;
    s.categorical = round % 2 ? 0.25 : 0.0;
    const auto spec = random_spec(rng, s);
    const detail::DoubleRowMap map(spec);
    const std::size_t n = 500, nf = s.features;
    const std::vector<double> rows = awkward_rows(rng, spec, n);
    std::vector<float> y(nf);
    std::vector<std::int32_t> want(spec.trees.size()), got(spec.trees.size());
    for (std::size_t r = 0; r < n; ++r) {
      const std::span<const double> x(rows.data() + r * nf, nf);
      if (!map.map_row(x.data(), y.data())) {
        ++unmapped;
        continue;
      }
      ++mapped;
      const std::vector<double> yd(y.begin(), y.end());
      reference_leaves(spec, x, want);
      reference_leaves(spec, yd, got);
      INFO("round " << round << " row " << r);
      REQUIRE(got == want);
    }
  }
  CHECK(mapped > 2000);
  CHECK(unmapped > 0);  // the edge thresholds (FLT_MAX, 1e39, ...) share float intervals
}

TEST_CASE("double rows: thresholds closer than a float apart score by the reference", "[model][double_rows]") {
  // Two trees split feature 0 at t1 < t2 inside one float interval; x between
  // them goes right in tree 1 and left in tree 2, which no float row does.
  const double t1 = 0.1;
  const double t2 = std::nextafter(std::nextafter(std::nextafter(std::nextafter(t1, kInf), kInf), kInf), kInf);
  REQUIRE(floor_float(t1) == floor_float(t2));
  const double between = std::nextafter(std::nextafter(t1, kInf), kInf);
  TreeEnsembleSpec spec;
  spec.info.num_features = 2;
  spec.info.features.resize(2);
  spec.base_margin = {0.0};
  spec.arithmetic = Arithmetic::kLightGBM;
  spec.category_rule = CategoryRule::kLightGBM;
  for (auto [t, left, right] : {std::tuple{t1, 1.0, 2.0}, std::tuple{t2, 10.0, 20.0}}) {
    Tree tree;
    TreeNode split;
    split.kind = SplitKind::kNumericLessEqual;
    split.feature = 0;
    split.threshold = t;
    split.left = 1;
    split.right = 2;
    TreeNode l, r;
    l.leaf_value = left;
    r.leaf_value = right;
    tree.nodes = {split, l, r};
    spec.trees.push_back(tree);
  }
  compute_shape(spec);
  std::vector<double> rows;
  for (int i = 0; i < 40; ++i) {
    rows.push_back(i % 3 == 0 ? between : (i % 3 == 1 ? t1 : t2));
    rows.push_back(1.0);
  }
  auto ref = make_reference_model(spec);
  REQUIRE(ref.ok());
  std::vector<float> one(1);
  REQUIRE((*ref)->predict(std::span<const double>(rows).first(2), 1, one, {OutputKind::kMargin}).is_ok());
  CHECK(one[0] == 12.0f);  // right in tree 1 (2), left in tree 2 (10)
  check_double_rows(spec, rows, 40);
}


TEST_CASE("double rows: LightGBM models in the wild, their rows and awkward ones", "[model][double_rows][wild]") {
  namespace fs = std::filesystem;
  const char* env = std::getenv("KEEL_WILD_MODELS");
  const fs::path dir = env ? env : "/work/shared/models-in-the-wild";
  if (!fs::exists(dir)) {
    WARN("no models-in-the-wild at " << dir.string());
    return;
  }
  std::mt19937_64 rng(43);
  std::size_t checked = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::path case_json = entry.path() / "case.json";
    if (!fs::exists(case_json)) continue;
    std::ifstream cj(case_json);
    std::string text((std::istreambuf_iterator<char>(cj)), std::istreambuf_iterator<char>());
    if (text.find("\"lightgbm-text\"") == std::string::npos) continue;
    const auto p = text.find("\"model\": \"");
    REQUIRE(p != std::string::npos);
    const auto q = text.find('"', p + 10);
    const fs::path model = entry.path() / text.substr(p + 10, q - p - 10);
    auto ref = load_with(model.string(), TreeKernel::kReference);
    if (!ref.ok()) {  // a loader limit, not this path's (e.g. old files without "end of trees")
      WARN(model.string() << " does not load: " << ref.status().message());
      continue;
    }
    const ModelInfo& mi = (*ref)->info();
    std::size_t n = 0;
    std::vector<double> rows;
    REQUIRE(read_named_csv((entry.path() / "input.csv").string(), mi, rows, n));
    n = std::min<std::size_t>(n, 400);
    rows.resize(n * mi.num_features);
    // Every other row moved onto the model's awkward values.
    for (std::size_t r = 1; r < n; r += 2) {
      for (std::size_t f = 0; f < mi.num_features; ++f) {
        if (rng() % 2 == 0) rows[r * mi.num_features + f] = std::nextafter(rows[r * mi.num_features + f], kInf);
      }
    }
    const std::size_t w = mi.num_outputs;
    std::vector<float> want(n * w);
    REQUIRE((*ref)->predict(std::span<const double>(rows), n, want).is_ok());
    std::vector<double> want_d(n * w);
    REQUIRE((*ref)->predict(std::span<const double>(rows), n, std::span<double>(want_d)).is_ok());
    for (TreeKernel k : available_kernels()) {
      auto m = load_with(model.string(), k);
      REQUIRE(m.ok());
      INFO(entry.path().filename().string() << ", kernel " << to_string(tree_kernel_of(**m)) << ", layout "
                                            << to_string(tree_layout_of(**m)));
      std::vector<float> got(n * w);
      REQUIRE((*m)->predict(std::span<const double>(rows), n, got).is_ok());
      CHECK(same_bits(got, want));
      std::vector<double> got_d(n * w);
      REQUIRE((*m)->predict(std::span<const double>(rows), n, std::span<double>(got_d)).is_ok());
      CHECK(same_bits(got_d, want_d));
      std::vector<float> one(w);
      for (std::size_t r = 0; r < std::min<std::size_t>(n, 8); ++r) {
        REQUIRE((*m)->predict(std::span<const double>(rows).subspan(r * mi.num_features, mi.num_features), 1, one)
                    .is_ok());
        CHECK(std::memcmp(one.data(), want.data() + r * w, w * sizeof(float)) == 0);
      }
      ++checked;
    }
  }
  CHECK(checked >= 30);
}
