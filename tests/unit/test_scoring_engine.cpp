#include <catch2/catch.hpp>

#include "unit/engine_test_util.hpp"

#include <keel/engine/scoring_engine.hpp>
#include <keel/resilience/fault_injector.hpp>
#include <keel/validate/profile_builder.hpp>
#include <keel/validate/schema_validator.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

using namespace std::chrono_literals;
using keel::test::linear;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

keel::Request req(const std::vector<float>& row, std::string id = {}) {
  keel::Request r;
  r.id = std::move(id);
  r.features = row;
  return r;
}

std::shared_ptr<keel::CircuitBreaker> breaker(keel::Clock& clock, std::uint32_t min_calls = 2) {
  keel::CircuitBreakerConfig c;
  c.window_size = 4;
  c.minimum_calls = min_calls;
  c.failure_rate_threshold = 0.5;
  c.wait_in_open = 10s;
  c.half_open_probes = 1;
  return std::make_shared<keel::CircuitBreaker>("primary", c, clock);
}

keel::StageOptions guarded(std::shared_ptr<keel::CircuitBreaker> b) {
  keel::StageOptions o;
  o.breaker = std::move(b);
  return o;
}

}  // namespace

TEST_CASE("engine: the primary answers, with its id and version", "[engine]") {
  keel::ManualClock clock;
  auto m = linear({1.f, 2.f}, 0.5f, "lin");
  auto engine = keel::EngineBuilder().clock(clock).model("primary", m).stage("primary").build();
  std::vector<float> row{1.f, 1.f};
  auto r = engine->score(req(row, "a"));
  REQUIRE(r.ok());
  CHECK(r->scores == std::vector<float>{3.5f});
  CHECK(r->id == "a");
  CHECK(r->stage == "primary");
  CHECK(r->model_id == "lin");
  CHECK(r->model_version == m->info().version);
  CHECK_FALSE(r->degraded);
  CHECK(r->attempts == 1);
  CHECK(r->latency == keel::Duration::zero());
  CHECK(engine->num_features() == 2);
  CHECK(engine->width() == 1);
}

TEST_CASE("engine: wrong row length and unknown model are errors naming them", "[engine]") {
  auto engine = keel::EngineBuilder().model("primary", linear({1.f, 2.f}, 0.f)).stage("primary").build();
  std::vector<float> short_row{1.f};
  auto r = engine->score(req(short_row));
  CHECK(r.code() == keel::StatusCode::kInvalidInput);
  CHECK_THAT(r.status().message(), Catch::Contains("features: expected 2 values, got 1"));
  std::vector<float> row{1.f, 2.f};
  keel::Request other = req(row);
  other.model = "nope";
  auto n = engine->score(other);
  CHECK(n.code() == keel::StatusCode::kNotFound);
  CHECK_THAT(n.status().message(), Catch::Contains("'nope'"));
}

TEST_CASE("engine: the validator rejects, clamps and flags", "[engine][validate]") {
  keel::Schema schema = keel::Schema::from_names({"age", "income"});
  schema.features[0].min = 0.f;
  schema.features[0].max = 120.f;
  schema.features[1].min = 0.f;
  schema.features[1].max = 10.f;
  schema.features[1].set_action(keel::Rule::kAboveMax, keel::Action::kClamp);
  schema.features[1].set_action(keel::Rule::kBelowMin, keel::Action::kFlag);
  auto validator = std::make_shared<keel::SchemaValidator>(schema);
  auto m = linear({1.f, 1.f}, 0.f);
  auto engine = keel::EngineBuilder().model("primary", m).stage("primary").validator(validator).build();
  m->reset_counts();

  std::vector<float> bad{-5.f, 1.f};
  auto r = engine->score(req(bad));
  CHECK(r.code() == keel::StatusCode::kInvalidInput);
  CHECK_THAT(r.status().message(), Catch::Contains("validation") && Catch::Contains("age"));
  CHECK(m->calls == 0);

  std::vector<float> clamp{1.f, 50.f};
  auto c = engine->score(req(clamp));
  REQUIRE(c.ok());
  CHECK(c->scores[0] == 11.f);  // income clamped to 10
  CHECK_FALSE(c->anomaly);

  std::vector<float> flag{1.f, -1.f};
  auto f = engine->score(req(flag));
  REQUIRE(f.ok());
  CHECK(f->scores[0] == 0.f);
  CHECK(f->anomaly);
  CHECK_THAT(f->anomaly_reason, Catch::Contains("income"));
}

TEST_CASE("engine: preprocessing feeds the model and its failures are contained", "[engine][transforms]") {
  using K = keel::PreStep::Kind;
  keel::Preprocessor pre(3,
                         {{K::kDefault, 0, 2.f}, {K::kLog1p, 1}, {K::kStandardise, 0, 0, 0, 0, 1.f, 2.f}},
                         {{2, {7, 9}}}, {"a", "b", "colour"});
  CHECK(pre.output_width() == 4);
  auto m = linear({1.f, 1.f, 10.f, 100.f}, 0.f);
  auto engine = keel::EngineBuilder().model("primary", m).stage("primary").preprocess(pre).build();
  CHECK(engine->num_features() == 3);
  std::vector<float> row{kNaN, 0.f, 9.f};  // a -> 2 -> (2-1)/2 = 0.5; b -> log1p(0) = 0; colour 9 -> [0, 1]
  auto r = engine->score(req(row));
  REQUIRE(r.ok());
  CHECK(r->scores[0] == Approx(100.5f));
  std::vector<float> bad{1.f, -2.f, 7.f};  // log1p(-2) is NaN
  auto e = engine->score(req(bad));
  CHECK(e.code() == keel::StatusCode::kInvalidInput);
  CHECK_THAT(e.status().message(), Catch::Contains("feature 1 'b'") && Catch::Contains("log1p"));
  // A wrongly sized preprocess is a configuration error.
  CHECK_THROWS_AS(keel::EngineBuilder().model("p", linear({1.f}, 0.f)).stage("p").preprocess(pre).build(),
                  keel::Error);
}

TEST_CASE("engine: cache hits, and never serves a score from before a reload", "[engine][cache]") {
  keel::ManualClock clock;
  auto m1 = linear({1.f}, 0.f, "lin");
  auto engine = keel::EngineBuilder()
                    .clock(clock)
                    .model("primary", m1)
                    .stage("primary")
                    .cache(std::make_shared<keel::LruCache>())
                    .build();
  m1->reset_counts();
  std::vector<float> row{2.f};
  auto a = engine->score(req(row));
  auto b = engine->score(req(row));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK_FALSE(a->cache_hit);
  CHECK(b->cache_hit);
  CHECK(b->scores == a->scores);
  CHECK(b->model_version == a->model_version);
  CHECK(m1->calls == 1);

  auto m2 = linear({10.f}, 0.f, "lin");  // same id: only the version tells them apart
  REQUIRE(engine->reload("primary", m2).ok());
  auto c = engine->score(req(row));
  REQUIRE(c.ok());
  CHECK_FALSE(c->cache_hit);
  CHECK(c->scores[0] == 20.f);
  CHECK(c->model_version == m2->info().version);
  auto d = engine->score(req(row));
  CHECK(d->cache_hit);
  CHECK(d->scores[0] == 20.f);
}

TEST_CASE("engine: degraded answers from the fallback and the default", "[engine][chain]") {
  keel::ManualClock clock;
  auto inner = linear({1.f}, 0.f, "primary-model");
  auto faulty = std::make_shared<keel::FaultInjector>(inner, keel::FaultConfig{}, 1, clock);
  auto backup = linear({-1.f}, 0.f, "backup-model");
  auto log_sink = std::make_shared<keel::MemorySink>();
  auto engine = keel::EngineBuilder()
                    .clock(clock)
                    .model("primary", faulty)
                    .model("backup", backup)
                    .stage("primary", guarded(breaker(clock)))
                    .stage("backup")
                    .default_scores({0.25f})
                    .log(std::make_shared<keel::EventLog>(log_sink, keel::EventLogOptions{}, clock))
                    .build();
  std::vector<float> row{3.f};

  SECTION("a model error falls to the fallback, naming why") {
    faulty->fail_next(1, keel::StatusCode::kModelError);
    auto r = engine->score(req(row));
    REQUIRE(r.ok());
    CHECK(r->degraded);
    CHECK(r->stage == "backup");
    CHECK(r->model_id == "backup-model");
    CHECK(r->scores[0] == -3.f);
    CHECK_THAT(r->degraded_reason, Catch::Contains("primary"));
    REQUIRE_FALSE(log_sink->lines().empty());
    CHECK_THAT(log_sink->lines().back(), Catch::Contains("\"event\":\"degraded\""));
  }
  SECTION("a NaN output counts as a failure of the stage") {
    faulty->nan_next(1);
    auto r = engine->score(req(row));
    REQUIRE(r.ok());
    CHECK(r->stage == "backup");
    CHECK(std::isfinite(r->scores[0]));
  }
  SECTION("the breaker opens and the primary is skipped until it may probe") {
    faulty->fail_next(2, keel::StatusCode::kModelError);
    (void)engine->score(req(row));
    (void)engine->score(req(row));
    auto h = engine->health();
    bool saw_open = false;
    for (const auto& c : h.components) {
      if (c.name == "stage:primary") {
        saw_open = c.state == "open";
        CHECK_FALSE(c.ok);
      }
    }
    CHECK(saw_open);
    CHECK(h.ready);  // the fallback and default still answer
    const auto calls_before = faulty->stats().calls;
    auto r = engine->score(req(row));
    REQUIRE(r.ok());
    CHECK(r->stage == "backup");
    CHECK_THAT(r->degraded_reason, Catch::Contains("open"));
    CHECK(faulty->stats().calls == calls_before);
    clock.advance(10s);
    auto probe = engine->score(req(row));
    REQUIRE(probe.ok());
    CHECK(probe->stage == "primary");
    CHECK_FALSE(probe->degraded);
  }
  SECTION("the default answers when every model fails") {
    faulty->fail_next(1, keel::StatusCode::kModelError);
    auto bad_backup = std::make_shared<keel::FaultInjector>(backup, keel::FaultConfig{}, 2, clock);
    REQUIRE(engine->reload("backup", bad_backup).ok());
    bad_backup->fail_next(1, keel::StatusCode::kModelError);
    auto r = engine->score(req(row));
    REQUIRE(r.ok());
    CHECK(r->stage == "default");
    CHECK(r->scores == std::vector<float>{0.25f});
    CHECK(r->degraded);
    CHECK_THAT(r->degraded_reason, Catch::Contains("primary") && Catch::Contains("backup"));
  }
  auto text = engine->metrics_text();
  CHECK_THAT(text, Catch::Contains("keel_requests_total{engine=\"default\",outcome=\"degraded\"}"));
}

TEST_CASE("engine: with no default, all stages failing is an error naming each", "[engine][chain]") {
  keel::ManualClock clock;
  auto faulty = std::make_shared<keel::FaultInjector>(linear({1.f}, 0.f), keel::FaultConfig{}, 1, clock);
  auto engine = keel::EngineBuilder().clock(clock).model("primary", faulty).stage("primary").build();
  faulty->fail_next(1, keel::StatusCode::kModelError);
  std::vector<float> row{1.f};
  auto r = engine->score(req(row));
  CHECK(r.code() == keel::StatusCode::kModelError);
  CHECK_THAT(r.status().message(), Catch::Contains("primary"));
  CHECK_THAT(engine->metrics_text(), Catch::Contains("outcome=\"model_error\"} 1"));
}

TEST_CASE("engine: postprocessing calibrates, labels, ranks, and contains its failures", "[engine][transforms]") {
  keel::Calibration platt;
  platt.kind = keel::Calibration::Kind::kPlatt;
  platt.a = -1.0;
  platt.b = 0.0;
  keel::LabelRule rule{{0.5}, {"no", "yes"}, 0};
  auto engine = keel::EngineBuilder()
                    .model("primary", linear({1.f}, 0.f))
                    .stage("primary")
                    .postprocess(keel::Postprocessor(platt, rule, 0))
                    .build();
  std::vector<float> row{2.f};
  auto r = engine->score(req(row));
  REQUIRE(r.ok());
  CHECK(r->scores[0] == Approx(1.0 / (1.0 + std::exp(-2.0))));
  auto l = engine->labels(*r);
  REQUIRE(l.ok());
  CHECK(l->label == "yes");
  std::vector<float> neg{-2.f};
  CHECK(engine->labels(*engine->score(req(neg)))->label == "no");

  keel::Calibration iso;
  iso.kind = keel::Calibration::Kind::kIsotonic;
  iso.x = {0.0, 1.0, 2.0};
  iso.y = {0.1, 0.2, 0.9};
  keel::Postprocessor post(iso, std::nullopt, 2);
  std::vector<float> s{1.5f, -3.f, 7.f};
  REQUIRE(post.calibrate(s).is_ok());
  CHECK(s[0] == Approx(0.55f));
  CHECK(s[1] == Approx(0.1f));
  CHECK(s[2] == Approx(0.9f));
  auto top = post.labels(std::vector<float>{0.1f, 0.7f, 0.2f});
  REQUIRE(top.ok());
  CHECK(top->top_k == std::vector<std::uint32_t>{1, 2});

  // exp overflow gives inf -> p = 0 (finite); a NaN score cannot calibrate.
  keel::Postprocessor p2(platt, std::nullopt, 0);
  std::vector<float> nan_score{kNaN};
  auto st = p2.calibrate(nan_score);
  CHECK(st.code() == keel::StatusCode::kModelError);
  CHECK_THROWS_AS(keel::Postprocessor(keel::Calibration{keel::Calibration::Kind::kIsotonic, 0, 0, {1, 0}, {0, 1}},
                                      std::nullopt, 0),
                  keel::Error);
}

TEST_CASE("engine: idempotent requests replay the same response; other payloads conflict", "[engine][idempotency]") {
  auto m = linear({1.f}, 0.f);
  auto engine = keel::EngineBuilder().model("primary", m).stage("primary").build();
  m->reset_counts();
  std::vector<float> row{4.f};
  auto a = engine->score(req(row, "req-1"));
  auto b = engine->score(req(row, "req-1"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(m->calls == 1);
  CHECK(b->scores == a->scores);
  CHECK(b->latency == a->latency);
  std::vector<float> other{5.f};
  auto c = engine->score(req(other, "req-1"));
  CHECK(c.code() == keel::StatusCode::kConflict);
  CHECK_THAT(engine->metrics_text(), Catch::Contains("outcome=\"conflict\"} 1"));
}

TEST_CASE("engine: reload checks the candidate and keeps the old model on failure", "[engine][reload]") {
  keel::test::TempDir dir("reload");
  const auto good = dir.path / "model.txt";
  keel::test::write_file(good, "1 2 | 0\n");
  auto sink = std::make_shared<keel::MemorySink>();
  auto engine = keel::EngineBuilder()
                    .loader(&keel::test::load_test_model)
                    .model_file("primary", good)
                    .stage("primary")
                    .log(std::make_shared<keel::EventLog>(sink))
                    .build();
  std::vector<float> row{1.f, 1.f};
  REQUIRE(engine->score(req(row))->scores[0] == 3.f);
  const auto v1 = engine->model("primary")->info().version;

  SECTION("a corrupt file keeps the old model serving and is reported") {
    const auto bad = dir.path / "corrupt.txt";
    keel::test::write_file(bad, "1 x | 0\n");
    auto r = engine->reload("primary", bad);
    CHECK(r.code() == keel::StatusCode::kModelError);
    CHECK_THAT(r.status().message(), Catch::Contains("reload 'primary'") && Catch::Contains("byte 2"));
    CHECK(engine->score(req(row))->scores[0] == 3.f);
    CHECK(engine->model("primary")->info().version == v1);
    auto h = engine->health();
    CHECK(h.ready);
    CHECK_THAT(h.to_json(), Catch::Contains("last reload failed"));
    CHECK_THAT(sink->lines().back(), Catch::Contains("reload_failed"));
    CHECK_THAT(engine->metrics_text(), Catch::Contains("result=\"failed\"} 1"));
  }
  SECTION("a missing file, a wrong width and a NaN canary are refused") {
    CHECK(engine->reload("primary", dir.path / "absent.txt").code() == keel::StatusCode::kNotFound);
    const auto wide = dir.path / "wide.txt";
    keel::test::write_file(wide, "1 2 3 | 0\n");
    auto w = engine->reload("primary", wide);
    CHECK(w.code() == keel::StatusCode::kInvalidInput);
    CHECK_THAT(w.status().message(), Catch::Contains("expects 3 features"));
    keel::FaultConfig always_nan;
    always_nan.nan_rate = 1.0;
    auto nan_model = std::make_shared<keel::FaultInjector>(linear({1.f, 1.f}, 0.f), always_nan);
    auto n = engine->reload("primary", nan_model);
    CHECK(n.code() == keel::StatusCode::kModelError);
    CHECK_THAT(n.status().message(), Catch::Contains("canary row 0"));
    CHECK(engine->score(req(row))->scores[0] == 3.f);
  }
  SECTION("a good file swaps in a new version") {
    keel::test::write_file(good, "2 2 | 1\n");
    auto r = engine->reload("primary", good);
    REQUIRE(r.ok());
    CHECK(*r != v1);
    auto s = engine->score(req(row));
    CHECK(s->scores[0] == 5.f);
    CHECK(s->model_version == *r);
    CHECK(engine->reload("nope", good).code() == keel::StatusCode::kNotFound);
  }
  SECTION("reload_changed picks up a rewritten file once") {
    keel::test::write_file(good, "3 3 | 0\n");
    std::filesystem::last_write_time(good, std::filesystem::last_write_time(good) + 2s);
    CHECK(engine->reload_changed() == 1);
    CHECK(engine->score(req(row))->scores[0] == 6.f);
    CHECK(engine->reload_changed() == 0);
  }
}

TEST_CASE("engine: a schema change is refused unless allowed", "[engine][reload]") {
  auto named = std::make_shared<keel::test::LinearTestModel>(std::vector<float>{1.f}, 0.f, "a",
                                                             std::vector<std::string>{"age"});
  auto renamed = std::make_shared<keel::test::LinearTestModel>(std::vector<float>{1.f}, 0.f, "a",
                                                               std::vector<std::string>{"income"});
  auto strict = keel::EngineBuilder().model("p", named).stage("p").build();
  auto r = strict->reload("p", renamed);
  CHECK(r.code() == keel::StatusCode::kInvalidInput);
  CHECK_THAT(r.status().message(), Catch::Contains("'income'") && Catch::Contains("'age'"));
  auto lax = keel::EngineBuilder().model("p", named).stage("p").allow_schema_change().build();
  CHECK(lax->reload("p", renamed).ok());
}

TEST_CASE("engine: a batch scores good rows in one call, bad rows get their own error", "[engine][batch]") {
  keel::Schema schema = keel::Schema::from_names({"a", "b"});
  schema.features[0].min = 0.f;
  auto m = linear({1.f, 10.f}, 0.f, "primary-model");
  auto backup = linear({0.f, 0.f}, -1.f, "backup-model");
  auto faulty = std::make_shared<keel::FaultInjector>(m, keel::FaultConfig{});
  auto engine = keel::EngineBuilder()
                    .model("primary", m)
                    .model("backup", backup)
                    .stage("primary")
                    .stage("backup")
                    .validator(std::make_shared<keel::SchemaValidator>(schema))
                    .build();
  m->reset_counts();
  backup->reset_counts();
  // Row 2 is invalid (a < 0).
  std::vector<float> data{1.f, 1.f, 2.f, 0.f, -1.f, 5.f, 3.f, 3.f};
  keel::BatchResult out;
  REQUIRE(engine->score_batch({data, 4, 2}, out).is_ok());
  CHECK(m->calls == 1);
  CHECK(m->rows_scored == 3);
  CHECK(out.status[0].is_ok());
  CHECK(out.row_scores(0)[0] == 11.f);
  CHECK(out.row_scores(1)[0] == 2.f);
  CHECK(out.status[2].code() == keel::StatusCode::kInvalidInput);
  CHECK_THAT(out.status[2].message(), Catch::Contains("row 2") && Catch::Contains("'a'"));
  CHECK(std::isnan(out.row_scores(2)[0]));
  CHECK(out.row_scores(3)[0] == 33.f);
  CHECK(out.failed == 1);
  CHECK(out.degraded == 0);
  CHECK(out.model_version == m->info().version);

  SECTION("a strided view over wider caller rows") {
    std::vector<float> wide{1.f, 1.f, 99.f, 2.f, 2.f, 99.f};
    REQUIRE(engine->score_batch({wide, 2, 2, 3}, out).is_ok());
    CHECK(out.row_scores(0)[0] == 11.f);
    CHECK(out.row_scores(1)[0] == 22.f);
  }
  SECTION("a non-finite row falls to the fallback alone") {
    REQUIRE(engine->reload("primary", faulty).ok());
    faulty->nan_next(1);
    REQUIRE(engine->score_batch({data, 4, 2}, out).is_ok());
    // The injector NaNs the whole call's outputs: every valid row falls back.
    CHECK(out.degraded == 3);
    CHECK(out.stage[0] == 1);
    CHECK(out.row_scores(0)[0] == -1.f);
    CHECK(backup->calls == 1);
    CHECK(backup->rows_scored == 3);
  }
  SECTION("a whole-batch shape error") {
    CHECK(engine->score_batch({data, 4, 3}, out).code() == keel::StatusCode::kInvalidInput);
    CHECK(engine->score_batch({data, 5, 2}, out).code() == keel::StatusCode::kInvalidInput);
  }
}

TEST_CASE("engine: a batch with one row of NaN output sends only that row on", "[engine][batch]") {
  // A model whose output is NaN exactly when feature 0 is negative.
  struct Picky final : keel::Model {
    keel::ModelInfo mi;
    Picky() {
      mi.num_features = 1;
      mi.features.resize(1);
      mi.id = "picky";
      mi.version = keel::next_model_version();
    }
    const keel::ModelInfo& info() const noexcept override { return mi; }
    keel::Status predict(std::span<const float> rows, std::size_t n, std::span<float> out,
                         const keel::PredictOptions& o = {}) const noexcept override {
      if (auto s = check_shapes(rows.size(), n, out.size(), o); !s.is_ok()) return s;
      for (std::size_t i = 0; i < n; ++i) out[i] = rows[i] < 0 ? kNaN : rows[i];
      return keel::Status::ok();
    }
    using keel::Model::predict;
  };
  auto backup = linear({0.f}, 42.f);
  auto engine = keel::EngineBuilder()
                    .model("picky", std::make_shared<Picky>())
                    .model("backup", backup)
                    .stage("picky")
                    .stage("backup")
                    .canary_rows({{1.f}})
                    .build();
  backup->reset_counts();
  std::vector<float> data{1.f, -1.f, 2.f};
  keel::BatchResult out;
  REQUIRE(engine->score_batch({data, 3, 1}, out).is_ok());
  CHECK(out.row_scores(0)[0] == 1.f);
  CHECK(out.row_scores(1)[0] == 42.f);
  CHECK(out.row_scores(2)[0] == 2.f);
  CHECK(out.stage == std::vector<std::uint8_t>{0, 1, 0});
  CHECK(out.degraded == 1);
  CHECK(backup->rows_scored == 1);
}

TEST_CASE("engine: health reports each component as JSON", "[engine][health]") {
  auto engine = keel::EngineBuilder()
                    .name("churn")
                    .model("primary", linear({1.f}, 0.f))
                    .stage("primary")
                    .cache(std::make_shared<keel::LruCache>())
                    .build();
  auto h = engine->health();
  CHECK(h.live);
  CHECK(h.ready);
  auto j = nlohmann::json::parse(h.to_json());
  CHECK(j["ready"] == true);
  std::vector<std::string> names;
  for (const auto& c : j["components"]) names.push_back(c["name"]);
  CHECK(names == std::vector<std::string>{"model:primary", "stage:primary", "cache", "idempotency"});
}

TEST_CASE("engine: builder errors name the problem", "[engine][config]") {
  CHECK_THROWS_WITH(keel::EngineBuilder().build(), Catch::Contains("no stages"));
  CHECK_THROWS_WITH(keel::EngineBuilder().model("a", linear({1.f}, 0.f)).stage("b").build(),
                    Catch::Contains("chain[0].model: no model named 'b'"));
  CHECK_THROWS_WITH(
      keel::EngineBuilder().model("a", linear({1.f}, 0.f)).model("a", linear({1.f}, 0.f)),
      Catch::Contains("declared twice"));
  CHECK_THROWS_WITH(keel::EngineBuilder()
                        .model("a", linear({1.f}, 0.f))
                        .model("b", linear({1.f, 2.f}, 0.f))
                        .stage("a")
                        .stage("b")
                        .build(),
                    Catch::Contains("model 'b'"));
  auto v = std::make_shared<keel::SchemaValidator>(keel::Schema::from_names({"x", "y", "z"}));
  CHECK_THROWS_WITH(keel::EngineBuilder().model("a", linear({1.f}, 0.f)).stage("a").validator(v).build(),
                    Catch::Contains("validator"));
}

namespace {

// A profile of x in [0, 10) (1000 rows), two features.
keel::Profile two_feature_profile() {
  keel::ProfileBuilder b({{"x", keel::FeatureType::kNumeric}, {"y", keel::FeatureType::kNumeric}});
  std::vector<float> rows;
  for (int i = 0; i < 1000; ++i) {
    rows.push_back(float(i % 100) / 10.f);
    rows.push_back(float(i % 7));
  }
  REQUIRE(b.add(rows, 1000).is_ok());
  return b.build();
}

std::unique_ptr<keel::ScoringEngine> anomaly_engine(keel::AnomalyPolicy policy,
                                                    std::shared_ptr<keel::test::LinearTestModel> primary,
                                                    std::shared_ptr<keel::test::LinearTestModel> backup) {
  keel::AnomalyOptions o;
  o.policy = policy;
  auto det = std::make_shared<keel::AnomalyDetector>(two_feature_profile(), o);
  return keel::EngineBuilder()
      .model("primary", primary)
      .model("backup", backup)
      .stage("primary")
      .stage("backup")
      .anomaly(det)
      .build();
}

}  // namespace

TEST_CASE("engine: anomalous rows are flagged, rejected or routed by policy", "[engine][anomaly]") {
  auto primary = linear({1.f, 1.f}, 0.f, "p");
  auto backup = linear({0.f, 0.f}, 7.f, "b");
  std::vector<float> normal{5.f, 3.f};
  std::vector<float> odd{500.f, 3.f};  // far outside the profile's [0, 9.9]
  SECTION("flag") {
    auto e = anomaly_engine(keel::AnomalyPolicy::kFlag, primary, backup);
    auto r = e->score(req(odd));
    REQUIRE(r.ok());
    CHECK(r->anomaly);
    CHECK(r->anomaly_score >= 1.0);
    CHECK_THAT(r->anomaly_reason, Catch::Contains("'x'"));
    CHECK(r->stage == "primary");
    CHECK_FALSE(e->score(req(normal))->anomaly);
  }
  SECTION("reject") {
    auto e = anomaly_engine(keel::AnomalyPolicy::kReject, primary, backup);
    auto r = e->score(req(odd));
    CHECK(r.code() == keel::StatusCode::kInvalidInput);
    CHECK_THAT(r.status().message(), Catch::Contains("anomaly") && Catch::Contains("'x'"));
    CHECK(e->score(req(normal)).ok());
    CHECK_THAT(e->metrics_text(), Catch::Contains("keel_anomalies_rejected_total{engine=\"default\"} 1"));
  }
  SECTION("route past the primary, single rows and batches") {
    auto e = anomaly_engine(keel::AnomalyPolicy::kRoute, primary, backup);
    primary->reset_counts();
    auto r = e->score(req(odd));
    REQUIRE(r.ok());
    CHECK(r->stage == "backup");
    CHECK(r->degraded);
    CHECK(r->scores[0] == 7.f);
    CHECK_THAT(r->degraded_reason, Catch::Contains("anomalous"));
    CHECK(primary->calls == 0);
    std::vector<float> data{5.f, 3.f, 500.f, 3.f, 1.f, 1.f};
    keel::BatchResult out;
    REQUIRE(e->score_batch({data, 3, 2}, out).is_ok());
    CHECK(out.stage == std::vector<std::uint8_t>{0, 1, 0});
    CHECK(out.row_scores(0)[0] == 8.f);
    CHECK(out.row_scores(1)[0] == 7.f);
    CHECK(out.anomaly[1] == 1);
    CHECK(out.degraded == 1);
    CHECK(primary->rows_scored == 2);
  }
}

TEST_CASE("engine: drift gauges are exported from the monitor", "[engine][drift]") {
  auto monitor = std::make_shared<keel::DriftMonitor>(two_feature_profile());
  auto e = keel::EngineBuilder().model("primary", linear({1.f, 1.f}, 0.f)).stage("primary").drift(monitor).build();
  std::vector<float> data;
  for (int i = 0; i < 200; ++i) {
    data.push_back(50.f + float(i));  // x shifted far away
    data.push_back(float(i % 7));
  }
  keel::BatchResult out;
  REQUIRE(e->score_batch({data, 200, 2}, out).is_ok());
  const auto snap = monitor->snapshot();
  REQUIRE(snap.features.size() == 2);
  CHECK(snap.features[0].psi > 0.25);
  CHECK(snap.features[1].psi < 0.25);
  CHECK_THAT(e->metrics_text(), Catch::Contains("feature=\"x\""));
}

TEST_CASE("engine: a batch honours an isolated stage's attempt timeout, as a single request does",
          "[engine][batch][isolation]") {
  // The case: a primary that takes 200 ms, isolated with a 10 ms
  // attempt timeout, then a default. Before the one request path, score()
  // answered from the default while score_batch() waited for the primary.
  // Real time (a late result is dropped; no timing is asserted).
  keel::FaultConfig slow;
  slow.latency = 200ms;
  auto primary = std::make_shared<keel::FaultInjector>(linear({1.f, 1.f}, 0.f), slow, 1);
  keel::StageOptions o;
  o.isolation = keel::Isolation::kIsolated;
  o.executor = std::make_shared<keel::BoundedExecutor>(keel::ExecutorConfig{2, 8});
  o.attempt_timeout = 10ms;
  auto engine = keel::EngineBuilder()
                    .model("primary", primary)
                    .stage("primary", o)
                    .default_scores({0.25f})
                    .canary_timeout(2s)
                    .build();
  std::vector<float> row{1.f, 2.f};
  auto single = engine->score(req(row));
  REQUIRE(single.ok());
  CHECK(single->stage == "default");
  CHECK_THAT(single->degraded_reason, Catch::Contains("primary: deadline_exceeded"));
  const std::vector<float> data{1.f, 2.f, 3.f, 4.f};
  keel::BatchResult out;
  REQUIRE(engine->score_batch({data, 2, 2}, out).is_ok());
  for (std::size_t r = 0; r < 2; ++r) {
    CHECK(out.stage[r] == 1);
    CHECK(out.row_scores(r)[0] == 0.25f);
    CHECK(out.degraded_reason[r] == single->degraded_reason);
  }
  CHECK(engine->chain()->stats().stages[0].timeouts == 3);  // rows: one single, two in the batch
}
