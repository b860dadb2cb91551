#include <keel/resilience/guarded_call.hpp>
#include <keel/resilience/retry_policy.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

using namespace keel;
using namespace std::chrono_literals;

namespace {

RetryConfig plain(std::uint32_t attempts, Jitter j = Jitter::kNone) {
  RetryConfig c;
  c.max_attempts = attempts;
  c.initial_backoff = 10ms;
  c.multiplier = 2.0;
  c.max_backoff = 80ms;
  c.jitter = j;
  return c;
}

// Runs one guarded call whose attempts all return `error`; returns the attempts made.
std::uint32_t failing_call(RetryPolicy& retry, ManualClock& clock, const Status& error,
                           Deadline deadline = Deadline::never()) {
  auto breaker = CircuitBreaker::never_open();
  GuardedCallReport rep;
  const Status s =
      guarded_call(*breaker, retry, clock, deadline, clock.now(), Duration::max(), [&](Deadline) { return error; }, rep);
  CHECK(s.code() == error.code());
  return rep.attempts;
}

}  // namespace

TEST_CASE("retry: makes max_attempts attempts on a retryable error, backing off on the clock", "[resilience][retry]") {
  ManualClock clock(TimePoint{} + 1h, /*auto_advance=*/true);
  RetryPolicy retry(plain(4));
  const TimePoint t0 = clock.now();
  CHECK(failing_call(retry, clock, unavailable("down"), Deadline::never()) == 4);
  // No jitter: 10 + 20 + 40 ms of backoff between the four attempts.
  CHECK(clock.now() - t0 == 70ms);
  const RetryStats s = retry.stats();
  CHECK(s.requests == 1);
  CHECK(s.retries == 3);
  CHECK(s.attempts_exhausted == 1);
}

TEST_CASE("retry: a success ends the call", "[resilience][retry]") {
  ManualClock clock(TimePoint{} + 1h, true);
  RetryPolicy retry(plain(5));
  auto breaker = CircuitBreaker::never_open();
  int n = 0;
  GuardedCallReport rep;
  const Status s = guarded_call(*breaker, retry, clock, Deadline::never(), clock.now(), Duration::max(),
                                [&](Deadline) { return ++n < 3 ? overloaded("busy") : Status::ok(); }, rep);
  CHECK(s.is_ok());
  CHECK(rep.attempts == 3);
}

TEST_CASE("retry: no retry on a non-retryable error", "[resilience][retry]") {
  ManualClock clock(TimePoint{} + 1h, true);
  RetryPolicy retry(plain(5));
  CHECK(failing_call(retry, clock, model_error("corrupt")) == 1);
  CHECK(failing_call(retry, clock, invalid_input("row 0: bad")) == 1);
  // A code's default can be overridden by the Status.
  CHECK(failing_call(retry, clock, Status(StatusCode::kModelError, "transient", true)) == 5);
  CHECK(retry.stats().non_retryable == 2);
}

TEST_CASE("retry: backoff bounds for each jitter kind", "[resilience][retry]") {
  const Duration base[] = {10ms, 20ms, 40ms, 80ms, 80ms};  // capped at 80 ms
  SECTION("none") {
    RetryPolicy p(plain(10, Jitter::kNone));
    for (std::uint32_t n = 1; n <= 5; ++n) CHECK(p.backoff(n, 0ms) == base[n - 1]);
  }
  SECTION("full: uniform in [0, b]") {
    RetryPolicy p(plain(10, Jitter::kFull));
    for (std::uint32_t n = 1; n <= 5; ++n) {
      Duration lo = Duration::max(), hi = Duration::zero();
      for (int i = 0; i < 2000; ++i) {
        const Duration b = p.backoff(n, 0ms);
        REQUIRE(b >= 0ms);
        REQUIRE(b <= base[n - 1]);
        lo = std::min(lo, b);
        hi = std::max(hi, b);
      }
      CHECK(lo < base[n - 1] / 10);  // spread over the whole range
      CHECK(hi > base[n - 1] * 9 / 10);
    }
  }
  SECTION("equal: uniform in [b/2, b]") {
    RetryPolicy p(plain(10, Jitter::kEqual));
    for (std::uint32_t n = 1; n <= 5; ++n) {
      for (int i = 0; i < 2000; ++i) {
        const Duration b = p.backoff(n, 0ms);
        REQUIRE(b >= base[n - 1] / 2);
        REQUIRE(b <= base[n - 1]);
      }
    }
  }
  SECTION("decorrelated: uniform in [initial, 3 * previous], capped") {
    RetryPolicy p(plain(10, Jitter::kDecorrelated));
    Duration prev = 0ms;
    for (int i = 0; i < 5000; ++i) {
      const Duration b = p.backoff(static_cast<std::uint32_t>(i % 6 + 1), prev);
      REQUIRE(b >= 10ms);
      REQUIRE(b <= std::min<Duration>(80ms, 3 * std::max<Duration>(10ms, prev)));
      prev = b;
    }
  }
}

TEST_CASE("retry: jitter is reproducible for a seed", "[resilience][retry]") {
  RetryConfig c = plain(10, Jitter::kFull);
  c.seed = 42;
  RetryPolicy a(c), b(c);
  c.seed = 43;
  RetryPolicy other(c);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const Duration x = a.backoff(3, 0ms);
    CHECK(x == b.backoff(3, 0ms));
    differs = differs || x != other.backoff(3, 0ms);
  }
  CHECK(differs);
}

TEST_CASE("retry: never sleeps or schedules past the deadline", "[resilience][retry]") {
  ManualClock clock(TimePoint{} + 1h, true);
  RetryPolicy retry(plain(10));
  const TimePoint t0 = clock.now();
  const Deadline d = Deadline::after(45ms, clock);
  // Attempts at 0, 10, 30 ms; the next backoff (40 ms) would end at 70 > 45.
  CHECK(failing_call(retry, clock, deadline_exceeded("slow"), d) == 3);
  CHECK(clock.now() - t0 == 30ms);
  CHECK(clock.now() <= d.time());
  CHECK(retry.stats().deadline_stops == 1);
  // A backoff that would end exactly at the deadline is not taken either.
  RetryPolicy r2(plain(10));
  const RetryDecision at_edge = r2.next(unavailable("x"), 1, 0ms, Deadline::after(10ms, clock.now()), clock.now());
  CHECK_FALSE(at_edge.retry);
}

TEST_CASE("retry budget: under 100% failure total attempts stay within (1 + ratio) x requests", "[resilience][retry]") {
  ManualClock clock(TimePoint{} + 1h, true);
  RetryBudgetConfig bc;
  bc.ratio = 0.1;
  bc.min_retries_per_second = 0;  // no time-based reserve: the bound is exact
  auto budget = std::make_shared<RetryBudget>(bc, clock);
  RetryConfig rc = plain(3);
  rc.initial_backoff = 0ms;
  rc.max_backoff = 0ms;
  RetryPolicy retry(rc, budget);
  const int requests = 1000;
  std::uint64_t attempts = 0;
  for (int i = 0; i < requests; ++i) attempts += failing_call(retry, clock, unavailable("down"));
  CHECK(attempts <= static_cast<std::uint64_t>((1.0 + bc.ratio) * requests));
  CHECK(attempts >= requests + 90);  // the budget is spent, not just refused
  CHECK(retry.stats().budget_stops > 0);
  CHECK(budget->stats().withdrawals == attempts - requests);
}

TEST_CASE("retry budget: the reserve refills with time, up to its cap", "[resilience][retry]") {
  ManualClock clock;
  RetryBudgetConfig bc;
  bc.ratio = 0;
  bc.min_retries_per_second = 2;
  bc.max_tokens = 3;
  RetryBudget budget(bc, clock);
  CHECK(budget.try_withdraw());  // starts with one second's worth: 2
  CHECK(budget.try_withdraw());
  CHECK_FALSE(budget.try_withdraw());
  clock.advance(500ms);
  CHECK(budget.try_withdraw());
  CHECK_FALSE(budget.try_withdraw());
  clock.advance(1h);
  for (int i = 0; i < 3; ++i) CHECK(budget.try_withdraw());
  CHECK_FALSE(budget.try_withdraw());
  CHECK(budget.stats().exhausted == 3);
}

TEST_CASE("retry: a breaker rejection ends the call without retrying", "[resilience][retry]") {
  ManualClock clock(TimePoint{} + 1h, true);
  RetryPolicy retry(plain(5));
  CircuitBreaker breaker("b", {}, clock);
  breaker.force_open();
  GuardedCallReport rep;
  int ran = 0;
  const Status s = guarded_call(breaker, retry, clock, Deadline::never(), clock.now(), Duration::max(),
                                [&](Deadline) { ++ran; return Status::ok(); }, rep);
  CHECK(s.code() == StatusCode::kUnavailable);
  CHECK(rep.rejected);
  CHECK(rep.attempts == 0);
  CHECK(ran == 0);
}

TEST_CASE("retry: bad configuration throws", "[resilience][retry]") {
  RetryConfig c;
  c.max_attempts = 0;
  CHECK_THROWS_AS(RetryPolicy(c), Error);
  c = {};
  c.max_backoff = 0ms;
  CHECK_THROWS_AS(RetryPolicy(c), Error);
  RetryBudgetConfig b;
  b.ratio = -1;
  CHECK_THROWS_AS(RetryBudget(b), Error);
  CHECK(RetryPolicy::no_retry()->config().max_attempts == 1);
}
