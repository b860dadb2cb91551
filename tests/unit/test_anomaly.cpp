#include <keel/validate/anomaly_detector.hpp>
#include <keel/validate/profile_builder.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace keel;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// x: normal(0, 1), never missing; y: uniform [0, 10) with 10 % missing;
// c: categorical ids {1, 2, 3}; k: constant 5.
Profile reference() {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(0.0f, 10.0f);
  std::vector<float> rows;
  for (int i = 0; i < 5000; ++i) {
    rows.push_back(normal(rng));
    rows.push_back(i % 10 == 0 ? kNaN : uni(rng));
    rows.push_back(static_cast<float>(1 + i % 3));
    rows.push_back(5.0f);
  }
  ProfileBuilder b({{"x", FeatureType::kNumeric},
                    {"y", FeatureType::kNumeric},
                    {"c", FeatureType::kCategorical},
                    {"k", FeatureType::kNumeric}});
  REQUIRE(b.add(rows, 5000).is_ok());
  return b.build();
}

}  // namespace

TEST_CASE("AnomalyDetector: typical rows score zero", "[validate][anomaly]") {
  AnomalyDetector d(reference());
  AnomalyReport rep;
  std::vector<float> rows{0.3f, 4.0f, 2, 5,   -1.2f, kNaN, 1, 5};
  d.score(rows, 2, rep);
  CHECK(rep.score(0) == 0.0);
  CHECK(rep.score(1) == 0.0);  // y was missing in the profile too
  CHECK(rep.anomalous_count() == 0);
}

TEST_CASE("AnomalyDetector: each kind of finding", "[validate][anomaly]") {
  const Profile p = reference();
  AnomalyDetector d(p);
  AnomalyReport rep;
  auto one = [&](std::vector<float> row) {
    d.score(row, 1, rep);
    REQUIRE(rep.findings(0).size() == 1);
    return rep.findings(0)[0];
  };
  SECTION("out of range") {
    const AnomalyFinding f = one({0, 11.0f, 1, 5});
    CHECK(f.kind == AnomalyKind::kOutOfRange);
    CHECK(f.feature == 1);
    CHECK(f.feature_name == "y");
    CHECK(f.z > 0);
    CHECK(rep.anomalous(0));
    CHECK(rep.score(0) == 1.0);
  }
  SECTION("±inf is out of range") {
    CHECK(one({kInf, 1, 1, 5}).kind == AnomalyKind::kOutOfRange);
    CHECK(one({-kInf, 1, 1, 5}).kind == AnomalyKind::kOutOfRange);
  }
  SECTION("robust z outlier inside a widened range") {
    AnomalyOptions o;
    o.range_margin = 10.0;  // far beyond min/max stays in range
    o.z_threshold = 4.0;
    AnomalyDetector wide(p, o);
    const std::vector<float> row{7.5f, 1, 1, 5};
    wide.score(row, 1, rep);
    REQUIRE(rep.findings(0).size() == 1);
    CHECK(rep.findings(0)[0].kind == AnomalyKind::kOutlier);
    CHECK(rep.findings(0)[0].z == Approx(7.5).epsilon(0.1));
  }
  SECTION("unseen category") {
    const AnomalyFinding f = one({0, 1, 2.5f, 5});
    CHECK(f.kind == AnomalyKind::kUnseenCategory);
    CHECK(one({0, 1, 0, 5}).kind == AnomalyKind::kUnseenCategory);  // below the range too; one finding per feature
  }
  SECTION("missing where the profile had none") {
    const AnomalyFinding f = one({kNaN, 1, 1, 5});
    CHECK(f.kind == AnomalyKind::kUnexpectedMissing);
    CHECK(f.feature == 0);
    CHECK(std::isnan(f.value));
  }
  SECTION("a constant feature: any other value is out of range, no z") {
    const AnomalyFinding f = one({0, 1, 1, 5.5f});
    CHECK(f.kind == AnomalyKind::kOutOfRange);
    CHECK(std::isnan(f.z));
  }
  SECTION("-0.0 is an ordinary zero") {
    d.score(std::vector<float>{-0.0f, 5, 1, 5}, 1, rep);
    CHECK(rep.score(0) == 0.0);
  }
}

TEST_CASE("AnomalyDetector: the score counts anomalous features; min_score decides", "[validate][anomaly]") {
  const Profile p = reference();
  std::vector<float> row{kNaN, 50.0f, 9, 5};  // three findings
  AnomalyReport rep;
  AnomalyDetector d(p);
  d.score(row, 1, rep);
  CHECK(rep.score(0) == 3.0);
  CHECK(rep.describe(0).find("'c' (index 2) unseen_category 9") != std::string::npos);
  AnomalyOptions o;
  o.min_score = 4;
  AnomalyDetector strict(p, o);
  strict.score(row, 1, rep);
  CHECK(rep.score(0) == 3.0);
  CHECK_FALSE(rep.anomalous(0));
}

TEST_CASE("AnomalyDetector: options switch checks off; bad options throw", "[validate][anomaly]") {
  const Profile p = reference();
  AnomalyOptions o;
  o.check_missing = false;
  o.check_categories = false;
  AnomalyDetector d(p, o);
  AnomalyReport rep;
  d.score(std::vector<float>{kNaN, 1, 2.5f, 5}, 1, rep);
  CHECK(rep.score(0) == 0.0);
  o.z_threshold = 0;
  CHECK_THROWS_AS(AnomalyDetector(p, o), Error);
  CHECK(parse_anomaly_policy("route") == AnomalyPolicy::kRoute);
  CHECK_THROWS_AS(parse_anomaly_policy("ignore"), Error);
}

TEST_CASE("AnomalyDetector: wrong row length is an anomaly of its own", "[validate][anomaly]") {
  AnomalyDetector d(reference());
  AnomalyReport rep;
  d.score(std::vector<float>{1, 2, 3}, 1, rep);
  CHECK(rep.anomalous(0));
  CHECK(std::isinf(rep.score(0)));
  CHECK(rep.findings(0)[0].kind == AnomalyKind::kRowLength);
}
