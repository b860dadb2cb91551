#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/request.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace keel;
using namespace std::chrono_literals;

TEST_CASE("ManualClock: stands still until advanced", "[core][clock]") {
  ManualClock clock;
  const TimePoint t0 = clock.now();
  CHECK(clock.now() == t0);
  clock.advance(5ms);
  CHECK(clock.now() - t0 == 5ms);
  clock.set(t0);  // never backwards
  CHECK(clock.now() - t0 == 5ms);
  clock.set(t0 + 1s);
  CHECK(clock.now() - t0 == 1s);
}

TEST_CASE("ManualClock: auto-advance turns sleeps into time", "[core][clock]") {
  ManualClock clock(TimePoint{} + 1h, /*auto_advance=*/true);
  const TimePoint t0 = clock.now();
  clock.sleep_for(250ms);
  clock.sleep_for(-5ms);  // a past target does nothing
  CHECK(clock.now() - t0 == 250ms);
}

TEST_CASE("ManualClock: a sleeper wakes when another thread advances time", "[core][clock]") {
  ManualClock clock;
  const TimePoint t0 = clock.now();
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    clock.sleep_until(t0 + 10ms);
    woke = true;
  });
  while (clock.sleepers() == 0) std::this_thread::yield();
  clock.advance(5ms);
  CHECK_FALSE(woke.load());
  clock.advance(5ms);
  sleeper.join();
  CHECK(woke.load());
}

TEST_CASE("SteadyClock: moves forward", "[core][clock]") {
  Clock& c = system_clock();
  const TimePoint a = c.now();
  c.sleep_for(1ms);
  CHECK(c.now() - a >= 1ms);
}

TEST_CASE("Deadline: remaining time and expiry", "[core][deadline]") {
  ManualClock clock;
  const Deadline d = Deadline::after(10ms, clock);
  CHECK_FALSE(d.expired(clock));
  CHECK(d.remaining(clock) == 10ms);
  clock.advance(4ms);
  CHECK(d.remaining(clock) == 6ms);
  clock.advance(6ms);
  CHECK(d.expired(clock));
  CHECK(d.remaining(clock) == 0ms);
  clock.advance(1s);
  CHECK(d.remaining(clock) == 0ms);
}

TEST_CASE("Deadline: never, saturation and per-attempt timeouts", "[core][deadline]") {
  ManualClock clock;
  const Deadline never = Deadline::never();
  CHECK(never.is_never());
  CHECK_FALSE(never.expired(clock));
  CHECK(never.remaining(clock) == Duration::max());
  // A huge timeout saturates instead of wrapping into the past.
  CHECK(Deadline::after(Duration::max(), clock).is_never());
  // A non-positive timeout is already expired.
  CHECK(Deadline::after(-1ms, clock).expired(clock));

  const Deadline request = Deadline::after(100ms, clock);
  const Deadline attempt = request.min_with_timeout(20ms, clock.now());
  CHECK(attempt.remaining(clock) == 20ms);
  const Deadline late_attempt = request.min_with_timeout(1s, clock.now());
  CHECK(late_attempt == request);
  CHECK(Deadline::earliest(request, never) == request);
  CHECK(attempt < request);
}

TEST_CASE("Request views features; OwnedRequest keeps a copy", "[core][request]") {
  std::vector<float> row = {1.0f, 2.0f, 3.0f};
  Request r{"req-1", row, "fraud", Deadline::never(), {}};
  OwnedRequest owned(r);
  row[0] = 99.0f;
  CHECK(r.features[0] == 99.0f);
  CHECK(owned.features[0] == 1.0f);
  const Request v = owned.view();
  CHECK(v.id == "req-1");
  CHECK(v.model == "fraud");
  CHECK(v.features.size() == 3);
  Response resp;
  CHECK_FALSE(resp.degraded);
  CHECK(resp.attempts == 0);
}
