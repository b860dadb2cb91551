// Models as people save them today: XGBoost 2.x/3.x layouts (3.4 DART under
// gbtree, multi-target with one tree per target and with vector leaves,
// iteration_indptr, cats vocabularies, 3.x objectives), iteration limits,
// category strings (CategoryEncoder), older LightGBM text and float64
// outputs. Expected values: XGBoost 1.7.4's own predictions for the models
// tests/data/xgboost/v3/make_fixtures.py trains and rewrites into the 3.x
// layouts, or values worked out by hand in the test.

#include <catch2/catch.hpp>

#include <keel/model/categories.hpp>
#include <keel/model/loaders.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

using namespace keel;
using Json = nlohmann::json;

namespace {

const std::string kV3 = std::string(KEEL_TEST_DATA_DIR) + "/xgboost/v3/";
const std::string kLgb = std::string(KEEL_TEST_DATA_DIR) + "/lightgbm/";
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A CSV of numbers with a header; empty fields are NaN.
std::vector<std::vector<double>> read_csv(const std::string& path) {
  std::ifstream f(path);
  REQUIRE(f.good());
  std::string line;
  std::getline(f, line);
  std::vector<std::vector<double>> rows;
  while (std::getline(f, line)) {
    std::vector<double> r;
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = line.find(',', start);
      const std::string tok = line.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      r.push_back(tok.empty() ? kNaN : std::stod(tok));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    rows.push_back(r);
  }
  return rows;
}

ModelPtr load(const std::string& path, const LoadOptions& o = {}) {
  Result<ModelPtr> m = load_model(path, o);
  INFO(path << ": " << m.status().message());
  REQUIRE(m.ok());
  return *m;
}

std::string load_error(const std::string& text, const LoadOptions& o = {}) {
  Result<ModelPtr> m = load_model_from_memory({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}, o);
  REQUIRE_FALSE(m.ok());
  return m.status().message();
}

std::vector<double> predict(const Model& m, const std::vector<double>& rows, OutputKind kind = OutputKind::kTransformed) {
  const std::size_t n = rows.size() / m.info().num_features;
  std::vector<double> out(n * m.info().width(kind));
  PredictOptions o;
  o.output = kind;
  const Status s = m.predict(std::span<const double>(rows), n, std::span<double>(out), o);
  INFO(s.message());
  REQUIRE(s.is_ok());
  return out;
}

// Scores input.csv and compares with an expected file (float32 results
// printed with 9 digits: within 1e-6 relative).
void expect_matches(const ModelPtr& m, const std::string& expected, OutputKind kind = OutputKind::kTransformed) {
  const auto in = read_csv(kV3 + "input.csv");
  std::vector<double> rows;
  for (const auto& r : in) rows.insert(rows.end(), r.begin(), r.end());
  const std::vector<double> got = predict(*m, rows, kind);
  const auto want = read_csv(kV3 + expected);
  REQUIRE(want.size() == in.size());
  const std::size_t w = m->info().width(kind);
  for (std::size_t r = 0; r < want.size(); ++r) {
    REQUIRE(want[r].size() == w);
    for (std::size_t k = 0; k < w; ++k) {
      INFO(expected << " row " << r << " output " << k);
      CHECK(got[r * w + k] == Approx(want[r][k]).epsilon(1e-6).margin(1e-7));
    }
  }
}

}  // namespace

TEST_CASE("XGBoost 3.4 DART: gbtree with model.weight_drop scores as DART", "[model][xgboost][v3]") {
  const ModelPtr m34 = load(kV3 + "dart34.json");
  CHECK(m34->info().booster == "dart");
  CHECK(m34->info().iterations_in_file == 6);
  expect_matches(m34, "dart34.pred.csv");
  expect_matches(m34, "dart34.margin.csv", OutputKind::kMargin);
  // The 1.7 / 3.1 layout of the same model gives the same answers.
  expect_matches(load(kV3 + "dart31.json"), "dart34.pred.csv");

  LoadOptions at3;
  at3.num_iterations = 3;
  expect_matches(load(kV3 + "dart34.json", at3), "dart34.at3.pred.csv");

  // Without its weights the file is another model: the weights matter here.
  Json doc = Json::parse(slurp(kV3 + "dart34.json"));
  doc["learner"]["gradient_booster"]["model"].erase("weight_drop");
  const std::string plain = doc.dump();
  Result<ModelPtr> pm = load_xgboost_json(plain);
  REQUIRE(pm.ok());
  CHECK((*pm)->info().booster == "gbtree");
  const std::vector<double> row = {0.5, -0.25, 1.0, 0.0};
  CHECK(predict(**pm, row)[0] != Approx(predict(*m34, row)[0]).epsilon(1e-3));

  doc = Json::parse(slurp(kV3 + "dart34.json"));
  doc["learner"]["gradient_booster"]["model"]["weight_drop"].erase(0);
  CHECK_THAT(load_error(doc.dump()), Catch::Contains("model.weight_drop has 5 weights for 6 trees"));
}

TEST_CASE("XGBoost multi-target, one tree per target: tree_info and base_score vectors", "[model][xgboost][v3]") {
  const ModelPtr reg = load(kV3 + "multitarget.json");
  CHECK(reg->info().num_targets == 2);
  CHECK(reg->info().num_outputs == 2);
  CHECK(reg->info().base_score == std::vector<double>{0.5, 0.5});
  expect_matches(reg, "multitarget.pred.csv");
  LoadOptions at3;
  at3.num_iterations = 3;
  expect_matches(load(kV3 + "multitarget.json", at3), "multitarget.at3.pred.csv");

  const ModelPtr lab = load(kV3 + "multilabel.json");
  expect_matches(lab, "multilabel.pred.csv");
  expect_matches(lab, "multilabel.margin.csv", OutputKind::kMargin);
  expect_matches(load(kV3 + "multilabel.json", at3), "multilabel.at3.pred.csv");

  // Each target's base_score is its own: a different second value moves
  // only the second output, by exactly the difference (identity link).
  Json doc = Json::parse(slurp(kV3 + "multitarget.json"));
  doc["learner"]["learner_model_param"]["base_score"] = "[5E-1,2.5E0]";
  Result<ModelPtr> shifted = load_xgboost_json(doc.dump());
  REQUIRE(shifted.ok());
  const std::vector<double> row = {0.1, 0.2, 0.3, 0.4};
  const auto a = predict(*reg, row), b = predict(**shifted, row);
  CHECK(b[0] == a[0]);
  CHECK(b[1] == Approx(a[1] + 2.0).epsilon(1e-6));
}

namespace {

// A two-target model with multi_strategy=multi_output_tree: tree 0 has
// vector leaves (size_leaf_vector 2), tree 1 is a scalar tree for target 1.
// leaf_weights_layout: the later layout (leaf_weights, right child of a
// leaf = its leaf index) instead of base_weights.
Json vector_leaf_model(bool leaf_weights_layout) {
  Json t0 = {{"tree_param", {{"num_nodes", "3"}, {"num_deleted", "0"}, {"num_feature", "2"}, {"size_leaf_vector", "2"}}},
             {"id", 0},
             {"left_children", {1, -1, -1}},
             {"right_children", {2, -1, -1}},
             {"parents", {2147483647, 0, 0}},
             {"split_indices", {0, 0, 0}},
             {"split_conditions", {0.5, 0.0, 0.0}},
             {"default_left", {1, 0, 0}},
             {"split_type", {0, 0, 0}},
             {"loss_changes", {1.0, 0.0, 0.0}},
             {"sum_hessian", {2.0, 1.0, 1.0}}};
  if (leaf_weights_layout) {
    t0["right_children"] = {2, 1, 0};  // node 1 is leaf 1, node 2 is leaf 0
    t0["base_weights"] = {0.0, 0.0, 0.0};
    t0["leaf_weights"] = {3.0, 4.0, 1.0, 2.0};
  } else {
    t0["base_weights"] = {0.0, 0.0, 1.0, 2.0, 3.0, 4.0};  // node n: [2n, 2n+1]
  }
  Json t1 = {{"tree_param", {{"num_nodes", "3"}, {"num_deleted", "0"}, {"num_feature", "2"}, {"size_leaf_vector", "1"}}},
             {"id", 1},
             {"left_children", {1, -1, -1}},
             {"right_children", {2, -1, -1}},
             {"parents", {2147483647, 0, 0}},
             {"split_indices", {1, 0, 0}},
             {"split_conditions", {0.0, 10.0, 20.0}},
             {"default_left", {0, 0, 0}},
             {"split_type", {0, 0, 0}},
             {"base_weights", {0.0, 10.0, 20.0}},
             {"loss_changes", {1.0, 0.0, 0.0}},
             {"sum_hessian", {2.0, 1.0, 1.0}}};
  return {{"learner",
           {{"attributes", {{"best_iteration", "0"}}},
            {"feature_names", {"x", "y"}},
            {"feature_types", {"float", "float"}},
            {"gradient_booster",
             {{"name", "gbtree"},
              {"model",
               {{"gbtree_model_param", {{"num_parallel_tree", "1"}, {"num_trees", "2"}}},
                {"iteration_indptr", {0, 1, 2}},
                {"tree_info", {0, 1}},
                {"trees", {t0, t1}}}}}},
            {"learner_model_param",
             {{"base_score", "[1E-1,2E-1]"}, {"num_class", "0"}, {"num_feature", "2"}, {"num_target", "2"}}},
            {"objective", {{"name", "reg:squarederror"}}}}},
          {"version", {3, 1, 0}}};
}

}  // namespace

TEST_CASE("XGBoost vector leaves: each leaf adds one value per target", "[model][xgboost][v3]") {
  for (const bool later : {false, true}) {
    INFO("leaf_weights layout: " << later);
    Result<ModelPtr> m = load_xgboost_json(vector_leaf_model(later).dump());
    INFO(m.status().message());
    REQUIRE(m.ok());
    // By hand: x < 0.5 -> node 1 ([1, 2]), else node 2 ([3, 4]); y < 0 -> 10, else 20 (target 1).
    const std::vector<double> rows = {0.0, -1.0, 0.7, 1.0, kNaN, kNaN};
    const auto out = predict(**m, rows);
    REQUIRE(out.size() == 6);
    CHECK(out[0] == Approx(0.1f + 1.0f));
    CHECK(out[1] == Approx(0.2f + 2.0f + 10.0f));
    CHECK(out[2] == Approx(0.1f + 3.0f));
    CHECK(out[3] == Approx(0.2f + 4.0f + 20.0f));
    CHECK(out[4] == Approx(0.1f + 1.0f));           // NaN x: default left
    CHECK(out[5] == Approx(0.2f + 2.0f + 20.0f));   // NaN y: default right
    CHECK((*m)->info().best_iteration == 0);
    LoadOptions best;
    best.use_best_iteration = true;
    Result<ModelPtr> b = load_xgboost_json(vector_leaf_model(later).dump(), best);
    REQUIRE(b.ok());
    CHECK(predict(**b, std::vector<double>{0.0, -1.0})[1] == Approx(0.2f + 2.0f));  // round 0 only
  }
  Json j = vector_leaf_model(false);
  j["learner"]["gradient_booster"]["model"]["trees"][0]["base_weights"].erase(5);
  CHECK_THAT(load_error(j.dump()), Catch::Contains("trees[0].base_weights: 5 values, expected num_nodes * size_leaf_vector"));
  j = vector_leaf_model(false);
  j["learner"]["gradient_booster"]["model"]["trees"][0]["leaf_offsets"] = {0};
  CHECK_THAT(load_error(j.dump()), Catch::Contains("trees[0].leaf_offsets: unknown field in a vector-leaf tree"));
  j = vector_leaf_model(true);
  j["learner"]["gradient_booster"]["model"]["trees"][0]["right_children"] = {2, 1, 7};
  CHECK_THAT(load_error(j.dump()), Catch::Contains("leaf index 7 out of range of 2 leaves"));
  j = vector_leaf_model(false);
  j["learner"]["gradient_booster"]["model"]["tree_info"] = {1, 1};
  CHECK_THAT(load_error(j.dump()), Catch::Contains("a vector-leaf tree covers every output from 0"));
  j = vector_leaf_model(false);
  j["learner"]["gradient_booster"]["model"]["trees"][1]["id"] = 0;
  CHECK_THAT(load_error(j.dump()), Catch::Contains("trees[1].id is 0"));
}

TEST_CASE("iteration limits: rounds by iteration_indptr, errors past the model or where none apply", "[model][limits]") {
  const std::string vl = vector_leaf_model(false).dump();
  LoadOptions o;
  o.num_iterations = 3;
  CHECK_THAT(load_error(vl, o), Catch::Contains("num_iterations 3 exceeds the 2 boosting rounds"));
  Json j = vector_leaf_model(false);
  j["learner"]["attributes"] = Json::object();
  o = {};
  o.use_best_iteration = true;
  CHECK_THAT(load_error(j.dump(), o), Catch::Contains("best_iteration: the file records none"));
  j["learner"]["gradient_booster"]["model"]["iteration_indptr"] = {0, 2, 1};
  CHECK_THAT(load_error(j.dump()), Catch::Contains("iteration_indptr"));

  // gblinear and Keel linear models have no rounds: any limit is an error.
  o = {};
  o.num_iterations = 1;
  Result<ModelPtr> gl = load_model(std::string(KEEL_TEST_DATA_DIR) + "/xgboost/gblinear.json", o);
  REQUIRE_FALSE(gl.ok());
  CHECK_THAT(gl.status().message(), Catch::Contains("gblinear: an iteration limit cannot apply"));
  Result<ModelPtr> kl = load_model(std::string(KEEL_TEST_DATA_DIR) + "/linear/credit_logistic.json", o);
  REQUIRE_FALSE(kl.ok());
  CHECK_THAT(kl.status().message(), Catch::Contains("a linear model has no boosting rounds"));

  // LightGBM: past the file's iterations, or "best" (not recorded in text files).
  o.num_iterations = 101;
  Result<ModelPtr> lg = load_model(kLgb + "binary.model.txt", o);
  REQUIRE_FALSE(lg.ok());
  CHECK_THAT(lg.status().message(), Catch::Contains("num_iterations 101 exceeds the 100 iterations"));
  o = {};
  o.use_best_iteration = true;
  lg = load_model(kLgb + "binary.model.txt", o);
  REQUIRE_FALSE(lg.ok());
  CHECK_THAT(lg.status().message(), Catch::Contains("records no best iteration"));
  o = {};
  o.num_iterations = 100;
  CHECK(load(kLgb + "binary.model.txt", o)->info().num_iterations == 100);
}

TEST_CASE("XGBoost 3.x objectives: reg:expectileerror is the identity", "[model][xgboost][v3]") {
  Json j = vector_leaf_model(false);
  j["learner"]["objective"] = {{"name", "reg:expectileerror"}, {"expectile_loss_param", {{"expectile_alpha", "[2E-1,8E-1]"}}}};
  Result<ModelPtr> m = load_xgboost_json(j.dump());
  REQUIRE(m.ok());
  const auto out = predict(**m, std::vector<double>{0.0, -1.0});
  CHECK(out[0] == Approx(1.1f));
  CHECK(out[1] == Approx(12.2f));
}

TEST_CASE("XGBoost cats: vocabularies, and strings recoded as XGBoost does", "[model][xgboost][categories]") {
  Json j = vector_leaf_model(false);
  j["learner"]["feature_types"] = {"c", "float"};
  // "ab", "c", "xyz" as UTF-8 bytes cut by offsets; feature 1 has none.
  j["learner"]["gradient_booster"]["model"]["cats"] = {
      {"enc", {{{"offsets", {0, 2, 3, 6}}, {"values", {97, 98, 99, 120, 121, 122}}}, {{"offsets", Json::array()}, {"values", Json::array()}}}},
      {"feature_segments", {0, 3, 3}},
      {"sorted_idx", {0, 1, 2}}};
  Result<ModelPtr> m = load_xgboost_json(j.dump());
  INFO(m.status().message());
  REQUIRE(m.ok());
  const ModelInfo& info = (*m)->info();
  CHECK(info.features[0].categories == std::vector<std::string>{"ab", "c", "xyz"});
  CHECK(info.features[0].type == FeatureType::kCategorical);
  CHECK(info.features[1].categories.empty());
  CHECK(info.unseen_category == UnseenCategory::kError);

  const CategoryEncoder enc(info);
  CHECK(enc.has_vocabulary(0));
  CHECK_FALSE(enc.has_vocabulary(1));
  CHECK(*enc.encode(0, "xyz") == 2.0);
  CHECK(*enc.encode(0, "ab") == 0.0);
  Result<double> unseen = enc.encode(0, "zz");
  REQUIRE_FALSE(unseen.ok());
  CHECK_THAT(unseen.status().message(), Catch::Contains("'x': category 'zz' is not in the model's vocabulary of 3"));
  CHECK_FALSE(enc.encode(1, "ab").ok());

  j["learner"]["gradient_booster"]["model"]["cats"]["feature_segments"] = {0, 2, 2};
  CHECK_THAT(load_error(j.dump()), Catch::Contains("feature 0 has 2 categories but enc[0] holds 3"));
  j["learner"]["gradient_booster"]["model"]["cats"]["feature_segments"] = {0, 3, 3};
  j["learner"]["gradient_booster"]["model"]["cats"]["enc"][0]["offsets"] = {0, 2, 3, 7};
  CHECK_THAT(load_error(j.dump()), Catch::Contains("offsets: must run from 0 to the 6 bytes"));
}

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

}  // namespace

TEST_CASE("LightGBM pandas_categorical: vocabularies; an unseen string is missing", "[model][lightgbm][categories]") {
  // categorical.model.txt: features 0, 2 and 4 are categorical ([categorical_feature: 0,2,4]).
  std::string text = slurp(kLgb + "categorical.model.txt");
  const std::size_t at = text.find("pandas_categorical:");
  if (at != std::string::npos) text.erase(at);
  text += "pandas_categorical:[[\"a\", \"b\", \"c\"], [1, 2], [\"z\"]]\n";
  Result<ModelPtr> m = load_lightgbm_text(text);
  INFO(m.status().message());
  REQUIRE(m.ok());
  const ModelInfo& info = (*m)->info();
  REQUIRE(info.features[0].categories == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(info.features[2].categories == std::vector<std::string>{"1", "2"});
  REQUIRE(info.features[4].categories == std::vector<std::string>{"z"});
  CHECK(info.features[1].categories.empty());
  CHECK(info.unseen_category == UnseenCategory::kMissing);
  const CategoryEncoder enc(info);
  CHECK(*enc.encode(0, "c") == 2.0);
  CHECK(std::isnan(*enc.encode(0, "unseen")));
  // An empty list (categoricals given as integer codes) attaches nothing.
  text.erase(text.find("pandas_categorical:"));
  Result<ModelPtr> none = load_lightgbm_text(text + "pandas_categorical:[]\n");
  REQUIRE(none.ok());
  CHECK((*none)->info().features[0].categories.empty());
  CHECK_THAT(load_error(text + "pandas_categorical:[[\"a\"\n"), Catch::Contains("pandas_categorical"));
}

TEST_CASE("LightGBM v2 text without 'end of trees' loads and scores the same", "[model][lightgbm][v2]") {
  const std::string v4 = slurp(kLgb + "binary.model.txt");
  std::string v2 = replace_all(v4, "version=v4", "version=v2");
  // As old releases write it: no end line, "feature importances:" next.
  v2 = replace_all(v2, "end of trees\n", "");
  v2 = replace_all(v2, "feature_importances:", "feature importances:");
  REQUIRE(v2.find("end of trees") == std::string::npos);
  Result<ModelPtr> a = load_lightgbm_text(v4), b = load_lightgbm_text(v2);
  INFO(b.status().message());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK((*b)->info().num_trees == (*a)->info().num_trees);
  const auto in = read_csv(kLgb + "binary.input.csv");
  std::vector<double> rows;
  for (std::size_t r = 0; r < 20; ++r) rows.insert(rows.end(), in[r].begin(), in[r].end());
  CHECK(predict(**a, rows) == predict(**b, rows));
}

TEST_CASE("LightGBM float64 outputs: a linear leaf on 1e300 is ~1.6e300, not inf", "[model][lightgbm][float64]") {
  // One linear tree: leaf = 0.5 + 1.6 * x0 (leaf value 7 when x0 is NaN).
  const std::string text =
      "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=0\n"
      "objective=regression\nfeature_names=x0\nfeature_infos=[-1e300:1e300]\ntree_sizes=1\n\n"
      "Tree=0\nnum_leaves=1\nnum_cat=0\nleaf_value=7\nis_linear=1\nleaf_const=0.5\nnum_features=1\n"
      "leaf_features=0\nleaf_coeff=1.6\nshrinkage=1\n\n\nend of trees\n";
  Result<ModelPtr> m = load_lightgbm_text(text);
  INFO(m.status().message());
  REQUIRE(m.ok());
  const std::vector<double> rows = {1e300, 2.0, kNaN};
  for (const OutputKind kind : {OutputKind::kTransformed, OutputKind::kMargin}) {
    const auto out = predict(**m, rows, kind);
    CHECK(out[0] == 0.5 + 1.6 * 1e300);  // double arithmetic, as LightGBM
    CHECK(std::isfinite(out[0]));
    CHECK(out[1] == 0.5 + 1.6 * 2.0);
    CHECK(out[2] == 7.0);
  }
  // The float-output path cannot hold it.
  std::vector<float> f(1);
  REQUIRE((*m)->predict(std::span<const double>(rows.data(), 1), 1, std::span<float>(f)).is_ok());
  CHECK(std::isinf(f[0]));
}
