// Reason codes through the engine (stage_explain.cpp): a request's codes
// are the model layer's top_reason_codes for the model of the stage that
// answered, whose contributions are XGBoost's own (the fixtures'
// NAME.contribs.csv); degraded answers are explained by the fallback, a
// default answer says why it has none; batches per row as single calls;
// the config key; idempotent replays; the metric.

#include <keel/engine/config.hpp>
#include <keel/engine/scoring_engine.hpp>
#include <keel/model/explain.hpp>
#include <keel/resilience/fault_injector.hpp>

#include "engine_test_util.hpp"
#include "support/fixture_csv.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace {

using keel::ReasonMode;

const std::string kXgb = std::string(KEEL_TEST_DATA_DIR) + "/xgboost/";

keel::ModelPtr load(const std::string& name, std::size_t iterations = 0) {
  keel::LoadOptions lo;
  lo.num_iterations = iterations;
  if (iterations != 0) lo.id = name + "@" + std::to_string(iterations);
  auto m = keel::load_model(kXgb + name + ".json", lo);
  REQUIRE(m.ok());
  return *m;
}

// The model layer's answer for one row: contributions, then top_reason_codes.
std::vector<keel::ReasonCode> expected(const keel::Model& m, std::span<const float> row, std::size_t k,
                                       ReasonMode mode, const std::vector<std::string>& names,
                                       std::vector<float>& contribs) {
  const keel::ModelInfo& mi = m.info();
  contribs.assign(keel::contributions_width(mi), 0.0f);
  REQUIRE(m.contributions(row, 1, contribs).is_ok());
  std::vector<keel::ReasonCode> all;
  const std::size_t block = mi.num_features + 1;
  for (std::size_t o = 0; o < mi.num_margin_outputs; ++o) {
    auto v = keel::reason_codes(std::span<const float>(contribs).subspan(o * block, block), names, row, k, mode);
    REQUIRE(v.ok());
    all.insert(all.end(), v->begin(), v->end());
  }
  return all;
}

void check_same(const std::vector<keel::Reason>& got, const std::vector<keel::ReasonCode>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("code " << i);
    CHECK(got[i].feature == want[i].name);
    CHECK(got[i].index == want[i].feature);
    CHECK(got[i].contribution == want[i].contribution);
    CHECK((got[i].value == want[i].value || (std::isnan(got[i].value) && std::isnan(want[i].value))));
  }
}

keel::Request ask(std::span<const float> row, std::uint32_t k, ReasonMode mode = ReasonMode::kMagnitude) {
  keel::Request r;
  r.features = row;
  r.reason_codes.k = k;
  r.reason_codes.mode = mode;
  return r;
}

std::uint64_t explain_count(const keel::ScoringEngine& e) {
  const std::string text = e.metrics_text();
  const std::string key = "keel_explain_duration_seconds_count{engine=\"" + e.name() + "\"} ";
  const auto at = text.find(key);
  REQUIRE(at != std::string::npos);
  return std::stoull(text.substr(at + key.size()));
}

}  // namespace

TEST_CASE("engine reason codes are the model layer's for the primary, XGBoost's contributions") {
  const keel::ModelPtr m = load("feature_names");
  const auto in = keel::test::read_csv(kXgb + "feature_names.explain.input.csv");
  const auto xgb = keel::test::read_csv(kXgb + "feature_names.contribs.csv");
  const std::size_t F = m->info().num_features;
  auto engine = keel::EngineBuilder().model("primary", m).stage("primary").build();
  const std::vector<std::string> names = keel::reason_code_names(m->info());
  REQUIRE(names.front() == "mean radius");  // the file's own names
  std::vector<float> contribs;
  for (std::size_t r = 0; r < in.rows; ++r) {
    INFO("row " << r);
    const std::span<const float> row(&in.values[r * F], F);
    auto resp = engine->score(ask(row, 3));
    REQUIRE(resp.ok());
    CHECK(resp->explained_by == "primary");
    CHECK(resp->reasons_unavailable.empty());
    check_same(resp->reasons, expected(*m, row, 3, ReasonMode::kMagnitude, names, contribs));
    REQUIRE(resp->reasons.size() == 3);
    for (const keel::Reason& c : resp->reasons) {
      // The training library's own contribution of that feature for that row.
      CHECK(c.contribution == Approx(xgb.values[r * (F + 1) + c.index]).margin(1e-5));
      CHECK(c.output == 0);
    }
    CHECK(std::fabs(resp->reasons[0].contribution) >= std::fabs(resp->reasons[1].contribution));
    CHECK(std::fabs(resp->reasons[1].contribution) >= std::fabs(resp->reasons[2].contribution));
  }
  // Without asking: none, and nothing said about them.
  keel::Request plain;
  plain.features = std::span<const float>(in.values).first(F);
  auto resp = engine->score(plain);
  REQUIRE(resp.ok());
  CHECK(resp->reasons.empty());
  CHECK(resp->explained_by.empty());
  CHECK(resp->reasons_unavailable.empty());
  // k beyond the feature count gives every feature with a non-zero contribution.
  resp = engine->score(ask(plain.features, 1000));
  REQUIRE(resp.ok());
  check_same(resp->reasons, expected(*m, plain.features, F, ReasonMode::kMagnitude, names, contribs));
}

TEST_CASE("engine reason codes in up mode keep only contributions pushing the score up") {
  const keel::ModelPtr m = load("feature_names");
  const auto in = keel::test::read_csv(kXgb + "feature_names.explain.input.csv");
  const std::size_t F = m->info().num_features;
  auto engine = keel::EngineBuilder().model("primary", m).stage("primary").build();
  const std::vector<std::string> names = keel::reason_code_names(m->info());
  std::vector<float> contribs;
  std::size_t fewer = 0;
  for (std::size_t r = 0; r < in.rows; ++r) {
    const std::span<const float> row(&in.values[r * F], F);
    auto resp = engine->score(ask(row, 4, ReasonMode::kIncreasing));
    REQUIRE(resp.ok());
    check_same(resp->reasons, expected(*m, row, 4, ReasonMode::kIncreasing, names, contribs));
    for (std::size_t i = 0; i < resp->reasons.size(); ++i) {
      CHECK(resp->reasons[i].contribution > 0.0f);
      if (i > 0) CHECK(resp->reasons[i - 1].contribution >= resp->reasons[i].contribution);
    }
    fewer += resp->reasons.size() < 4 ? 1 : 0;
  }
  CHECK(fewer > 0);  // some rows have fewer than 4 features pushing up: the mode filters
}

TEST_CASE("a degraded answer is explained by the fallback's model; a default answer says why it has none") {
  const keel::ModelPtr full = load("feature_names");
  const keel::ModelPtr small = load("feature_names", 2);  // another model: the first 2 rounds
  keel::FaultConfig fail;
  fail.error_rate = 1.0;
  auto primary = std::make_shared<keel::FaultInjector>(full, keel::FaultConfig{}, 1);  // fails after build
  const auto in = keel::test::read_csv(kXgb + "feature_names.explain.input.csv");
  const std::size_t F = full->info().num_features;
  const std::span<const float> row(in.values.data(), F);
  const std::vector<std::string> names = keel::reason_code_names(full->info());
  std::vector<float> contribs;

  auto engine = keel::EngineBuilder()
                    .model("primary", primary)
                    .model("backup", small)
                    .stage("primary")
                    .stage("backup")
                    .default_scores({0.5f})
                    .build();
  primary->set_config(fail);
  auto resp = engine->score(ask(row, 3));
  REQUIRE(resp.ok());
  REQUIRE(resp->stage == "backup");
  CHECK(resp->degraded);
  CHECK(resp->explained_by == "backup");
  check_same(resp->reasons, expected(*small, row, 3, ReasonMode::kMagnitude, names, contribs));
  // ... and not the primary's, which would differ.
  const auto primary_codes = expected(*full, row, 3, ReasonMode::kMagnitude, names, contribs);
  CHECK(resp->reasons[0].contribution != primary_codes[0].contribution);

  // A default answer: no reasons, and the reason why.
  primary->set_config({});
  auto only_default =
      keel::EngineBuilder().model("primary", primary).stage("primary").default_scores({0.5f}).build();
  primary->set_config(fail);
  resp = only_default->score(ask(row, 3));
  REQUIRE(resp.ok());
  REQUIRE(resp->stage == "default");
  CHECK(resp->reasons.empty());
  CHECK(resp->explained_by.empty());
  CHECK_THAT(resp->reasons_unavailable, Catch::Contains("stage 'default' answers with default scores"));
}

TEST_CASE("a linear model explains; a model without contributions says so per row") {
  const keel::ModelPtr lin = load("gblinear");
  const auto in = keel::test::read_csv(kXgb + "gblinear.input.csv");
  const std::size_t F = lin->info().num_features;
  const std::span<const float> row(in.values.data(), F);
  auto engine = keel::EngineBuilder().model("primary", lin).stage("primary").build();
  auto resp = engine->score(ask(row, 2));
  REQUIRE(resp.ok());
  std::vector<float> contribs;
  check_same(resp->reasons, expected(*lin, row, 2, ReasonMode::kMagnitude, keel::reason_code_names(lin->info()),
                                     contribs));
  CHECK(resp->reasons.size() == 2);
  // Wrapped in a FaultInjector (a config's "fault"): still the linear model's explanation.
  auto faulty = keel::EngineBuilder()
                    .model("primary", std::make_shared<keel::FaultInjector>(lin, keel::FaultConfig{}, 1))
                    .stage("primary")
                    .build();
  auto wrapped = faulty->score(ask(row, 2));
  REQUIRE(wrapped.ok());
  CHECK(wrapped->reasons_unavailable.empty());
  REQUIRE(wrapped->reasons.size() == 2);
  CHECK(wrapped->reasons[0].contribution == resp->reasons[0].contribution);

  // A custom model with no explanations: answered, with the model's error as the reason.
  auto custom = keel::EngineBuilder().model("primary", keel::test::linear({1.f, 2.f}, 0.f)).stage("primary").build();
  const float two[] = {1.f, 1.f};
  resp = custom->score(ask(two, 2));
  REQUIRE(resp.ok());
  CHECK(resp->scores[0] == 3.f);
  CHECK(resp->reasons.empty());
  CHECK_THAT(resp->reasons_unavailable, Catch::Contains("stage 'primary' cannot explain"));
  CHECK_THAT(resp->reasons_unavailable, Catch::Contains("has no contributions"));
}

TEST_CASE("multiclass reason codes: k per output, each naming its output") {
  const keel::ModelPtr m = load("multi_softprob");
  const auto in = keel::test::read_csv(kXgb + "multi_softprob.explain.input.csv");
  const std::size_t F = m->info().num_features;
  REQUIRE(m->info().num_margin_outputs == 3);
  auto engine = keel::EngineBuilder().model("primary", m).stage("primary").build();
  const std::span<const float> row(in.values.data(), F);
  auto resp = engine->score(ask(row, 2));
  REQUIRE(resp.ok());
  std::vector<float> contribs;
  const std::vector<std::string> names = keel::reason_code_names(m->info());  // the codes view these
  const auto want = expected(*m, row, 2, ReasonMode::kMagnitude, names, contribs);
  check_same(resp->reasons, want);
  REQUIRE(resp->reasons.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) CHECK(resp->reasons[i].output == i / 2);
}

TEST_CASE("batch reason codes per row equal score()'s, across stages, failed rows and cache hits") {
  const keel::ModelPtr full = load("feature_names");
  const keel::ModelPtr small = load("feature_names", 2);
  auto primary = std::make_shared<keel::FaultInjector>(full, keel::FaultConfig{}, 1);
  const auto in = keel::test::read_csv(kXgb + "feature_names.explain.input.csv");
  const std::size_t F = full->info().num_features;
  auto engine = keel::EngineBuilder()
                    .model("primary", primary)
                    .model("backup", small)
                    .stage("primary")
                    .stage("backup")
                    .cache(std::make_shared<keel::LruCache>())
                    .build();
  const std::size_t n = in.rows;
  keel::ReasonOptions opts;
  opts.k = 3;
  // A first batch: primary answers all and fills the cache.
  keel::BatchResult first;
  REQUIRE(engine->score_batch({in.values, n, F}, first, keel::Deadline::never(), {}, {}, opts).is_ok());
  // Every single answer now comes from the cache, explained on the primary.
  std::vector<std::vector<keel::Reason>> single(n);
  for (std::size_t r = 0; r < n; ++r) {
    auto resp = engine->score(ask(std::span<const float>(&in.values[r * F], F), 3));
    REQUIRE(resp.ok());
    CHECK(resp->cache_hit);
    CHECK(resp->explained_by == "primary");
    single[r] = resp->reasons;
  }
  for (std::size_t r = 0; r < n; ++r) {
    INFO("row " << r);
    const auto codes = first.row_reasons(r);
    REQUIRE(codes.size() == single[r].size());
    for (std::size_t i = 0; i < codes.size(); ++i) {
      CHECK(codes[i].index == single[r][i].index);
      CHECK(codes[i].contribution == single[r][i].contribution);
    }
  }
  // The primary's one call fails: the backup answers (and explains) every row.
  primary->fail_next(1);
  keel::BatchResult degraded;
  std::vector<float> fresh(in.values.begin(), in.values.end());
  for (float& v : fresh) v = std::isnan(v) ? v : v * 1.01f;  // not cached
  REQUIRE(engine->score_batch({fresh, n, F}, degraded, keel::Deadline::never(), {}, {}, opts).is_ok());
  const std::vector<std::string> names = keel::reason_code_names(full->info());
  std::vector<float> contribs;
  std::size_t by_backup = 0;
  for (std::size_t r = 0; r < n; ++r) {
    INFO("row " << r);
    // A row that scaling left unchanged (all missing or zero) is a cache hit of the primary.
    REQUIRE(degraded.stage[r] == (degraded.cache_hit[r] ? 0 : 1));
    by_backup += degraded.stage[r];
    CHECK(degraded.explained(r));
    const auto codes = degraded.row_reasons(r);
    const auto want = expected(degraded.stage[r] == 1 ? *small : *full, std::span<const float>(&fresh[r * F], F), 3,
                               ReasonMode::kMagnitude, names, contribs);
    check_same(std::vector<keel::Reason>(codes.begin(), codes.end()), want);
    auto one = degraded.response(r);
    REQUIRE(one.ok());
    CHECK(one->explained_by == (degraded.stage[r] == 1 ? "backup" : "primary"));
  }
  CHECK(by_backup > n / 2);
  // The same BatchResult reused without asking: no stale reasons.
  REQUIRE(engine->score_batch({fresh, n, F}, degraded).is_ok());
  CHECK(degraded.reason_k == 0);
  CHECK(degraded.row_reasons(0).empty());
  CHECK(degraded.response(0)->reasons.empty());
}

TEST_CASE("the config's explain key is the default a request's own k overrides; bad values name the path") {
  keel::test::TempDir dir("explain_cfg");
  auto config = [&](const std::string& explain) {
    return std::string(R"({"models": [{"name": "p", "path": ")") + kXgb + R"(feature_names.json"}],
                          "chain": [{"model": "p"}])" +
           (explain.empty() ? "" : ", \"explain\": " + explain) + "}";
  };
  auto build = [&](const std::string& explain) {
    return keel::builder_from_json(config(explain), dir.path).build();
  };
  auto err = [&](const std::string& explain) {
    try {
      (void)build(explain);
    } catch (const keel::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(err(R"({"reason_codes": -1})"), Catch::Contains("explain.reason_codes: expected a non-negative integer"));
  CHECK_THAT(err(R"({"reason_codes": 11})"), Catch::Contains("explain.reason_codes: must be in [0, 10], got 11"));
  CHECK_THAT(err(R"({"reason_codes": "3"})"), Catch::Contains("explain.reason_codes"));
  CHECK_THAT(err(R"({"reason_codes": 3, "mode": "down"})"),
             Catch::Contains("explain.mode: 'down' is not one of: magnitude, up"));
  CHECK_THAT(err(R"({"reason_code": 3})"), Catch::Contains("explain.reason_code: unknown key"));
  CHECK_THAT(err(R"([3])"), Catch::Contains("explain: expected an object"));

  const auto in = keel::test::read_csv(kXgb + "feature_names.explain.input.csv");
  const std::span<const float> row(in.values.data(), 10);
  auto engine = build(R"({"reason_codes": 2, "mode": "up"})");
  keel::Request plain;
  plain.features = row;
  const keel::ModelPtr m = engine->model("p");
  std::vector<float> contribs;
  const auto names = keel::reason_code_names(m->info());
  for (std::size_t r = 0; r < in.rows; ++r) {  // the engine's default, on rows where up and magnitude differ
    keel::Request each;
    each.features = std::span<const float>(&in.values[r * 10], 10);
    auto got = engine->score(each);
    REQUIRE(got.ok());
    check_same(got->reasons, expected(*m, each.features, 2, ReasonMode::kIncreasing, names, contribs));
  }
  auto resp = engine->score(plain);
  REQUIRE(resp.ok());
  keel::Request own = plain;
  own.reason_codes.k = 4;  // the mode stays the default
  resp = engine->score(own);
  REQUIRE(resp.ok());
  check_same(resp->reasons, expected(*m, row, 4, ReasonMode::kIncreasing, names, contribs));
  own.reason_codes.mode = ReasonMode::kMagnitude;
  resp = engine->score(own);
  REQUIRE(resp.ok());
  check_same(resp->reasons, expected(*m, row, 4, ReasonMode::kMagnitude, names, contribs));
  own.reason_codes = {};
  own.reason_codes.k = 0;  // none, whatever the default
  resp = engine->score(own);
  REQUIRE(resp.ok());
  CHECK(resp->reasons.empty());
  CHECK(resp->explained_by.empty());
  // "mode" alone: requests give k, the mode defaults to up.
  engine = build(R"({"mode": "up"})");
  resp = engine->score(plain);
  REQUIRE(resp.ok());
  CHECK(resp->reasons.empty());
  own = plain;
  own.reason_codes.k = 3;
  resp = engine->score(own);
  REQUIRE(resp.ok());
  check_same(resp->reasons, expected(*m, row, 3, ReasonMode::kIncreasing, names, contribs));
}

TEST_CASE("an idempotent replay returns the same reason codes; another k with the same id is a conflict") {
  const keel::ModelPtr m = load("feature_names");
  keel::ManualClock clock;
  auto engine = keel::EngineBuilder()
                    .clock(clock)
                    .model("primary", m)
                    .stage("primary")
                    .idempotency(std::make_shared<keel::InMemoryIdempotencyStore>(keel::IdempotencyOptions{}, clock))
                    .build();
  const auto in = keel::test::read_csv(kXgb + "feature_names.explain.input.csv");
  keel::Request r = ask(std::span<const float>(in.values.data(), 10), 3);
  r.id = "req-1";
  auto a = engine->score(r);
  REQUIRE(a.ok());
  REQUIRE(a->reasons.size() == 3);
  const std::uint64_t explained = explain_count(*engine);
  auto b = engine->score(r);
  REQUIRE(b.ok());
  CHECK(explain_count(*engine) == explained);  // a replay: nothing recomputed
  REQUIRE(b->reasons.size() == a->reasons.size());
  for (std::size_t i = 0; i < a->reasons.size(); ++i) {
    CHECK(b->reasons[i].feature == a->reasons[i].feature);
    CHECK(b->reasons[i].contribution == a->reasons[i].contribution);
    CHECK(b->reasons[i].value == a->reasons[i].value);
  }
  CHECK(b->explained_by == "primary");
  r.reason_codes.k = 2;
  auto c = engine->score(r);
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == keel::StatusCode::kConflict);
  // Without reasons the payload is what it always was: another id, no conflict with itself.
  keel::Request plain;
  plain.id = "req-2";
  plain.features = r.features;
  plain.reason_codes.k = 0;
  REQUIRE(engine->score(plain).ok());
  auto again = engine->score(plain);
  REQUIRE(again.ok());
  CHECK(again->reasons.empty());
}

TEST_CASE("keel_explain_duration_seconds counts calls that asked for reason codes, and only those") {
  const keel::ModelPtr m = load("feature_names");
  auto engine = keel::EngineBuilder().model("primary", m).stage("primary").build();
  const auto in = keel::test::read_csv(kXgb + "feature_names.explain.input.csv");
  const std::span<const float> row(in.values.data(), 10);
  CHECK(explain_count(*engine) == 0);
  keel::Request plain;
  plain.features = row;
  REQUIRE(engine->score(plain).ok());
  CHECK(explain_count(*engine) == 0);
  REQUIRE(engine->score(ask(row, 3)).ok());
  CHECK(explain_count(*engine) == 1);
  keel::BatchResult out;
  keel::ReasonOptions opts;
  opts.k = 1;
  REQUIRE(engine->score_batch({in.values, in.rows, 10}, out, keel::Deadline::never(), {}, {}, opts).is_ok());
  CHECK(explain_count(*engine) == 2);  // one observation per call, not per row
  CHECK_THAT(engine->metrics_text(), Catch::Contains("# TYPE keel_explain_duration_seconds histogram"));
}
