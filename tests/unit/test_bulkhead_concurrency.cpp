#include <keel/resilience/adaptive_limit.hpp>
#include <keel/resilience/bulkhead.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace keel;
using namespace std::chrono_literals;

TEST_CASE("bulkhead: never exceeds its limit under concurrency", "[resilience][bulkhead][concurrency]") {
  BulkheadConfig c;
  c.max_concurrent = 3;
  Bulkhead b("scorer", c);
  std::atomic<int> inside{0};
  std::atomic<int> worst{0};
  std::atomic<int> admitted{0};
  std::atomic<int> rejected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int k = 0; k < 3000; ++k) {
        Bulkhead::Permit p = b.try_acquire();
        if (!p) {
          rejected.fetch_add(1);
          continue;
        }
        admitted.fetch_add(1);
        const int now = inside.fetch_add(1) + 1;
        int w = worst.load();
        while (now > w && !worst.compare_exchange_weak(w, now)) {
        }
        std::this_thread::yield();
        inside.fetch_sub(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(worst.load() <= 3);
  CHECK(worst.load() >= 1);
  const BulkheadStats s = b.stats();
  CHECK(s.max_in_flight <= 3);
  CHECK(s.in_flight == 0);
  CHECK(s.admitted == static_cast<std::uint64_t>(admitted.load()));
  CHECK(s.rejections == static_cast<std::uint64_t>(rejected.load()));
  CHECK(admitted.load() + rejected.load() == 8 * 3000);
}

TEST_CASE("bulkhead: a full bulkhead rejects at once with Overloaded", "[resilience][bulkhead]") {
  BulkheadConfig c;
  c.max_concurrent = 2;
  Bulkhead b("scorer", c);
  Bulkhead::Permit a = b.try_acquire();
  Bulkhead::Permit b2 = b.acquire(Deadline::never());  // max_wait 0: no wait even with acquire()
  REQUIRE(a);
  REQUIRE(b2);
  CHECK_FALSE(b.acquire(Deadline::never()));
  const Status r = b.rejection();
  CHECK(r.code() == StatusCode::kOverloaded);
  CHECK(r.message().find("scorer") != std::string::npos);
  CHECK(b.stats().rejections == 1);
  a.release();
  CHECK(b.try_acquire());  // a temporary: released at once
  CHECK(b.stats().in_flight == 1);
}

TEST_CASE("bulkhead: a waiting caller gets a freed slot", "[resilience][bulkhead][concurrency]") {
  ManualClock clock;
  BulkheadConfig c;
  c.max_concurrent = 1;
  c.max_wait = 50ms;
  Bulkhead b("scorer", c, clock);
  Bulkhead::Permit held = b.try_acquire();
  REQUIRE(held);
  std::atomic<bool> got{false};
  std::thread waiter([&] { got = static_cast<bool>(b.acquire(Deadline::never())); });
  held.release();  // whether the waiter is parked yet or not, it gets the slot
  waiter.join();
  CHECK(got.load());
  CHECK(b.stats().in_flight == 0);
}

TEST_CASE("bulkhead: the wait is bounded by max_wait on the clock", "[resilience][bulkhead][concurrency]") {
  ManualClock clock;
  BulkheadConfig c;
  c.max_concurrent = 1;
  c.max_wait = 50ms;
  Bulkhead b("scorer", c, clock);
  Bulkhead::Permit held = b.try_acquire();
  std::atomic<int> result{-1};
  std::thread waiter([&] { result = b.acquire(Deadline::never()) ? 1 : 0; });
  while (b.stats().waiting == 0) std::this_thread::yield();
  clock.advance(49ms);
  CHECK(result.load() == -1);  // its time has not come
  clock.advance(1ms);
  waiter.join();
  CHECK(result.load() == 0);
  CHECK(b.stats().rejections == 1);
}

TEST_CASE("bulkhead: the wait never outlasts the request's deadline", "[resilience][bulkhead][concurrency]") {
  ManualClock clock;
  BulkheadConfig c;
  c.max_concurrent = 1;
  c.max_wait = 1h;
  Bulkhead b("scorer", c, clock);
  Bulkhead::Permit held = b.try_acquire();
  const Deadline d = Deadline::after(5ms, clock);
  std::atomic<int> result{-1};
  std::thread waiter([&] { result = b.acquire(d) ? 1 : 0; });
  clock.advance(5ms);
  waiter.join();
  CHECK(result.load() == 0);
}

TEST_CASE("adaptive limit: AIMD grows while used, shrinks on drops", "[resilience][bulkhead]") {
  AimdConfig c;
  c.initial_limit = 10;
  c.min_limit = 2;
  c.max_limit = 12;
  c.backoff_ratio = 0.5;
  c.latency_threshold = 100ms;
  AimdLimit l(c);
  l.on_sample(1ms, 2, false);  // barely used: no growth
  CHECK(l.limit() == 10);
  l.on_sample(1ms, 5, false);  // in use: +1
  CHECK(l.limit() == 11);
  for (int i = 0; i < 10; ++i) l.on_sample(1ms, 11, false);
  CHECK(l.limit() == 12);  // capped
  l.on_sample(150ms, 12, false);  // too slow counts as a drop
  CHECK(l.limit() == 6);
  l.on_sample(1ms, 6, true);
  CHECK(l.limit() == 3);
  l.on_sample(1ms, 3, true);
  CHECK(l.limit() == 2);  // floor
  CHECK_THROWS_AS(AimdLimit(AimdConfig{5, 10, 20, 0.9, 1ms}), Error);
}

TEST_CASE("adaptive bulkhead: sheds once latency degrades", "[resilience][bulkhead]") {
  BulkheadConfig c;
  c.adaptive = AimdConfig{4, 1, 100, 0.5, 10ms};
  Bulkhead b("scorer", c);
  REQUIRE(b.adaptive());
  CHECK(b.limit() == 4);
  {
    std::vector<Bulkhead::Permit> held;
    for (int i = 0; i < 4; ++i) held.push_back(b.try_acquire());
    CHECK_FALSE(b.try_acquire());  // the rejection is itself a drop: 4 -> 2
    CHECK(b.limit() == 2);
    for (auto& p : held) p.release(50ms, false);  // slow answers: 2 -> 1
  }
  CHECK(b.limit() == 1);
  Bulkhead::Permit one = b.try_acquire();
  CHECK(one);
  CHECK_FALSE(b.try_acquire());
  one.release(1ms, false);  // fast and in use: grows again
  CHECK(b.limit() == 2);
}

TEST_CASE("bulkhead: unlimited is the null object", "[resilience][bulkhead]") {
  auto b = Bulkhead::unlimited();
  std::vector<Bulkhead::Permit> held;
  for (int i = 0; i < 1000; ++i) {
    held.push_back(b->try_acquire());
    REQUIRE(held.back());
  }
  CHECK(b->stats().rejections == 0);
  BulkheadConfig bad;
  bad.max_concurrent = 0;
  CHECK_THROWS_AS(Bulkhead("x", bad), Error);
}
