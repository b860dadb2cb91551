// LightGBM text loader: every fixture case against LightGBM's own outputs
// (raw, transformed, leaf routing), and malformed files rejected with errors
// naming the tree and line.

#include "model/loaders/lightgbm_text.hpp"

#include <keel/model/loaders.hpp>
#include <keel/model/reference_evaluator.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

using namespace keel;

namespace {

const std::string kDir = std::string(KEEL_TEST_DATA_DIR) + "/lightgbm/";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A numeric CSV: header skipped; empty field = NaN; strtod for the rest.
struct Table {
  std::size_t cols = 0;
  std::vector<double> values;
  std::size_t rows() const { return cols == 0 ? 0 : values.size() / cols; }
};

Table read_csv(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  Table t;
  std::string line;
  std::getline(in, line);
  t.cols = static_cast<std::size_t>(std::count(line.begin(), line.end(), ',')) + 1;
  while (std::getline(in, line)) {
    std::size_t start = 0, n = 0;
    while (true) {
      const std::size_t end = line.find(',', start);
      const std::string field = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
      char* stop = nullptr;
      t.values.push_back(field.empty() ? std::numeric_limits<double>::quiet_NaN() : std::strtod(field.c_str(), &stop));
      if (!field.empty()) REQUIRE(*stop == '\0');
      ++n;
      if (end == std::string::npos) break;
      start = end + 1;
    }
    REQUIRE(n == t.cols);
  }
  return t;
}

struct Diff {
  double abs = 0, rel = 0;
  void add(double got, double want) {
    const double a = std::fabs(got - want);
    abs = std::max(abs, a);
    if (want != 0) rel = std::max(rel, a / std::fabs(want));
  }
};

// got within rel * |want| + abs_tol of want.
bool close(double got, double want, double rel, double abs_tol = 1e-35) {
  return std::fabs(got - want) <= rel * std::fabs(want) + abs_tol;
}

struct CaseResult {
  std::string name;
  Diff raw64, pred64, raw32out;
  std::size_t rows = 0, f32_rows_differ = 0, f32_edge_rows_differ = 0, f32_rows_rerouted = 0;
};

void run_case(const nlohmann::json& c, const std::string& suffix, std::size_t num_iterations, CaseResult& res) {
  const std::string name = c["name"];
  INFO("case " << name << suffix);
  const std::string text = slurp(kDir + c["files"]["model"].get<std::string>());
  LoadOptions opts;
  opts.num_iterations = num_iterations;
  Result<TreeEnsembleSpec> spec = detail::parse_lightgbm_text(text, opts);
  REQUIRE(spec.ok());
  Result<ModelPtr> model = load_lightgbm_text(text, opts);
  REQUIRE(model.ok());
  const ModelInfo& info = (*model)->info();

  const Table in = read_csv(kDir + name + ".input.csv");
  const Table raw = read_csv(kDir + name + suffix + ".raw.csv");
  const Table pred = read_csv(kDir + name + suffix + ".pred.csv");
  const Table leaf = read_csv(kDir + name + suffix + ".leaf.csv");
  const std::size_t n = in.rows(), f = in.cols, k = info.num_margin_outputs;
  REQUIRE(f == info.num_features);
  REQUIRE(f == c["num_features"].get<std::size_t>());
  REQUIRE(n == c["num_rows"].get<std::size_t>());
  REQUIRE(raw.cols == k);
  REQUIRE(pred.cols == info.num_outputs);
  REQUIRE(raw.rows() == n);
  REQUIRE(leaf.cols == spec->trees.size());
  REQUIRE(leaf.cols == info.num_trees);
  if (num_iterations == 0) REQUIRE(info.num_trees == c["num_trees"].get<std::size_t>());

  // Routing: LightGBM's leaf number in every tree, exactly.
  std::vector<std::int32_t> leaves(spec->trees.size());
  std::vector<double> margin(k);
  for (std::size_t r = 0; r < n; ++r) {
    const std::span<const double> row(in.values.data() + r * f, f);
    reference_leaves(*spec, row, leaves);
    for (std::size_t t = 0; t < leaves.size(); ++t) {
      INFO("row " << r << " tree " << t);
      REQUIRE(detail::lightgbm_leaf_number(spec->trees[t], leaves[t]) == static_cast<std::int32_t>(leaf.values[r * leaf.cols + t]));
    }
    // The double margin itself, before narrowing to float: matches %.9g.
    reference_margin(*spec, row, margin);
    for (std::size_t o = 0; o < k; ++o) {
      INFO("row " << r << " output " << o << " margin " << margin[o]);
      REQUIRE(close(margin[o], raw.values[r * k + o], 1e-8, 1e-300));
      res.raw64.add(margin[o], raw.values[r * k + o]);
    }
  }

  // The Model's float64 predict: margins and transformed outputs, as floats.
  std::vector<float> out_raw(n * k), out_pred(n * info.num_outputs);
  REQUIRE((*model)->predict(std::span<const double>(in.values), n, out_raw, {OutputKind::kMargin}).is_ok());
  REQUIRE((*model)->predict(std::span<const double>(in.values), n, out_pred, {OutputKind::kTransformed}).is_ok());
  for (std::size_t i = 0; i < out_raw.size(); ++i) {
    INFO("margin value " << i);
    REQUIRE(close(out_raw[i], raw.values[i], 1.2e-7));
    res.raw32out.add(out_raw[i], raw.values[i]);
  }
  for (std::size_t i = 0; i < out_pred.size(); ++i) {
    INFO("prediction value " << i);
    REQUIRE(close(out_pred[i], pred.values[i], 1.2e-7));
    res.pred64.add(out_pred[i], pred.values[i]);
  }

  // The float32 path: inputs narrowed to float may route differently where a
  // value sits exactly on a double threshold (LightGBM compares in double).
  std::vector<float> in32(in.values.begin(), in.values.end());
  std::vector<float> out32(n * k);
  REQUIRE((*model)->predict(std::span<const float>(in32), n, out32, {OutputKind::kMargin}).is_ok());
  const std::size_t first_edge = n - c["num_edge_rows"].get<std::size_t>();
  std::vector<std::int32_t> leaves32(spec->trees.size());
  std::vector<double> row32(f);
  for (std::size_t r = 0; r < n; ++r) {
    const std::span<const double> row(in.values.data() + r * f, f);
    for (std::size_t j = 0; j < f; ++j) row32[j] = static_cast<double>(in32[r * f + j]);
    reference_leaves(*spec, row, leaves);
    reference_leaves(*spec, row32, leaves32);
    if (leaves != leaves32) ++res.f32_rows_rerouted;
    bool differs = false;
    for (std::size_t o = 0; o < k; ++o) differs |= out32[r * k + o] != out_raw[r * k + o];
    if (differs) {
      ++res.f32_rows_differ;
      if (r >= first_edge) ++res.f32_edge_rows_differ;
    }
  }
  res.rows = n;
}

}  // namespace

TEST_CASE("every LightGBM fixture case matches LightGBM", "[lightgbm][fixtures]") {
  const nlohmann::json cases = nlohmann::json::parse(slurp(kDir + "cases.json"))["cases"];
  REQUIRE(cases.size() >= 18);
  std::vector<CaseResult> results;
  for (const auto& c : cases) {
    CaseResult r;
    r.name = c["name"];
    run_case(c, "", 0, r);
    results.push_back(r);
    if (!c["best_iteration"].is_null()) {
      CaseResult b;
      b.name = r.name + ".best";
      run_case(c, ".best", c["best_iteration"].get<std::size_t>(), b);
      results.push_back(b);
    }
  }
  std::printf("\n%-22s %5s %11s %11s %11s %11s %11s %11s %s\n", "case", "rows", "raw64 abs", "raw64 rel",
              "raw32 abs", "raw32 rel", "pred abs", "pred rel", "f32 rows differing (edge rows), rerouted");
  for (const CaseResult& r : results) {
    std::printf("%-22s %5zu %11.3g %11.3g %11.3g %11.3g %11.3g %11.3g %4zu (%zu), %zu\n", r.name.c_str(), r.rows,
                r.raw64.abs, r.raw64.rel, r.raw32out.abs, r.raw32out.rel, r.pred64.abs, r.pred64.rel,
                r.f32_rows_differ, r.f32_edge_rows_differ, r.f32_rows_rerouted);
  }
}

TEST_CASE("LightGBM model info", "[lightgbm]") {
  auto load = [](const std::string& name) {
    Result<ModelPtr> m = load_lightgbm_text(slurp(kDir + name + ".model.txt"));
    REQUIRE(m.ok());
    return *m;
  };
  const ModelPtr multi = load("multiclassova");
  CHECK(multi->info().format == ModelFormat::kLightGBMText);
  CHECK(multi->info().objective == "multiclassova num_class:4 sigmoid:1");
  CHECK(multi->info().num_classes == 4);
  CHECK(multi->info().num_outputs == 4);
  CHECK(multi->info().num_trees == 160);
  CHECK(multi->info().booster == "gbdt");
  const ModelPtr rf = load("rf");
  CHECK(rf->info().booster == "rf");
  CHECK(rf->info().num_classes == 0);
  const ModelPtr cat = load("categorical");
  REQUIRE(cat->info().num_features == 8);
  CHECK(cat->info().has_feature_names);
  CHECK(cat->info().features[0].name == "cat0");
  CHECK(cat->info().features[0].type == FeatureType::kCategorical);
  CHECK(cat->info().features[1].type == FeatureType::kNumeric);
  CHECK(cat->info().features[4].type == FeatureType::kCategorical);
  CHECK(cat->info().max_depth > 0);
  CHECK(load("constant")->info().max_depth == 0);
  CHECK(load("dart")->info().booster == "dart");
}

namespace {

// A small hand-written model: tree 0 splits numerically on a (missing type
// None), then categorically on b with the set {0, 2, 40}; tree 1 is a leaf.
const char* const kSmall = R"(tree
version=v4
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=1
objective=binary sigmoid:1
feature_names=a b
feature_infos=[0:1] 0:1:2:40
tree_sizes=1 1

Tree=0
num_leaves=3
num_cat=1
split_feature=0 1
split_gain=1 1
threshold=0 0
decision_type=2 1
left_child=-1 -2
right_child=1 -3
leaf_value=0.5 -0.25 1.5
leaf_weight=1 1 1
leaf_count=1 1 1
internal_value=0 0
internal_weight=0 0
internal_count=0 0
cat_boundaries=0 2
cat_threshold=5 256
is_linear=0
shrinkage=1


Tree=1
num_leaves=1
num_cat=0
split_feature=
split_gain=
threshold=
decision_type=
left_child=
right_child=
leaf_value=0.125
leaf_weight=0
leaf_count=0
internal_value=
internal_weight=
internal_count=
is_linear=0
shrinkage=1


end of trees

feature_importances:
a=1

parameters:
[boosting: gbdt]
[objective: binary]
end of parameters

pandas_categorical:null
)";

std::string replaced(std::string s, const std::string& from, const std::string& to) {
  const std::size_t at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

double score(const ModelPtr& m, double a, double b) {
  const double row[2] = {a, b};
  float out = 0;
  REQUIRE(m->predict(std::span<const double>(row, 2), 1, std::span<float>(&out, 1), {OutputKind::kMargin}).is_ok());
  return out;
}

}  // namespace

TEST_CASE("LightGBM semantics on a hand-written model", "[lightgbm]") {
  Result<ModelPtr> r = load_lightgbm_text(kSmall);
  REQUIRE(r.ok());
  const ModelPtr m = *r;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double left = 0.5 + 0.125, in_set = -0.25 + 0.125, out_set = 1.5 + 0.125;
  CHECK(score(m, 0.0, 0) == left);
  CHECK(score(m, -0.0, 0) == left);
  CHECK(score(m, nan, 1) == left);        // missing type None: NaN -> 0.0
  CHECK(score(m, 1e-40, 1) == left);      // the C API reads |x| <= 1e-35 as 0
  CHECK(score(m, 1e-30, 1) == out_set);
  CHECK(score(m, 1, 2) == in_set);
  CHECK(score(m, 1, 2.7) == in_set);      // truncated to 2
  CHECK(score(m, 1, -0.5) == in_set);     // truncated to 0
  CHECK(score(m, 1, 40) == in_set);       // bit 8 of the second word
  CHECK(score(m, 1, 1) == out_set);
  CHECK(score(m, 1, 64) == out_set);      // past the bitset
  CHECK(score(m, 1, -1) == out_set);
  CHECK(score(m, 1, nan) == out_set);
  CHECK(score(m, 1, 1e10) == out_set);    // beyond int range
  CHECK(m->info().has_feature_names);
  CHECK(m->info().features[1].type == FeatureType::kCategorical);

  LoadOptions one;
  one.num_iterations = 1;
  Result<ModelPtr> first = load_lightgbm_text(kSmall, one);
  REQUIRE(first.ok());
  CHECK((*first)->info().num_trees == 1);
  CHECK(score(*first, 0, 0) == 0.5);
}

TEST_CASE("malformed LightGBM models are rejected naming tree and line", "[lightgbm][errors]") {
  const std::string s = kSmall;
  struct Bad {
    const char* what;
    std::string text;
    std::vector<std::string> needles;
  };
  const std::vector<Bad> bad = {
      {"child out of range", replaced(s, "left_child=-1 -2", "left_child=-1 -7"), {"tree 0", "line 19", "leaf 6"}},
      {"internal child out of range", replaced(s, "right_child=1 -3", "right_child=5 -3"), {"tree 0", "line 20"}},
      {"cycle", replaced(s, "right_child=1 -3", "right_child=1 1"), {"tree 0", "line 19", "second time"}},
      {"num_leaves mismatch", replaced(s, "num_leaves=3", "num_leaves=4"), {"tree 0", "line 21", "expected 4"}},
      {"num_leaves zero", replaced(s, "num_leaves=3", "num_leaves=0"), {"tree 0", "line 13"}},
      {"bad decision_type", replaced(s, "decision_type=2 1", "decision_type=2 13"), {"tree 0", "line 18", "decision_type"}},
      {"huge decision_type", replaced(s, "decision_type=2 1", "decision_type=2 99"), {"tree 0", "line 18"}},
      {"cat_boundaries out of range", replaced(s, "cat_boundaries=0 2", "cat_boundaries=0 3"), {"tree 0", "line 27"}},
      {"cat_boundaries decreasing", replaced(replaced(s, "num_cat=1", "num_cat=2"), "cat_boundaries=0 2", "cat_boundaries=0 2 1"), {"tree 0", "line 27"}},
      {"category set index out of range", replaced(s, "threshold=0 0", "threshold=0 1"), {"tree 0", "line 17", "num_cat"}},
      {"NaN threshold", replaced(s, "threshold=0 0", "threshold=nan 0"), {"tree 0", "line 17", "NaN"}},
      {"split feature out of range", replaced(s, "split_feature=0 1", "split_feature=0 2"), {"tree 0", "line 15", "max_feature_idx"}},
      {"negative split feature", replaced(s, "split_feature=0 1", "split_feature=-1 1"), {"tree 0", "line 15"}},
      {"not a number", replaced(s, "leaf_value=0.5 -0.25 1.5", "leaf_value=0.5 x 1.5"), {"tree 0", "line 21", "'x'"}},
      {"infinite leaf", replaced(s, "leaf_value=0.5 -0.25 1.5", "leaf_value=0.5 inf 1.5"), {"tree 0", "node"}},
      {"overflowing leaf", replaced(s, "leaf_value=0.5 -0.25 1.5", "leaf_value=0.5 1e400 1.5"), {"tree 0", "not finite"}},
      {"missing leaf_value", replaced(s, "leaf_value=0.125\n", ""), {"tree 1", "leaf_value"}},
      {"unknown objective", replaced(s, "objective=binary sigmoid:1", "objective=magic"), {"line 7", "unknown objective"}},
      {"bad sigmoid", replaced(s, "objective=binary sigmoid:1", "objective=binary sigmoid:-1"), {"line 7", "sigmoid"}},
      {"missing max_feature_idx", replaced(s, "max_feature_idx=1\n", ""), {"max_feature_idx", "missing"}},
      {"name count", replaced(s, "feature_names=a b", "feature_names=a"), {"line 8", "names"}},
      {"fewer trees than tree_sizes", replaced(s, "tree_sizes=1 1", "tree_sizes=1 1 1"), {"tree_sizes", "line 10"}},
      {"truncated before end of trees", s.substr(0, s.find("Tree=1")), {"truncated"}},
      {"truncated inside a tree", s.substr(0, s.find("leaf_value=0.125")), {"truncated"}},
      {"truncated header", s.substr(0, s.find("feature_names")), {"feature_names"}},
      {"trailing garbage", s + "tree\nversion=v4\n", {"line 63", "after the trees"}},
      {"garbage inside a tree", replaced(s, "num_cat=1\n", "num_cat=1\nhello\n"), {"tree 0", "line 15", "hello"}},
      {"duplicate key", replaced(s, "num_cat=1\n", "num_cat=1\nnum_cat=1\n"), {"tree 0", "line 15", "duplicate"}},
      {"trees out of order", replaced(s, "Tree=1", "Tree=7"), {"line 33", "Tree=1"}},
      {"linear leaf without coefficients", replaced(s, "is_linear=0\nshrinkage=1\n\n\nTree=1", "is_linear=1\nshrinkage=1\n\n\nTree=1"), {"tree 0", "leaf_const"}},
      {"not a model", "hello", {"line 1"}},
      {"empty", "", {"line 1"}},
  };
  for (const Bad& b : bad) {
    INFO(b.what);
    Result<ModelPtr> r = load_lightgbm_text(b.text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.code() == StatusCode::kModelError);
    INFO(r.status().message());
    for (const std::string& needle : b.needles) CHECK(r.status().message().find(needle) != std::string::npos);
  }

  LoadOptions tiny;
  tiny.max_bytes = 100;
  Result<ModelPtr> big = load_lightgbm_text(s, tiny);
  REQUIRE_FALSE(big.ok());
  CHECK(big.status().message().find("limit") != std::string::npos);
}

TEST_CASE("linear leaves are checked", "[lightgbm][errors]") {
  const std::string text = slurp(kDir + "linear_tree.model.txt");
  REQUIRE(load_lightgbm_text(text).ok());
  // The second tree's first leaf uses features 0 and 2: make one out of range.
  const std::string bad = replaced(text, "leaf_features=0 2  0 1 2", "leaf_features=0 9  0 1 2");
  Result<ModelPtr> r = load_lightgbm_text(bad);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("tree 1") != std::string::npos);
  CHECK(r.status().message().find("feature 9") != std::string::npos);
  const std::string short_coeff = replaced(text, "num_features=2 3 3 3 3 3 3 2", "num_features=2 3 3 3 3 3 3 3");
  Result<ModelPtr> r2 = load_lightgbm_text(short_coeff);
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.status().message().find("expected 23") != std::string::npos);
}

TEST_CASE("the fuzz seed corpus holds loadable models", "[lightgbm]") {
  const std::string dir = std::string(KEEL_SOURCE_DIR) + "/tests/fuzz/corpus/lightgbm_text/";
  for (const char* name : {"small", "constant", "categorical", "linear_tree", "multiclassova", "rf", "binary_missing",
                           "zero_as_missing"}) {
    INFO(name);
    Result<ModelPtr> m = load_lightgbm_text(slurp(dir + name + ".txt"));
    CHECK(m.ok());
  }
}
