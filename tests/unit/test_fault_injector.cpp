#include <keel/resilience/fault_injector.hpp>

#include "support/fake_models.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

using namespace keel;
using namespace std::chrono_literals;

namespace {

const std::vector<float> kRow = {1.0f, 2.0f};

// One call's outcome: the code, or "nan" (-1) for a NaN answer.
int outcome(const FaultInjector& m) {
  std::vector<float> out(1);
  const Status s = m.predict(kRow, 1, out);
  if (!s) return static_cast<int>(s.code());
  return std::isnan(out[0]) ? -1 : 0;
}

}  // namespace

TEST_CASE("fault injector: passes through with no faults", "[resilience][faults]") {
  auto inner = test::const_model(0.3f, "inner");
  FaultInjector m(inner);
  std::vector<float> out(1);
  CHECK(m.predict(kRow, 1, out).is_ok());
  CHECK(out[0] == 0.3f);
  CHECK(m.info().id == "inner");
  CHECK(m.stats().calls == 1);
  // Shape errors of the inner model come through.
  std::vector<float> wrong(3);
  CHECK(m.predict(kRow, 1, wrong).code() == StatusCode::kInvalidInput);
}

TEST_CASE("fault injector: error and NaN rates, seeded and reproducible", "[resilience][faults]") {
  FaultConfig c;
  c.error_rate = 0.3;
  c.error_code = StatusCode::kOverloaded;
  c.nan_rate = 0.1;
  FaultInjector a(test::const_model(1), c, 99);
  FaultInjector b(test::const_model(1), c, 99);
  int errors = 0, nans = 0;
  const int n = 10000;
  for (int i = 0; i < n; ++i) {
    const int oa = outcome(a);
    REQUIRE(oa == outcome(b));
    errors += oa == static_cast<int>(StatusCode::kOverloaded);
    nans += oa == -1;
  }
  CHECK(errors > n * 27 / 100);
  CHECK(errors < n * 33 / 100);
  CHECK(nans > n * 7 * 8 / 1000);  // 10 % of the 70 % that did not fail
  CHECK(nans < n * 7 * 12 / 1000);
  CHECK(a.stats().errors == static_cast<std::uint64_t>(errors));
  CHECK(a.stats().nans == static_cast<std::uint64_t>(nans));
}

TEST_CASE("fault injector: latency goes through the clock", "[resilience][faults]") {
  ManualClock clock(TimePoint{} + 1h, /*auto_advance=*/true);
  FaultConfig c;
  c.latency = 5ms;
  c.latency_jitter = 2ms;
  c.tail_rate = 1.0;
  c.tail_latency = 100ms;
  FaultInjector m(test::const_model(1), c, 1, clock);
  const TimePoint t0 = clock.now();
  CHECK(outcome(m) == 0);
  const Duration took = clock.now() - t0;
  CHECK(took >= 105ms);
  CHECK(took <= 107ms);
  m.delay_next(1, 1s);
  const TimePoint t1 = clock.now();
  CHECK(outcome(m) == 0);
  CHECK(clock.now() - t1 >= 1105ms);
}

TEST_CASE("fault injector: scripted faults, then back to normal; switchable at run time", "[resilience][faults]") {
  FaultInjector m(test::const_model(1));
  m.fail_next(2, StatusCode::kModelError);
  CHECK(outcome(m) == static_cast<int>(StatusCode::kModelError));
  CHECK(outcome(m) == static_cast<int>(StatusCode::kModelError));
  CHECK(outcome(m) == 0);
  m.nan_next(1);
  CHECK(outcome(m) == -1);
  CHECK(outcome(m) == 0);

  FaultConfig all_fail;
  all_fail.error_rate = 1.0;
  m.set_config(all_fail);
  CHECK(outcome(m) == static_cast<int>(StatusCode::kUnavailable));
  m.set_enabled(false);
  CHECK(outcome(m) == 0);
  m.fail_next(1, StatusCode::kInternal);  // scripts apply even when disabled
  CHECK(outcome(m) == static_cast<int>(StatusCode::kInternal));
  m.set_enabled(true);
  CHECK(outcome(m) == static_cast<int>(StatusCode::kUnavailable));
}

TEST_CASE("fault injector: a hang lasts until released or until its limit on the clock", "[resilience][faults]") {
  ManualClock clock;
  FaultConfig c;
  c.hang_limit = 10s;
  FaultInjector m(test::const_model(1), c, 1, clock);
  m.hang_next(2);
  std::atomic<int> first{-2};
  std::thread t([&] { first = outcome(m); });
  while (m.hanging() == 0) std::this_thread::yield();
  CHECK(first.load() == -2);
  m.release_hangs();
  t.join();
  CHECK(first.load() == static_cast<int>(StatusCode::kDeadlineExceeded));

  std::atomic<int> second{-2};
  std::thread t2([&] { second = outcome(m); });
  while (m.hanging() == 0) std::this_thread::yield();
  clock.advance(10s);
  t2.join();
  CHECK(second.load() == static_cast<int>(StatusCode::kDeadlineExceeded));
  CHECK(m.stats().hangs == 2);
  CHECK(outcome(m) == 0);
}

TEST_CASE("fault injector: bad configuration throws", "[resilience][faults]") {
  FaultConfig c;
  c.error_rate = 1.5;
  CHECK_THROWS_AS(FaultInjector(test::const_model(1), c), Error);
  CHECK_THROWS_AS(FaultInjector(nullptr), Error);
  FaultInjector m(test::const_model(1));
  c.error_rate = 0;
  c.nan_rate = -0.1;
  CHECK_THROWS_AS(m.set_config(c), Error);
}
