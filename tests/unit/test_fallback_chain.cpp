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
