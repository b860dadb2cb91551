#include <keel/resilience/executor.hpp>
#include <keel/resilience/fallback_chain.hpp>
#include <keel/resilience/fault_injector.hpp>
#include <keel/resilience/isolation.hpp>

#include "support/fake_models.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

using namespace keel;
using namespace std::chrono_literals;

namespace {

const std::vector<float> kRow = {1.0f, 2.0f};
constexpr float kSentinel = -123.0f;

template <class Pred>
void wait_for(Pred pred) {
  while (!pred()) std::this_thread::yield();
}

}  // namespace

TEST_CASE("timeout: a hanging model returns DeadlineExceeded on time", "[resilience][timeout][concurrency]") {
  ManualClock clock;
  auto executor = std::make_shared<BoundedExecutor>(ExecutorConfig{2, 8});
  auto inner = test::const_model(0.25f);
  auto faulty = std::make_shared<FaultInjector>(inner, FaultConfig{}, 1, clock);
  faulty->hang_next(1);
  auto counters = std::make_shared<IsolationCounters>();
  std::vector<float> out(1, kSentinel);
  const TimePoint t0 = clock.now();
  std::thread timekeeper([&] {
    wait_for([&] { return faulty->hanging() == 1; });
    clock.advance(50ms);
  });
  const Status s = call_isolated(*executor, faulty, kRow, out, Deadline::after(50ms, t0), clock, {}, counters);
  timekeeper.join();
  CHECK(s.code() == StatusCode::kDeadlineExceeded);
  CHECK(clock.now() - t0 == 50ms);  // simulated time: returned at the deadline, not after the hang
  CHECK(out[0] == kSentinel);
  CHECK(counters->timeouts.load() == 1);
  faulty->release_hangs();  // lets the worker finish before the executor joins it
  wait_for([&] { return counters->late_results.load() == 1; });
}

TEST_CASE("timeout: a late result is dropped, not written", "[resilience][timeout][concurrency]") {
  ManualClock clock;
  BoundedExecutor executor(ExecutorConfig{1, 4});
  auto inner = test::const_model(0.75f);
  auto slow = std::make_shared<FaultInjector>(inner, FaultConfig{}, 1, clock);
  slow->delay_next(1, 100ms);  // answers, but only at +100 ms
  auto counters = std::make_shared<IsolationCounters>();
  const TimePoint t0 = clock.now();
  {
    std::vector<float> out(1, kSentinel);
    std::thread timekeeper([&] {
      wait_for([&] { return clock.sleepers() == 1; });
      clock.advance(30ms);
    });
    const Status s = call_isolated(executor, slow, kRow, out, Deadline::after(30ms, t0), clock, {}, counters);
    timekeeper.join();
    CHECK(s.code() == StatusCode::kDeadlineExceeded);
    CHECK(out[0] == kSentinel);
  }  // the caller's buffer is gone before the model answers
  clock.advance(70ms);
  wait_for([&] { return counters->late_results.load() == 1; });
  CHECK(inner->calls() == 1);  // the model did answer, late
  // The executor is free again: the next call answers.
  std::vector<float> out(1, kSentinel);
  CHECK(call_isolated(executor, slow, kRow, out, Deadline::after(1s, clock), clock, {}, counters).is_ok());
  CHECK(out[0] == 0.75f);
}

TEST_CASE("hedging: a second attempt wins against a slow first one", "[resilience][timeout][hedging][concurrency]") {
  ManualClock clock;
  BoundedExecutor executor(ExecutorConfig{2, 8});
  auto inner = test::const_model(0.5f);
  auto faulty = std::make_shared<FaultInjector>(inner, FaultConfig{}, 1, clock);
  faulty->hang_next(1);  // the first attempt hangs, the hedge does not
  auto counters = std::make_shared<IsolationCounters>();
  IsolatedCallOptions opts;
  opts.hedge.delay = 10ms;
  std::vector<float> out(1, kSentinel);
  std::thread timekeeper([&] {
    wait_for([&] { return faulty->hanging() == 1; });
    clock.advance(10ms);
  });
  IsolatedCallReport report;
  const Status s =
      call_isolated(executor, faulty, kRow, out, Deadline::after(1s, clock), clock, opts, counters, &report);
  timekeeper.join();
  CHECK(s.is_ok());
  CHECK(out[0] == 0.5f);
  CHECK(report.launched == 2);
  CHECK(report.winner == 2);
  CHECK(counters->hedges.load() == 1);
  CHECK(counters->hedge_wins.load() == 1);
  faulty->release_hangs();
}

TEST_CASE("hedging: a fast first attempt needs no hedge", "[resilience][timeout][hedging][concurrency]") {
  ManualClock clock;
  BoundedExecutor executor(ExecutorConfig{2, 8});
  auto inner = test::const_model(0.5f);
  IsolatedCallOptions opts;
  opts.hedge.delay = 10ms;
  std::vector<float> out(1);
  IsolatedCallReport report;
  CHECK(call_isolated(executor, inner, kRow, out, Deadline::after(1s, clock), clock, opts, nullptr, &report).is_ok());
  CHECK(report.launched == 1);
  CHECK(report.winner == 1);
}

TEST_CASE("executor: a full queue rejects at once; model errors pass through", "[resilience][timeout][concurrency]") {
  ManualClock clock;
  BoundedExecutor executor(ExecutorConfig{1, 1});
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<bool> started{false};
  REQUIRE(executor.try_submit([&] {
    started = true;
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  }));
  wait_for([&] { return started.load(); });
  REQUIRE(executor.try_submit([] {}));  // fills the queue
  CHECK_FALSE(executor.try_submit([] {}));
  auto inner = test::const_model(0.5f);
  std::vector<float> out(1);
  const Status s = call_isolated(executor, inner, kRow, out, Deadline::after(1s, clock), clock);
  CHECK(s.code() == StatusCode::kOverloaded);
  CHECK(executor.stats().rejected == 2);
  {
    std::lock_guard lock(mu);
    open = true;
  }
  cv.notify_all();
  wait_for([&] { return executor.stats().completed == 2; });

  auto failing = std::make_shared<FaultInjector>(inner, FaultConfig{}, 1, clock);
  failing->fail_next(1, StatusCode::kModelError);
  CHECK(call_isolated(executor, failing, kRow, out, Deadline::after(1s, clock), clock).code() ==
        StatusCode::kModelError);
  CHECK_THROWS_AS(BoundedExecutor(ExecutorConfig{0, 1}), Error);
}

TEST_CASE("chain: an isolated hanging primary times out and the fallback answers", "[resilience][timeout][chain][concurrency]") {
  ManualClock clock;
  auto executor = std::make_shared<BoundedExecutor>(ExecutorConfig{2, 8});
  auto faulty = std::make_shared<FaultInjector>(test::const_model(0.9f, "primary"), FaultConfig{}, 1, clock);
  faulty->hang_next(1);
  StageOptions iso;
  iso.isolation = Isolation::kIsolated;
  iso.executor = executor;
  iso.attempt_timeout = 20ms;
  FallbackChain chain({model_stage("primary", faulty, iso), model_stage("fallback", test::const_model(0.1f))}, clock);
  std::vector<float> out(1, kSentinel);
  std::thread timekeeper([&] {
    wait_for([&] { return faulty->hanging() == 1; });
    clock.advance(20ms);
  });
  auto r = chain.run(kRow, out, Deadline::after(1s, clock));
  timekeeper.join();
  REQUIRE(r.ok());
  CHECK(r->stage == 1);
  CHECK(r->degraded);
  CHECK(out[0] == 0.1f);
  REQUIRE(r->failures.size() == 1);
  CHECK(r->failures[0].status.code() == StatusCode::kDeadlineExceeded);
  CHECK(chain.stats().stages[0].timeouts == 1);
  faulty->release_hangs();
  wait_for([&] { return chain.stats().stages[0].isolation.late_results == 1; });
}
