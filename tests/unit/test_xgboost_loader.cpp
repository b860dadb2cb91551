// XGBoost JSON and UBJSON loaders: every fixture case against XGBoost's own
// outputs, and every malformed-file path against a hand-made model.

#include <keel/model/linear_model.hpp>
#include <keel/model/loaders.hpp>

#include "support/fixture_csv.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

using namespace keel;
using keel::test::DiffStats;
using keel::test::read_csv;
using keel::test::read_file;
using Json = nlohmann::json;

namespace {

const std::string kDir = std::string(KEEL_TEST_DATA_DIR) + "/xgboost/";
constexpr double kTol = 1e-5;

std::span<const std::uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct CaseResult {
  DiffStats margin, pred;
};

// Scores the input both as one batch and row by row (they must agree
// bit for bit), and compares with the expected CSV.
DiffStats compare(const Model& m, const test::Table& in, const test::Table& want, OutputKind kind,
                  const std::string& label) {
  const std::size_t w = m.info().width(kind);
  REQUIRE(want.cols() == w);
  REQUIRE(want.rows == in.rows);
  std::vector<float> out(in.rows * w);
  PredictOptions opts;
  opts.output = kind;
  const Status s = m.predict(in.values, in.rows, out, opts);
  REQUIRE(s.is_ok());
  DiffStats d;
  std::vector<float> one(w);
  for (std::size_t r = 0; r < in.rows; ++r) {
    REQUIRE(m.predict_row(std::span<const float>(in.values).subspan(r * in.cols(), in.cols()), one, opts).is_ok());
    for (std::size_t c = 0; c < w; ++c) {
      const std::string where = label + " row " + std::to_string(r) + " col " + std::to_string(c);
      if (!(one[c] == out[r * w + c] || (std::isnan(one[c]) && std::isnan(out[r * w + c])))) {
        FAIL(where << ": row-by-row " << one[c] << " != batch " << out[r * w + c]);
      }
      d.add(out[r * w + c], want.values[r * w + c], kTol, where);
    }
  }
  return d;
}

}  // namespace

TEST_CASE("xgboost fixtures: every case, JSON and UBJSON, matches XGBoost", "[model][xgboost][fixtures]") {
  const Json cases = Json::parse(read_file(kDir + "cases.json"));
  REQUIRE(cases["cases"].size() >= 24);
  std::printf("\n%-22s %-5s %12s %12s %12s %12s\n", "case", "file", "margin abs", "margin rel", "pred abs", "pred rel");
  double worst_abs = 0, worst_rel = 0;
  for (const Json& c : cases["cases"]) {
    const std::string name = c["name"];
    const auto in = read_csv(kDir + c["files"]["input"].get<std::string>());
    const auto want_margin = read_csv(kDir + c["files"]["margin"].get<std::string>());
    const auto want_pred = read_csv(kDir + c["files"]["pred"].get<std::string>());
    for (const bool ubj : {false, true}) {
      const std::string file = c["files"][ubj ? "model_ubj" : "model_json"];
      const std::string bytes = read_file(kDir + file);
      LoadOptions opts;
      opts.id = name;
      Result<ModelPtr> r = ubj ? load_xgboost_ubjson(as_bytes(bytes), opts) : load_xgboost_json(bytes, opts);
      INFO(file << ": " << r.status().to_string());
      REQUIRE(r.ok());
      const Model& m = **r;
      const ModelInfo& mi = m.info();
      CHECK(mi.format == (ubj ? ModelFormat::kXGBoostUbjson : ModelFormat::kXGBoostJson));
      CHECK(mi.id == name);
      CHECK(mi.objective == c["objective"].get<std::string>());
      CHECK(mi.booster == c["booster"].get<std::string>());
      CHECK(mi.num_features == c["num_features"].get<std::size_t>());
      CHECK(mi.num_classes == c["num_class"].get<std::size_t>());
      CHECK(mi.num_trees == c["num_trees"].get<std::size_t>());
      CHECK(mi.num_margin_outputs == c["margin_columns"].get<std::size_t>());
      CHECK(mi.num_outputs == c["pred_columns"].get<std::size_t>());
      if (mi.num_trees > 0) CHECK(mi.max_depth == c["max_depth_observed"].get<std::size_t>());
      REQUIRE(mi.base_score.size() == mi.num_margin_outputs);
      CHECK(static_cast<float>(mi.base_score[0]) == std::stof(c["base_score"].get<std::string>()));
      CHECK(mi.has_feature_names == c["feature_names_in_model"].get<bool>());
      REQUIRE(in.cols() == mi.num_features);
      if (mi.has_feature_names) {
        for (std::size_t j = 0; j < mi.num_features; ++j) CHECK(mi.features[j].name == in.header[j]);
      }
      if (c["has_categorical"].get<bool>()) {
        std::size_t n_cat = 0;
        for (const auto& f : mi.features) n_cat += f.type == FeatureType::kCategorical ? 1 : 0;
        CHECK(n_cat > 0);
      }

      CaseResult res;
      res.margin = compare(m, in, want_margin, OutputKind::kMargin, file + " margin");
      res.pred = compare(m, in, want_pred, OutputKind::kTransformed, file + " pred");
      INFO(res.margin.first_failure << " | " << res.pred.first_failure);
      CHECK(res.margin.failures == 0);
      CHECK(res.pred.failures == 0);
      std::printf("%-22s %-5s %12.3g %12.3g %12.3g %12.3g\n", name.c_str(), ubj ? "ubj" : "json",
                  res.margin.max_abs, res.margin.max_rel, res.pred.max_abs, res.pred.max_rel);
      worst_abs = std::max({worst_abs, res.margin.max_abs, res.pred.max_abs});
      worst_rel = std::max({worst_rel, res.margin.max_rel, res.pred.max_rel});
    }
  }
  std::printf("largest difference over all cases: abs %.3g rel %.3g\n", worst_abs, worst_rel);
}

TEST_CASE("xgboost fixtures: gblinear loads as an exact-order LinearModel", "[model][xgboost][linear]") {
  auto r = load_xgboost_json(read_file(kDir + "gblinear_multiclass.json"));
  REQUIRE(r.ok());
  const auto* lm = dynamic_cast<const LinearModel*>(r->get());
  REQUIRE(lm != nullptr);
  CHECK(lm->spec().exact_order);
  CHECK(lm->info().num_margin_outputs == 3);
  CHECK(lm->spec().weights.size() == 13 * 3);
}

// ---------------------------------------------------------------------------
// A hand-made model: one tree, x1 < 0.5 (NaN left) -> -1 else 2; base 0.5.

namespace {

Json tiny() {
  return Json::parse(R"({"learner":{"attributes":{},"feature_names":[],"feature_types":[],
    "gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"1","size_leaf_vector":"0"},
      "tree_info":[0],
      "trees":[{"base_weights":[0,0,0],"categories":[],"categories_nodes":[],"categories_segments":[],
        "categories_sizes":[],"default_left":[1,0,0],"id":0,"left_children":[1,-1,-1],"loss_changes":[0,0,0],
        "parents":[2147483647,0,0],"right_children":[2,-1,-1],"split_conditions":[0.5,-1.0,2.0],
        "split_indices":[1,0,0],"split_type":[0,0,0],"sum_hessian":[1,1,1],
        "tree_param":{"num_deleted":"0","num_feature":"2","num_nodes":"3","size_leaf_vector":"0"}}]},
      "name":"gbtree"},
    "learner_model_param":{"base_score":"5E-1","boost_from_average":"1","num_class":"0","num_feature":"2","num_target":"1"},
    "objective":{"name":"reg:squarederror","reg_loss_param":{"scale_pos_weight":"1"}}},"version":[1,7,4]})");
}

Json& tree0(Json& j) { return j["learner"]["gradient_booster"]["model"]["trees"][0]; }

float score(const ModelPtr& m, float x0, float x1, OutputKind kind = OutputKind::kMargin) {
  std::vector<float> row = {x0, x1}, out(m->info().width(kind));
  PredictOptions o;
  o.output = kind;
  REQUIRE(m->predict_row(row, out, o).is_ok());
  return out[0];
}

Status load_error(const std::string& text) {
  auto r = load_xgboost_json(text);
  REQUIRE_FALSE(r.ok());
  return r.status();
}

void expect_error(const std::string& text, std::initializer_list<const char*> parts) {
  const Status s = load_error(text);
  INFO(s.message());
  CHECK(s.code() == StatusCode::kModelError);
  for (const char* p : parts) CHECK_THAT(s.message(), Catch::Contains(p));
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

}  // namespace

TEST_CASE("xgboost: a hand-made model loads and scores as written", "[model][xgboost]") {
  auto r = load_xgboost_json(tiny().dump());
  REQUIRE(r.ok());
  CHECK(score(*r, 0, 0.49f) == -0.5f);
  CHECK(score(*r, 0, 0.5f) == 2.5f);  // equality goes right
  CHECK(score(*r, 0, kNaN) == -0.5f);  // default_left
  CHECK((*r)->info().max_depth == 1);
  CHECK((*r)->info().id == "model");

  // Same document through nlohmann's own UBJSON writer (typed, counted).
  const auto ubj = Json::to_ubjson(tiny(), true, true);
  auto u = load_xgboost_ubjson(ubj);
  REQUIRE(u.ok());
  CHECK(score(*u, 0, 0.49f) == -0.5f);
  CHECK(score(*u, 0, 0.5f) == 2.5f);
}

TEST_CASE("xgboost: base_score forms and objectives", "[model][xgboost]") {
  Json j = tiny();
  j["learner"]["learner_model_param"]["base_score"] = "[5E-1]";
  auto r = load_xgboost_json(j.dump());
  REQUIRE(r.ok());
  CHECK(score(*r, 0, 1) == 2.5f);

  j["learner"]["objective"]["name"] = "binary:logistic";
  j["learner"]["learner_model_param"]["base_score"] = "[2E-1]";
  r = load_xgboost_json(j.dump());
  REQUIRE(r.ok());
  const float base = -std::log(1.0f / 0.2f - 1.0f);
  CHECK(score(*r, 0, 1) == base + 2.0f);
  CHECK(score(*r, 0, 1, OutputKind::kTransformed) == Approx(1.0 / (1.0 + std::exp(-(base + 2.0)))));

  j["learner"]["learner_model_param"]["base_score"] = "1.5";
  expect_error(j.dump(), {"base_score", "(0, 1)"});

  j["learner"]["objective"]["name"] = "count:poisson";
  r = load_xgboost_json(j.dump());
  REQUIRE(r.ok());
  CHECK(score(*r, 0, 1) == std::log(1.5f) + 2.0f);
  CHECK(score(*r, 0, 1, OutputKind::kTransformed) == std::exp(std::log(1.5f) + 2.0f));

  for (const char* obj : {"reg:squaredlogerror", "reg:pseudohubererror", "rank:ndcg", "rank:map", "reg:linear"}) {
    j["learner"]["objective"]["name"] = obj;
    r = load_xgboost_json(j.dump());
    REQUIRE(r.ok());
    CHECK(score(*r, 0, 1, OutputKind::kTransformed) == 3.5f);
  }
}

TEST_CASE("xgboost: non-finite tokens outside strings only", "[model][xgboost]") {
  Json j = tiny();
  j["learner"]["feature_names"] = {"NaN", "x Infinity, -Infinity"};
  j["learner"]["feature_types"] = {"q", "float"};
  tree0(j)["split_conditions"][0] = 12345.5;
  std::string text = j.dump(1);
  text.replace(text.find("12345.5"), 7, "Infinity");
  auto r = load_xgboost_json(text);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  CHECK((*r)->info().features[0].name == "NaN");
  CHECK((*r)->info().features[1].name == "x Infinity, -Infinity");
  CHECK(score(*r, 0, 3e38f) == -0.5f);  // everything finite is < +inf
  CHECK(score(*r, 0, std::numeric_limits<float>::infinity()) == 2.5f);
}

TEST_CASE("xgboost: categorical splits send listed categories right", "[model][xgboost]") {
  Json j = tiny();
  Json& t = tree0(j);
  t["split_type"] = {1, 0, 0};
  t["split_conditions"][0] = 12345.5;
  t["categories"] = {1, 3, 40};
  t["categories_nodes"] = {0};
  t["categories_segments"] = {0};
  t["categories_sizes"] = {3};
  std::string text = j.dump();
  text.replace(text.find("12345.5"), 7, "NaN");
  auto r = load_xgboost_json(text);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  CHECK(score(*r, 0, 1) == 2.5f);
  CHECK(score(*r, 0, 40.9f) == 2.5f);
  CHECK(score(*r, 0, 2) == -0.5f);
  CHECK(score(*r, 0, -0.5f) == -0.5f);
  CHECK(score(*r, 0, 41) == -0.5f);
  CHECK(score(*r, 0, kNaN) == -0.5f);

  t["categories"] = {1, -3, 40};
  expect_error(j.dump(), {"tree 0 node 0", "category -3 out of range"});
  t["categories"] = {1, 3, 40};
  t["categories_sizes"] = {4};
  expect_error(j.dump(), {"tree 0 node 0", "category segment"});
  t["categories_sizes"] = {3};
  t["categories_nodes"] = {1};
  expect_error(j.dump(), {"tree 0 node 1", "categories_nodes"});  // node 1 is a leaf, not a split
  t["categories_nodes"] = {0};
  t["categories_segments"] = {0, 1};
  expect_error(j.dump(), {"categories_nodes/segments/sizes"});
}

TEST_CASE("xgboost: deleted (pruned) nodes are skipped, other unreachable nodes rejected", "[model][xgboost]") {
  Json j = tiny();
  Json& t = tree0(j);
  for (const char* key : {"base_weights", "loss_changes", "sum_hessian"}) {
    t[key].push_back(0);
    t[key].push_back(0);
  }
  t["left_children"] = {1, -1, -1, -1, -1};
  t["right_children"] = {2, -1, -1, -1, -1};
  t["parents"] = {2147483647, 0, 0, 2147483647, 2147483647};
  t["split_conditions"] = {0.5, -1.0, 2.0, 0, 0};
  t["split_indices"] = {1, 0, 0, 2147483647, 2147483647};
  t["default_left"] = {1, 0, 0, 1, 1};
  t["split_type"] = {0, 0, 0, 0, 0};
  t["tree_param"]["num_nodes"] = "5";
  expect_error(j.dump(), {"tree 0", "2 of 5 nodes are unreachable", "num_deleted"});
  t["tree_param"]["num_deleted"] = "2";
  auto r = load_xgboost_json(j.dump());
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  CHECK(score(*r, 0, 0) == -0.5f);
  CHECK(score(*r, 0, 1) == 2.5f);
}

TEST_CASE("xgboost: malformed files name the tree, node or field", "[model][xgboost][errors]") {
  SECTION("child out of range") {
    Json j = tiny();
    tree0(j)["left_children"][0] = 7;
    expect_error(j.dump(), {"tree 0 node 0", "child 7 out of range"});
  }
  SECTION("cycle") {
    Json j = tiny();
    tree0(j)["left_children"] = {1, 0, -1};
    tree0(j)["right_children"] = {2, 2, -1};
    expect_error(j.dump(), {"tree 0 node", "reached twice"});
  }
  SECTION("leaf with a right child") {
    Json j = tiny();
    tree0(j)["right_children"][1] = 2;
    expect_error(j.dump(), {"tree 0 node 1", "right child"});
  }
  SECTION("wrong array length") {
    Json j = tiny();
    tree0(j)["default_left"] = {1, 0};
    expect_error(j.dump(), {"trees[0].default_left", "2 entries but num_nodes is 3"});
  }
  SECTION("missing array") {
    Json j = tiny();
    tree0(j).erase("split_indices");
    expect_error(j.dump(), {"missing field 'learner.gradient_booster.model.trees[0].split_indices'"});
  }
  SECTION("split feature out of range") {
    Json j = tiny();
    tree0(j)["split_indices"][0] = 5;
    expect_error(j.dump(), {"tree 0 node 0", "split feature 5 out of range"});
  }
  SECTION("unknown objective") {
    Json j = tiny();
    j["learner"]["objective"]["name"] = "reg:bogus";
    expect_error(j.dump(), {"learner.objective.name", "unknown objective 'reg:bogus'"});
  }
  SECTION("unknown booster") {
    Json j = tiny();
    j["learner"]["gradient_booster"]["name"] = "gbforest";
    expect_error(j.dump(), {"unknown booster 'gbforest'"});
  }
  SECTION("truncated JSON") {
    const std::string text = tiny().dump();
    expect_error(text.substr(0, text.size() / 2), {"invalid JSON at byte"});
    expect_error("", {"invalid JSON at byte 0"});
  }
  SECTION("trailing garbage") {
    expect_error(tiny().dump() + " {}", {"invalid JSON at byte"});
    expect_error(tiny().dump() + "x", {"invalid JSON at byte"});
  }
  SECTION("NaN threshold on a numeric split") {
    Json j = tiny();
    tree0(j)["split_conditions"][0] = 12345.5;
    std::string text = j.dump();
    text.replace(text.find("12345.5"), 7, "NaN");
    expect_error(text, {"tree 0 node 0", "NaN threshold", "split_conditions[0]"});
  }
  SECTION("NaN leaf") {
    Json j = tiny();
    tree0(j)["split_conditions"][2] = 12345.5;
    std::string text = j.dump();
    text.replace(text.find("12345.5"), 7, "NaN");
    expect_error(text, {"tree 0 node 2", "leaf value is not finite"});
  }
  SECTION("tree_info disagrees") {
    Json j = tiny();
    j["learner"]["gradient_booster"]["model"]["tree_info"] = {0, 0};
    expect_error(j.dump(), {"tree_info has 2 entries for 1 trees"});
    j["learner"]["gradient_booster"]["model"]["tree_info"] = {1};
    expect_error(j.dump(), {"tree_info[0]", "out of range"});
  }
  SECTION("num_trees disagrees") {
    Json j = tiny();
    j["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] = "2";
    expect_error(j.dump(), {"num_trees is 2", "has 1 trees"});
  }
  SECTION("huge declared sizes") {
    Json j = tiny();
    j["learner"]["learner_model_param"]["num_feature"] = "99999999999";
    expect_error(j.dump(), {"learner.learner_model_param.num_feature", "out of range"});
    j = tiny();
    tree0(j)["tree_param"]["num_nodes"] = "2000000000";
    expect_error(j.dump(), {"entries but num_nodes is 2000000000"});
    j = tiny();
    j["learner"]["learner_model_param"]["num_class"] = "4000000000";
    expect_error(j.dump(), {"num_class", "out of range"});
  }
  SECTION("feature names disagree with num_feature") {
    Json j = tiny();
    j["learner"]["feature_names"] = {"a"};
    expect_error(j.dump(), {"learner.feature_names: 1 names for 2 features"});
    j["learner"]["feature_names"] = {"a", "b"};
    j["learner"]["feature_types"] = {"q", "zz"};
    expect_error(j.dump(), {"learner.feature_types[1]", "unknown feature type 'zz'"});
  }
  SECTION("wrong types") {
    Json j = tiny();
    tree0(j)["left_children"] = "1,-1,-1";
    expect_error(j.dump(), {"trees[0].left_children: expected an array, found a string"});
    j = tiny();
    j["learner"]["learner_model_param"]["base_score"] = "half";
    expect_error(j.dump(), {"base_score", "'half' is not a number"});
  }
  SECTION("multi-target with the wrong base_score or tree outputs") {
    Json j = tiny();
    j["learner"]["learner_model_param"]["num_target"] = "3";
    j["learner"]["learner_model_param"]["base_score"] = "[1E0,2E0]";
    expect_error(j.dump(), {"base_score: 2 values for 3 outputs"});
    j = tiny();
    j["learner"]["learner_model_param"]["num_target"] = "2";
    j["learner"]["learner_model_param"]["num_class"] = "2";
    expect_error(j.dump(), {"num_class 2 and num_target 2 are both > 1"});
  }
  SECTION("max_bytes") {
    LoadOptions o;
    o.max_bytes = 10;
    auto r = load_xgboost_json(tiny().dump(), o);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("exceed the 10-byte limit"));
  }
  SECTION("deep nesting") {
    std::string deep(100000, '[');
    expect_error(deep, {"deeper than"});
  }
}

TEST_CASE("xgboost UBJSON: truncation, trailing bytes and huge counts", "[model][xgboost][errors]") {
  const std::string bytes = read_file(kDir + "binary_hinge.ubj");
  auto expect_ubj_error = [](std::span<const std::uint8_t> b, const char* part) {
    auto r = load_xgboost_ubjson(b);
    REQUIRE_FALSE(r.ok());
    INFO(r.status().message());
    CHECK(r.status().code() == StatusCode::kModelError);
    CHECK_THAT(r.status().message(), Catch::Contains(part));
  };
  const auto all = as_bytes(bytes);
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{17}, bytes.size() / 3, bytes.size() - 1}) {
    expect_ubj_error(all.first(cut), "UBJSON");
  }
  std::string trailing = bytes + "Z";
  expect_ubj_error(as_bytes(trailing), "trailing bytes");

  // An array that declares 2^60 float32 values in a 30-byte file.
  std::string huge = "{L";
  huge.append(7, '\0');
  huge += "\x01x[$d#L\x10";
  huge.append(7, '\0');
  expect_ubj_error(as_bytes(huge), "exceeds the");
  // A typed array of zero-byte elements would cost nothing per element.
  const std::string nulls = std::string("[$Z#L\x00\x00\x00\x00\xff\xff\xff\xff", 13);
  expect_ubj_error(as_bytes(nulls), "zero-byte elements");
  const std::string negative = std::string("[#i\xff", 4);
  expect_ubj_error(as_bytes(negative), "negative");
  expect_ubj_error(as_bytes(std::string(5000, '[')), "deeper than");
  expect_ubj_error(as_bytes(std::string("{i\x01xq}", 6)), "unknown type marker 0x71");
}
