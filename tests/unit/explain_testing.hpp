#pragma once
// Shared by the explanation tests: the XGBoost tree fixtures, each loaded
// from JSON and from UBJSON, with the rows XGBoost explained.

#include <keel/model/loaders.hpp>

#include "support/fixture_csv.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

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

}  // namespace keel::testing
