// Float64 requests through the engine (BatchView::values64,
// Request::features64): a LightGBM model compares double(x) <= threshold,
// so rows sitting on its thresholds score differently once narrowed to
// float. Every part of the request path must keep the doubles for the
// models: the chain (inline and isolated), a FaultInjector around the
// model, the cache key, idempotency, validator fixes and reason codes.

#include <keel/keel.hpp>

#include "unit/lightgbm_threshold_rows.hpp"

#include <catch2/catch.hpp>

#include <bit>
#include <cstring>
#include <string>
#include <vector>

namespace {

const std::string kModel = std::string(KEEL_TEST_DATA_DIR) + "/lightgbm/binary.model.txt";

using keel::testing::ThresholdRows;
bool same_bits(float a, float b) { return keel::testing::same_float_bits(a, b); }
ThresholdRows edge_rows() { return keel::testing::threshold_rows(kModel); }

}  // namespace

TEST_CASE("engine float64: rows keep their doubles through the chain, inline, isolated and fault-wrapped",
          "[engine][float64]") {
  const ThresholdRows e = edge_rows();
  INFO(e.n << " threshold rows, " << e.differ << " score differently once narrowed");
  // The rows must tell the two paths apart, or this test proves nothing.
  REQUIRE(e.differ > 0);

  auto check = [&](keel::ScoringEngine& engine) {
    keel::BatchResult out;
    keel::BatchView v;
    v.values64 = e.rows64;
    v.rows = e.n;
    v.cols = e.F;
    REQUIRE(engine.score_batch(v, out).is_ok());
    REQUIRE(out.failed == 0);
    for (std::size_t r = 0; r < e.n; ++r) {
      INFO("row " << r);
      CHECK(same_bits(out.scores[r], e.want64[r]));
    }
    // score(): a batch of one, the same answers.
    for (std::size_t r = 0; r < e.n; ++r) {
      keel::Request req;
      req.features64 = std::span<const double>(e.rows64).subspan(r * e.F, e.F);
      keel::Result<keel::Response> got = engine.score(req);
      REQUIRE(got.ok());
      INFO("score() row " << r);
      CHECK(same_bits(got->scores[0], e.want64[r]));
    }
    // The float rows still score as floats.
    keel::BatchResult f32;
    REQUIRE(engine.score_batch({e.narrowed, e.n, e.F}, f32).is_ok());
    for (std::size_t r = 0; r < e.n; ++r) CHECK(same_bits(f32.scores[r], e.want32[r]));
  };

  SECTION("inline") {
    auto engine = keel::EngineBuilder().model("primary", e.model).stage("primary").build();
    check(*engine);
  }
  SECTION("isolated on an executor") {
    keel::StageOptions o;
    o.isolation = keel::Isolation::kIsolated;
    o.executor = std::make_shared<keel::BoundedExecutor>(keel::ExecutorConfig{2, 8});
    auto engine = keel::EngineBuilder().model("primary", e.model).stage("primary", o).build();
    check(*engine);
  }
  SECTION("inside a FaultInjector (a drill that injects nothing)") {
    keel::FaultConfig fc;
    fc.enabled = false;
    auto wrapped = std::make_shared<keel::FaultInjector>(e.model, fc);
    auto engine = keel::EngineBuilder().model("primary", wrapped).stage("primary").build();
    check(*engine);
  }
  SECTION("strided rows") {
    const std::size_t stride = e.F + 3;
    std::vector<double> wide(e.n * stride, -7.0);
    for (std::size_t r = 0; r < e.n; ++r)
      std::memcpy(&wide[r * stride], &e.rows64[r * e.F], e.F * sizeof(double));
    auto engine = keel::EngineBuilder().model("primary", e.model).stage("primary").build();
    keel::BatchResult out;
    keel::BatchView v;
    v.values64 = wide;
    v.rows = e.n;
    v.cols = e.F;
    v.stride = stride;
    REQUIRE(engine->score_batch(v, out).is_ok());
    for (std::size_t r = 0; r < e.n; ++r) CHECK(same_bits(out.scores[r], e.want64[r]));
    v.values64 = std::span<const double>(wide).first(wide.size() - stride);
    CHECK(engine->score_batch(v, out).code() == keel::StatusCode::kInvalidInput);
  }
}

TEST_CASE("engine float64: the cache and idempotency key a row on its doubles", "[engine][float64][cache]") {
  const ThresholdRows e = edge_rows();
  REQUIRE(e.differ > 0);
  auto engine = keel::EngineBuilder()
                    .model("primary", e.model)
                    .stage("primary")
                    .cache(std::make_shared<keel::LruCache>())
                    .idempotency(std::make_shared<keel::InMemoryIdempotencyStore>())
                    .build();
  keel::BatchView v;
  v.values64 = e.rows64;
  v.rows = e.n;
  v.cols = e.F;
  keel::BatchResult first, second, f32;
  REQUIRE(engine->score_batch(v, first).is_ok());
  REQUIRE(engine->score_batch(v, second).is_ok());
  for (std::size_t r = 0; r < e.n; ++r) {
    INFO("row " << r);
    CHECK(second.cache_hit[r] == 1);
    CHECK(same_bits(second.scores[r], e.want64[r]));
  }
  // The narrowed rows are other keys: a float request never gets a
  // float64 row's cached answer (or the other way round).
  REQUIRE(engine->score_batch({e.narrowed, e.n, e.F}, f32).is_ok());
  for (std::size_t r = 0; r < e.n; ++r) {
    INFO("row " << r);
    CHECK(f32.cache_hit[r] == 0);
    CHECK(same_bits(f32.scores[r], e.want32[r]));
  }

  // Idempotency: the same id replays; the same id with the float rows is
  // another payload.
  keel::BatchResult a, b;
  REQUIRE(engine->score_batch(v, a, keel::Deadline::never(), {}, "req-64").is_ok());
  REQUIRE(engine->score_batch(v, b, keel::Deadline::never(), {}, "req-64").is_ok());
  for (std::size_t r = 0; r < e.n; ++r) CHECK(same_bits(b.scores[r], e.want64[r]));
  CHECK(engine->score_batch({e.narrowed, e.n, e.F}, b, keel::Deadline::never(), {}, "req-64").code() ==
        keel::StatusCode::kConflict);
}

TEST_CASE("engine float64: a validator's fix replaces only the values it changed", "[engine][float64][validate]") {
  const ThresholdRows e = edge_rows();
  REQUIRE(e.differ > 0);
  // Feature c is clamped to [lo, hi]; choose a c that no threshold row sets.
  keel::Schema schema = keel::Schema::from_model(e.model->info());
  std::size_t c = e.F - 1;
  schema.features[c].min = -1.f;
  schema.features[c].max = 1.f;
  schema.features[c].set_action(keel::Rule::kAboveMax, keel::Action::kClamp);
  auto engine = keel::EngineBuilder()
                    .model("primary", e.model)
                    .stage("primary")
                    .validator(std::make_shared<keel::SchemaValidator>(schema))
                    .build();
  std::vector<double> rows = e.rows64;
  std::vector<double> want_rows = e.rows64;
  for (std::size_t r = 0; r < e.n; ++r) {
    if (rows[r * e.F + c] != 0.1 * static_cast<double>(c + 1)) continue;  // the threshold row of feature c
    rows[r * e.F + c] = 250.0;  // clamped to 1
    want_rows[r * e.F + c] = 1.0;
  }
  std::vector<float> want(e.n);
  REQUIRE(e.model->predict(std::span<const double>(want_rows), e.n, std::span<float>(want)).is_ok());
  keel::BatchView v;
  v.values64 = rows;
  v.rows = e.n;
  v.cols = e.F;
  keel::BatchResult out;
  REQUIRE(engine->score_batch(v, out).is_ok());
  REQUIRE(out.failed == 0);
  std::size_t still_differ = 0;
  for (std::size_t r = 0; r < e.n; ++r) {
    INFO("row " << r);
    CHECK(same_bits(out.scores[r], want[r]));
    still_differ += !same_bits(want[r], e.want32[r]);
  }
  CHECK(still_differ > 0);  // the fix did not make the rows float rows
}

TEST_CASE("engine float64: reason codes explain the doubles and carry their values", "[engine][float64][explain]") {
  const ThresholdRows e = edge_rows();
  REQUIRE(e.differ > 0);
  auto engine = keel::EngineBuilder().model("primary", e.model).stage("primary").reason_codes(3).build();
  for (std::size_t r = 0; r < e.n; ++r) {
    const std::span<const double> row = std::span<const double>(e.rows64).subspan(r * e.F, e.F);
    std::vector<float> contribs((e.F + 1));
    REQUIRE(e.model->contributions(row, 1, std::span<float>(contribs)).is_ok());
    keel::Request req;
    req.features64 = row;
    keel::Result<keel::Response> got = engine->score(req);
    REQUIRE(got.ok());
    REQUIRE(!got->reasons.empty());
    for (const keel::Reason& reason : got->reasons) {
      INFO("row " << r << " feature " << reason.index);
      CHECK(std::bit_cast<std::uint64_t>(reason.value) == std::bit_cast<std::uint64_t>(row[reason.index]));
      CHECK(same_bits(reason.contribution, contribs[reason.index]));
    }
  }
}
