// Reason codes: the top-k features of one row by contribution, against a
// sort of every feature (the oracle), on hand-made rows and on a real
// model's contributions.
#include <keel/model/explain.hpp>
#include <keel/model/loaders.hpp>

#include "explain_testing.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

using namespace keel;
using namespace keel::testing;

namespace {

std::vector<std::string> names_of(std::size_t n) {
  std::vector<std::string> v;
  for (std::size_t j = 0; j < n; ++j) v.push_back("x" + std::to_string(j));
  return v;
}

// Every qualifying feature, sorted with the documented order, cut at k.
std::vector<std::uint32_t> oracle(const std::vector<float>& c, std::size_t nf, std::size_t k, ReasonMode mode) {
  std::vector<std::uint32_t> idx;
  for (std::uint32_t j = 0; j < nf; ++j) {
    if (c[j] != 0.0f && (mode == ReasonMode::kMagnitude || c[j] > 0.0f)) idx.push_back(j);
  }
  auto key = [&](std::uint32_t j) { return mode == ReasonMode::kMagnitude ? std::fabs(c[j]) : c[j]; };
  std::stable_sort(idx.begin(), idx.end(), [&](std::uint32_t a, std::uint32_t b) { return key(a) > key(b); });
  if (idx.size() > k) idx.resize(k);
  return idx;
}

}  // namespace

TEST_CASE("reason codes: by magnitude, either sign, bias ignored, zeros skipped", "[explain][reason]") {
  const auto names = names_of(6);
  const std::vector<double> values{1.5, 2.5, std::numeric_limits<double>::quiet_NaN(), 4.5, 5.5, 6.5};
  //                               x0    x1    x2    x3     x4   x5     bias
  const std::vector<float> contribs{0.1f, -0.7f, 0.3f, 0.0f, 0.7f, -0.2f, 9.0f};
  std::vector<ReasonCode> out(3);
  auto n = top_reason_codes(contribs, names, std::span<const double>(values), ReasonMode::kMagnitude, out);
  REQUIRE(n.ok());
  REQUIRE(*n == 3);
  // |-0.7| ties with 0.7: the lower index first.
  CHECK(out[0].feature == 1);
  CHECK(out[0].name == "x1");
  CHECK(out[0].value == 2.5);
  CHECK(out[0].contribution == -0.7f);
  CHECK(out[1].feature == 4);
  CHECK(out[2].feature == 2);
  CHECK(std::isnan(out[2].value));  // a missing value is reported as missing

  // More room than reasons: the zero contribution is never one.
  std::vector<ReasonCode> all(10);
  n = top_reason_codes(contribs, names, std::span<const double>(values), ReasonMode::kMagnitude, all);
  REQUIRE(n.ok());
  CHECK(*n == 5);
  for (std::size_t i = 0; i < *n; ++i) CHECK(all[i].feature != 3);

  // Without the bias the block is as good.
  const std::span<const float> no_bias(contribs.data(), 6);
  n = top_reason_codes(no_bias, names, std::span<const double>(values), ReasonMode::kMagnitude, out);
  REQUIRE(n.ok());
  CHECK(out[0].feature == 1);
}

TEST_CASE("reason codes: only those pushing the score up", "[explain][reason]") {
  const auto names = names_of(5);
  const std::vector<float> values{1, 2, 3, 4, 5};
  const std::vector<float> contribs{-5.0f, 0.2f, -0.1f, 0.4f, 0.0f, 1.0f};
  auto v = reason_codes(contribs, names, std::span<const float>(values), 4, ReasonMode::kIncreasing);
  REQUIRE(v.ok());
  REQUIRE(v->size() == 2);
  CHECK((*v)[0].feature == 3);
  CHECK((*v)[0].value == 4.0);
  CHECK((*v)[1].feature == 1);
  // By magnitude the large negative one leads.
  v = reason_codes(contribs, names, std::span<const float>(values), 1);
  REQUIRE(v.ok());
  REQUIRE(v->size() == 1);
  CHECK((*v)[0].feature == 0);
}

TEST_CASE("reason codes: bad sizes and NaN contributions are named errors", "[explain][reason]") {
  const auto names = names_of(3);
  const std::vector<double> values{1, 2, 3};
  std::vector<ReasonCode> out(2);
  const std::vector<float> short_c{1, 2};
  auto n = top_reason_codes(short_c, names, std::span<const double>(values), ReasonMode::kMagnitude, out);
  REQUIRE_FALSE(n.ok());
  CHECK(n.status().code() == StatusCode::kInvalidInput);
  CHECK_THAT(n.status().message(), Catch::Contains("contributions has 2 values, expected 4"));
  const std::vector<float> long_c{1, 2, 3, 4, 5};
  CHECK_FALSE(top_reason_codes(long_c, names, std::span<const double>(values), ReasonMode::kMagnitude, out).ok());
  const std::vector<std::string> two_names{"a", "b"};
  const std::vector<float> c{1, 2, 3, 0};
  n = top_reason_codes(c, two_names, std::span<const double>(values), ReasonMode::kMagnitude, out);
  REQUIRE_FALSE(n.ok());
  CHECK_THAT(n.status().message(), Catch::Contains("feature names has 2 values, expected 3"));
  const std::vector<float> nan_c{1, std::numeric_limits<float>::quiet_NaN(), 3, 0};
  n = top_reason_codes(nan_c, names, std::span<const double>(values), ReasonMode::kMagnitude, out);
  REQUIRE_FALSE(n.ok());
  CHECK_THAT(n.status().message(), Catch::Contains("feature 1 ('x1') is NaN"));
  // An empty buffer asks for nothing.
  n = top_reason_codes(c, names, std::span<const double>(values), ReasonMode::kMagnitude, std::span<ReasonCode>());
  REQUIRE(n.ok());
  CHECK(*n == 0);
}

TEST_CASE("reason codes: agree with a full sort on random rows", "[explain][reason]") {
  std::mt19937 rng(16);
  std::uniform_int_distribution<int> nf_d(1, 40), k_d(0, 12), zero_d(0, 4), q_d(-8, 8);
  std::normal_distribution<float> c_d(0.0f, 1.0f);
  for (int trial = 0; trial < 500; ++trial) {
    const auto nf = static_cast<std::size_t>(nf_d(rng));
    const auto k = static_cast<std::size_t>(k_d(rng));
    const auto names = names_of(nf);
    std::vector<double> values(nf);
    std::vector<float> c(nf + 1);
    for (std::size_t j = 0; j < nf; ++j) {
      values[j] = static_cast<double>(j) * 10.0;
      // Zeros and quantised values make ties and non-reasons common.
      c[j] = zero_d(rng) == 0 ? 0.0f : (trial % 2 ? c_d(rng) : 0.25f * static_cast<float>(q_d(rng)));
    }
    c[nf] = c_d(rng);
    for (const ReasonMode mode : {ReasonMode::kMagnitude, ReasonMode::kIncreasing}) {
      INFO("trial " << trial << " nf " << nf << " k " << k);
      std::vector<ReasonCode> out(k);
      auto n = top_reason_codes(c, names, std::span<const double>(values), mode, out);
      REQUIRE(n.ok());
      const auto want = oracle(c, nf, k, mode);
      REQUIRE(*n == want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        CHECK(out[i].feature == want[i]);
        CHECK(out[i].name == names[want[i]]);
        CHECK(out[i].value == values[want[i]]);
        CHECK(out[i].contribution == c[want[i]]);
      }
    }
  }
}

TEST_CASE("reason codes: from a model's contributions, with its feature names", "[explain][reason]") {
  auto m = load_model(kXgbDir + "feature_names.json");
  REQUIRE(m.ok());
  const ModelInfo& mi = (*m)->info();
  const auto names = reason_code_names(mi);
  REQUIRE(names.size() == mi.num_features);
  CHECK(names[0] == "mean radius");
  const auto in = keel::test::read_csv(kXgbDir + "feature_names.explain.input.csv");
  std::vector<float> contribs(in.rows * contributions_width(mi));
  REQUIRE((*m)->contributions(std::span<const float>(in.values), in.rows, contribs).is_ok());
  const std::size_t nf = mi.num_features;
  for (std::size_t r = 0; r < in.rows; ++r) {
    const std::span<const float> block(contribs.data() + r * (nf + 1), nf + 1);
    const std::span<const float> row(in.values.data() + r * nf, nf);
    auto v = reason_codes(block, names, row, 3);
    REQUIRE(v.ok());
    const auto want = oracle(std::vector<float>(block.begin(), block.end()), nf, 3, ReasonMode::kMagnitude);
    REQUIRE(v->size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      CHECK((*v)[i].feature == want[i]);
      CHECK((*v)[i].name == mi.features[want[i]].name);
      const double x = row[want[i]];
      CHECK((std::isnan(x) ? std::isnan((*v)[i].value) : (*v)[i].value == x));
    }
  }
  // A model without names gets XGBoost's default ones.
  auto unnamed = load_model(kXgbDir + "binary_logistic.json");
  REQUIRE(unnamed.ok());
  const auto f = reason_code_names((*unnamed)->info());
  REQUIRE(f.size() >= 2);
  CHECK(f[0] == "f0");
  CHECK(f[1] == "f1");
}
