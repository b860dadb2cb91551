// The Redis backends against their in-process peers, side by side in one
// run, on a real redis-server started here on a free loopback port
// (tests/net/support): cache hit and miss (RedisCache vs LruCache) and an
// idempotency claim of a new id (claim, compute, store) and a replay from
// another "replica" (RedisIdempotencyStore vs InMemoryIdempotencyStore).
// Rows of 100 floats (the 500-tree model's width), one score each.
//
//   build/release/benchmarks/bench_redis --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <keel/net/redis/redis_cache.hpp>
#include <keel/net/redis/redis_idempotency.hpp>
#include <keel/resilience/cache.hpp>
#include <keel/resilience/idempotency.hpp>

#include "net/support/redis_process.hpp"

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using keel::Deadline;
using namespace keel::net;

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
  for (auto _ : state) {
    if (!cache.lookup(key, {}, Deadline::after(1s), out)) state.SkipWithError("miss on a stored key");
    benchmark::DoNotOptimize(out.data());
  }
}

template <class C>
void cache_miss(benchmark::State& state, C& cache) {
  auto r = row(2);
  std::vector<float> out(1);
  float v = 1000;
  for (auto _ : state) {
    r[0] = ++v;  // a row never stored
    if (cache.lookup(keel::CacheKey{"m", r}, {}, Deadline::after(1s), out)) state.SkipWithError("hit on a key never stored");
  }
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
  for (auto _ : state) {
    const std::string id = prefix + std::to_string(++n);
    auto res = store.run(keel::IdempotencyKey{id, "m", r}, {}, Deadline::after(1s), compute);
    if (!res) state.SkipWithError(res.status().to_string().c_str());
  }
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

}  // namespace

BENCHMARK(BM_LruCache_Hit)->UseRealTime();
BENCHMARK(BM_RedisCache_Hit)->UseRealTime();
BENCHMARK(BM_LruCache_Miss)->UseRealTime();
BENCHMARK(BM_RedisCache_Miss)->UseRealTime();
BENCHMARK(BM_InMemoryIdempotency_Claim)->UseRealTime();
BENCHMARK(BM_RedisIdempotency_Claim)->UseRealTime();
BENCHMARK(BM_InMemoryIdempotency_Replay)->UseRealTime();
BENCHMARK(BM_RedisIdempotency_ReplayOtherReplica)->UseRealTime()->Iterations(kReplays);

int main(int argc, char** argv) {
  keel::test::RedisServer server;  // a real redis-server on a free loopback port, stopped by PID at exit
  g_redis = &server;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
