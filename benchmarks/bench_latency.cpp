// Serving-shaped measurements of the tree hot path (issue 17), each call
// timed on its own (steady_clock) so that percentiles, not just means, come
// out. Models and rows from scripts/bench_models.py (build/bench-models/, or
// the directory in KEEL_BENCH_MODELS): b500_d8_f100 (500 trees, depth 8, 100
// features) and its variants b500_d8_f100_v1.._v3 (same shape, other trees),
// all scoring b500_d8_f100.csv.
//
// Latency1       one row per call, one model: p50_us, p99_us, p99_over_p50.
// LatencyRR4     one row per call, the four 500-tree models in turn; also
//                m<k>_p50_us / m<k>_p99_us per model.
// LatencyRandom4 the four in a seeded random order; same_* are the calls
//                that follow a call of the same model, other_* those that
//                follow another model (does p99 depend on which ran last?).
// LatencyXGB1    XGBoost's C API (XGBoosterPredictFromDense), one row per
//                call, one thread: the same rows, in the same run.
// Threads/<model>/batch:N  (the three models of bench_models.py) a batch of N rows at 1 thread and at 2, interleaved call
//                by call on the same rows (alternating which goes first), so
//                the VM's noise hits both alike: t1_p50_us, t2_p50_us,
//                speedup = t1_p50 / t2_p50. idle_cpu_pct: the process's CPU
//                use while the caller sleeps 50 ms after the run (the pool's
//                workers parked: ~0; a spinning worker: ~100).
//
// Run: build/release/benchmarks/bench_latency --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <keel/model/loaders.hpp>
#include <keel/model/tree_ensemble.hpp>

#include "support/fixture_csv.hpp"

#include <benchmark/benchmark.h>

#include <sys/resource.h>

#ifdef KEEL_HAVE_XGBOOST
#include <xgboost/c_api.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr const char* kRowsName = "b500_d8_f100";
const std::vector<std::string> kOne{"b500_d8_f100"};
const std::vector<std::string> kFour{"b500_d8_f100", "b500_d8_f100_v1", "b500_d8_f100_v2", "b500_d8_f100_v3"};

std::string models_dir() {
  const char* env = std::getenv("KEEL_BENCH_MODELS");
  return env ? env : std::string(KEEL_SOURCE_DIR) + "/build/bench-models";
}

// Loaded once, kept for the process: the rows, and the models by name.
struct Data {
  keel::test::Table rows;
  std::map<std::string, keel::ModelPtr> models;
  std::string error;  // why the benchmarks skip; empty when ready
};

Data& data() {
  static Data d = [] {
    Data x;
    try {
      x.rows = keel::test::read_csv(models_dir() + "/" + kRowsName + ".csv");
    } catch (const std::exception& e) {
      x.error = std::string(e.what()) + " (run scripts/bench_models.py)";
      return x;
    }
    for (const std::string& name : kFour) {
      auto m = keel::load_model(models_dir() + "/" + name + ".json");
      if (!m.ok()) {
        x.error = name + ": " + m.status().to_string() + " (run scripts/bench_models.py)";
        return x;
      }
      if ((*m)->info().num_features != x.rows.cols()) {
        x.error = name + ": feature count differs from " + kRowsName + ".csv";
        return x;
      }
      x.models[name] = *m;
    }
    return x;
  }();
  return d;
}

// The q-quantile (0..1) of ns, in microseconds (reorders ns).
double quantile_us(std::vector<double>& ns, double q) {
  if (ns.empty()) return 0.0;
  const std::size_t i = std::min(ns.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ns.size())));
  std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(i), ns.end());
  return ns[i] * 1e-3;
}

void set_quantiles(benchmark::State& state, const std::string& prefix, std::vector<double>& ns) {
  const double p50 = quantile_us(ns, 0.50);
  const double p99 = quantile_us(ns, 0.99);
  state.counters[prefix + "p50_us"] = p50;
  state.counters[prefix + "p99_us"] = p99;
  if (prefix.empty()) state.counters["p99_over_p50"] = p50 > 0 ? p99 / p50 : 0.0;
}

double elapsed_ns(std::chrono::steady_clock::time_point t0, std::chrono::steady_clock::time_point t1) {
  return std::chrono::duration<double, std::nano>(t1 - t0).count();
}

enum class Order { kRoundRobin, kRandom };

// One row per iteration through predict(model index, row), the model chosen
// by order from n_models, the rows walked in turn; every call timed.
template <class Predict>
void run_latency(benchmark::State& state, std::size_t n_models, Order order, Predict&& predict) {
  const keel::test::Table& rows = data().rows;
  std::vector<std::uint8_t> seq(std::size_t{1} << 16);
  std::mt19937 rng(42);
  for (std::uint8_t& m : seq) m = static_cast<std::uint8_t>(rng() % n_models);
  const auto calls = static_cast<std::size_t>(state.max_iterations);
  std::vector<double> all, same, other;
  std::vector<std::vector<double>> per_model(n_models > 1 ? n_models : 0);
  all.reserve(calls);
  if (order == Order::kRandom) {
    same.reserve(calls);
    other.reserve(calls);
  }
  for (auto& v : per_model) v.reserve(calls / n_models + 1);
  std::size_t i = 0;
  std::size_t last = n_models;  // no call yet
  for (auto _ : state) {
    const std::size_t m = order == Order::kRandom ? seq[i % seq.size()] : i % n_models;
    const float* row = rows.values.data() + (i % rows.rows) * rows.cols();
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = predict(m, row);
    const auto t1 = std::chrono::steady_clock::now();
    if (!ok) {
      state.SkipWithError("predict failed");
      return;
    }
    const double ns = elapsed_ns(t0, t1);
    all.push_back(ns);
    if (n_models > 1) per_model[m].push_back(ns);
    if (order == Order::kRandom && last != n_models) (m == last ? same : other).push_back(ns);
    last = m;
    ++i;
  }
  set_quantiles(state, "", all);
  for (std::size_t m = 0; m < per_model.size(); ++m) {
    set_quantiles(state, "m" + std::to_string(m) + "_", per_model[m]);
  }
  if (order == Order::kRandom) {
    set_quantiles(state, "same_", same);
    set_quantiles(state, "other_", other);
  }
}

void BM_KeelLatency(benchmark::State& state, const std::vector<std::string>& names, Order order) {
  Data& d = data();
  if (!d.error.empty()) {
    state.SkipWithError(d.error.c_str());
    return;
  }
  std::vector<keel::ModelPtr> models;
  for (const std::string& name : names) models.push_back(d.models.at(name));
  std::vector<float> out(models.front()->info().num_outputs);
  const keel::PredictOptions opts;
  const std::size_t cols = d.rows.cols();
  run_latency(state, models.size(), order, [&](std::size_t m, const float* row) {
    const keel::Status s = models[m]->predict(std::span<const float>(row, cols), 1, out, opts);
    benchmark::DoNotOptimize(out.data());
    return s.is_ok();
  });
}

#ifdef KEEL_HAVE_XGBOOST
void BM_XGBoostLatency(benchmark::State& state) {
  Data& d = data();
  if (!d.error.empty()) {
    state.SkipWithError(d.error.c_str());
    return;
  }
  static BoosterHandle booster = [] {
    BoosterHandle b = nullptr;
    XGBoosterCreate(nullptr, 0, &b);
    if (XGBoosterLoadModel(b, (models_dir() + "/" + kRowsName + ".json").c_str()) != 0) {
      std::fprintf(stderr, "XGBoost: %s\n", XGBGetLastError());
      XGBoosterFree(b);
      return BoosterHandle{nullptr};
    }
    XGBoosterSetParam(b, "nthread", "1");
    return b;
  }();
  if (!booster) {
    state.SkipWithError("XGBoost could not load the model");
    return;
  }
  const char* config = R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false, "cache_id": 0, "missing": NaN})";
  const std::size_t cols = d.rows.cols();
  run_latency(state, 1, Order::kRoundRobin, [&](std::size_t, const float* row) {
    char iface[256];
    std::snprintf(iface, sizeof iface, R"({"data": [%llu, true], "shape": [1, %zu], "typestr": "<f4", "version": 3})",
                  static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(row)), cols);
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* result = nullptr;
    const int rc = XGBoosterPredictFromDense(booster, iface, config, nullptr, &shape, &dim, &result);
    benchmark::DoNotOptimize(result);
    return rc == 0;
  });
}
#endif

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// The process's CPU use, in percent of one core, while this thread sleeps.
double idle_cpu_percent() {
  const double c0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double wall = elapsed_ns(t0, std::chrono::steady_clock::now()) * 1e-9;
  return (process_cpu_seconds() - c0) / wall * 100.0;
}

// A model with its own rows (<name>.json, <name>.csv), loaded once.
struct Single {
  keel::ModelPtr model;
  keel::test::Table rows;
  std::string error;
};

const Single& single(const std::string& name) {
  static std::map<std::string, Single> cache;
  auto [it, fresh] = cache.try_emplace(name);
  Single& x = it->second;
  if (!fresh) return x;
  try {
    x.rows = keel::test::read_csv(models_dir() + "/" + name + ".csv");
  } catch (const std::exception& e) {
    x.error = std::string(e.what()) + " (run scripts/bench_models.py)";
    return x;
  }
  auto m = keel::load_model(models_dir() + "/" + name + ".json");
  if (!m.ok()) {
    x.error = name + ": " + m.status().to_string();
    return x;
  }
  x.model = *m;
  return x;
}

// A batch at 1 thread and at 2 on the same rows, interleaved call by call.
void BM_Threads(benchmark::State& state, const std::string& name) {
  const Single& d = single(name);
  if (!d.error.empty()) {
    state.SkipWithError(d.error.c_str());
    return;
  }
  const keel::ModelPtr& model = d.model;
  const auto batch = static_cast<std::size_t>(state.range(0));
  const std::size_t cols = d.rows.cols();
  const std::size_t blocks = d.rows.rows / batch;
  if (blocks == 0) {
    state.SkipWithError("not enough rows");
    return;
  }
  keel::PredictOptions one, two;
  one.threads = 1;
  two.threads = 2;
  std::vector<float> out1(batch * model->info().num_outputs), out2(out1.size());
  auto block = [&](std::size_t i) {
    return std::span<const float>(d.rows.values.data() + (i % blocks) * batch * cols, batch * cols);
  };
  // Both thread counts must give the same answers (bit for bit), or the
  // comparison means nothing.
  if (!model->predict(block(0), batch, out1, one).is_ok() || !model->predict(block(0), batch, out2, two).is_ok() ||
      out1 != out2) {
    state.SkipWithError("1 and 2 threads differ");
    return;
  }
  const auto calls = static_cast<std::size_t>(state.max_iterations);
  std::vector<double> t1, t2;
  t1.reserve(calls);
  t2.reserve(calls);
  std::size_t i = 0;
  for (auto _ : state) {
    const std::span<const float> rows = block(i);
    for (int k = 0; k < 2; ++k) {
      const bool single = (k == 0) == (i % 2 == 0);  // alternate which goes first
      const auto a = std::chrono::steady_clock::now();
      const keel::Status s = model->predict(rows, batch, single ? out1 : out2, single ? one : two);
      const auto b = std::chrono::steady_clock::now();
      if (!s.is_ok()) {
        state.SkipWithError("predict failed");
        return;
      }
      (single ? t1 : t2).push_back(elapsed_ns(a, b));
    }
    benchmark::DoNotOptimize(out1.data());
    benchmark::DoNotOptimize(out2.data());
    ++i;
  }
  const double p1 = quantile_us(t1, 0.5);
  const double p2 = quantile_us(t2, 0.5);
  state.counters["t1_p50_us"] = p1;
  state.counters["t2_p50_us"] = p2;
  state.counters["speedup"] = p2 > 0 ? p1 / p2 : 0.0;
  state.counters["idle_cpu_pct"] = idle_cpu_percent();
}

const bool registered = [] {
  benchmark::RegisterBenchmark("Latency1/b500_d8_f100", BM_KeelLatency, kOne, Order::kRoundRobin)
      ->UseRealTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("LatencyRR4/b500_d8_f100", BM_KeelLatency, kFour, Order::kRoundRobin)
      ->UseRealTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("LatencyRandom4/b500_d8_f100", BM_KeelLatency, kFour, Order::kRandom)
      ->UseRealTime()->Unit(benchmark::kMicrosecond);
#ifdef KEEL_HAVE_XGBOOST
  benchmark::RegisterBenchmark("LatencyXGB1/b500_d8_f100", BM_XGBoostLatency)
      ->UseRealTime()->Unit(benchmark::kMicrosecond);
#endif
  for (const char* name : {"b500_d8_f100", "r1000_d6_f50", "b100_d4_f20"}) {
    benchmark::RegisterBenchmark((std::string("Threads/") + name).c_str(), BM_Threads, std::string(name))
        ->Arg(1024)->Arg(2048)->Arg(4096)->ArgName("batch")->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
