#include <catch2/catch.hpp>

#include <keel/resilience/idempotency.hpp>

#include <atomic>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// A stored batch of `rows` answered rows (stage 0), each scoring `score`.
keel::StoredBatch make_response(std::string id, float score, std::size_t rows = 1) {
  auto b = std::make_shared<keel::BatchResult>();
  b->id = std::move(id);
  b->rows = rows;
  b->width = 1;
  b->scores.assign(rows, score);
  b->status.assign(rows, keel::Status());
  b->stage.assign(rows, 0);
  b->anomaly.assign(rows, 0);
  b->cache_hit.assign(rows, 0);
  b->attempts.assign(rows, 1);
  b->anomaly_score.assign(rows, 0.0);
  b->degraded_reason.assign(rows, {});
  b->anomaly_reason.assign(rows, {});
  b->stage_names = {"primary"};
  b->stage_model_ids = {"m"};
  b->stage_model_versions = {3};
  b->stage_content_ids = {keel::ModelContentId{}};
  b->model_id = "m";
  b->model_version = 3;
  return b;
}

}  // namespace

TEST_CASE("idempotency: a repeated id returns the very same response without recomputing", "[idempotency]") {
  keel::ManualClock clock;
  keel::InMemoryIdempotencyStore store;
  std::vector<float> row{1.f, 2.f};
  int calls = 0;
  auto compute = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    return make_response("r1", 0.5f + float(calls));
  };
  auto a = store.run({"r1", "m", row}, clock.now(), keel::Deadline::never(), compute);
  auto b = store.run({"r1", "m", row}, clock.now(), keel::Deadline::never(), compute);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(calls == 1);
  CHECK((*b)->scores == (*a)->scores);
  CHECK((*b)->model_version == (*a)->model_version);
  CHECK(store.stats().replayed == 1);
  CHECK(store.stats().computed == 1);
}

TEST_CASE("idempotency: the same id with another payload is a conflict", "[idempotency]") {
  keel::ManualClock clock;
  keel::InMemoryIdempotencyStore store;
  std::vector<float> row{1.f, 2.f};
  std::vector<float> other{1.f, 3.f};
  auto compute = []() noexcept -> keel::Result<keel::StoredBatch> { return make_response("r", 1.f); };
  REQUIRE(store.run({"r", "m", row}, clock.now(), keel::Deadline::never(), compute).ok());
  auto c = store.run({"r", "m", other}, clock.now(), keel::Deadline::never(), compute);
  CHECK(c.code() == keel::StatusCode::kConflict);
  CHECK_THAT(c.status().message(), Catch::Contains("'r'"));
  auto d = store.run({"r", "other-model", row}, clock.now(), keel::Deadline::never(), compute);
  CHECK(d.code() == keel::StatusCode::kConflict);
  CHECK(store.stats().conflicts == 2);
}

TEST_CASE("idempotency: records expire after the TTL", "[idempotency]") {
  keel::ManualClock clock;
  keel::IdempotencyOptions o;
  o.ttl = 60s;
  keel::InMemoryIdempotencyStore store(o);
  std::vector<float> row{1.f};
  int calls = 0;
  auto compute = [&]() noexcept -> keel::Result<keel::StoredBatch> { return make_response("r", float(++calls)); };
  REQUIRE(store.run({"r", "m", row}, clock.now(), keel::Deadline::never(), compute).ok());
  clock.advance(59s);
  REQUIRE(store.run({"r", "m", row}, clock.now(), keel::Deadline::never(), compute).ok());
  CHECK(calls == 1);
  clock.advance(1s);
  auto again = store.run({"r", "m", row}, clock.now(), keel::Deadline::never(), compute);
  REQUIRE(again.ok());
  CHECK(calls == 2);
  CHECK((*again)->scores[0] == 2.f);
}

TEST_CASE("idempotency: failures are not remembered, a retry recomputes", "[idempotency]") {
  keel::ManualClock clock;
  keel::InMemoryIdempotencyStore store;
  std::vector<float> row{1.f};
  int calls = 0;
  auto failing = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    return keel::unavailable("primary: circuit open");
  };
  auto ok = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    return make_response("r", 1.f);
  };
  CHECK(store.run({"r", "m", row}, clock.now(), keel::Deadline::never(), failing).code() ==
        keel::StatusCode::kUnavailable);
  CHECK(store.stats().entries == 0);
  CHECK(store.run({"r", "m", row}, clock.now(), keel::Deadline::never(), ok).ok());
  CHECK(calls == 2);
}

TEST_CASE("idempotency: a batch with a failed row is remembered, one whose every row failed is not",
          "[idempotency]") {
  keel::ManualClock clock;
  keel::InMemoryIdempotencyStore store;
  std::vector<float> rows{1.f, 2.f};
  int calls = 0;
  // Row 1 failed, row 0 answered: the batch's answer, replayed as it was.
  auto one_failed = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    auto b = std::make_shared<keel::BatchResult>(*make_response("b", 0.5f, 2));
    b->stage[1] = keel::BatchResult::kNoStage;
    b->status[1] = keel::unavailable("row 1: down");
    b->failed = 1;
    return keel::StoredBatch(std::move(b));
  };
  auto all_failed = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    auto b = std::make_shared<keel::BatchResult>(*make_response("c", 0.5f, 2));
    b->stage.assign(2, keel::BatchResult::kNoStage);
    b->status.assign(2, keel::unavailable("down"));
    b->failed = 2;
    return keel::StoredBatch(std::move(b));
  };
  REQUIRE(store.run({"b", "m", rows}, clock.now(), keel::Deadline::never(), one_failed).ok());
  auto replay = store.run({"b", "m", rows}, clock.now(), keel::Deadline::never(), one_failed);
  REQUIRE(replay.ok());
  CHECK(calls == 1);
  CHECK((*replay)->status[1].code() == keel::StatusCode::kUnavailable);
  CHECK(keel::remembered(replay));

  auto first = store.run({"c", "m", rows}, clock.now(), keel::Deadline::never(), all_failed);
  REQUIRE(first.ok());  // the callers get it, the store does not keep it
  CHECK_FALSE(keel::remembered(first));
  REQUIRE(store.run({"c", "m", rows}, clock.now(), keel::Deadline::never(), all_failed).ok());
  CHECK(calls == 3);
  CHECK(store.stats().entries == 1);
}

TEST_CASE("idempotency: bounded in entries, the oldest completed record goes", "[idempotency]") {
  keel::ManualClock clock;
  keel::IdempotencyOptions o;
  o.shards = 1;
  o.max_entries = 4;
  keel::InMemoryIdempotencyStore store(o);
  std::vector<float> row{1.f};
  int calls = 0;
  auto compute = [&]() noexcept -> keel::Result<keel::StoredBatch> { return make_response("", float(++calls)); };
  for (int i = 0; i < 10; ++i) {
    REQUIRE(store.run({std::to_string(i), "m", row}, clock.now(), keel::Deadline::never(), compute).ok());
    CHECK(store.stats().entries <= 4);
  }
  CHECK(store.stats().evictions == 6);
  // The newest is still remembered, the oldest recomputes.
  REQUIRE(store.run({"9", "m", row}, clock.now(), keel::Deadline::never(), compute).ok());
  CHECK(calls == 10);
  REQUIRE(store.run({"0", "m", row}, clock.now(), keel::Deadline::never(), compute).ok());
  CHECK(calls == 11);
}

TEST_CASE("idempotency: bounded in bytes", "[idempotency]") {
  keel::ManualClock clock;
  keel::IdempotencyOptions o;
  o.shards = 1;
  o.max_bytes = 8 * 1024;
  keel::InMemoryIdempotencyStore store(o);
  std::vector<float> row(200, 1.f);  // ~800 bytes of payload per record
  auto compute = []() noexcept -> keel::Result<keel::StoredBatch> { return make_response("", 1.f); };
  for (int i = 0; i < 100; ++i) {
    REQUIRE(store.run({std::to_string(i), "m", row}, clock.now(), keel::Deadline::never(), compute).ok());
    CHECK(store.stats().bytes <= o.max_bytes);
  }
  CHECK(store.stats().entries < 10);
  CHECK(store.stats().evictions > 90);
}

TEST_CASE("idempotency: 16 concurrent duplicates compute once and all get its answer", "[idempotency][concurrency]") {
  keel::InMemoryIdempotencyStore store;
  std::vector<float> row{4.f, 2.f};
  std::atomic<int> calls{0};
  constexpr int kCallers = 16;
  std::vector<keel::Result<keel::StoredBatch>> results(kCallers, keel::internal_error("not run"));
  auto compute = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    // Hold the flight open until every other caller has joined it.
    while (store.waiting("dup") < kCallers - 1) std::this_thread::yield();
    return make_response("dup", 0.125f);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      results[i] = store.run({"dup", "m", row}, keel::system_clock().now(), keel::Deadline::never(), compute);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(calls == 1);
  for (const auto& r : results) {
    REQUIRE(r.ok());
    CHECK((*r)->scores == std::vector<float>{0.125f});
    CHECK((*r)->id == "dup");
  }
  auto st = store.stats();
  CHECK(st.computed == 1);
  CHECK(st.joined == kCallers - 1);
}

TEST_CASE("idempotency: joined duplicates share the failure of the flight", "[idempotency][concurrency]") {
  keel::InMemoryIdempotencyStore store;
  std::vector<float> row{1.f};
  std::atomic<int> calls{0};
  constexpr int kCallers = 4;
  std::vector<keel::Result<keel::StoredBatch>> results(kCallers, keel::internal_error("not run"));
  auto compute = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    while (store.waiting("f") < kCallers - 1) std::this_thread::yield();
    return keel::model_error("primary: score is NaN");
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      results[i] = store.run({"f", "m", row}, keel::system_clock().now(), keel::Deadline::never(), compute);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(calls == 1);
  for (const auto& r : results) CHECK(r.code() == keel::StatusCode::kModelError);
  CHECK(store.stats().entries == 0);
}

TEST_CASE("idempotency: a duplicate waits no longer than its deadline", "[idempotency][concurrency]") {
  keel::InMemoryIdempotencyStore store;
  std::vector<float> row{1.f};
  std::atomic<bool> release{false};
  auto slow = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    while (!release) std::this_thread::yield();
    return make_response("s", 1.f);
  };
  std::thread first([&] {
    (void)store.run({"s", "m", row}, keel::system_clock().now(), keel::Deadline::never(), slow);
  });
  while (store.stats().computed == 0) std::this_thread::yield();
  auto now = keel::system_clock().now();
  // An already-expired deadline: the join gives up at once.
  auto late = store.run({"s", "m", row}, now, keel::Deadline(now), slow);
  CHECK(late.code() == keel::StatusCode::kDeadlineExceeded);
  release = true;
  first.join();
}
