// Leaf indices against the training libraries' own: XGBoost's
// pred_leaf (node ids) and LightGBM's C_API_PREDICT_LEAF_INDEX (leaf
// numbers), exactly, on every fixture case.
#include <keel/model/explain.hpp>
#include <keel/model/loaders.hpp>

#include "explain_testing.hpp"
#include "support/fixture_csv.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

using namespace keel;
using namespace keel::testing;
using keel::test::read_csv;
using keel::test::read_csv64;
using keel::test::read_file;

namespace {

// First mismatch, or "" when every index matches.
std::string compare(const std::vector<std::int32_t>& got, const std::vector<double>& want, std::size_t trees) {
  if (got.size() != want.size()) return "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (static_cast<double>(got[i]) != want[i]) {
      return "row " + std::to_string(i / trees) + " tree " + std::to_string(i % trees) + ": got " +
             std::to_string(got[i]) + " want " + std::to_string(want[i]);
    }
  }
  return "";
}

}  // namespace

TEST_CASE("leaf indices: XGBoost node ids on every tree fixture, JSON and UBJSON", "[explain][leaf][xgboost]") {
  const std::size_t visited = for_each_xgboost_tree_fixture([](const std::string& name, const Model& model,
                                                               const keel::test::Table& in) {
    const auto want = read_csv64(kXgbDir + name + ".leaf.csv");
    const std::size_t nt = leaf_indices_width(model.info());
    REQUIRE(nt == want.cols());
    std::vector<std::int32_t> got(in.rows * nt, -1);
    REQUIRE(model.leaf_indices(std::span<const float>(in.values), in.rows, got).is_ok());
    CHECK(compare(got, want.values, nt) == "");
    // Rows as doubles route the same (XGBoost compares in float).
    std::vector<double> in64(in.values.begin(), in.values.end());
    std::vector<std::int32_t> got64(in.rows * nt, -1);
    REQUIRE(model.leaf_indices(std::span<const double>(in64), in.rows, got64).is_ok());
    CHECK(got64 == got);
  });
  CHECK(visited >= 40);
}

TEST_CASE("leaf indices: LightGBM leaf numbers on every fixture", "[explain][leaf][lightgbm]") {
  const auto cases = nlohmann::json::parse(read_file(kLgbDir + "cases.json"));
  std::size_t checked = 0;
  for (const auto& c : cases["cases"]) {
    const std::string name = c["name"];
    const auto in = read_csv64(kLgbDir + name + ".input.csv");
    std::vector<std::pair<std::string, std::size_t>> runs{{"", 0}};
    if (c.contains("best_iteration") && c["best_iteration"].is_number() && name == "early_stopping") {
      runs.push_back({".best", c["best_iteration"].get<std::size_t>()});
    }
    for (const auto& [suffix, iters] : runs) {
      INFO(name << suffix);
      const auto want = read_csv64(kLgbDir + name + suffix + ".leaf.csv");
      LoadOptions lo;
      lo.num_iterations = iters;
      auto m = load_lightgbm_text(read_file(kLgbDir + name + ".model.txt"), lo);
      REQUIRE(m.ok());
      const Model& model = **m;
      const std::size_t nt = leaf_indices_width(model.info());
      REQUIRE(nt == want.cols());
      std::vector<std::int32_t> got(in.rows * nt, -1);
      REQUIRE(model.leaf_indices(std::span<const double>(in.values), in.rows, got).is_ok());
      CHECK(compare(got, want.values, nt) == "");
      ++checked;
    }
  }
  CHECK(checked >= 18);
}

TEST_CASE("leaf indices: shapes are checked, non-tree models say they have none", "[explain][leaf]") {
  auto m = load_model(kXgbDir + "binary_logistic.json");
  REQUIRE(m.ok());
  const std::size_t f = (*m)->info().num_features;
  const std::size_t nt = (*m)->info().num_trees;
  std::vector<float> rows(2 * f, 0.5f);
  std::vector<std::int32_t> out(2 * nt - 1);
  const Status s = (*m)->leaf_indices(std::span<const float>(rows), 2, out);
  CHECK(s.code() == StatusCode::kInvalidInput);
  CHECK_THAT(s.message(), Catch::Contains("leaf indices"));
  std::vector<float> short_rows(2 * f - 1);
  out.resize(2 * nt);
  CHECK((*m)->leaf_indices(std::span<const float>(short_rows), 2, out).code() == StatusCode::kInvalidInput);

  auto lin = load_model(kXgbDir + "gblinear.json");
  REQUIRE(lin.ok());
  std::vector<float> lrow((*lin)->info().num_features, 1.0f);
  std::vector<std::int32_t> lout(1);
  const Status ls = (*lin)->leaf_indices(std::span<const float>(lrow), 1, lout);
  CHECK(ls.code() == StatusCode::kModelError);
  CHECK_THAT(ls.message(), Catch::Contains("leaf indices"));
}
