#pragma once
// Rows that sit on a LightGBM model's thresholds, for the float64 tests
// (test_engine_float64, net/test_remote_model): LightGBM compares
// double(x) <= threshold, so such a row scores differently once narrowed
// to float whenever float(t) > t.

#include <keel/model/loaders.hpp>
#include <keel/model/model.hpp>
#include <keel/model/tree_spec.hpp>

#include "model/loaders/lightgbm_text.hpp"

#include <catch2/catch.hpp>

#include <bit>
#include <cstdint>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace keel::testing {

inline bool same_float_bits(float a, float b) {
  return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

struct ThresholdRows {
  ModelPtr model;
  std::size_t F = 0;
  std::size_t n = 0;
  std::vector<double> rows64;    // n rows: a base row with one feature set to a threshold
  std::vector<float> narrowed;   // the same, rounded to float
  std::vector<float> want64;     // the model on the doubles
  std::vector<float> want32;     // the model on the floats
  std::size_t differ = 0;        // rows where the two disagree
};

// One row per numeric split whose threshold t has no exact float: feature
// f (of that split) set to t, the others 0.1 * (f + 1). LightGBM sends t
// left (t <= t); float(t) > t half the time, which sends it right.
inline ThresholdRows threshold_rows(const std::string& lightgbm_text_file) {
  std::ifstream in(lightgbm_text_file, std::ios::binary);
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  Result<TreeEnsembleSpec> spec = detail::parse_lightgbm_text(text, {});
  REQUIRE(spec.ok());
  Result<ModelPtr> model = load_lightgbm_text(text, {});
  REQUIRE(model.ok());
  ThresholdRows e;
  e.model = *model;
  e.F = e.model->info().num_features;
  std::vector<double> base(e.F, 0.0);
  for (std::size_t f = 0; f < e.F; ++f) base[f] = 0.1 * static_cast<double>(f + 1);
  for (const Tree& t : spec->trees) {
    for (const TreeNode& node : t.nodes) {
      if (node.kind != SplitKind::kNumericLessEqual) continue;
      const double th = node.threshold;
      if (static_cast<double>(static_cast<float>(th)) == th) continue;
      std::vector<double> row = base;
      row[static_cast<std::size_t>(node.feature)] = th;
      e.rows64.insert(e.rows64.end(), row.begin(), row.end());
      ++e.n;
    }
  }
  REQUIRE(e.n > 0);
  e.narrowed.assign(e.rows64.begin(), e.rows64.end());
  e.want64.resize(e.n * e.model->info().num_outputs);
  e.want32.resize(e.n * e.model->info().num_outputs);
  REQUIRE(e.model->predict(std::span<const double>(e.rows64), e.n, std::span<float>(e.want64)).is_ok());
  REQUIRE(e.model->predict(std::span<const float>(e.narrowed), e.n, std::span<float>(e.want32)).is_ok());
  for (std::size_t i = 0; i < e.want64.size(); ++i) e.differ += !same_float_bits(e.want64[i], e.want32[i]);
  return e;
}

}  // namespace keel::testing
