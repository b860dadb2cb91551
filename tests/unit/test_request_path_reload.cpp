// The request path across engines and reloads: what the cache may serve
// when only the calibration differs, and what chain()->stats() counts
// across a model reload.

#include <catch2/catch.hpp>

#include "unit/engine_test_util.hpp"

#include <keel/engine/scoring_engine.hpp>
#include <keel/model/loaders.hpp>

#include <cmath>
#include <string>

using keel::test::linear;

namespace {

keel::Request req(const std::vector<float>& row) {
  keel::Request r;
  r.features = row;
  return r;
}

keel::Postprocessor platt(double a, double b) {
  keel::Calibration c;
  c.kind = keel::Calibration::Kind::kPlatt;
  c.a = a;
  c.b = b;
  return keel::Postprocessor(c, std::nullopt, 0);
}

keel::Postprocessor isotonic(std::vector<double> x, std::vector<double> y) {
  keel::Calibration c;
  c.kind = keel::Calibration::Kind::kIsotonic;
  c.x = std::move(x);
  c.y = std::move(y);
  return keel::Postprocessor(c, std::nullopt, 0);
}

std::unique_ptr<keel::ScoringEngine> engine(const keel::ModelPtr& m, const std::shared_ptr<keel::Cache>& cache,
                                            std::optional<keel::Postprocessor> post) {
  keel::EngineBuilder b;
  b.model("primary", m).stage("primary").cache(cache);
  if (post) b.postprocess(*post);
  return b.build();
}

keel::ModelPtr load_fixture() {
  auto m = keel::load_model(std::string(KEEL_SOURCE_DIR) + "/tests/data/engine/backup_linear.json");
  REQUIRE(m.ok());
  REQUIRE_FALSE((*m)->info().content_id.empty());
  return *m;
}

}  // namespace

TEST_CASE("request path: a cache shared by engines that calibrate differently never serves the other's scores",
          "[engine][cache][postprocess]") {
  // The cache holds calibrated scores. Engines that differ only in their
  // postprocessor (a new config deployed over a shared cache, replicas
  // sharing one) must not read each other's entries; engines that agree
  // must still share them.
  auto cache = std::make_shared<keel::LruCache>();
  std::vector<float> row(10, 1.5f);

  SECTION("the same model object (in-memory identity), Platt a = -1 vs a = -2, and none") {
    auto m = linear({1.f}, 0.f, "lin");
    std::vector<float> one{2.f};
    auto a = engine(m, cache, platt(-1.0, 0.0));
    auto b = engine(m, cache, platt(-2.0, 0.0));
    auto raw = engine(m, cache, std::nullopt);
    auto a2 = engine(m, cache, platt(-1.0, 0.0));  // the same calibration as a

    auto ra = a->score(req(one));
    REQUIRE(ra.ok());
    CHECK_FALSE(ra->cache_hit);
    CHECK(ra->scores[0] == static_cast<float>(1.0 / (1.0 + std::exp(-2.0))));

    auto rb = b->score(req(one));
    REQUIRE(rb.ok());
    CHECK_FALSE(rb->cache_hit);
    CHECK(rb->scores[0] == static_cast<float>(1.0 / (1.0 + std::exp(-4.0))));

    auto rr = raw->score(req(one));
    REQUIRE(rr.ok());
    CHECK_FALSE(rr->cache_hit);
    CHECK(rr->scores[0] == 2.f);

    auto ra2 = a2->score(req(one));
    REQUIRE(ra2.ok());
    CHECK(ra2->cache_hit);  // same model, same calibration: a's entry
    CHECK(ra2->scores == ra->scores);
  }

  SECTION("a model file loaded by each engine (content identity), isotonic tables that differ in one point") {
    auto a = engine(load_fixture(), cache, isotonic({-10.0, 0.0, 10.0}, {0.0, 0.5, 1.0}));
    auto b = engine(load_fixture(), cache, isotonic({-10.0, 0.0, 10.0}, {0.0, 0.25, 1.0}));
    auto ra = a->score(req(row));
    auto rb = b->score(req(row));
    REQUIRE(ra.ok());
    REQUIRE(rb.ok());
    CHECK_FALSE(ra->cache_hit);
    CHECK_FALSE(rb->cache_hit);
    CHECK(ra->scores != rb->scores);
    // Each finds its own entry.
    auto ra2 = a->score(req(row));
    auto rb2 = b->score(req(row));
    CHECK(ra2->cache_hit);
    CHECK(rb2->cache_hit);
    CHECK(ra2->scores == ra->scores);
    CHECK(rb2->scores == rb->scores);
  }

  SECTION("the batch path keys alike") {
    auto m = load_fixture();
    auto a = engine(m, cache, platt(-1.0, 0.0));
    auto b = engine(m, cache, platt(-1.0, 0.5));
    keel::BatchResult out;
    REQUIRE(a->score_batch({row, 1, 10}, out).is_ok());
    CHECK(out.cache_hit[0] == 0);
    const float from_a = out.scores[0];
    REQUIRE(b->score_batch({row, 1, 10}, out).is_ok());
    CHECK(out.cache_hit[0] == 0);
    CHECK(out.scores[0] != from_a);
  }
}

TEST_CASE("postprocessor: calibration_id names the calibration exactly", "[postprocess]") {
  CHECK(keel::Postprocessor().calibration_id().empty());
  const std::string p = platt(-1.0, 0.0).calibration_id();
  CHECK(p.size() == 4 + 32);
  CHECK(p.rfind("cal:", 0) == 0);
  CHECK(p == platt(-1.0, 0.0).calibration_id());  // the same in every engine and process
  CHECK(p != platt(-1.0, 1e-12).calibration_id());
  CHECK(p != platt(0.0, -1.0).calibration_id());
  const std::string i = isotonic({0.0, 1.0}, {0.0, 1.0}).calibration_id();
  CHECK(i != p);
  CHECK(i != isotonic({0.0, 1.0}, {0.0, 0.5}).calibration_id());
  CHECK(i != isotonic({0.0, 2.0}, {0.0, 1.0}).calibration_id());
}

TEST_CASE("request path: chain()->stats() counts across reloads, as the breaker stats inside it do",
          "[engine][reload][stats]") {
  auto m1 = linear({1.f}, 0.f, "lin");
  keel::StageOptions o;
  o.breaker = std::make_shared<keel::CircuitBreaker>("primary");
  auto e = keel::EngineBuilder().model("primary", m1).stage("primary", o).default_scores({0.f}).build();
  std::vector<float> row{2.f};
  auto score_n = [&](int n) {
    for (int i = 0; i < n; ++i) REQUIRE(e->score(req(row)).ok());
  };
  score_n(3);
  keel::BatchResult out;
  const std::vector<float> rows{1.f, 2.f};
  REQUIRE(e->score_batch({rows, 2, 1}, out).is_ok());
  const keel::ChainStats before = e->chain()->stats();
  CHECK(before.requests == 5);
  CHECK(before.stages[0].entered == 5);
  CHECK(before.stages[0].calls == 4);
  auto old_chain = e->chain();

  SECTION("a reload to another model") {
    REQUIRE(e->reload("primary", linear({3.f}, 0.f, "lin2")).ok());
  }
  SECTION("a reload of the same model") {
    REQUIRE(e->reload("primary", m1).ok());
  }
  score_n(2);
  const keel::ChainStats after = e->chain()->stats();
  CHECK(after.requests == 7);
  CHECK(after.stages[0].entered == 7);
  CHECK(after.stages[0].answered == 7);
  CHECK(after.stages[0].calls == 6);
  CHECK(after.stages[1].entered == 0);
  CHECK(after.failed == 0);
  // The breaker's own stats were never reset either: both views agree.
  CHECK(after.stages[0].breaker.successes == before.stages[0].breaker.successes + 2);
  // A chain taken before the last reload sees the same totals.
  CHECK(old_chain->stats().requests == 7);
}

TEST_CASE("request path: the per-thread snapshot pin follows reloads and keeps no model alive",
          "[engine][reload][snapshot]") {
  // score() pins the engine's snapshot through a per-thread cache of weak
  // references (SnapshotSlot::pin). A reload must be seen by the very next
  // call on the same thread, and neither a replaced model nor a destroyed
  // engine's may stay alive in that cache.
  auto first = std::make_shared<keel::test::LinearTestModel>(std::vector<float>{1.0f}, 0.0f, "first");
  std::weak_ptr<const keel::Model> first_alive = first;
  keel::EngineBuilder b;
  b.model("primary", first).stage("primary");
  auto e = b.build();
  const std::vector<float> row{2.0f};
  auto r1 = e->score(req(row));
  REQUIRE(r1.ok());
  CHECK(r1->scores[0] == 2.0f);
  CHECK(r1->model_id == "first");

  auto second = std::make_shared<keel::test::LinearTestModel>(std::vector<float>{3.0f}, 0.0f, "second");
  std::weak_ptr<const keel::Model> second_alive = second;
  REQUIRE(e->reload("primary", second).ok());
  auto r2 = e->score(req(row));
  REQUIRE(r2.ok());
  CHECK(r2->scores[0] == 6.0f);  // the reload is seen at once on this thread
  CHECK(r2->model_id == "second");
  first.reset();
  CHECK(first_alive.expired());  // the replaced model is gone, although this thread scored with it

  // Several engines on one thread, more than the cache remembers: each
  // call still gets its own engine's model.
  std::vector<std::unique_ptr<keel::ScoringEngine>> many;
  for (int i = 0; i < 7; ++i) {
    keel::EngineBuilder bi;
    bi.model("primary", std::make_shared<keel::test::LinearTestModel>(std::vector<float>{static_cast<float>(i)}, 0.0f))
        .stage("primary");
    many.push_back(bi.build());
  }
  for (int lap = 0; lap < 3; ++lap) {
    for (int i = 0; i < 7; ++i) {
      auto r = many[static_cast<std::size_t>(i)]->score(req(row));
      REQUIRE(r.ok());
      CHECK(r->scores[0] == 2.0f * static_cast<float>(i));
    }
  }

  second.reset();
  e.reset();
  CHECK(second_alive.expired());  // a destroyed engine's model is not kept by the pin cache
  // A new engine, possibly at the dead one's address, answers with its own model.
  keel::EngineBuilder b3;
  b3.model("primary", std::make_shared<keel::test::LinearTestModel>(std::vector<float>{5.0f}, 0.0f, "third"))
      .stage("primary");
  auto e3 = b3.build();
  auto r3 = e3->score(req(row));
  REQUIRE(r3.ok());
  CHECK(r3->scores[0] == 10.0f);
}
