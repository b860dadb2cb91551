#include <keel/validate/profile.hpp>
#include <keel/validate/profile_builder.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <vector>

using namespace keel;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// 3 features: normal(10, 2) with 5% missing; integers 0..9; categorical ids
// {0, 1, 2, 7} with unequal weights.
std::vector<float> make_rows(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(10.0f, 2.0f);
  std::uniform_int_distribution<int> digit(0, 9);
  std::discrete_distribution<int> cat({50, 30, 15, 5});
  const float ids[] = {0, 1, 2, 7};
  std::vector<float> rows;
  for (std::size_t i = 0; i < n; ++i) {
    rows.push_back(i % 20 == 3 ? kNaN : normal(rng));
    rows.push_back(static_cast<float>(digit(rng)));
    rows.push_back(ids[cat(rng)]);
  }
  return rows;
}

std::vector<FeatureInfo> features() {
  return {{"x", FeatureType::kNumeric}, {"digit", FeatureType::kInteger}, {"color", FeatureType::kCategorical}};
}

Profile whole(const std::vector<float>& rows) {
  ProfileBuilder b(features());
  REQUIRE(b.add(rows, rows.size() / 3).is_ok());
  return b.build();
}

}  // namespace

TEST_CASE("Profile: statistics of known data", "[validate][profile]") {
  std::vector<float> rows{1, 0, 0,  2, 1, 1,  3, 2, 1,  4, 3, 2,  kNaN, 4, 2,  kInf, 5, 2,  -0.0f, 6, 2};
  ProfileBuilder b(features());
  REQUIRE(b.add(rows, 7).is_ok());
  const Profile p = b.build();
  REQUIRE(p.rows == 7);
  const FeatureProfile& x = p.features[0];
  CHECK(x.count == 7);
  CHECK(x.missing == 1);
  CHECK(x.infinite == 1);
  CHECK(x.finite() == 5);
  CHECK(x.missing_rate() == Approx(1.0 / 7));
  CHECK(x.min == 0.0);
  CHECK_FALSE(std::signbit(x.min));  // -0.0 is recorded as 0
  CHECK(x.max == 4.0);
  CHECK(x.mean == Approx(2.0));
  CHECK(x.std == Approx(std::sqrt(2.5)));
  CHECK(x.median() == 2.0);  // small integers are exact
  const FeatureProfile& d = p.features[1];
  CHECK(d.quantiles[0] == 0.0);
  CHECK(d.median() == 3.0);
  CHECK(d.quantiles.back() == 5.0);  // floor(0.99 * 6) = rank 5
  const FeatureProfile& c = p.features[2];
  using C = std::pair<std::int64_t, std::uint64_t>;
  CHECK(c.categories == std::vector<C>{{0, 1}, {1, 2}, {2, 4}});
  CHECK(c.other_categories == 0);
  CHECK(p.features[0].histogram.total() == 5);
}

TEST_CASE("Profile: quantiles are within one sketch bucket", "[validate][profile]") {
  std::mt19937 rng(7);
  std::lognormal_distribution<float> dist(3.0f, 1.5f);
  std::vector<float> v(20000);
  for (float& x : v) x = dist(rng);
  ProfileBuilder b({{"v", FeatureType::kNumeric}});
  REQUIRE(b.add(v, v.size()).is_ok());
  const FeatureProfile f = b.build().features[0];
  std::sort(v.begin(), v.end());
  for (std::size_t i = 0; i < kProfileQuantileLevels.size(); ++i) {
    const double exact = v[static_cast<std::size_t>(std::floor(kProfileQuantileLevels[i] * (v.size() - 1)))];
    CHECK(std::abs(f.quantiles[i] - exact) <= exact / 64.0);
  }
  CHECK(f.min == v.front());
  CHECK(f.max == v.back());
}

TEST_CASE("Profile: histogram bins are near-deciles and re-binning reproduces the counts", "[validate][profile]") {
  const auto rows = make_rows(10000, 1);
  const Profile p = whole(rows);
  const Histogram& h = p.features[0].histogram;
  REQUIRE(h.num_bins() == 10);
  CHECK(h.total() == p.features[0].finite());
  // Buckets are 1/64 octave wide, so each bin is 10 % give or take a bucket.
  for (std::uint64_t c : h.counts) CHECK(c == Approx(h.total() / 10.0).epsilon(0.3));
  // Binning the same data again gives exactly the stored counts.
  for (std::size_t j = 0; j < 3; ++j) {
    const Histogram& hj = p.features[j].histogram;
    std::vector<std::uint64_t> again(hj.num_bins(), 0);
    for (std::size_t r = 0; r < rows.size() / 3; ++r) {
      const float v = rows[r * 3 + j];
      if (!std::isnan(v)) ++again[hj.bin(v)];
    }
    CHECK(again == hj.counts);
  }
  // Discrete data: one bin per value (ten digits; four ids).
  CHECK(p.features[1].histogram.num_bins() == 10);
  CHECK(p.features[2].histogram.num_bins() == 4);
  CHECK(h.bin(-kInf) == 0);
  CHECK(h.bin(kInf) == h.num_bins() - 1);
}

TEST_CASE("Profile: streamed in chunks equals the profile of the whole", "[validate][profile]") {
  const auto rows = make_rows(5000, 2);
  const Profile ref = whole(rows);
  SECTION("one builder, chunks of any size: bit-identical") {
    for (std::size_t chunk : {1u, 7u, 100u, 4096u, 5000u}) {
      SpanRowSource src(rows, 3);
      Result<Profile> p = profile_source(src, features(), {}, {}, {}, chunk);
      REQUIRE(p.ok());
      CHECK(*p == ref);
      CHECK(p->to_json() == ref.to_json());
    }
  }
  SECTION("separate builders merged: exact counts, mean/std to rounding") {
    ProfileBuilder a(features()), b(features()), c(features());
    const std::size_t n = rows.size() / 3;
    const std::span<const float> all(rows);
    REQUIRE(a.add(all.subspan(0, 1000 * 3), 1000).is_ok());
    REQUIRE(b.add(all.subspan(1000 * 3, 3000 * 3), 3000).is_ok());
    REQUIRE(c.add(all.subspan(4000 * 3), n - 4000).is_ok());
    a.merge(b);
    a.merge(c);
    Profile m = a.build();
    REQUIRE(m.features.size() == 3);
    for (std::size_t j = 0; j < 3; ++j) {
      FeatureProfile& f = m.features[j];
      const FeatureProfile& g = ref.features[j];
      CHECK(f.mean == Approx(g.mean).epsilon(1e-12));
      CHECK(f.std == Approx(g.std).epsilon(1e-12));
      f.mean = g.mean;
      f.std = g.std;
    }
    CHECK(m == ref);
  }
}

TEST_CASE("Profile: category cap sends new ids to other", "[validate][profile]") {
  ProfileOptions opts;
  opts.max_categories = 2;
  ProfileBuilder b({{"c", FeatureType::kCategorical}}, opts);
  std::vector<float> v{5, 5, 1, 9, 9, 9, 1.5f, -1};
  REQUIRE(b.add(v, v.size()).is_ok());
  const FeatureProfile f = b.build().features[0];
  using C = std::pair<std::int64_t, std::uint64_t>;
  CHECK(f.categories == std::vector<C>{{1, 1}, {5, 2}});
  CHECK(f.other_categories == 5);  // three 9s, 1.5, -1
}

TEST_CASE("Profile: JSON round trip, file save/load, malformed documents", "[validate][profile]") {
  ProfileBuilder b(features());
  const auto rows = make_rows(500, 3);
  REQUIRE(b.add(rows, 500).is_ok());
  std::vector<float> scores(500);
  for (std::size_t i = 0; i < scores.size(); ++i) scores[i] = static_cast<float>(i) / 500.0f;
  b.add_scores(scores);
  const Profile p = b.build();
  REQUIRE(p.score.has_value());
  CHECK(p.score->count == 500);
  CHECK(Profile::from_json(p.to_json()) == p);

  // A feature with no finite values keeps NaN statistics through JSON.
  ProfileBuilder e({{"empty", FeatureType::kNumeric}});
  std::vector<float> nan_only{kNaN, kNaN};
  REQUIRE(e.add(nan_only, 2).is_ok());
  const Profile pe = e.build();
  CHECK(std::isnan(pe.features[0].median()));
  CHECK(Profile::from_json(pe.to_json()) == pe);

  const auto path = std::filesystem::temp_directory_path() / "keel_test_profile.json";
  p.save(path);
  CHECK(Profile::load(path) == p);
  std::filesystem::remove(path);
  CHECK_THROWS_AS(Profile::load(path), Error);

  CHECK_THROWS_AS(Profile::from_json("{"), Error);
  CHECK_THROWS_WITH(Profile::from_json(R"({"rows": 1e400})"), Catch::Contains("not JSON"));  // out_of_range, not parse_error
  CHECK_THROWS_AS(Profile::from_json(R"({"format": "other"})"), Error);
  // Fields of the wrong type are keel::Error too, never json::type_error (fuzz_profile found these).
  CHECK_THROWS_WITH(Profile::from_json(R"({"format": {"name": "age"}})"), Catch::Contains("not a keel-profile"));
  CHECK_THROWS_WITH(Profile::from_json(R"({"format": "keel-profile", "version": "1"})"), Catch::Contains("version"));
  CHECK_THROWS_WITH(Profile::from_json(R"({"format": "keel-profile", "version": 1.5})"), Catch::Contains("version"));
  CHECK_THROWS_AS(Profile::from_json(R"({"format": "keel-profile", "version": 1, "rows": 1, "features": [{}]})"), Error);
  std::string bad = p.to_json();
  bad.replace(bad.find("\"edge_keys\""), 11, "\"edge_kays\"");
  CHECK_THROWS_WITH(Profile::from_json(bad), Catch::Contains("edge_keys"));
}

TEST_CASE("Profile: profile_source reports read and scoring errors", "[validate][profile]") {
  const auto rows = make_rows(100, 4);
  SECTION("feature count mismatch") {
    SpanRowSource src(rows, 3);
    CHECK(profile_source(src, {{"a", FeatureType::kNumeric}}).code() == StatusCode::kInvalidInput);
  }
  SECTION("a scorer error names the rows") {
    SpanRowSource src(rows, 3);
    ScoreFn fail = [](std::span<const float>, std::size_t, std::span<float>) { return model_error("boom"); };
    Result<Profile> r = profile_source(src, features(), {}, fail, {}, 64);
    CHECK(r.code() == StatusCode::kModelError);
    CHECK(r.status().message().find("rows 0..63") != std::string::npos);
  }
  SECTION("scores and progress") {
    SpanRowSource src(rows, 3);
    ScoreFn first = [](std::span<const float> r, std::size_t n, std::span<float> out) {
      for (std::size_t i = 0; i < n; ++i) out[i] = r[i * 3 + 1];
      return Status::ok();
    };
    std::vector<double> fractions;
    Result<Profile> r = profile_source(src, features(), {}, first, [&](std::uint64_t, double f) { fractions.push_back(f); }, 30);
    REQUIRE(r.ok());
    CHECK(r->score->mean == Approx(r->features[1].mean));
    CHECK(fractions.size() == 4);
    CHECK(fractions.back() == 1.0);
  }
  SECTION("a bad builder shape") {
    ProfileBuilder b(features());
    CHECK(b.add(std::vector<float>(5), 2).code() == StatusCode::kInvalidInput);
    ProfileBuilder other({{"a", FeatureType::kNumeric}});
    CHECK_THROWS_AS(b.merge(other), Error);
  }
}
