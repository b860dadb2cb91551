// RedisCache's batch calls (lookup_many / insert_many) against a real
// redis-server: the same answers row by row as lookup / insert (collisions,
// foreign values and other widths are misses), a stopped Redis costs a batch
// no more than its deadline share, a 256-row batch costs one round trip to
// look up and one to store (counted by the client and by Redis's own
// INFO commandstats), and ScoringEngine::score_batch uses them.

#include <keel/engine/scoring_engine.hpp>
#include <keel/net/redis/redis_cache.hpp>

#include "net/support/redis_process.hpp"

#include <catch2/catch.hpp>

#include <bit>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using keel::CacheKey;
using keel::CacheRows;
using keel::Deadline;
using namespace keel::net;

namespace {

constexpr std::size_t kWidth = 3;  // features per row
constexpr std::size_t kOut = 2;    // scores per row
constexpr float kUntouched = -7.f;

std::shared_ptr<RedisClient> client_for(int port, std::chrono::milliseconds command_timeout = 200ms) {
  RedisOptions o;
  o.address.port = port;
  o.command_timeout = command_timeout;
  o.breaker.wait_in_open = 100ms;
  return std::make_shared<RedisClient>(o);
}

// Rows whose first feature is equal collide (a key's hash is its first
// feature's bits), so a collision can be planted between two rows.
std::uint64_t first_feature_hash(const CacheKey& key) noexcept { return std::bit_cast<std::uint32_t>(key.features[0]); }

// `n` rows of kWidth features, row r = {r, r + 0.5, -r}.
std::vector<float> rows_of(std::size_t n, float offset = 0.f) {
  std::vector<float> v(n * kWidth);
  for (std::size_t r = 0; r < n; ++r) {
    const auto f = static_cast<float>(r) + offset;
    v[r * kWidth] = f;
    v[r * kWidth + 1] = f + 0.5f;
    v[r * kWidth + 2] = -f;
  }
  return v;
}

// The scores stored for row r: {r / 8, 1 - r / 8}.
std::vector<float> scores_of(std::size_t n) {
  std::vector<float> s(n * kOut);
  for (std::size_t r = 0; r < n; ++r) {
    s[r * kOut] = static_cast<float>(r) / 8.f;
    s[r * kOut + 1] = 1.f - static_cast<float>(r) / 8.f;
  }
  return s;
}

std::vector<std::uint32_t> all_rows(std::size_t n) {
  std::vector<std::uint32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint32_t>(i);
  return v;
}

// calls=N of `command` in Redis's INFO commandstats (0 when never called).
long long redis_calls(RedisClient& c, std::string_view command) {
  auto info = c.command({"INFO", "commandstats"}, Deadline::after(1000ms));
  REQUIRE(info.ok());
  const std::string text(info->str());
  const std::string tag = "cmdstat_" + std::string(command) + ":calls=";
  const std::size_t at = text.find(tag);
  return at == std::string::npos ? 0 : std::stoll(text.substr(at + tag.size()));
}

}  // namespace

TEST_CASE("batch lookup: mixed hits and misses get exactly the row-by-row answers", "[net][redis][cache][batch]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisCacheOptions o;
  o.hash = &first_feature_hash;
  RedisCache cache(client, o);
  // Rows 0..7; row 6 shares row 5's first feature (and so its Redis key).
  std::vector<float> rows = rows_of(8);
  rows[6 * kWidth] = rows[5 * kWidth];
  const std::vector<float> scores = scores_of(8);
  const CacheRows all{"m@1/t", rows, kWidth, {}};
  REQUIRE(cache.redis_key(all.key(5)) == cache.redis_key(all.key(6)));
  // Stored row by row: 0, 1, 2, 4, 5 (so row 6 finds row 5's record: a collision).
  for (std::uint32_t r : {0u, 1u, 2u, 4u, 5u}) {
    cache.insert(all.key(r), std::span(scores).subspan(r * kOut, kOut), {}, {});
  }
  // Row 3: a record of another width; row 7: a foreign value under its key.
  const float one[] = {0.5f};
  cache.insert(all.key(3), one, {}, {});
  REQUIRE(client->command({"SET", cache.redis_key(all.key(7)), "not a record"}, Deadline::after(1000ms)).ok());

  // Ask every row but row 1 (stored: a batch must touch only the rows listed).
  const std::vector<std::uint32_t> ask{0, 2, 3, 4, 5, 6, 7};
  const CacheRows batch{"m@1/t", rows, kWidth, ask};
  // Row by row first: the reference answers.
  std::vector<float> want(8 * kOut, kUntouched);
  std::vector<std::uint8_t> want_hit(8, 0);
  for (std::uint32_t r : ask) {
    want_hit[r] = cache.lookup(all.key(r), {}, {}, std::span(want).subspan(r * kOut, kOut)) ? 1 : 0;
  }
  CHECK(want_hit == std::vector<std::uint8_t>{1, 0, 1, 0, 1, 1, 0, 0});
  const auto before = cache.stats();

  std::vector<float> got(8 * kOut, kUntouched);
  std::vector<std::uint8_t> hit(8, 0);
  const auto trips = client->stats().round_trips;
  CHECK(cache.lookup_many(batch, {}, Deadline::after(1000ms), got, kOut, hit) == 4);
  CHECK(client->stats().round_trips == trips + 1);
  CHECK(hit == want_hit);
  CHECK(got == want);  // hit rows hold their own scores; the others are untouched
  for (std::uint32_t r : {0u, 2u, 4u, 5u}) {
    CHECK(got[r * kOut] == scores[r * kOut]);
    CHECK(got[r * kOut + 1] == scores[r * kOut + 1]);
  }
  for (std::uint32_t r : {1u, 3u, 6u, 7u}) {
    CHECK(got[r * kOut] == kUntouched);
    CHECK(got[r * kOut + 1] == kUntouched);
  }
  const auto after = cache.stats();
  CHECK(after.hits - before.hits == 4);
  CHECK(after.misses - before.misses == 3);
  CHECK(after.collisions - before.collisions == 1);  // row 6
}

TEST_CASE("batch insert: every row stored with its own scores and a TTL set by Redis", "[net][redis][cache][batch]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisCache cache(client);
  const std::vector<float> rows = rows_of(6);
  const std::vector<float> scores = scores_of(6);
  const std::vector<std::uint32_t> put{1, 3, 4};
  const auto trips = client->stats().round_trips;
  cache.insert_many(CacheRows{"m@1/t", rows, kWidth, put}, scores, kOut, {}, Deadline::after(1000ms));
  CHECK(client->stats().round_trips == trips + 1);
  CHECK(cache.stats().insertions == 3);
  const CacheRows all{"m@1/t", rows, kWidth, {}};
  for (std::uint32_t r = 0; r < 6; ++r) {
    std::vector<float> out(kOut, kUntouched);
    const bool stored = r == 1 || r == 3 || r == 4;
    INFO("row " << r);
    REQUIRE(cache.lookup(all.key(r), {}, {}, out) == stored);
    if (stored) CHECK(out == std::vector<float>{scores[r * kOut], scores[r * kOut + 1]});
    if (!stored) continue;
    auto pttl = client->command({"PTTL", cache.redis_key(all.key(r))}, Deadline::after(1000ms));
    REQUIRE(pttl.ok());
    CHECK(pttl->integer() > 0);
    CHECK(pttl->integer() <= 5 * 60 * 1000);
  }
}

TEST_CASE("a 256-row batch costs one round trip to store and one to look up; one row is a GET", "[net][redis][cache][batch]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  RedisCache cache(client);
  constexpr std::size_t n = 256;
  const std::vector<float> rows = rows_of(n);
  const std::vector<float> scores = scores_of(n);
  const std::vector<std::uint32_t> every = all_rows(n);
  const CacheRows batch{"m@1/t", rows, kWidth, every};
  REQUIRE(client->command({"CONFIG", "RESETSTAT"}, Deadline::after(1000ms)).ok());
  const auto trips = client->stats().round_trips;
  cache.insert_many(batch, scores, kOut, {}, Deadline::after(2000ms));
  CHECK(client->stats().round_trips == trips + 1);
  std::vector<float> got(n * kOut, kUntouched);
  std::vector<std::uint8_t> hit(n, 0);
  CHECK(cache.lookup_many(batch, {}, Deadline::after(2000ms), got, kOut, hit) == n);
  CHECK(client->stats().round_trips == trips + 2);
  CHECK(got == scores);
  CHECK(hit == std::vector<std::uint8_t>(n, 1));
  // What Redis saw: 256 SETs (one pipeline) and one MGET, no GET.
  CHECK(redis_calls(*client, "set") == static_cast<long long>(n));
  CHECK(redis_calls(*client, "mget") == 1);
  CHECK(redis_calls(*client, "get") == 0);

  // A batch of one row (score()) is lookup() / insert(): a GET and a SET,
  // without the batch's key and argument vectors.
  const std::vector<std::uint32_t> one{7};
  const CacheRows single{"m@1/t", rows, kWidth, one};
  REQUIRE(client->command({"CONFIG", "RESETSTAT"}, Deadline::after(1000ms)).ok());
  std::fill(hit.begin(), hit.end(), 0);
  CHECK(cache.lookup_many(single, {}, Deadline::after(2000ms), got, kOut, hit) == 1);
  CHECK(hit[7] == 1);
  cache.insert_many(single, scores, kOut, {}, Deadline::after(2000ms));
  CHECK(redis_calls(*client, "get") == 1);
  CHECK(redis_calls(*client, "mget") == 0);
  CHECK(redis_calls(*client, "set") == 1);
}

TEST_CASE("a batch against a stopped Redis returns within its deadline share, all misses",
          "[net][redis][cache][batch]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port(), 2000ms);  // the command timeout does not bound it: the share does
  RedisCacheOptions o;
  o.deadline_share = 0.25;
  RedisCache cache(client, o);
  constexpr std::size_t n = 64;
  const std::vector<float> rows = rows_of(n);
  const std::vector<float> scores = scores_of(n);
  const std::vector<std::uint32_t> every = all_rows(n);
  const CacheRows batch{"m@1/t", rows, kWidth, every};
  const auto now = keel::system_clock().now();  // `now` starts the share's clock
  cache.insert_many(batch, scores, kOut, now, Deadline(now + 2000ms));
  REQUIRE(cache.stats().insertions == n);

  server.pause();
  // A request with 600 ms to go: 150 ms of it for Redis. Checked against
  // 450 ms (generous on a shared machine; the whole deadline would be 600).
  const auto t0 = keel::system_clock().now();
  const Deadline deadline(t0 + 600ms);
  std::vector<float> got(n * kOut, kUntouched);
  std::vector<std::uint8_t> hit(n, 0);
  const auto start = std::chrono::steady_clock::now();
  const std::size_t hits = cache.lookup_many(batch, t0, deadline, got, kOut, hit);
  const auto looked = std::chrono::steady_clock::now() - start;
  cache.insert_many(batch, scores, kOut, t0, deadline);  // the share is spent: skipped without a call
  const auto both = std::chrono::steady_clock::now() - start;
  server.resume();
  CHECK(hits == 0);
  CHECK(hit == std::vector<std::uint8_t>(n, 0));
  CHECK(got == std::vector<float>(n * kOut, kUntouched));
  CHECK(looked >= 100ms);  // it did wait for Redis, up to the share
  CHECK(looked < 450ms);
  CHECK(both < 450ms);
  CHECK(client->stats().timeouts == 1);
  CHECK(client->fallbacks("cache") == 2);  // the lookup timed out; the insert found its share spent
  CHECK(cache.stats().misses == n);

  // Redis back: the batch is served again.
  const bool back = keel::test::wait_until(
      [&] {
        std::fill(hit.begin(), hit.end(), 0);
        const auto at = keel::system_clock().now();
        return cache.lookup_many(batch, at, Deadline(at + 1000ms), got, kOut, hit) == n;
      },
      10'000ms);
  CHECK(back);
  CHECK(got == scores);
}

TEST_CASE("score_batch with the Redis cache: one round trip per batch each way, the engine's own scores",
          "[net][redis][cache][batch][engine]") {
  keel::test::RedisServer server;
  auto client = client_for(server.port());
  const std::string model = std::string(KEEL_TEST_DATA_DIR) + "/xgboost/base_score.json";
  auto cache = std::make_shared<RedisCache>(client);
  auto cached = keel::EngineBuilder().name("m").model_file("primary", model).stage("primary").cache(cache).build();
  auto plain = keel::EngineBuilder().name("m").model_file("primary", model).stage("primary").build();
  constexpr std::size_t n = 256, F = 30;
  auto features = [&](float offset) {
    std::vector<float> v(n * F);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = offset + 0.37f * static_cast<float>(i % 97) - 0.11f * (i % 13);
    return v;
  };
  const std::vector<float> first = features(0.f);
  // The second batch: the even rows are the first batch's, the odd rows new.
  std::vector<float> second = features(5.f);
  for (std::size_t r = 0; r < n; r += 2) std::memcpy(&second[r * F], &first[r * F], F * sizeof(float));

  keel::BatchResult want, got;
  const auto trips = client->stats().round_trips;
  REQUIRE(plain->score_batch({first, n, F}, want, Deadline::after(5s)).is_ok());
  REQUIRE(cached->score_batch({first, n, F}, got, Deadline::after(5s)).is_ok());
  CHECK(client->stats().round_trips == trips + 2);  // a lookup (all misses) and a store
  CHECK(got.scores == want.scores);
  CHECK(got.cache_hit == std::vector<std::uint8_t>(n, 0));

  REQUIRE(plain->score_batch({second, n, F}, want, Deadline::after(5s)).is_ok());
  REQUIRE(cached->score_batch({second, n, F}, got, Deadline::after(5s)).is_ok());
  CHECK(client->stats().round_trips == trips + 4);  // a lookup (half hits) and a store of the new half
  CHECK(got.scores == want.scores);
  std::vector<std::uint8_t> even(n, 0);
  for (std::size_t r = 0; r < n; r += 2) even[r] = 1;
  CHECK(got.cache_hit == even);
  for (std::size_t r = 0; r < n; ++r) CHECK(got.stage[r] == 0);
  CHECK(cache->stats().hits == n / 2);
  CHECK(cache->stats().insertions == n + n / 2);
}
