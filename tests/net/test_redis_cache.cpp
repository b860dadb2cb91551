// RedisCache and RedisIdempotencyStore against a real redis-server, one
// thread: key format, exact-bytes check on read, TTL set by Redis, misses
// while Redis is down, use again after a restart; replay and 422.

#include <keel/net/redis/redis_cache.hpp>
#include <keel/net/redis/redis_idempotency.hpp>
#include <keel/net/status_map.hpp>

#include "net/support/redis_process.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using namespace std::chrono_literals;
using keel::CacheKey;
using keel::Deadline;
using keel::StatusCode;
using namespace keel::net;

namespace {

std::shared_ptr<RedisClient> client_for(int port, std::chrono::milliseconds wait_in_open = 100ms) {
  RedisOptions o;
  o.address.port = port;
  o.breaker.wait_in_open = wait_in_open;
  return std::make_shared<RedisClient>(o);
}

std::uint64_t same_hash(const CacheKey&) noexcept { return 42; }

}  // namespace

TEST_CASE("a Redis cache hit returns the stored scores; the key is versioned and carries the model",
          "[net][redis][cache]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisCache cache(client);
  const float row[] = {1.f, 2.f, 3.f};
  const CacheKey key{"m@7/t", row};
  std::vector<float> out(2);
  CHECK_FALSE(cache.lookup(key, {}, {}, out));
  const float scores[] = {0.25f, 0.75f};
  cache.insert(key, scores, {}, {});
  REQUIRE(cache.lookup(key, {}, {}, out));
  CHECK(out == std::vector<float>{0.25f, 0.75f});
  CHECK(cache.redis_key(key).rfind("keel:cache:v1:m@7/t:", 0) == 0);
  // Another model identity is another key.
  CHECK_FALSE(cache.lookup(CacheKey{"m@8/t", row}, {}, {}, out));
  // An entry of another width than asked for is a miss, never a short read.
  std::vector<float> one(1, 9.f);
  CHECK_FALSE(cache.lookup(key, {}, {}, one));
  CHECK(one == std::vector<float>{9.f});
  // Redis set the TTL itself.
  auto pttl = client->command({"PTTL", cache.redis_key(key)}, Deadline::after(1000ms));
  REQUIRE(pttl.ok());
  CHECK(pttl->integer() > 0);
  CHECK(pttl->integer() <= 5 * 60 * 1000);
  const auto st = cache.stats();
  CHECK(st.hits == 1);
  CHECK(st.misses == 3);
  CHECK(st.insertions == 1);
  cache.clear();
  CHECK_FALSE(cache.lookup(key, {}, {}, out));
}

TEST_CASE("a hash collision in Redis is a miss, never another row's score", "[net][redis][cache]") {
  keel::test::RedisServer server;
  RedisCacheOptions o;
  o.hash = &same_hash;
  RedisCache cache(client_for(server.port()), o);
  const float a[] = {1.f, 2.f};
  const float b[] = {1.f, -2.f};
  const float neg_zero[] = {1.f, -0.f};
  const float zero[] = {1.f, 0.f};
  REQUIRE(cache.redis_key({"m@1/t", a}) == cache.redis_key({"m@1/t", b}));
  const float sa[] = {0.1f};
  cache.insert({"m@1/t", a}, sa, {}, {});
  std::vector<float> out{9.f};
  CHECK_FALSE(cache.lookup({"m@1/t", b}, {}, {}, out));
  CHECK(out == std::vector<float>{9.f});
  CHECK(cache.stats().collisions == 1);
  cache.insert({"m@1/t", zero}, sa, {}, {});
  CHECK_FALSE(cache.lookup({"m@1/t", neg_zero}, {}, {}, out));  // bit for bit: -0.0 is not 0.0
  CHECK(cache.lookup({"m@1/t", zero}, {}, {}, out));
}

TEST_CASE("a foreign or torn value under a cache key is a miss", "[net][redis][cache]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisCache cache(client);
  const float row[] = {1.f};
  const CacheKey key{"m@1/t", row};
  for (std::string_view v : {std::string_view("KC1"), std::string_view("KC1\x01\x00\x00\x00", 7),
                             std::string_view("hello world")}) {
    REQUIRE(client->command({"SET", cache.redis_key(key), v}, Deadline::after(1000ms)).ok());
    std::vector<float> out(1);
    CHECK_FALSE(cache.lookup(key, {}, {}, out));
  }
}

TEST_CASE("Redis down: misses, flagged, counted; Redis back: used again", "[net][redis][cache]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisCache cache(client);
  keel::MetricsRegistry reg;
  client->register_metrics(reg);
  const float row[] = {1.f, 2.f};
  const float s[] = {0.5f};
  std::vector<float> out(1);
  server.kill();
  for (int i = 0; i < 20; ++i) {
    CHECK_FALSE(cache.lookup({"m@1/t", row}, {}, {}, out));
    cache.insert({"m@1/t", row}, s, {}, {});
  }
  CHECK(cache.degraded());
  CHECK(client->health().state != "up");
  CHECK(client->fallbacks("cache") == 40);
  const std::string text = reg.render();
  CHECK(text.find("keel_redis_up{client=\"redis\"} 0") != std::string::npos);
  CHECK(text.find("keel_redis_fallbacks_total{client=\"redis\",use=\"cache\",reason=\"open\"}") != std::string::npos);

  server.start();
  const bool back = keel::test::wait_until(
      [&] {
        cache.insert({"m@1/t", row}, s, {}, {});
        return cache.lookup({"m@1/t", row}, {}, {}, out);
      },
      10'000ms);
  CHECK(back);
  CHECK_FALSE(cache.degraded());
  CHECK(client->health().state == "up");
}

namespace {

// A stored batch of two rows with every field set: row 1 failed.
keel::StoredBatch answer(std::string id, float score) {
  auto b = std::make_shared<keel::BatchResult>();
  b->id = std::move(id);
  b->rows = 2;
  b->width = 1;
  b->scores = {score, std::numeric_limits<float>::quiet_NaN()};
  b->status = {keel::Status(), keel::Status(StatusCode::kUnavailable, "row 1: all 2 stages failed", false)};
  b->stage = {1, keel::BatchResult::kNoStage};
  b->anomaly = {1, 0};
  b->cache_hit = {0, 0};
  b->attempts = {2, 3};
  b->anomaly_score = {0.5, 0.0};
  b->degraded_reason = {"because", ""};
  b->anomaly_reason = {"anomaly: f0", ""};
  b->stage_names = {"primary", "fallback"};
  b->stage_model_ids = {"m", "f"};
  b->stage_model_versions = {3, 4};
  b->stage_content_ids = {keel::ModelContentId{1, 2}, keel::ModelContentId{3, 4}};
  b->model_id = "m";
  b->model_version = 3;
  b->model_content_id = {1, 2};
  b->failed = 1;
  b->degraded = 1;
  b->latency = std::chrono::microseconds(17);
  b->snapshot = 99;
  return b;
}

// The pending record another process leaves for id "r" (model "m", one
// feature): its claim, in the store's byte format, under another owner.
std::string foreign_claim(char owner, float feature) {
  std::string claim = "KI1P" + std::string(32, owner);
  const std::string payload = std::string("\x01\x00\x00\x00m\x01\x00\x00\x00", 9) +
                              std::string(reinterpret_cast<const char*>(&feature), sizeof feature);
  const auto n = static_cast<std::uint32_t>(payload.size());
  claim.append(reinterpret_cast<const char*>(&n), 4);
  return claim + payload;
}

}  // namespace

TEST_CASE("Redis idempotency: replay across stores, 422 for another payload, failures not kept",
          "[net][redis][idempotency]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisIdempotencyStore a(client), b(client_for(server.port()));
  const float row[] = {1.f, 2.f};
  const float other[] = {1.f, 3.f};
  int calls = 0;
  auto compute = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    return answer("r1", 0.25f);
  };
  auto r1 = a.run({"r1", "m", row}, {}, Deadline::after(1000ms), compute);
  REQUIRE(r1.ok());
  auto r2 = b.run({"r1", "m", row}, {}, Deadline::after(1000ms), compute);  // another "replica"
  REQUIRE(r2.ok());
  CHECK(calls == 1);
  // Every field of every row survives the trip through Redis.
  const keel::BatchResult& x = **r1;
  const keel::BatchResult& y = **r2;
  CHECK(&x != &y);
  CHECK(y.id == "r1");
  CHECK(y.rows == 2);
  CHECK(y.width == 1);
  CHECK(y.scores[0] == 0.25f);
  CHECK(std::isnan(y.scores[1]));
  CHECK(y.status[0].is_ok());
  CHECK(y.status[1].code() == StatusCode::kUnavailable);
  CHECK(y.status[1].message() == x.status[1].message());
  CHECK_FALSE(y.status[1].retryable());
  CHECK(y.stage == x.stage);
  CHECK(y.anomaly == x.anomaly);
  CHECK(y.cache_hit == x.cache_hit);
  CHECK(y.attempts == x.attempts);
  CHECK(y.anomaly_score == x.anomaly_score);
  CHECK(y.degraded_reason == x.degraded_reason);
  CHECK(y.anomaly_reason == x.anomaly_reason);
  CHECK(y.stage_names == x.stage_names);
  CHECK(y.stage_model_ids == x.stage_model_ids);
  CHECK(y.stage_model_versions == x.stage_model_versions);
  CHECK(y.stage_content_ids == x.stage_content_ids);
  CHECK(y.model_id == "m");
  CHECK(y.model_version == 3);
  CHECK(y.model_content_id == keel::ModelContentId{1, 2});
  CHECK(y.failed == 1);
  CHECK(y.degraded == 1);
  CHECK(y.latency == x.latency);
  CHECK(y.snapshot == 0);  // another process's snapshot generation means nothing here
  CHECK(y.response(0)->degraded_reason == "because");
  CHECK(b.stats().replayed == 1);

  auto bad = b.run({"r1", "m", other}, {}, Deadline::after(1000ms), compute);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.code() == StatusCode::kConflict);
  CHECK(http_status(bad.status()) == 422);
  auto bad_model = b.run({"r1", "m2", row}, {}, Deadline::after(1000ms), compute);
  CHECK(http_status(bad_model.status()) == 422);
  CHECK(calls == 1);

  // A failed computation releases the claim: a retry computes again.
  auto fail = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    return keel::unavailable("model down");
  };
  CHECK_FALSE(a.run({"r2", "m", row}, {}, Deadline::after(1000ms), fail).ok());
  CHECK(b.run({"r2", "m", row}, {}, Deadline::after(1000ms), compute).ok());
  CHECK(calls == 3);
  // So does a batch whose every row failed (keel::remembered).
  auto all_failed = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    auto f = std::make_shared<keel::BatchResult>(*answer("r3", 1.f));
    f->stage[0] = keel::BatchResult::kNoStage;
    f->status[0] = keel::unavailable("row 0: down");
    f->failed = 2;
    return keel::StoredBatch(std::move(f));
  };
  CHECK(a.run({"r3", "m", row}, {}, Deadline::after(1000ms), all_failed).ok());
  CHECK(b.run({"r3", "m", row}, {}, Deadline::after(1000ms), compute).ok());
  CHECK(calls == 5);
}

TEST_CASE("Redis idempotency: a replay on another store has the same reason codes", "[net][redis][idempotency]") {
  keel::test::RedisServer server;
  RedisIdempotencyStore a(client_for(server.port())), b(client_for(server.port()));
  const float row[] = {1.f, 2.f};
  auto with_reasons = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    auto base = answer("r9", 0.75f);
    auto x = std::make_shared<keel::BatchResult>(*base);
    x->reason_k = 2;
    x->reason_mode = keel::ReasonMode::kIncreasing;
    x->reasons = {{"worst radius", 6, 0, 12.5, 0.875f}, {"f1", 1, 1, std::numeric_limits<double>::quiet_NaN(), 0.25f}};
    x->reason_begin = {0, 2, 2};
    x->reasons_unavailable = {"", ""};
    return keel::StoredBatch(x);
  };
  auto r1 = a.run({"r9", "m", row}, {}, Deadline::after(1000ms), with_reasons);
  REQUIRE(r1.ok());
  auto r2 = b.run({"r9", "m", row}, {}, Deadline::after(1000ms), with_reasons);
  REQUIRE(r2.ok());
  const keel::BatchResult& y = **r2;
  CHECK(&**r1 != &y);
  CHECK(y.reason_k == 2);
  CHECK(y.reason_mode == keel::ReasonMode::kIncreasing);
  REQUIRE(y.row_reasons(0).size() == 2);
  CHECK(y.row_reasons(1).empty());
  CHECK(y.reasons[0].feature == "worst radius");
  CHECK(y.reasons[0].index == 6);
  CHECK(y.reasons[0].value == 12.5);
  CHECK(y.reasons[0].contribution == 0.875f);
  CHECK(y.reasons[1].output == 1);
  CHECK(std::isnan(y.reasons[1].value));
  CHECK(y.response(0)->explained_by == "fallback");  // row 0's stage
  // A record without reason codes has none after the trip.
  auto plain = [&]() noexcept -> keel::Result<keel::StoredBatch> { return answer("r10", 0.5f); };
  REQUIRE(a.run({"r10", "m", row}, {}, Deadline::after(1000ms), plain).ok());
  auto p2 = b.run({"r10", "m", row}, {}, Deadline::after(1000ms), plain);
  REQUIRE(p2.ok());
  CHECK((*p2)->reason_k == 0);
}

TEST_CASE("a claim left by a crashed owner expires; then the id computes again", "[net][redis][idempotency]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisIdempotencyOptions o;
  o.claim_ttl = 200ms;
  RedisIdempotencyStore store(client, o);
  const float row[] = {1.f};
  // What a process that claimed "r" and died leaves behind (same payload).
  const std::string claim = foreign_claim('a', row[0]);
  REQUIRE(client->command({"SET", "keel:idem:v1:r", claim, "PX", "200"}, Deadline::after(1000ms)).ok());
  int calls = 0;
  auto compute = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    return answer("r", 1.f);
  };
  // Waits (polling) until the dead claim expires, then computes once.
  auto r = store.run({"r", "m", row}, {}, Deadline::after(5000ms), compute);
  REQUIRE(r.ok());
  CHECK(calls == 1);
  CHECK(store.stats().computed == 1);
}

TEST_CASE("a request still in flight elsewhere gets a retryable 409 at its deadline", "[net][redis][idempotency]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisIdempotencyStore store(client);
  const float row[] = {1.f};
  const std::string claim = foreign_claim('b', row[0]);
  REQUIRE(client->command({"SET", "keel:idem:v1:r", claim, "PX", "60000"}, Deadline::after(1000ms)).ok());
  int calls = 0;
  auto r = store.run({"r", "m", row}, {}, Deadline::after(50ms), [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    return answer("r", 1.f);
  });
  REQUIRE_FALSE(r.ok());
  CHECK(http_status(r.status()) == 409);
  CHECK(r.status().retryable());
  CHECK(calls == 0);
}

TEST_CASE("Redis down: idempotency is local only, flagged, and still single per process",
          "[net][redis][idempotency]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisIdempotencyStore store(client);
  server.kill();
  const float row[] = {1.f};
  int calls = 0;
  auto compute = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    return answer("x", 1.f);
  };
  CHECK(store.run({"x", "m", row}, {}, Deadline::after(1000ms), compute).ok());
  CHECK(store.run({"x", "m", row}, {}, Deadline::after(1000ms), compute).ok());  // replayed locally
  CHECK(calls == 1);
  CHECK(client->fallbacks("idempotency") == 1);
  CHECK(store.degraded());
}

TEST_CASE("deadline_share: once a request's share for Redis is spent, no command is sent", "[net][redis][budget]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisCacheOptions co;
  co.deadline_share = 0.5;
  RedisCache cache(client, co);
  RedisIdempotencyOptions io;
  io.deadline_share = 0.5;
  RedisIdempotencyStore store(client, io);
  const float row[] = {4.f, 5.f};
  const float scores[] = {0.5f};
  const CacheKey key{"m@1/t", row};
  std::vector<float> out(1);
  const auto now = keel::system_clock().now();
  // Started 80 ms ago with 100 ms to go: half of it (50 ms) is spent.
  const auto t0 = now - 80ms;
  const Deadline deadline(t0 + 100ms);
  const auto sent = client->stats().ok;
  cache.insert(key, scores, t0, deadline);
  CHECK_FALSE(cache.lookup(key, t0, deadline, out));
  int calls = 0;
  auto compute = [&]() noexcept -> keel::Result<keel::StoredBatch> {
    ++calls;
    return answer("b1", 0.5f);
  };
  CHECK(store.run({"b1", "m", row}, t0, deadline, compute).ok());
  CHECK(calls == 1);
  CHECK(client->stats().ok == sent);  // nothing reached Redis
  CHECK(client->fallbacks("cache") == 2);
  CHECK(client->fallbacks("idempotency") == 1);
  auto keys = client->command({"DBSIZE"}, Deadline::after(1000ms));
  REQUIRE(keys.ok());
  CHECK(keys->integer() == 0);
  // The same request started now: within its share, Redis is used.
  const Deadline fresh(now + 100ms);
  cache.insert(key, scores, now, fresh);
  CHECK(cache.lookup(key, now, fresh, out));
  CHECK(store.run({"b2", "m", row}, now, fresh, compute).ok());
  CHECK(client->fallbacks("cache") == 2);
  keys = client->command({"DBSIZE"}, Deadline::after(1000ms));
  CHECK(keys->integer() == 2);
}
