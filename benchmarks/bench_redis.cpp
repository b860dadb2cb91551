// The Redis backends against their in-process peers, side by side in one
// run, on a real redis-server started here on a free loopback port
// (tests/net/support): cache hit and miss (RedisCache vs LruCache) and an
// idempotency claim of a new id (claim, compute, store) and a replay from
// another "replica" (RedisIdempotencyStore vs InMemoryIdempotencyStore).
// Rows of 100 floats (the 500-tree model's width), one score each.
// And ScoringEngine::score_batch of 256 rows (tests/data/xgboost/
// depth12_200trees.json, 10 features) with no cache, and with the Redis
// cache hit (every row stored) and missed (new rows: 256 lookups that miss
// and 256 stores), each "per_row" (the path before batch calls: one round
// trip per row, through the Cache defaults) and "batch" (RedisCache's
// lookup_many / insert_many: one MGET and one SET pipeline per batch).
//
//   build/release/benchmarks/bench_redis --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//   build/release/benchmarks/bench_redis --benchmark_filter=Batch256 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <keel/engine/scoring_engine.hpp>
#include <keel/net/redis/redis_cache.hpp>
#include <keel/net/redis/redis_idempotency.hpp>
#include <keel/resilience/cache.hpp>
#include <keel/resilience/idempotency.hpp>

#include "call_times.hpp"
#include "net/support/redis_process.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using keel::Deadline;
using namespace keel::net;
using keel::bench::CallTimes;

namespace {

keel::test::RedisServer* g_redis = nullptr;

std::shared_ptr<RedisClient> client() {
  RedisOptions o;
  o.address.port = g_redis->port();
  o.command_timeout = 200ms;  // a benchmark measures, it does not degrade
  o.connect_timeout = 200ms;
  return std::make_shared<RedisClient>(o);
}

std::vector<float> row(float seed) {
  std::vector<float> r(100);
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = seed + 0.01f * static_cast<float>(i);
  return r;
}

// A stored batch of one answered row, as the engine's request path keeps it.
keel::StoredBatch answer() {
  auto b = std::make_shared<keel::BatchResult>();
  b->rows = 1;
  b->width = 1;
  b->scores = {0.25f};
  b->status = {keel::Status()};
  b->stage = {0};
  b->anomaly = {0};
  b->cache_hit = {0};
  b->attempts = {1};
  b->anomaly_score = {0.0};
  b->degraded_reason = {""};
  b->anomaly_reason = {""};
  b->stage_names = {"primary"};
  b->stage_model_ids = {"m"};
  b->stage_model_versions = {1};
  b->stage_content_ids = {keel::ModelContentId{1, 2}};
  b->model_id = "m";
  b->model_version = 1;
  b->model_content_id = {1, 2};
  return b;
}

template <class C>
void cache_hit(benchmark::State& state, C& cache) {
  const auto r = row(1);
  const keel::CacheKey key{"m", r};
  const float score = 0.5f;
  cache.insert(key, std::span(&score, 1), {}, Deadline::after(1s));
  std::vector<float> out(1);
  CallTimes t;
  for (auto _ : state) {
    t.start();
    const bool hit = cache.lookup(key, {}, Deadline::after(1s), out);
    t.stop();
    if (!hit) state.SkipWithError("miss on a stored key");
    benchmark::DoNotOptimize(out.data());
  }
  t.report(state);
}

template <class C>
void cache_miss(benchmark::State& state, C& cache) {
  auto r = row(2);
  std::vector<float> out(1);
  float v = 1000;
  CallTimes t;
  for (auto _ : state) {
    r[0] = ++v;  // a row never stored
    t.start();
    const bool hit = cache.lookup(keel::CacheKey{"m", r}, {}, Deadline::after(1s), out);
    t.stop();
    if (hit) state.SkipWithError("hit on a key never stored");
  }
  t.report(state);
}

void BM_LruCache_Hit(benchmark::State& state) {
  keel::LruCache cache;
  cache_hit(state, cache);
}
void BM_RedisCache_Hit(benchmark::State& state) {
  RedisCache cache(client());
  cache_hit(state, cache);
}
void BM_LruCache_Miss(benchmark::State& state) {
  keel::LruCache cache;
  cache_miss(state, cache);
}
void BM_RedisCache_Miss(benchmark::State& state) {
  RedisCache cache(client());
  cache_miss(state, cache);
}

// A new id each time: the first caller claims, computes and stores.
template <class S>
void claim(benchmark::State& state, S& store, const std::string& prefix) {
  const auto r = row(3);
  std::uint64_t n = 0;
  const auto compute = []() noexcept -> keel::Result<keel::StoredBatch> { return answer(); };
  CallTimes t;
  for (auto _ : state) {
    const std::string id = prefix + std::to_string(++n);
    t.start();
    auto res = store.run(keel::IdempotencyKey{id, "m", r}, {}, Deadline::after(1s), compute);
    t.stop();
    if (!res) state.SkipWithError(res.status().to_string().c_str());
  }
  t.report(state);
}

void BM_InMemoryIdempotency_Claim(benchmark::State& state) {
  keel::InMemoryIdempotencyStore store;
  claim(state, store, "mem-claim-");
}
void BM_RedisIdempotency_Claim(benchmark::State& state) {
  RedisIdempotencyOptions o;
  o.prefix = "bench:idem:" + std::to_string(reinterpret_cast<std::uintptr_t>(&state));
  RedisIdempotencyStore store(client(), o);
  claim(state, store, "claim-");
}

// Replay: ids completed by one store, asked of another (another replica),
// so each answer comes from Redis, not from the asking store's memory.
constexpr std::int64_t kReplays = 20000;
void BM_RedisIdempotency_ReplayOtherReplica(benchmark::State& state) {
  RedisIdempotencyOptions o;
  o.prefix = "bench:replay:" + std::to_string(reinterpret_cast<std::uintptr_t>(&state));
  RedisIdempotencyStore first(client(), o);
  const auto r = row(4);
  const auto compute = []() noexcept -> keel::Result<keel::StoredBatch> { return answer(); };
  for (std::int64_t i = 0; i < kReplays; ++i) {
    const std::string id = "r" + std::to_string(i);
    if (!first.run(keel::IdempotencyKey{id, "m", r}, {}, Deadline::after(1s), compute)) {
      state.SkipWithError("could not store the first results");
      return;
    }
  }
  RedisIdempotencyStore second(client(), o);
  std::int64_t i = 0;
  const auto never = []() noexcept -> keel::Result<keel::StoredBatch> {
    return keel::internal_error("computed again: not a replay");
  };
  for (auto _ : state) {
    const std::string id = "r" + std::to_string(i++);
    auto res = second.run(keel::IdempotencyKey{id, "m", r}, {}, Deadline::after(1s), never);
    if (!res) state.SkipWithError(res.status().to_string().c_str());
  }
}
void BM_InMemoryIdempotency_Replay(benchmark::State& state) {
  keel::InMemoryIdempotencyStore store;
  const auto r = row(4);
  const auto compute = []() noexcept -> keel::Result<keel::StoredBatch> { return answer(); };
  if (!store.run(keel::IdempotencyKey{"r", "m", r}, {}, Deadline::after(1s), compute)) state.SkipWithError("store");
  for (auto _ : state) {
    auto res = store.run(keel::IdempotencyKey{"r", "m", r}, {}, Deadline::after(1s), compute);
    benchmark::DoNotOptimize(res);
  }
}

// The path before batch calls: only the single-row calls are forwarded, so
// the engine's batch calls take Cache's defaults (a GET or SET per row).
class PerRowCache final : public keel::Cache {
 public:
  explicit PerRowCache(std::shared_ptr<RedisCache> c) : c_(std::move(c)) {}
  bool lookup(const keel::CacheKey& k, keel::TimePoint now, Deadline d, std::span<float> out) noexcept override {
    return c_->lookup(k, now, d, out);
  }
  void insert(const keel::CacheKey& k, std::span<const float> s, keel::TimePoint now, Deadline d) noexcept override {
    c_->insert(k, s, now, d);
  }
  void clear() noexcept override { c_->clear(); }
  [[nodiscard]] keel::CacheStats stats() const noexcept override { return c_->stats(); }

 private:
  std::shared_ptr<RedisCache> c_;
};

constexpr std::size_t kBatch = 256, kF = 10;

// cache: 0 none, 1 Redis per row (before), 2 Redis batch (after).
std::unique_ptr<keel::ScoringEngine> batch_engine(int cache, const std::string& prefix) {
  keel::EngineBuilder b;
  b.name("m").model_file("primary", KEEL_SOURCE_DIR "/tests/data/xgboost/depth12_200trees.json").stage("primary");
  if (cache != 0) {
    RedisCacheOptions o;
    o.prefix = prefix;
    auto redis = std::make_shared<RedisCache>(client(), o);
    if (cache == 1) {
      b.cache(std::make_shared<PerRowCache>(redis));
    } else {
      b.cache(redis);
    }
  }
  return b.build();
}

std::vector<float> batch_rows(float seed) {
  std::vector<float> v(kBatch * kF);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = seed + 0.013f * static_cast<float>(i % 331);
  return v;
}

// A prefix of its own for every run of a benchmark function (the library
// runs each several times), so no run finds another's rows.
std::string bench_prefix() {
  static std::uint64_t runs = 0;
  return "bench:batch:" + std::to_string(++runs);
}

// Every row stored by a first call: each iteration is 256 hits.
void BM_Batch256_RedisHit(benchmark::State& state) {
  auto engine = batch_engine(1 + static_cast<int>(state.range(0)), bench_prefix());  // batch:0 per row, batch:1 batch
  const std::vector<float> rows = batch_rows(1.f);
  keel::BatchResult out;
  (void)engine->score_batch({rows, kBatch, kF}, out, Deadline::after(5s));
  for (auto _ : state) {
    const keel::Status st = engine->score_batch({rows, kBatch, kF}, out, Deadline::after(1s));
    if (!st.is_ok() || static_cast<std::size_t>(std::count(out.cache_hit.begin(), out.cache_hit.end(), 1)) != kBatch) {
      state.SkipWithError("not every row was a cache hit");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// New rows each iteration: 256 misses, then 256 stores.
void BM_Batch256_RedisMiss(benchmark::State& state) {
  auto engine = batch_engine(1 + static_cast<int>(state.range(0)), bench_prefix());  // batch:0 per row, batch:1 batch
  std::vector<float> rows = batch_rows(2.f);
  keel::BatchResult out;
  float fresh = 1e6f;
  for (auto _ : state) {
    fresh += 1.f;
    for (std::size_t r = 0; r < kBatch; ++r) rows[r * kF + kF - 1] = fresh;  // never stored before
    const keel::Status st = engine->score_batch({rows, kBatch, kF}, out, Deadline::after(1s));
    if (!st.is_ok() || std::count(out.cache_hit.begin(), out.cache_hit.end(), 1) != 0) {
      state.SkipWithError("a cache hit on rows never stored");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// score() of one row, a Redis cache hit: the single-row path the batch
// calls must not slow down (the engine's batch call of one row is a GET).
void BM_Score1_RedisHit(benchmark::State& state) {
  auto engine = batch_engine(2, bench_prefix());
  const std::vector<float> rows = batch_rows(3.f);
  keel::Request req;
  req.features = std::span(rows).first(kF);
  req.deadline = Deadline::after(5s);
  (void)engine->score(req);
  for (auto _ : state) {
    req.deadline = Deadline::after(1s);
    auto r = engine->score(req);
    if (!r.ok() || !r->cache_hit) {
      state.SkipWithError("not a cache hit");
      break;
    }
  }
}

void BM_Batch256_NoCache(benchmark::State& state) {
  auto engine = batch_engine(0, {});
  const std::vector<float> rows = batch_rows(1.f);
  keel::BatchResult out;
  for (auto _ : state) {
    if (!engine->score_batch({rows, kBatch, kF}, out, Deadline::after(1s)).is_ok()) state.SkipWithError("failed");
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

}  // namespace

BENCHMARK(BM_LruCache_Hit)->UseRealTime();
BENCHMARK(BM_RedisCache_Hit)->UseRealTime();
BENCHMARK(BM_LruCache_Miss)->UseRealTime();
BENCHMARK(BM_RedisCache_Miss)->UseRealTime();
BENCHMARK(BM_InMemoryIdempotency_Claim)->UseRealTime();
BENCHMARK(BM_RedisIdempotency_Claim)->UseRealTime();
BENCHMARK(BM_InMemoryIdempotency_Replay)->UseRealTime();
BENCHMARK(BM_RedisIdempotency_ReplayOtherReplica)->UseRealTime()->Iterations(kReplays);
BENCHMARK(BM_Score1_RedisHit)->UseRealTime();
BENCHMARK(BM_Batch256_NoCache)->UseRealTime();
BENCHMARK(BM_Batch256_RedisHit)->UseRealTime()->ArgName("batch")->Arg(0)->Arg(1);
BENCHMARK(BM_Batch256_RedisMiss)->UseRealTime()->ArgName("batch")->Arg(0)->Arg(1);

int main(int argc, char** argv) {
  keel::test::RedisServer server;  // a real redis-server on a free loopback port, stopped by PID at exit
  g_redis = &server;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
