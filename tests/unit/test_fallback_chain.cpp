#include <keel/resilience/fallback_chain.hpp>
#include <keel/resilience/fault_injector.hpp>

#include "support/fake_models.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

using namespace keel;
using namespace std::chrono_literals;

namespace {

const std::vector<float> kRow = {1.0f, 2.0f};

struct Fixture {
  ManualClock clock{TimePoint{} + 1h, /*auto_advance=*/true};
  std::shared_ptr<test::ConstModel> primary_model = test::const_model(0.9f, "primary");
  std::shared_ptr<FaultInjector> primary = std::make_shared<FaultInjector>(primary_model, FaultConfig{}, 7, clock);
  std::shared_ptr<test::ConstModel> fallback = test::const_model(0.4f, "fallback");
  std::vector<float> out = std::vector<float>(1, -1.0f);

  FallbackChain make(StageOptions primary_opts = {}, bool with_default = true) {
    std::vector<Stage> stages{model_stage("primary", primary, std::move(primary_opts)),
                              model_stage("fallback", fallback)};
    if (with_default) stages.push_back(default_stage({0.5f}));
    return FallbackChain(std::move(stages), clock);
  }
};

// The single failure reason of a run answered by stage 1.
StatusCode fell_back_because(Result<ChainOutcome>& r, const std::vector<float>& out) {
  REQUIRE(r.ok());
  CHECK(r->stage == 1);
  CHECK(r->stage_name == "fallback");
  CHECK(r->degraded);
  CHECK(out[0] == 0.4f);
  REQUIRE(r->failures.size() == 1);
  CHECK(r->failures[0].name == "primary");
  CHECK(r->reason().rfind("primary: ", 0) == 0);
  return r->failures[0].status.code();
}

}  // namespace

TEST_CASE("chain: a healthy primary answers, not degraded", "[resilience][chain]") {
  Fixture f;
  FallbackChain chain = f.make();
  auto r = chain.run(kRow, f.out);
  REQUIRE(r.ok());
  CHECK(r->stage == 0);
  CHECK(r->stage_name == "primary");
  CHECK_FALSE(r->degraded);
  CHECK(r->attempts == 1);
  CHECK(r->failures.empty());
  CHECK(r->reason().empty());
  CHECK(f.out[0] == 0.9f);
  CHECK(f.fallback->calls() == 0);
}

TEST_CASE("chain: each stage failure mode falls to the next stage", "[resilience][chain]") {
  Fixture f;
  SECTION("breaker open") {
    StageOptions o;
    o.breaker = std::make_shared<CircuitBreaker>("primary", CircuitBreakerConfig{}, f.clock);
    o.breaker->force_open();
    FallbackChain chain = f.make(o);
    auto r = chain.run(kRow, f.out);
    CHECK(fell_back_because(r, f.out) == StatusCode::kUnavailable);
    CHECK(f.primary_model->calls() == 0);
    CHECK(chain.stats().stages[0].breaker_rejections == 1);
  }
  SECTION("bulkhead full") {
    StageOptions o;
    BulkheadConfig bc;
    bc.max_concurrent = 1;
    o.bulkhead = std::make_shared<Bulkhead>("primary", bc, f.clock);
    FallbackChain chain = f.make(o);
    Bulkhead::Permit held = o.bulkhead->try_acquire();
    auto r = chain.run(kRow, f.out);
    CHECK(fell_back_because(r, f.out) == StatusCode::kOverloaded);
    CHECK(chain.stats().stages[0].bulkhead_rejections == 1);
    held.release();
    auto again = chain.run(kRow, f.out);
    CHECK(again->stage == 0);
  }
  SECTION("model error") {
    f.primary->fail_next(1, StatusCode::kModelError);
    FallbackChain chain = f.make();
    auto r = chain.run(kRow, f.out);
    CHECK(fell_back_because(r, f.out) == StatusCode::kModelError);
    CHECK(chain.stats().stages[0].errors == 1);
  }
  SECTION("NaN output") {
    f.primary->nan_next(1);
    FallbackChain chain = f.make();
    auto r = chain.run(kRow, f.out);
    CHECK(fell_back_because(r, f.out) == StatusCode::kModelError);
    CHECK(r->failures[0].status.message().find("NaN") != std::string::npos);
    CHECK(chain.stats().stages[0].non_finite == 1);
  }
  SECTION("infinite output") {
    auto inf_model = test::const_model(INFINITY, "inf");
    FallbackChain chain({model_stage("primary", inf_model), model_stage("fallback", f.fallback)}, f.clock);
    auto r = chain.run(kRow, f.out);
    CHECK(fell_back_because(r, f.out) == StatusCode::kModelError);
    CHECK(r->failures[0].status.message().find("infinite") != std::string::npos);
  }
  SECTION("retryable errors exhaust the retries") {
    f.primary->fail_next(3, StatusCode::kUnavailable);
    StageOptions o;
    RetryConfig rc;
    rc.max_attempts = 3;
    o.retry = std::make_shared<RetryPolicy>(rc);
    FallbackChain chain = f.make(o);
    auto r = chain.run(kRow, f.out);
    CHECK(fell_back_because(r, f.out) == StatusCode::kUnavailable);
    CHECK(r->attempts == 4);  // three on the primary, one on the fallback
  }
  SECTION("deadline already passed: the model stages are skipped, the default answers") {
    FallbackChain chain = f.make();
    const Deadline past = Deadline::after(-1ms, f.clock);
    auto r = chain.run(kRow, f.out, past);
    REQUIRE(r.ok());
    CHECK(r->stage_name == "default");
    CHECK(f.out[0] == 0.5f);
    REQUIRE(r->failures.size() == 2);
    CHECK(r->failures[0].status.code() == StatusCode::kDeadlineExceeded);
    CHECK(r->attempts == 0);
    CHECK(f.primary_model->calls() == 0);
    CHECK(chain.stats().stages[0].deadline_skips == 1);
  }
}

TEST_CASE("chain: a retry that succeeds keeps the answer on the primary", "[resilience][chain]") {
  Fixture f;
  f.primary->fail_next(1, StatusCode::kOverloaded);
  StageOptions o;
  o.retry = std::make_shared<RetryPolicy>(RetryConfig{});
  FallbackChain chain = f.make(o);
  auto r = chain.run(kRow, f.out);
  REQUIRE(r.ok());
  CHECK(r->stage == 0);
  CHECK_FALSE(r->degraded);
  CHECK(r->attempts == 2);
  CHECK(f.out[0] == 0.9f);
}

TEST_CASE("chain: the default answers when every model stage fails", "[resilience][chain]") {
  Fixture f;
  auto broken_fallback = std::make_shared<FaultInjector>(f.fallback, FaultConfig{}, 1, f.clock);
  f.primary->fail_next(1, StatusCode::kInternal);
  broken_fallback->nan_next(1);
  FallbackChain chain({model_stage("primary", f.primary), model_stage("fallback", broken_fallback),
                       default_stage({0.5f}, "prior")},
                      f.clock);
  auto r = chain.run(kRow, f.out);
  REQUIRE(r.ok());
  CHECK(r->stage == 2);
  CHECK(r->stage_name == "prior");
  CHECK(r->degraded);
  CHECK(f.out[0] == 0.5f);
  CHECK(r->attempts == 2);
  const std::string why = r->reason();
  CHECK(why.find("primary: internal") != std::string::npos);
  CHECK(why.find("fallback: model_error") != std::string::npos);
  const ChainStats s = chain.stats();
  CHECK(s.requests == 1);
  CHECK(s.degraded == 1);
  CHECK(s.failed == 0);
  CHECK(s.stages[2].answered == 1);
}

TEST_CASE("chain: with no default, all stages failing is an error naming each", "[resilience][chain]") {
  Fixture f;
  auto broken_fallback = std::make_shared<FaultInjector>(f.fallback, FaultConfig{}, 1, f.clock);
  f.primary->fail_next(1, StatusCode::kUnavailable);
  broken_fallback->fail_next(1, StatusCode::kOverloaded);
  FallbackChain chain({model_stage("primary", f.primary), model_stage("fallback", broken_fallback)}, f.clock);
  auto r = chain.run(kRow, f.out);
  REQUIRE_FALSE(r.ok());
  CHECK(r.code() == StatusCode::kOverloaded);
  CHECK(r.status().message().find("primary: unavailable") != std::string::npos);
  CHECK(r.status().message().find("fallback: overloaded") != std::string::npos);
  CHECK(chain.stats().failed == 1);
}

TEST_CASE("chain: the breaker trips, the fallback takes over, the primary recovers", "[resilience][chain]") {
  Fixture f;
  f.clock.set_auto_advance(false);
  CircuitBreakerConfig bc;
  bc.window_size = 4;
  bc.minimum_calls = 4;
  bc.wait_in_open = 1s;
  bc.half_open_probes = 1;
  StageOptions o;
  o.breaker = std::make_shared<CircuitBreaker>("primary", bc, f.clock);
  std::vector<std::string> transitions;
  o.breaker->add_listener([&](const CircuitBreaker&, BreakerState, BreakerState to) {
    transitions.emplace_back(to_string(to));
  });
  FallbackChain chain = f.make(o);
  f.primary->fail_next(4, StatusCode::kUnavailable);
  for (int i = 0; i < 4; ++i) CHECK(chain.run(kRow, f.out)->stage == 1);
  CHECK(o.breaker->state() == BreakerState::kOpen);
  for (int i = 0; i < 3; ++i) CHECK(chain.run(kRow, f.out)->stage == 1);
  CHECK(f.primary->stats().calls == 4);  // open: not called
  f.clock.advance(1s);
  auto r = chain.run(kRow, f.out);  // the probe succeeds
  CHECK(r->stage == 0);
  CHECK(o.breaker->state() == BreakerState::kClosed);
  CHECK(transitions == std::vector<std::string>{"open", "half_open", "closed"});
}

TEST_CASE("chain: bad input is the caller's error, not a stage failure", "[resilience][chain]") {
  Fixture f;
  FallbackChain chain = f.make();
  const std::vector<float> short_row = {1.0f};
  auto r = chain.run(short_row, f.out);
  CHECK(r.code() == StatusCode::kInvalidInput);
  CHECK(r.status().message().find("1 features") != std::string::npos);
  std::vector<float> no_room;
  CHECK(chain.run(kRow, no_room).code() == StatusCode::kInvalidInput);
  CHECK(chain.stats().requests == 0);
}

TEST_CASE("chain: configuration errors throw at construction", "[resilience][chain]") {
  Fixture f;
  auto throws_with = [&](std::vector<Stage> stages, const std::string& text) {
    try {
      FallbackChain chain(std::move(stages), f.clock);
      FAIL("no throw: " << text);
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find(text) != std::string::npos);
    }
  };
  throws_with({}, "no stages");
  throws_with({default_stage({0.5f}), model_stage("m", f.fallback)}, "must be the last");
  throws_with({model_stage("m", f.fallback), default_stage({0.5f, 0.5f})}, "default has 2 scores");
  throws_with({model_stage("m", f.fallback), model_stage("m", f.fallback)}, "duplicate name");
  throws_with({model_stage("a", f.fallback), model_stage("b", test::const_model(1, "wide", 3))}, "writes 3 outputs");
  StageOptions iso;
  iso.isolation = Isolation::kIsolated;
  throws_with({model_stage("m", f.fallback, iso)}, "no executor");
  StageOptions inline_timeout;
  inline_timeout.attempt_timeout = 5ms;
  throws_with({model_stage("m", f.fallback, inline_timeout)}, "needs isolation");
  throws_with({model_stage("m", nullptr)}, "neither a model");
  throws_with({model_stage("m", f.fallback), default_stage({NAN})}, "finite");
}

TEST_CASE("chain: null policies are filled in", "[resilience][chain]") {
  Fixture f;
  FallbackChain chain = f.make();
  const Stage& s = chain.stage(0);
  REQUIRE(s.options.breaker);
  REQUIRE(s.options.retry);
  REQUIRE(s.options.bulkhead);
  CHECK(s.options.breaker->state() == BreakerState::kDisabled);
  CHECK(s.options.retry->config().max_attempts == 1);
  CHECK(chain.width() == 1);
  CHECK(chain.num_features() == 2);
}

namespace {

// NaN for rows whose first feature is negative; every call fails while
// `down` is set. Counts calls. Thread-safe enough for one test thread.
class RowNanModel final : public Model {
 public:
  RowNanModel() {
    info_.id = "rows";
    info_.num_features = 2;
    info_.features.resize(2);
    info_.num_outputs = info_.num_margin_outputs = 1;
  }
  [[nodiscard]] const ModelInfo& info() const noexcept override { return info_; }
  [[nodiscard]] Status predict(std::span<const float> rows, std::size_t n, std::span<float> out,
                               const PredictOptions& opts = {}) const noexcept override {
    if (Status s = check_shapes(rows.size(), n, out.size(), opts); !s) return s;
    ++calls;
    if (down) return unavailable("rows: down");
    for (std::size_t r = 0; r < n; ++r) out[r] = rows[r * 2] < 0 ? std::nanf("") : rows[r * 2];
    return Status::ok();
  }
  using Model::predict;
  bool down = false;
  mutable int calls = 0;

 private:
  ModelInfo info_;
};

}  // namespace

TEST_CASE("chain: a batch is one model call and one breaker outcome; stats count rows", "[resilience][chain]") {
  ManualClock clock;
  auto model = std::make_shared<RowNanModel>();
  CircuitBreakerConfig bc;
  bc.window_size = 4;
  bc.minimum_calls = 2;
  bc.failure_rate_threshold = 0.6;
  auto breaker = std::make_shared<CircuitBreaker>("rows", bc, clock);
  StageOptions o;
  o.breaker = breaker;
  FallbackChain chain({model_stage("rows", model, o), default_stage({-1.f})}, clock);
  // Eight rows, three of them NaN on the model.
  const std::vector<float> rows = {1, 0, -1, 0, 2, 0, 3, 0, -2, 0, 4, 0, 5, 0, -3, 0};
  const std::vector<std::uint32_t> all = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<float> out(8);
  ChainRows res;

  // Some rows finite: the call succeeded (one success), the NaN rows fall
  // to the default on their own.
  REQUIRE(chain.run_rows(rows, 8, all, out, Deadline::never(), clock.now(), res).is_ok());
  CHECK(model->calls == 1);
  CHECK(breaker->stats().calls == 1);
  CHECK(breaker->stats().successes == 1);
  CHECK(res.stage == std::vector<std::uint8_t>{0, 1, 0, 0, 1, 0, 0, 1});
  CHECK(out[1] == -1.f);
  CHECK(out[2] == 2.f);
  CHECK(res.attempts[0] == 1);
  CHECK(res.failures.size() == 3);
  ChainStats s = chain.stats();
  CHECK(s.requests == 8);
  CHECK(s.degraded == 3);
  CHECK(s.stages[0].calls == 1);
  CHECK(s.stages[0].entered == 8);
  CHECK(s.stages[0].answered == 5);
  CHECK(s.stages[0].non_finite == 3);
  CHECK(s.stages[1].entered == 3);

  // Every row NaN: the call is one failure.
  const std::vector<float> bad = {-1, 0, -2, 0};
  const std::vector<std::uint32_t> two = {0, 1};
  REQUIRE(chain.run_rows(bad, 2, two, std::span<float>(out).first(2), Deadline::never(), clock.now(), res).is_ok());
  CHECK(breaker->stats().failures == 1);
  CHECK(breaker->state() == BreakerState::kClosed);  // 1 of 2 calls failed: below 0.6
  CHECK(chain.stats().stages[0].non_finite == 5);

  // An erring call is one failure however many rows it carried: with the
  // window at 1 success + 2 failures the breaker opens, and the next batch
  // is rejected as a whole (one rejection), every row on the default.
  model->down = true;
  REQUIRE(chain.run_rows(rows, 8, all, out, Deadline::never(), clock.now(), res).is_ok());
  CHECK(breaker->stats().failures == 2);
  CHECK(breaker->state() == BreakerState::kOpen);
  CHECK(chain.stats().stages[0].errors == 8);  // rows
  const int calls = model->calls;
  REQUIRE(chain.run_rows(rows, 8, all, out, Deadline::never(), clock.now(), res).is_ok());
  CHECK(model->calls == calls);
  CHECK(breaker->stats().rejections == 1);
  CHECK(chain.stats().stages[0].breaker_rejections == 8);
  CHECK(res.stage == std::vector<std::uint8_t>(8, 1));
  s = chain.stats();
  CHECK(s.requests == 26);
  CHECK(s.stages[0].calls == 4);
  CHECK(s.failed == 0);
}

TEST_CASE("chain: run_rows starts routed rows at their first stage and checks its arguments", "[resilience][chain]") {
  ManualClock clock;
  auto model = std::make_shared<RowNanModel>();
  FallbackChain chain({model_stage("rows", model), default_stage({-1.f})}, clock);
  const std::vector<float> rows = {1, 0, 2, 0, 3, 0};
  std::vector<float> out(3, 0.f);
  ChainRows res;
  const std::vector<std::uint32_t> pending = {0, 2};  // row 1 already answered (e.g. a cache hit)
  const std::vector<std::uint8_t> first = {0, 0, 1};
  REQUIRE(chain.run_rows(rows, 3, pending, out, Deadline::never(), clock.now(), res, first).is_ok());
  CHECK(res.stage == std::vector<std::uint8_t>{0, ChainRows::kNoStage, 1});
  CHECK(out == std::vector<float>{1.f, 0.f, -1.f});
  CHECK(res.attempts[2] == 0);
  CHECK(chain.stats().stages[0].entered == 1);

  const std::vector<std::uint32_t> unsorted = {2, 0};
  CHECK(chain.run_rows(rows, 3, unsorted, out, Deadline::never(), clock.now(), res).code() ==
        StatusCode::kInvalidInput);
  const std::vector<std::uint8_t> past = {0, 0, 2};
  CHECK(chain.run_rows(rows, 3, pending, out, Deadline::never(), clock.now(), res, past).code() ==
        StatusCode::kInvalidInput);
  CHECK(chain.run_rows(std::span<const float>(rows).first(4), 3, pending, out, Deadline::never(), clock.now(), res)
            .code() == StatusCode::kInvalidInput);
}
