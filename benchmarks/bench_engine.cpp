// ScoringEngine overhead over a bare model call, one row and per row in a
// batch of 256. The engine runs the full path: schema validation, a closed
// breaker, a retry policy, a bulkhead, metrics (counters and the latency
// histogram), two clock reads; "CacheMiss" adds an LRU cache that misses
// on every row (distinct rows; each miss also inserts); "Idem" adds the
// in-memory idempotency store, every request with a new id (each one
// claims, computes and stores a record). The model is the
// tests' XGBoost fixture (10 features) and, for a clean overhead figure, a
// 10-feature linear model whose own cost is a few nanoseconds.
//
// Run: build/release/benchmarks/bench_engine --benchmark_repetitions=5
//      --benchmark_report_aggregates_only=true   (report medians)

#include <keel/engine/scoring_engine.hpp>
#include <keel/model/loaders.hpp>
#include <keel/validate/schema_validator.hpp>

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kBatch = 256;

keel::ModelPtr load(const char* rel) {
  auto m = keel::load_model(std::string(KEEL_SOURCE_DIR) + "/" + rel);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().to_string().c_str());
    std::abort();
  }
  return *m;
}

keel::ModelPtr xgb() {
  static keel::ModelPtr m = load("tests/data/engine/model.json");
  return m;
}
keel::ModelPtr linear() {
  static keel::ModelPtr m = load("tests/data/engine/backup_linear.json");
  return m;
}

// Ordinary rows (finite, in range): 10 features, values like the fixture's.
std::vector<float> rows(std::size_t n) {
  std::vector<float> v(n * 10);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 1.0f + static_cast<float>((i * 2654435761u) % 1000) / 50.0f;
  return v;
}

std::unique_ptr<keel::ScoringEngine> engine(const keel::ModelPtr& m, bool cache, bool idempotency = false) {
  keel::StageOptions o;
  o.breaker = std::make_shared<keel::CircuitBreaker>("primary");
  o.retry = std::make_shared<keel::RetryPolicy>();
  o.bulkhead = std::make_shared<keel::Bulkhead>("primary");
  keel::EngineBuilder b;
  b.model("primary", m)
      .stage("primary", o)
      .default_scores({0.5f})
      .validator(std::make_shared<keel::SchemaValidator>(keel::Schema::from_model(m->info())));
  if (cache) {
    keel::LruCacheOptions co;
    co.max_entries = 4096;
    b.cache(std::make_shared<keel::LruCache>(co));
  }
  if (idempotency) b.idempotency(std::make_shared<keel::InMemoryIdempotencyStore>());
  return b.build();
}

keel::ModelPtr pick(int which) { return which == 0 ? linear() : xgb(); }

void BM_BareRow(benchmark::State& st) {
  auto m = pick(static_cast<int>(st.range(0)));
  const auto data = rows(1024);
  float out = 0;
  std::size_t i = 0;
  for (auto _ : st) {
    auto s = m->predict_row(std::span<const float>(&data[(i++ & 1023) * 10], 10), std::span<float>(&out, 1));
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(out);
  }
}

void engine_row(benchmark::State& st, bool cache, bool idempotency = false) {
  auto e = engine(pick(static_cast<int>(st.range(0))), cache, idempotency);
  auto data = rows(1024);
  std::size_t i = 0;
  float salt = 0;
  for (auto _ : st) {
    const std::size_t r = i++ & 1023;
    if (cache && r == 0) {  // new rows every lap: every lookup misses
      salt += 1.0f / 1024;
      for (std::size_t k = 0; k < 1024; ++k) data[k * 10] = 1.0f + salt;
    }
    keel::Request req;
    req.features = std::span<const float>(&data[r * 10], 10);
    if (idempotency) req.id = std::to_string(i);  // new every call
    auto res = e->score(req);
    benchmark::DoNotOptimize(res);
  }
}
void BM_EngineRow(benchmark::State& st) { engine_row(st, false); }
void BM_EngineRowCacheMiss(benchmark::State& st) { engine_row(st, true); }
void BM_EngineRowIdem(benchmark::State& st) { engine_row(st, false, true); }

void BM_BareBatch(benchmark::State& st) {
  auto m = pick(static_cast<int>(st.range(0)));
  const auto data = rows(kBatch);
  std::vector<float> out(kBatch);
  for (auto _ : st) {
    auto s = m->predict(data, kBatch, out);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(out.data());
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * kBatch));
}

void engine_batch(benchmark::State& st, bool cache, bool idempotency) {
  auto e = engine(pick(static_cast<int>(st.range(0))), cache, idempotency);
  auto data = rows(kBatch);
  keel::BatchResult out;
  std::uint64_t lap = 0;
  for (auto _ : st) {
    if (cache) {  // new rows every batch: every lookup misses
      const float salt = 1.0f + static_cast<float>(++lap % 4096) / 4096.0f;
      for (std::size_t k = 0; k < kBatch; ++k) data[k * 10] = salt;
      data[0] += static_cast<float>(lap / 4096);
    }
    const std::string id = idempotency ? std::to_string(++lap) : std::string();
    auto s = e->score_batch({data, kBatch, 10}, out, keel::Deadline::never(), {}, id);
    benchmark::DoNotOptimize(s);
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * kBatch));
}
void BM_EngineBatch(benchmark::State& st) { engine_batch(st, false, false); }
void BM_EngineBatchCacheMiss(benchmark::State& st) { engine_batch(st, true, false); }
void BM_EngineBatchIdem(benchmark::State& st) { engine_batch(st, false, true); }

// Arg 0: linear (10 features); arg 1: XGBoost fixture.
BENCHMARK(BM_BareRow)->Arg(0)->Arg(1);
BENCHMARK(BM_EngineRow)->Arg(0)->Arg(1);
BENCHMARK(BM_EngineRowCacheMiss)->Arg(0);
BENCHMARK(BM_EngineRowIdem)->Arg(0);
BENCHMARK(BM_BareBatch)->Arg(0)->Arg(1);
BENCHMARK(BM_EngineBatch)->Arg(0)->Arg(1);
BENCHMARK(BM_EngineBatchCacheMiss)->Arg(0);
BENCHMARK(BM_EngineBatchIdem)->Arg(0);

}  // namespace

BENCHMARK_MAIN();
