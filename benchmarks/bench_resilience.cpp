// The per-call cost of the resilience wrappers on the happy path: a closed
// CircuitBreaker plus a RetryPolicy around a trivial call, against the bare
// call; and a one-stage FallbackChain against the bare Model::predict.
// `now` is passed in (as the engine does), so no clock read is measured
// except in BM_SteadyClockNow, shown for scale.
//
//   cmake --preset release && cmake --build --preset release -j2 --target bench_resilience
//   build/release/benchmarks/bench_resilience --benchmark_repetitions=10 --benchmark_report_aggregates_only=true

#include <keel/resilience/fallback_chain.hpp>
#include <keel/resilience/guarded_call.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

namespace {

using namespace keel;

[[gnu::noinline]] Status trivial_call(const float* row, float* out) noexcept {
  out[0] = row[0] * 0.5f + row[1];
  return Status::ok();
}

// The smallest real Model: one linear output.
class TinyModel final : public Model {
 public:
  TinyModel() {
    info_.id = "tiny";
    info_.num_features = 2;
    info_.features.resize(2);
  }
  [[nodiscard]] const ModelInfo& info() const noexcept override { return info_; }
  [[nodiscard]] Status predict(std::span<const float> rows, std::size_t n, std::span<float> out,
                               const PredictOptions& opts = {}) const noexcept override {
    if (Status s = check_shapes(rows.size(), n, out.size(), opts); !s) return s;
    for (std::size_t i = 0; i < n; ++i) out[i] = rows[2 * i] * 0.5f + rows[2 * i + 1];
    return Status::ok();
  }
  using Model::predict;

 private:
  ModelInfo info_;
};

const float kRow[2] = {1.0f, 2.0f};

void BM_BareCall(benchmark::State& state) {
  float out[1];
  for (auto _ : state) {
    Status s = trivial_call(kRow, out);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(out[0]);
  }
}
BENCHMARK(BM_BareCall);

// The happy path of guarded_call: a closed breaker, a first attempt that succeeds.
void run_guarded(benchmark::State& state, CircuitBreaker& breaker, RetryPolicy& retry) {
  float out[1];
  const TimePoint now = system_clock().now();
  for (auto _ : state) {
    GuardedCallReport rep;
    Status s = guarded_call(breaker, retry, system_clock(), Deadline::never(), now, Duration::max(),
                            [&](Deadline) noexcept { return trivial_call(kRow, out); }, rep);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(out[0]);
  }
  if (breaker.state() != BreakerState::kClosed) state.SkipWithError("breaker not closed");
}

void BM_BreakerRetry(benchmark::State& state) {
  static CircuitBreaker breaker("bench");  // defaults: count window of 100
  static RetryPolicy retry;                // defaults: 3 attempts, full jitter, no budget
  run_guarded(state, breaker, retry);
}
BENCHMARK(BM_BreakerRetry);
BENCHMARK(BM_BreakerRetry)->Threads(2);

void BM_BreakerRetryBudget(benchmark::State& state) {
  static CircuitBreaker breaker("bench");
  static RetryPolicy retry(RetryConfig{}, std::make_shared<RetryBudget>());
  run_guarded(state, breaker, retry);
}
BENCHMARK(BM_BreakerRetryBudget);

void BM_BareModel(benchmark::State& state) {
  const ModelPtr model = std::make_shared<TinyModel>();
  std::vector<float> out(1);
  for (auto _ : state) {
    Status s = model->predict(kRow, 1, out);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_BareModel);

void BM_ChainOneStage(benchmark::State& state) {
  StageOptions o;
  o.breaker = std::make_shared<CircuitBreaker>("bench");
  o.retry = std::make_shared<RetryPolicy>();
  FallbackChain chain({model_stage("primary", std::make_shared<TinyModel>(), o), default_stage({0.0f})});
  std::vector<float> out(1);
  const TimePoint now = system_clock().now();
  for (auto _ : state) {
    auto r = chain.run(kRow, out, Deadline::never(), now);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ChainOneStage);

void BM_SteadyClockNow(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(system_clock().now());
}
BENCHMARK(BM_SteadyClockNow);

}  // namespace

BENCHMARK_MAIN();
