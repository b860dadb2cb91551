#include <keel/resilience/circuit_breaker.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace keel;
using namespace std::chrono_literals;

namespace {

CircuitBreakerConfig small_config() {
  CircuitBreakerConfig c;
  c.window_size = 10;
  c.minimum_calls = 10;
  c.failure_rate_threshold = 0.5;
  c.wait_in_open = 1s;
  c.half_open_probes = 2;
  return c;
}

// One call with the given outcome; returns whether it was permitted.
bool call(CircuitBreaker& b, ManualClock& clock, StatusCode code, Duration took = 0ms) {
  const auto p = b.try_acquire(clock.now());
  if (!p) return false;
  b.record(p, code, took, clock.now());
  return true;
}

void calls(CircuitBreaker& b, ManualClock& clock, StatusCode code, int n, Duration took = 0ms) {
  for (int i = 0; i < n; ++i) REQUIRE(call(b, clock, code, took));
}

constexpr StatusCode kOk = StatusCode::kOk;
constexpr StatusCode kFail = StatusCode::kUnavailable;

}  // namespace

TEST_CASE("breaker: stays closed below the minimum number of calls", "[resilience][breaker]") {
  ManualClock clock;
  CircuitBreaker b("m", small_config(), clock);
  calls(b, clock, kFail, 9);  // 100 % failures, but only 9 calls
  CHECK(b.state() == BreakerState::kClosed);
  CHECK(b.stats().window_failures == 9);
  calls(b, clock, kFail, 1);
  CHECK(b.state() == BreakerState::kOpen);
}

TEST_CASE("breaker: opens exactly at the failure-rate threshold", "[resilience][breaker]") {
  ManualClock clock;
  CircuitBreaker b("m", small_config(), clock);
  calls(b, clock, kOk, 6);
  calls(b, clock, kFail, 4);  // 4/10 = 40 % < 50 %
  CHECK(b.state() == BreakerState::kClosed);
  calls(b, clock, kFail, 1);  // the window slides: 5 ok + 5 failed = 50 %
  CHECK(b.stats().window_calls == 10);
  CHECK(b.state() == BreakerState::kOpen);
  const BreakerStats s = b.stats();
  CHECK(s.failures == 5);
  CHECK(s.successes == 6);
  CHECK(s.transitions == 1);
}

TEST_CASE("breaker: opens exactly at the slow-call-rate threshold", "[resilience][breaker]") {
  ManualClock clock;
  CircuitBreakerConfig c = small_config();
  c.minimum_calls = 4;
  c.window_size = 4;
  c.slow_call_duration = 100ms;
  c.slow_call_rate_threshold = 0.5;
  CircuitBreaker b("m", c, clock);
  REQUIRE(b.measures_duration());
  calls(b, clock, kOk, 2, 5ms);
  calls(b, clock, kOk, 1, 100ms);  // slow but successful
  CHECK(b.state() == BreakerState::kClosed);
  calls(b, clock, kOk, 1, 99ms);   // just under: not slow, 1/4 slow
  CHECK(b.state() == BreakerState::kClosed);
  calls(b, clock, kOk, 1, 250ms);  // window: 5ms, 100ms, 99ms, 250ms -> 2/4 slow
  CHECK(b.state() == BreakerState::kOpen);
  CHECK(b.stats().slow_calls == 2);
  CHECK(b.stats().failures == 0);
}

TEST_CASE("breaker: rejects while open, then admits exactly N probes", "[resilience][breaker]") {
  ManualClock clock;
  CircuitBreaker b("scorer", small_config(), clock);
  calls(b, clock, kFail, 10);
  REQUIRE(b.state() == BreakerState::kOpen);
  CHECK_FALSE(b.try_acquire(clock.now()));
  clock.advance(999ms);
  CHECK_FALSE(b.try_acquire(clock.now()));
  CHECK(b.stats().rejections == 2);
  const Status r = b.rejection();
  CHECK(r.code() == StatusCode::kUnavailable);
  CHECK(r.retryable());
  CHECK(r.message().find("scorer") != std::string::npos);

  clock.advance(1ms);
  const auto p1 = b.try_acquire(clock.now());
  const auto p2 = b.try_acquire(clock.now());
  const auto p3 = b.try_acquire(clock.now());
  CHECK(b.state() == BreakerState::kHalfOpen);
  CHECK(p1.probe());
  CHECK(p2.probe());
  CHECK_FALSE(p3);
  // Giving a probe back (the call never ran) lets another caller probe.
  b.release(p2);
  const auto p4 = b.try_acquire(clock.now());
  CHECK(p4.probe());
  b.on_success(p1, clock.now());
  CHECK(b.state() == BreakerState::kHalfOpen);
  b.on_success(p4, clock.now());
  CHECK(b.state() == BreakerState::kClosed);
  CHECK(b.stats().window_calls == 0);  // closing starts a fresh window
}

TEST_CASE("breaker: a failed probe reopens, and the wait grows on repeated trips", "[resilience][breaker]") {
  ManualClock clock;
  CircuitBreakerConfig c = small_config();
  c.wait_multiplier = 2.0;
  c.max_wait_in_open = 3s;
  CircuitBreaker b("m", c, clock);
  calls(b, clock, kFail, 10);
  REQUIRE(b.state() == BreakerState::kOpen);

  clock.advance(1s);
  REQUIRE(call(b, clock, kFail));  // probe fails
  CHECK(b.state() == BreakerState::kOpen);
  clock.advance(1s);  // the second trip waits 2 s
  CHECK_FALSE(b.try_acquire(clock.now()));
  clock.advance(1s);
  REQUIRE(call(b, clock, kFail));
  CHECK(b.state() == BreakerState::kOpen);
  clock.advance(3s);  // 4 s capped at 3 s
  REQUIRE(call(b, clock, kOk));
  REQUIRE(call(b, clock, kOk));
  CHECK(b.state() == BreakerState::kClosed);
  // After closing, the next trip waits the base time again.
  calls(b, clock, kFail, 10);
  clock.advance(1s);
  CHECK(b.try_acquire(clock.now()).probe());
}

TEST_CASE("breaker: a slow probe counts as a failed probe", "[resilience][breaker]") {
  ManualClock clock;
  CircuitBreakerConfig c = small_config();
  c.slow_call_duration = 50ms;
  CircuitBreaker b("m", c, clock);
  calls(b, clock, kFail, 10);
  clock.advance(1s);
  REQUIRE(call(b, clock, kOk, 80ms));
  CHECK(b.state() == BreakerState::kOpen);
}

TEST_CASE("breaker: the time window forgets old outcomes", "[resilience][breaker]") {
  ManualClock clock;
  CircuitBreakerConfig c;
  c.window = CircuitBreakerConfig::Window::kTime;
  c.window_size = 10;  // seconds
  c.minimum_calls = 4;
  c.failure_rate_threshold = 0.5;
  CircuitBreaker b("m", c, clock);
  calls(b, clock, kFail, 3);
  CHECK(b.stats().window_calls == 3);
  clock.advance(11s);  // those three are now outside the window
  CHECK(b.stats().window_calls == 0);
  calls(b, clock, kOk, 2);
  calls(b, clock, kFail, 1);
  CHECK(b.state() == BreakerState::kClosed);  // 3 calls < minimum
  clock.advance(5s);
  calls(b, clock, kFail, 1);  // 4 calls in the last 10 s, 2 failed
  CHECK(b.state() == BreakerState::kOpen);
}

TEST_CASE("breaker: ignored codes count as neither success nor failure", "[resilience][breaker]") {
  ManualClock clock;
  CircuitBreaker b("m", small_config(), clock);
  calls(b, clock, StatusCode::kInvalidInput, 50);
  calls(b, clock, StatusCode::kNotFound, 5);
  CHECK(b.stats().window_calls == 0);
  CHECK(b.stats().ignored == 55);
  CHECK(b.state() == BreakerState::kClosed);
  // A code outside both masks counts as a success.
  CircuitBreakerConfig c = small_config();
  c.failure_codes = code_mask({StatusCode::kUnavailable});
  CircuitBreaker only_unavailable("m2", c, clock);
  calls(only_unavailable, clock, StatusCode::kModelError, 10);
  CHECK(only_unavailable.state() == BreakerState::kClosed);
  CHECK(only_unavailable.stats().successes == 10);
}

TEST_CASE("breaker: outcomes of permits from before a transition are not counted", "[resilience][breaker]") {
  ManualClock clock;
  CircuitBreaker b("m", small_config(), clock);
  const auto stale = b.try_acquire(clock.now());
  calls(b, clock, kFail, 10);
  REQUIRE(b.state() == BreakerState::kOpen);
  b.reset();
  b.record(stale, kFail, 0ms, clock.now());
  CHECK(b.stats().window_calls == 0);
  CHECK(b.stats().failures == 11);  // still in the totals
}

TEST_CASE("breaker: forced-open, disabled, reset and listeners", "[resilience][breaker]") {
  ManualClock clock;
  CircuitBreaker b("m", small_config(), clock);
  std::vector<std::string> seen;
  b.add_listener([&](const CircuitBreaker& cb, BreakerState from, BreakerState to) {
    seen.push_back(cb.name() + ":" + std::string(to_string(from)) + "->" + std::string(to_string(to)));
  });
  b.force_open();
  CHECK_FALSE(b.try_acquire(clock.now()));
  clock.advance(1h);
  CHECK_FALSE(b.try_acquire(clock.now()));  // forced open never probes
  b.disable();
  calls(b, clock, kFail, 100);  // disabled: everything passes, nothing trips
  CHECK(b.state() == BreakerState::kDisabled);
  CHECK(b.stats().window_calls == 0);
  b.reset();
  calls(b, clock, kFail, 10);
  clock.advance(1s);
  calls(b, clock, kOk, 2);
  CHECK(seen == std::vector<std::string>{"m:closed->forced_open", "m:forced_open->disabled", "m:disabled->closed",
                                         "m:closed->open", "m:open->half_open", "m:half_open->closed"});
  CHECK(b.stats().transitions == 6);
}

TEST_CASE("breaker: never_open is the null object", "[resilience][breaker]") {
  auto b = CircuitBreaker::never_open("x");
  for (int i = 0; i < 1000; ++i) {
    const auto p = b->try_acquire();
    REQUIRE(p);
    b->record(p, kFail, 0ms, TimePoint{});
  }
  CHECK(b->state() == BreakerState::kDisabled);
  CHECK(b->stats().failures == 1000);
}

TEST_CASE("breaker: bad configuration throws, naming the field", "[resilience][breaker]") {
  auto throws_with = [](CircuitBreakerConfig c, const std::string& field) {
    try {
      CircuitBreaker b("cfg", c);
      FAIL("no throw for " << field);
    } catch (const Error& e) {
      CHECK(e.status().code() == StatusCode::kInvalidInput);
      CHECK(std::string(e.what()).find(field) != std::string::npos);
    }
  };
  CircuitBreakerConfig c;
  c.failure_rate_threshold = 0;
  throws_with(c, "failure_rate_threshold");
  c = {};
  c.window_size = 0;
  throws_with(c, "window_size");
  c = {};
  c.half_open_probes = 0;
  throws_with(c, "half_open_probes");
  c = {};
  c.wait_multiplier = 0.5;
  throws_with(c, "wait_multiplier");
  c = {};
  c.ignored_codes = code_mask({StatusCode::kUnavailable});
  throws_with(c, "ignored_codes");
}
