#include <keel/resilience/circuit_breaker.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace keel;
using namespace std::chrono_literals;

namespace {

// Starts `n` threads that each run f(i) once, released together.
template <class F>
void run_together(int n, F f) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      f(i);
    });
  }
  while (ready.load() < n) std::this_thread::yield();
  go.store(true);
  for (auto& t : threads) t.join();
}

}  // namespace

TEST_CASE("breaker: after the wait admits exactly N probes under 8 concurrent callers", "[resilience][breaker][concurrency]") {
  ManualClock clock;
  CircuitBreakerConfig c;
  c.window_size = 4;
  c.minimum_calls = 4;
  c.wait_in_open = 1s;
  c.half_open_probes = 3;
  CircuitBreaker b("m", c, clock);
  for (int round = 0; round < 50; ++round) {
    b.reset();
    for (int i = 0; i < 4; ++i) {
      const auto p = b.try_acquire(clock.now());
      REQUIRE(p);
      b.record(p, StatusCode::kUnavailable, 0ms, clock.now());
    }
    REQUIRE(b.state() == BreakerState::kOpen);
    clock.advance(1s);
    std::atomic<int> probes{0};
    run_together(8, [&](int) {
      for (int k = 0; k < 4; ++k) {
        if (b.try_acquire(clock.now())) probes.fetch_add(1);
      }
    });
    CHECK(probes.load() == 3);
    CHECK(b.state() == BreakerState::kHalfOpen);
  }
}

TEST_CASE("breaker: concurrent probes close it exactly once", "[resilience][breaker][concurrency]") {
  ManualClock clock;
  CircuitBreakerConfig c;
  c.window_size = 4;
  c.minimum_calls = 4;
  c.half_open_probes = 4;
  CircuitBreaker b("m", c, clock);
  std::atomic<int> closes{0};
  b.add_listener([&](const CircuitBreaker&, BreakerState, BreakerState to) {
    if (to == BreakerState::kClosed) closes.fetch_add(1);
  });
  for (int i = 0; i < 4; ++i) {
    const auto p = b.try_acquire(clock.now());
    b.record(p, StatusCode::kUnavailable, 0ms, clock.now());
  }
  clock.advance(c.wait_in_open);
  run_together(8, [&](int) {
    const auto p = b.try_acquire(clock.now());
    if (p) b.on_success(p, clock.now());
  });
  CHECK(b.state() == BreakerState::kClosed);
  CHECK(closes.load() == 1);
}

TEST_CASE("breaker: concurrent recording trips it and keeps counts consistent", "[resilience][breaker][concurrency]") {
  ManualClock clock;
  CircuitBreakerConfig c;
  c.window_size = 64;
  c.minimum_calls = 64;
  c.failure_rate_threshold = 0.5;
  CircuitBreaker b("m", c, clock);
  run_together(8, [&](int t) {
    for (int k = 0; k < 2000; ++k) {
      const auto p = b.try_acquire(clock.now());
      if (!p) continue;
      // Threads 0-3 always fail, 4-7 always succeed: ~50 % failures.
      b.record(p, t < 4 ? StatusCode::kUnavailable : StatusCode::kOk, 0ms, clock.now());
    }
  });
  const BreakerStats s = b.stats();
  CHECK(s.calls + s.rejections == 16000);
  CHECK(s.window_calls >= 0);
  CHECK(s.window_calls <= 64);
  CHECK(s.window_failures <= s.window_calls);
}
