#pragma once
// Shared by the explanation tests: the XGBoost tree fixtures, each loaded
// from JSON and from UBJSON, with the rows XGBoost explained.

#include <keel/model/loaders.hpp>

#include "support/fixture_csv.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <span>
#include <string>
#include <vector>

namespace keel::testing {

inline const std::string kXgbDir = std::string(KEEL_TEST_DATA_DIR) + "/xgboost/";
inline const std::string kLgbDir = std::string(KEEL_TEST_DATA_DIR) + "/lightgbm/";

// Calls fn(name, model, rows) for every gbtree/dart case and both files;
// returns how many models it visited.
template <class Fn>
std::size_t for_each_xgboost_tree_fixture(Fn&& fn) {
  const auto cases = nlohmann::json::parse(keel::test::read_file(kXgbDir + "cases.json"));
  std::size_t visited = 0;
  for (const auto& c : cases["cases"]) {
    if (c["booster"] == "gblinear") continue;
    const std::string name = c["name"];
    const auto in = keel::test::read_csv(kXgbDir + name + ".explain.input.csv");
    for (const std::string ext : {".json", ".ubj"}) {
      INFO(name << ext);
      auto m = load_model(kXgbDir + name + ext);
      REQUIRE(m.ok());
      fn(name, **m, in);
      ++visited;
    }
  }
  return visited;
}

// A model with the rows to explain, float and float64.
struct ExplainCase {
  ModelPtr model;
  std::vector<float> rows;
  std::vector<double> rows64;
  std::size_t n = 0;
};

inline ExplainCase load_explain_case(const std::string& model_path, const std::string& rows_path) {
  auto m = load_model(model_path);
  REQUIRE(m.ok());
  const auto t = keel::test::read_csv(rows_path);
  return ExplainCase{*m, t.values, std::vector<double>(t.values.begin(), t.values.end()), t.rows};
}

}  // namespace keel::testing
