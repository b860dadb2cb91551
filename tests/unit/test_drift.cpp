#include "drift_fixture.hpp"

#include <keel/validate/drift_monitor.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

using namespace keel;
using drift_fixture::kFeatures;

namespace {

DriftOptions window(std::size_t rows, std::size_t shards = 1) {
  DriftOptions o;
  o.window_rows = rows;
  o.shards = shards;
  return o;
}

void observe_all(DriftMonitor& m, const std::vector<float>& r, bool with_scores) {
  const auto s = drift_fixture::scores(r);
  for (std::size_t i = 0; i < r.size() / kFeatures; ++i) {
    m.observe(std::span<const float>(r).subspan(i * kFeatures, kFeatures),
              with_scores ? s[i] : std::numeric_limits<float>::quiet_NaN());
  }
}

}  // namespace

TEST_CASE("DriftMonitor: rows from the reference distribution show no drift", "[validate][drift]") {
  const Profile ref = drift_fixture::reference();
  DriftMonitor m(ref, window(20000, 4));
  CHECK(m.has_score_reference());  // known before any score arrives (metrics register by it)
  Profile no_score = ref;
  no_score.score.reset();
  CHECK_FALSE(DriftMonitor(no_score, window(20000, 4)).has_score_reference());
  observe_all(m, drift_fixture::rows(20000, 2, false), true);
  const DriftSnapshot s = m.snapshot();
  CHECK(s.rows == 20000);
  CHECK(s.observed == 20000);
  REQUIRE(s.features.size() == kFeatures);
  for (const FeatureDrift& f : s.features) {
    INFO(f.name);
    CHECK(f.psi < 0.02);
    CHECK(f.missing_rate == 0.0);
  }
  REQUIRE(s.score_psi.has_value());
  CHECK(*s.score_psi < 0.02);
}

TEST_CASE("DriftMonitor: a shifted distribution raises PSI above 0.25 for the shifted features only",
          "[validate][drift]") {
  const Profile ref = drift_fixture::reference();
  DriftMonitor m(ref, window(20000, 4));
  observe_all(m, drift_fixture::rows(20000, 3, true), true);
  const DriftSnapshot s = m.snapshot();
  for (const FeatureDrift& f : s.features) {
    INFO(f.name << " psi " << f.psi);
    if (f.name == "x1" || f.name == "x3") {
      CHECK(f.psi > 0.25);
    } else {
      CHECK(f.psi < 0.1);
    }
  }
  // m5's values keep their distribution; its missing rate moved.
  CHECK(s.features[5].missing_rate == Approx(1.0 / 3).epsilon(0.01));
  CHECK(s.features[5].reference_missing_rate == 0.0);
  REQUIRE(s.score_psi.has_value());
  CHECK(*s.score_psi > 0.25);
  const auto top = s.top(2);
  REQUIRE(top.size() == 2);
  CHECK((top[0].name == "x1" || top[0].name == "x3"));
  CHECK((top[1].name == "x1" || top[1].name == "x3"));
  CHECK(top[0].psi >= top[1].psi);
  CHECK(s.max_psi() == top[0].psi);
}

TEST_CASE("DriftMonitor: the window slides, old rows leave it", "[validate][drift]") {
  const Profile ref = drift_fixture::reference();
  DriftOptions o = window(2000);
  o.window_blocks = 10;
  DriftMonitor m(ref, o);
  observe_all(m, drift_fixture::rows(5000, 4, true), false);
  CHECK(m.snapshot().features[1].psi > 0.25);
  observe_all(m, drift_fixture::rows(5000, 5, false), false);
  const DriftSnapshot s = m.snapshot();
  CHECK(s.rows <= 2000);
  CHECK(s.rows > 1800);
  CHECK(s.observed == 10000);
  CHECK(s.features[1].psi < 0.1);
  CHECK(s.features[5].missing_rate == 0.0);
  CHECK_FALSE(s.score_psi.has_value());  // no scores in the window
}

TEST_CASE("DriftMonitor: batches, wrong lengths, reset, gauges, JSON", "[validate][drift]") {
  const Profile ref = drift_fixture::reference();
  DriftMonitor m(ref, window(0));
  const auto r = drift_fixture::rows(3000, 6, true);
  m.observe(r, 3000, {});
  m.observe(std::vector<float>{1, 2, 3});
  m.observe(std::span<const float>(r).subspan(0, 12), 3, {});  // 12 values are not 3 rows
  DriftSnapshot s = m.snapshot();
  CHECK(s.rows == 3000);
  CHECK(s.ignored == 4);
  CHECK(s.observed == 3004);

  const auto doc = nlohmann::json::parse(s.to_json());
  REQUIRE(doc.size() == 1);
  const auto& feats = doc.at("features");
  REQUIRE(feats.size() == kFeatures);
  for (std::size_t i = 0; i < feats.size(); ++i) {
    CHECK(feats[i].size() == 5);
    for (const char* key : {"name", "index", "psi", "missing_rate", "reference_missing_rate"}) CHECK(feats[i].contains(key));
    if (i > 0) CHECK(feats[i - 1]["psi"].get<double>() >= feats[i]["psi"].get<double>());
  }
  const std::size_t idx = feats[0]["index"].get<std::size_t>();
  CHECK(s.features[idx].name == feats[0]["name"].get<std::string>());

  const auto g = s.gauges();
  CHECK(g.size() == 2 * kFeatures + 2);
  CHECK(g.front().name == "keel_drift_psi");
  CHECK(g.front().feature == "x0");
  CHECK(g.back().name == "keel_drift_window_rows");
  CHECK(g.back().value == 3000.0);

  m.reset();
  s = m.snapshot();
  CHECK(s.rows == 0);
  CHECK(s.max_psi() == 0.0);
  CHECK(s.features[1].psi == 0.0);
}

TEST_CASE("DriftMonitor: NaN, ±inf and -0.0 are binned sensibly", "[validate][drift]") {
  const Profile ref = drift_fixture::reference();
  const Histogram& h = ref.features[0].histogram;
  CHECK(h.bin(std::numeric_limits<float>::infinity()) == h.num_bins() - 1);
  CHECK(h.bin(-std::numeric_limits<float>::infinity()) == 0);
  CHECK(h.bin(-0.0f) == h.bin(0.0f));
  DriftMonitor m(ref, window(0));
  std::vector<float> row{std::numeric_limits<float>::infinity(), -0.0f, std::numeric_limits<float>::quiet_NaN(), 0, 1, 5};
  m.observe(row);
  const DriftSnapshot s = m.snapshot();
  CHECK(s.rows == 1);
  CHECK(s.features[2].missing_rate == 1.0);
  CHECK(s.features[0].psi > 0.25);  // all mass in the top bin
}

TEST_CASE("measure_drift: a whole source against a profile", "[validate][drift]") {
  const Profile ref = drift_fixture::reference();
  const auto r = drift_fixture::rows(5000, 7, true);
  SpanRowSource src(r, kFeatures);
  std::uint64_t last = 0;
  Result<DriftSnapshot> s = measure_drift(ref, src, [&](std::uint64_t rows, double) { last = rows; }, 1000);
  REQUIRE(s.ok());
  CHECK(s->rows == 5000);
  CHECK(last == 5000);
  CHECK(s->features[1].psi > 0.25);
  SpanRowSource narrow(r, 3);
  CHECK(measure_drift(ref, narrow).code() == StatusCode::kInvalidInput);
  DriftOptions bad;
  bad.shards = 0;
  CHECK_THROWS_AS(DriftMonitor(ref, bad), Error);
}
