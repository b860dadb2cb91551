#include <keel/validate/profile.hpp>
#include <keel/validate/schema_validator.hpp>

#include <catch2/catch.hpp>

#include "validate/validate_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

using namespace keel;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// age: integer [0, 120]; score: numeric, no bounds; flag: indicator;
// color: categorical {0, 1, 2}.
Schema test_schema() {
  ModelInfo info;
  info.num_features = 4;
  info.features = {{"age", FeatureType::kInteger},
                   {"score", FeatureType::kNumeric},
                   {"flag", FeatureType::kIndicator},
                   {"color", FeatureType::kCategorical}};
  Schema s = Schema::from_model(info);
  s.features[0].min = 0;
  s.features[0].max = 120;
  s.features[3].categories = {0, 1, 2};
  return s;
}

const Violation& only(const ValidationReport& rep, std::size_t row = 0) {
  REQUIRE(rep.violations(row).size() == 1);
  return rep.violations(row)[0];
}

}  // namespace

TEST_CASE("SchemaValidator: a clean row passes untouched", "[validate][schema]") {
  SchemaValidator v(test_schema());
  std::vector<float> row{30, 0.5f, 1, 2};
  std::vector<float> out(4, -1);
  ValidationReport rep;
  CHECK(v.validate_row(row, out, rep).is_ok());
  CHECK(rep.ok(0));
  CHECK(rep.all_ok());
  CHECK(out == row);
}

TEST_CASE("SchemaValidator: wrong row length rejects, naming the length", "[validate][schema]") {
  SchemaValidator v(test_schema());
  ValidationReport rep;
  std::vector<float> row{30, 0.5f, 1};
  Status s = v.validate_row(row, {}, rep);
  CHECK(s.code() == StatusCode::kInvalidInput);
  CHECK(s.message().find("row length 3") != std::string::npos);
  CHECK(only(rep).rule == Rule::kRowLength);
  // A batch whose size is not rows * features rejects every row.
  std::vector<float> batch(9, 1.0f);
  v.validate(batch, 2, {}, rep);
  CHECK(rep.rejected(0));
  CHECK(rep.rejected(1));
  CHECK(rep.rejected_count() == 2);
  // Zero rows: nothing to report.
  v.validate({}, 0, {}, rep);
  CHECK(rep.rows() == 0);
}

TEST_CASE("SchemaValidator: NaN follows the missing rule", "[validate][schema]") {
  Schema s = test_schema();
  ValidationReport rep;
  std::vector<float> row{kNaN, 0.5f, 1, 2};
  SECTION("allowed by default") {
    SchemaValidator v(s);
    CHECK(v.validate_row(row, {}, rep).is_ok());
    CHECK(rep.ok(0));
  }
  SECTION("not allowed: reject names the feature") {
    s.features[0].allow_missing = false;
    SchemaValidator v(s);
    Status st = v.validate_row(row, {}, rep);
    CHECK(st.code() == StatusCode::kInvalidInput);
    CHECK(st.message().find("'age' (index 0)") != std::string::npos);
    CHECK(only(rep).rule == Rule::kMissing);
    CHECK(std::isnan(only(rep).value));
    CHECK(only(rep).feature_name == "age");
  }
  SECTION("not allowed: impute writes the value") {
    s.features[0].allow_missing = false;
    s.features[0].set_action(Rule::kMissing, Action::kImpute);
    s.features[0].impute = 40.0f;
    SchemaValidator v(s);
    std::vector<float> out(4);
    CHECK(v.validate_row(row, out, rep).is_ok());
    CHECK(rep.fixed(0));
    CHECK_FALSE(rep.flagged(0));
    CHECK(out[0] == 40.0f);
    CHECK(only(rep).action == Action::kImpute);
    CHECK(only(rep).replaced == 40.0f);
  }
  SECTION("not allowed: flag keeps NaN and marks the row") {
    s.features[0].allow_missing = false;
    s.features[0].set_action(Rule::kMissing, Action::kFlag);
    SchemaValidator v(s);
    std::vector<float> out(4);
    CHECK(v.validate_row(row, out, rep).is_ok());
    CHECK(rep.flagged(0));
    CHECK(std::isnan(out[0]));
  }
  SECTION("required rejects even when the policy would impute") {
    s.features[0].required = true;
    s.features[0].set_action(Rule::kMissing, Action::kImpute);
    s.features[0].impute = 40.0f;
    SchemaValidator v(s);
    CHECK(v.validate_row(row, {}, rep).code() == StatusCode::kInvalidInput);
    CHECK(only(rep).action == Action::kReject);
  }
}

TEST_CASE("SchemaValidator: ±inf is rejected unless allowed", "[validate][schema]") {
  Schema s = test_schema();
  ValidationReport rep;
  for (float inf : {kInf, -kInf}) {
    std::vector<float> row{30, inf, 1, 2};
    {
      SchemaValidator v(s);
      CHECK(v.validate_row(row, {}, rep).code() == StatusCode::kInvalidInput);
      CHECK(only(rep).rule == Rule::kInfinite);
      CHECK(only(rep).feature == 1);
    }
    {
      Schema allow = s;
      allow.features[1].allow_inf = true;
      SchemaValidator v(allow);
      CHECK(v.validate_row(row, {}, rep).is_ok());
      CHECK(rep.ok(0));
    }
    {
      Schema clamp = s;
      clamp.features[1].set_action(Rule::kInfinite, Action::kClamp);
      SchemaValidator v(clamp);
      std::vector<float> out(4);
      CHECK(v.validate_row(row, out, rep).is_ok());
      CHECK(out[1] == (inf > 0 ? std::numeric_limits<float>::max() : -std::numeric_limits<float>::max()));
    }
  }
  // Clamping +inf on a bounded feature goes to the bound.
  s.features[0].set_action(Rule::kInfinite, Action::kClamp);
  SchemaValidator v(s);
  std::vector<float> row{kInf, 0, 0, 0};
  CHECK(v.validate_row(row, row, rep).is_ok());  // in place
  CHECK(row[0] == 120.0f);
}

TEST_CASE("SchemaValidator: -0.0 is zero for ranges, indicators and categories", "[validate][schema]") {
  SchemaValidator v(test_schema());
  ValidationReport rep;
  std::vector<float> row{-0.0f, -0.0f, -0.0f, -0.0f};
  CHECK(v.validate_row(row, {}, rep).is_ok());
  CHECK(rep.ok(0));
}

TEST_CASE("SchemaValidator: range policies", "[validate][schema]") {
  Schema s = test_schema();
  ValidationReport rep;
  std::vector<float> low{-5, 0, 0, 0};
  std::vector<float> high{500, 0, 0, 0};
  std::vector<float> out(4);
  SECTION("reject") {
    SchemaValidator v(s);
    CHECK(v.validate_row(low, {}, rep).code() == StatusCode::kInvalidInput);
    CHECK(only(rep).rule == Rule::kBelowMin);
    CHECK(only(rep).value == -5.0f);
    CHECK(v.validate_row(high, {}, rep).code() == StatusCode::kInvalidInput);
    CHECK(only(rep).rule == Rule::kAboveMax);
  }
  SECTION("clamp") {
    s.features[0].set_action(Rule::kBelowMin, Action::kClamp);
    s.features[0].set_action(Rule::kAboveMax, Action::kClamp);
    SchemaValidator v(s);
    CHECK(v.validate_row(low, out, rep).is_ok());
    CHECK(out[0] == 0.0f);
    CHECK(rep.fixed(0));
    CHECK(v.validate_row(high, out, rep).is_ok());
    CHECK(out[0] == 120.0f);
    CHECK(only(rep).replaced == 120.0f);
  }
  SECTION("impute") {
    s.features[0].set_action(Rule::kAboveMax, Action::kImpute);
    s.features[0].impute = 33.0f;
    SchemaValidator v(s);
    CHECK(v.validate_row(high, out, rep).is_ok());
    CHECK(out[0] == 33.0f);
  }
  SECTION("flag") {
    s.features[0].set_action(Rule::kBelowMin, Action::kFlag);
    SchemaValidator v(s);
    CHECK(v.validate_row(low, out, rep).is_ok());
    CHECK(rep.flagged(0));
    CHECK(out[0] == -5.0f);
    CHECK(rep.describe(0).find("below_min") != std::string::npos);
  }
}

TEST_CASE("SchemaValidator: type rules for integer, indicator and categorical", "[validate][schema]") {
  Schema s = test_schema();
  ValidationReport rep;
  std::vector<float> out(4);
  SECTION("flag by default") {
    SchemaValidator v(s);
    std::vector<float> row{30.5f, 0, 0.5f, 1.5f};
    CHECK(v.validate_row(row, out, rep).is_ok());
    REQUIRE(rep.violations(0).size() == 3);
    for (const Violation& x : rep.violations(0)) CHECK(x.rule == Rule::kType);
    CHECK(rep.violations(0)[0].feature_name == "age");
    CHECK(rep.violations(0)[1].feature_name == "flag");
    CHECK(rep.violations(0)[2].feature_name == "color");
    CHECK(out == row);
  }
  SECTION("clamp rounds") {
    for (auto& f : s.features) f.set_action(Rule::kType, Action::kClamp);
    SchemaValidator v(s);
    std::vector<float> row{30.75f, 0, 0.75f, 1.25f};
    CHECK(v.validate_row(row, out, rep).is_ok());
    CHECK(out == std::vector<float>{31, 0, 1, 1});
  }
  SECTION("reject") {
    s.features[3].set_action(Rule::kType, Action::kReject);
    SchemaValidator v(s);
    std::vector<float> row{30, 0, 0, -1};
    CHECK(v.validate_row(row, out, rep).code() == StatusCode::kInvalidInput);
    CHECK(only(rep).feature == 3);
  }
}

TEST_CASE("SchemaValidator: whole-number checks at the edges of float", "[validate][schema]") {
  Schema s = Schema::from_names({"i"});
  s.features[0].type = FeatureType::kInteger;
  s.features[0].set_action(Rule::kType, Action::kReject);
  SchemaValidator v(s);
  ValidationReport rep;
  for (float whole : {0.0f, -0.0f, 1.0f, -1.0f, 8388607.0f, -8388607.0f, 8388608.0f, 8388609.0f, -8388609.0f,
                      16777218.0f, 1e30f, -1e30f}) {
    INFO(whole);
    CHECK(v.validate_row(std::vector<float>{whole}, {}, rep).is_ok());
  }
  for (float frac : {0.5f, -0.5f, 1e-30f, -1e-30f, 8388607.5f, -8388607.5f, 4194303.75f, -2.25f}) {
    INFO(frac);
    CHECK(v.validate_row(std::vector<float>{frac}, {}, rep).code() == StatusCode::kInvalidInput);
  }
}

TEST_CASE("SchemaValidator: unknown categories", "[validate][schema]") {
  Schema s = test_schema();
  ValidationReport rep;
  std::vector<float> row{30, 0, 0, 7};
  std::vector<float> huge{30, 0, 0, 1e9f};
  SECTION("reject") {
    SchemaValidator v(s);
    CHECK(v.validate_row(row, {}, rep).code() == StatusCode::kInvalidInput);
    CHECK(only(rep).rule == Rule::kUnknownCategory);
    CHECK(only(rep).value == 7.0f);
    CHECK(v.validate_row(huge, {}, rep).code() == StatusCode::kInvalidInput);
  }
  SECTION("impute") {
    s.features[3].set_action(Rule::kUnknownCategory, Action::kImpute);
    s.features[3].impute = 0.0f;
    SchemaValidator v(s);
    std::vector<float> out(4);
    CHECK(v.validate_row(row, out, rep).is_ok());
    CHECK(out[3] == 0.0f);
  }
  SECTION("no set: any id") {
    s.features[3].categories.clear();
    SchemaValidator v(s);
    CHECK(v.validate_row(row, {}, rep).is_ok());
    CHECK(rep.ok(0));
  }
}

TEST_CASE("SchemaValidator: a batch reports each row on its own", "[validate][schema]") {
  SchemaValidator v(test_schema());
  ValidationReport rep;
  std::vector<float> rows{30, 0, 0, 0,   -1, 0, 0, 0,   30, kInf, 0, 0,   30, 0, 0, 2};
  v.validate(rows, 4, {}, rep);
  CHECK(rep.ok(0));
  CHECK(rep.rejected(1));
  CHECK(rep.rejected(2));
  CHECK(rep.ok(3));
  CHECK(rep.rejected_count() == 2);
  CHECK(rep.row_status(0).is_ok());
  CHECK(rep.row_status(1).message().find("row 1") != std::string::npos);
  CHECK(rep.violations().size() == 2);
}

TEST_CASE("SchemaValidator: the per-row cap bounds stored violations", "[validate][schema]") {
  Schema s = Schema::from_names(std::vector<std::string>(50, "x"));
  for (auto& f : s.features) f.max = 0;
  SchemaValidator v(s);
  ValidationReport rep(8);
  std::vector<float> row(50, 1.0f);
  CHECK(v.validate_row(row, {}, rep).code() == StatusCode::kInvalidInput);
  CHECK(rep.violations(0).size() == 8);
  CHECK(rep.violation_count(0) == 50);
  CHECK(rep.describe(0).find("42 more") != std::string::npos);
}

TEST_CASE("SchemaValidator: inconsistent schemas throw at construction", "[validate][schema]") {
  auto throws = [](auto&& edit) {
    Schema s = test_schema();
    edit(s);
    CHECK_THROWS_AS(SchemaValidator(s), Error);
  };
  throws([](Schema& s) {
    s.features[0].min = 10;
    s.features[0].max = 5;
  });
  throws([](Schema& s) { s.features[0].set_action(Rule::kMissing, Action::kClamp); });
  throws([](Schema& s) { s.features[1].set_action(Rule::kAboveMax, Action::kImpute); });  // no impute value
  throws([](Schema& s) {  // impute value outside the range
    s.features[0].set_action(Rule::kAboveMax, Action::kImpute);
    s.features[0].impute = 500.0f;
  });
  throws([](Schema& s) { s.features[3].categories = {-1, 2}; });
  throws([](Schema& s) { s.features[0].set_action(Rule::kRowLength, Action::kFlag); });
}

TEST_CASE("Schema: JSON file refines the model's schema", "[validate][schema]") {
  const char* text = R"({
    "defaults": {"range": "clamp"},
    "features": [
      {"name": "age", "min": 0, "max": 100, "allow_missing": false, "policy": {"missing": "impute"}, "impute": 50},
      {"index": 3, "categories": [4, 5], "policy": {"unknown_category": "flag"}}
    ]})";
  Schema s = parse_schema(text, test_schema());
  CHECK(s.features[0].max == 100.0f);
  CHECK(s.features[0].action(Rule::kAboveMax) == Action::kClamp);
  CHECK(s.features[0].action(Rule::kMissing) == Action::kImpute);
  CHECK(s.features[1].action(Rule::kBelowMin) == Action::kClamp);
  CHECK(s.features[3].categories == std::vector<std::int32_t>{4, 5});
  SchemaValidator v(s);
  ValidationReport rep;
  std::vector<float> row{kNaN, 0, 0, 1};
  std::vector<float> out(4);
  CHECK(v.validate_row(row, out, rep).is_ok());
  CHECK(out[0] == 50.0f);
  CHECK(rep.flagged(0));  // unknown category 1, flagged

  CHECK_THROWS_AS(parse_schema(R"({"features": [{"name": "nope"}]})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"name": "age", "min": "x"}]})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema(R"({"defaults": {"range": "explode"}})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"index": 9}]})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema("{", test_schema()), Error);
  CHECK_THROWS_WITH(parse_schema(R"({"features": [{"name": "age", "max": 1e400}]})", test_schema()),
                    Catch::Contains("not JSON"));  // out_of_range, not parse_error (found by fuzz_schema)
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"name": "age", "max": 1e300}]})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"name": "age", "impute": "median"}]})", test_schema()), Error);
  // Integer keys take integers only: a float used to be cast (truncated, or
  // undefined beyond the type's range; found by fuzz_schema).
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"index": 1.5}]})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"index": 1e30}]})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"index": -1}]})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"name": "age", "categories": [1.5]}]})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"name": "age", "categories": [1e30]}]})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"name": "age", "categories": [4294967296]}]})", test_schema()), Error);
  CHECK_THROWS_AS(parse_schema(R"({"features": [{"name": "age", "categories": 3}]})", test_schema()), Error);
}

TEST_CASE("Schema: a file alone defines the features", "[validate][schema]") {
  Schema s = parse_schema(R"({"features": [{"name": "a", "type": "integer"}, {"name": "b", "min": 1}]})");
  REQUIRE(s.num_features() == 2);
  CHECK(s.features[0].type == FeatureType::kInteger);
  CHECK(s.features[1].min == 1.0f);
}

TEST_CASE("AcceptAllValidator: only the length is checked", "[validate]") {
  AcceptAllValidator v(2);
  ValidationReport rep;
  std::vector<float> row{kNaN, kInf};
  std::vector<float> out(2);
  CHECK(v.validate_row(row, out, rep).is_ok());
  CHECK(std::isinf(out[1]));
  CHECK(v.validate_row(std::vector<float>{1}, {}, rep).code() == StatusCode::kInvalidInput);
}

// The AVX2 value checks and the portable loop decide every value alike:
// random bounds, NaN and whole-number flags against values at and around
// the bounds, NaN, ±inf, -0, whole and fractional numbers, at every length
// 0..40 (the vector body and each tail length) and every offset of the
// one bad value.
TEST_CASE("SchemaValidator kernels: AVX2 and portable value checks agree", "[validate][schema][kernel]") {
  if (!__builtin_cpu_supports("avx2")) {
    WARN("no AVX2 on this CPU: only the portable kernel runs");
    return;
  }
  std::mt19937 rng(20261203);
  const float kInfF = std::numeric_limits<float>::infinity();
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 2.5f, 8388607.5f, 8388608.0f, 16777217.0f,
                            -8388607.5f, kInfF, -kInfF, std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min()};
  std::size_t agreed = 0, rejected = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    const std::size_t n = static_cast<std::size_t>(trial % 41);
    std::vector<float> lo(n), hi(n), v(n);
    std::vector<std::int32_t> nan_ok(n), whole(n);
    for (std::size_t j = 0; j < n; ++j) {
      const float a = std::uniform_real_distribution<float>(-10.0f, 10.0f)(rng);
      const float b = std::uniform_real_distribution<float>(-10.0f, 10.0f)(rng);
      lo[j] = rng() % 5 == 0 ? -kInfF : std::min(a, b);
      hi[j] = rng() % 5 == 0 ? kInfF : std::max(a, b);
      nan_ok[j] = static_cast<std::int32_t>(rng() % 2);
      whole[j] = static_cast<std::int32_t>(rng() % 3 == 0);
      // Mostly clean values so that whole rows pass too.
      switch (rng() % 4) {
        case 0: v[j] = specials[rng() % std::size(specials)]; break;
        case 1: v[j] = rng() % 2 ? lo[j] : hi[j]; break;
        default: v[j] = std::isfinite(lo[j]) && std::isfinite(hi[j]) ? (lo[j] + hi[j]) / 2 : 0.0f;
      }
      if (whole[j] && std::isfinite(v[j]) && rng() % 2) v[j] = std::round(v[j]);
    }
    const keel::detail::CleanTables t{lo.data(), hi.data(), nan_ok.data(), whole.data()};
    const bool p = keel::detail::values_clean_portable(v.data(), t, n);
    const bool a = keel::detail::values_clean_avx2(v.data(), t, n);
    INFO("trial " << trial << ", " << n << " values");
    REQUIRE(p == a);
    ++agreed;
    rejected += !p;
  }
  // Both outcomes were exercised.
  CHECK(rejected > 100);
  CHECK(agreed - rejected > 100);
}
