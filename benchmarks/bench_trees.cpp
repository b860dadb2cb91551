// Keel's tree-ensemble hot path against XGBoost's own C API predictor
// (XGBoosterPredictFromDense), same models and rows, one run. Models and rows
// come from scripts/bench_models.py (build/bench-models/, or the directory in
// KEEL_BENCH_MODELS); the LightGBM deep model from KEEL_LGB_BENCH_MODEL
// (default /work/shared/bench/lightgbm/bench.model.txt) with rows
// build/bench-models/lgb_deep.csv.
//
// Counters: rows_per_s, ns_per_tree_row (time / (rows * trees)). KeelGatherWalk
// is Keel with TreeEnsembleOptions::column_top_levels off; KeelF64 scores the
// same rows as float64, KeelF64Out into float64 outputs.
// Run: build/release/benchmarks/bench_trees --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <keel/model/loaders.hpp>
#include <keel/model/tree_ensemble.hpp>

#include <benchmark/benchmark.h>

#ifdef KEEL_HAVE_XGBOOST
#include <xgboost/c_api.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

std::string models_dir() {
  const char* env = std::getenv("KEEL_BENCH_MODELS");
  return env ? env : std::string(KEEL_SOURCE_DIR) + "/build/bench-models";
}

struct Rows {
  std::size_t cols = 0;
  std::vector<float> values;
  std::vector<double> doubles;  // the same fields parsed as double (float64 rows)
  std::size_t n() const { return cols ? values.size() / cols : 0; }
};

Rows read_csv(const std::string& path) {
  Rows r;
  std::ifstream in(path);
  if (!in) return r;
  std::string line;
  std::getline(in, line);
  r.cols = static_cast<std::size_t>(std::count(line.begin(), line.end(), ',')) + 1;
  while (std::getline(in, line)) {
    const char* p = line.c_str();
    for (std::size_t c = 0; c < r.cols; ++c) {
      char* end = nullptr;
      r.doubles.push_back(std::strtod(p, nullptr));
      r.values.push_back(std::strtof(p, &end));
      p = *end == ',' ? end + 1 : end;
    }
  }
  return r;
}

struct Fixture {
  keel::ModelPtr model;
  keel::ModelPtr walk_model;  // column_top_levels off: every level walked with gathers
  keel::ModelPtr heap_model;    // binning off: the heap kernel
  keel::ModelPtr binned_model;  // binning forced on (null where the model does not take it)
  Rows rows;
  std::size_t trees = 0;
#ifdef KEEL_HAVE_XGBOOST
  BoosterHandle booster = nullptr;
#endif
};

// Loaded once per model name, kept for the process.
Fixture* fixture(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Fixture>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  auto f = std::make_unique<Fixture>();
  const bool lgb = name == "lgb_deep";
  const char* lgb_env = std::getenv("KEEL_LGB_BENCH_MODEL");
  const std::string model_path =
      lgb ? (lgb_env ? lgb_env : "/work/shared/bench/lightgbm/bench.model.txt") : models_dir() + "/" + name + ".json";
  auto m = keel::load_model(model_path);
  if (m.ok()) {
    f->model = *m;
    f->trees = f->model->info().num_trees;
    f->rows = read_csv(models_dir() + "/" + name + ".csv");
    keel::LoadOptions walk;
    walk.tree.column_top_levels = false;
    if (auto w = keel::load_model(model_path, walk); w.ok()) f->walk_model = *w;
    keel::LoadOptions heap, binned;
    heap.tree.binning = keel::TreeBinning::kOff;
    binned.tree.binning = keel::TreeBinning::kOn;
    if (auto w = keel::load_model(model_path, heap); w.ok()) f->heap_model = *w;
    if (auto w = keel::load_model(model_path, binned); w.ok()) f->binned_model = *w;
  } else {
    std::fprintf(stderr, "%s: %s\n", model_path.c_str(), m.status().to_string().c_str());
  }
#ifdef KEEL_HAVE_XGBOOST
  if (!lgb && f->model) {
    XGBoosterCreate(nullptr, 0, &f->booster);
    if (XGBoosterLoadModel(f->booster, model_path.c_str()) != 0) {
      std::fprintf(stderr, "XGBoost: %s\n", XGBGetLastError());
      XGBoosterFree(f->booster);
      f->booster = nullptr;
    }
  }
#endif
  Fixture* raw = f.get();
  cache[name] = std::move(f);
  return raw;
}

void set_counters(benchmark::State& state, std::size_t rows_per_iter, std::size_t trees) {
  const double rows = static_cast<double>(state.iterations()) * static_cast<double>(rows_per_iter);
  state.counters["rows_per_s"] = benchmark::Counter(rows, benchmark::Counter::kIsRate);
  state.counters["ns_per_tree_row"] =
      benchmark::Counter(rows * static_cast<double>(trees) * 1e-9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Batches walk through the row pool so that successive calls see new rows.
template <class Predict>
void run_batches(benchmark::State& state, const Fixture& f, std::size_t batch, Predict&& predict) {
  const std::size_t pool = f.rows.n();
  if (batch > pool) {
    state.SkipWithError("not enough rows");
    return;
  }
  std::size_t start = 0;
  for (auto _ : state) {
    if (start + batch > pool) start = 0;
    if (!predict(f.rows.values.data() + start * f.rows.cols, batch)) {
      state.SkipWithError("predict failed");
      return;
    }
    start += batch;
  }
  set_counters(state, batch, f.trees);
}

enum class Variant { kDefault, kGatherWalk, kHeap, kBinned };

void BM_Keel(benchmark::State& state, const std::string& name, Variant v) {
  Fixture* f = fixture(name);
  const keel::ModelPtr& model = v == Variant::kGatherWalk ? f->walk_model
                                : v == Variant::kHeap     ? f->heap_model
                                : v == Variant::kBinned   ? f->binned_model
                                                          : f->model;
  if (!model || f->rows.n() == 0) {
    state.SkipWithError("model or rows missing (run scripts/bench_models.py)");
    return;
  }
  const auto batch = static_cast<std::size_t>(state.range(0));
  keel::PredictOptions opts;
  opts.threads = static_cast<unsigned>(state.range(1));
  const std::size_t w = model->info().num_outputs;
  std::vector<float> out(batch * w);
  state.SetLabel(std::string(keel::to_string(keel::tree_kernel_of(*model))) + "/" +
                 std::string(keel::to_string(keel::tree_layout_of(*model))) +
                 (keel::tree_binned_of(*model) ? "/binned" : ""));
  run_batches(state, *f, batch, [&](const float* rows, std::size_t n) {
    const keel::Status s = model->predict(std::span<const float>(rows, n * f->rows.cols), n, out, opts);
    benchmark::DoNotOptimize(out.data());
    return s.is_ok();
  });
}

// The same rows as float64 (Model::predict(span<const double>)): for
// LightGBM models, exactly as LightGBM compares; double_out: float64 outputs
// too (keel score, FP64 server tensors), LightGBM's unrounded doubles.
void BM_KeelF64(benchmark::State& state, const std::string& name, bool double_out) {
  Fixture* f = fixture(name);
  if (!f->model || f->rows.n() == 0) {
    state.SkipWithError("model or rows missing (run scripts/bench_models.py)");
    return;
  }
  const auto batch = static_cast<std::size_t>(state.range(0));
  keel::PredictOptions opts;
  opts.threads = static_cast<unsigned>(state.range(1));
  std::vector<float> out(batch * f->model->info().num_outputs);
  std::vector<double> out_d(double_out ? out.size() : 0);
  run_batches(state, *f, batch, [&](const float* rows, std::size_t n) {
    const std::span<const double> d(f->rows.doubles.data() + (rows - f->rows.values.data()), n * f->rows.cols);
    const keel::Status s =
        double_out ? f->model->predict(d, n, std::span<double>(out_d), opts) : f->model->predict(d, n, out, opts);
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(out_d.data());
    return s.is_ok();
  });
}

#ifdef KEEL_HAVE_XGBOOST
void BM_XGBoost(benchmark::State& state, const std::string& name) {
  Fixture* f = fixture(name);
  if (!f->booster || f->rows.n() == 0) {
    state.SkipWithError("model or rows missing (run scripts/bench_models.py)");
    return;
  }
  const auto batch = static_cast<std::size_t>(state.range(0));
  XGBoosterSetParam(f->booster, "nthread", std::to_string(state.range(1)).c_str());
  const char* config = R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false, "cache_id": 0, "missing": NaN})";
  run_batches(state, *f, batch, [&](const float* rows, std::size_t n) {
    char iface[256];
    std::snprintf(iface, sizeof iface,
                  R"({"data": [%llu, true], "shape": [%zu, %zu], "typestr": "<f4", "version": 3})",
                  static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(rows)), n, f->rows.cols);
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* result = nullptr;
    const int rc = XGBoosterPredictFromDense(f->booster, iface, config, nullptr, &shape, &dim, &result);
    benchmark::DoNotOptimize(result);
    if (rc != 0) std::fprintf(stderr, "XGBoost: %s\n", XGBGetLastError());
    return rc == 0;
  });
}
#endif

void add_args(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) {
    for (int batch : {1, 16, 256, 4096, 100000}) b->Args({batch, threads});
  }
  b->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
  for (const char* name : {"b500_d8_f100", "r1000_d6_f50", "b100_d4_f20"}) {
    benchmark::RegisterBenchmark((std::string("Keel/") + name).c_str(), BM_Keel, std::string(name), Variant::kDefault)
        ->Apply(add_args);
    // The heap kernel and the binned one side by side (tree_binned.hpp).
    for (auto [label, v] : {std::pair{"KeelHeap/", Variant::kHeap}, std::pair{"KeelBinned/", Variant::kBinned}}) {
      benchmark::RegisterBenchmark((std::string(label) + name).c_str(), BM_Keel, std::string(name), v)
          ->Args({1, 1})->Args({256, 1})->Args({4096, 1})->Args({100000, 1})
          ->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
    // The same kernel walking the top levels with gathers: what the column
    // compares save.
    benchmark::RegisterBenchmark((std::string("KeelGatherWalk/") + name).c_str(), BM_Keel, std::string(name), Variant::kGatherWalk)
        ->Args({4096, 1})->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
#ifdef KEEL_HAVE_XGBOOST
    benchmark::RegisterBenchmark((std::string("XGBoost/") + name).c_str(), BM_XGBoost, std::string(name))->Apply(add_args);
#endif
  }
  // LightGBM's own figures are in /work/shared/bench/lightgbm/README.md.
  benchmark::RegisterBenchmark("Keel/lgb_deep", BM_Keel, std::string("lgb_deep"), Variant::kDefault)
      ->Args({1, 1})->Args({256, 1})->Args({10000, 1})->Args({10000, 2})
      ->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
  for (bool double_out : {false, true}) {
    benchmark::RegisterBenchmark(double_out ? "KeelF64Out/lgb_deep" : "KeelF64/lgb_deep", BM_KeelF64,
                                 std::string("lgb_deep"), double_out)
        ->Args({1, 1})->Args({256, 1})->Args({10000, 1})->Args({10000, 2})
        ->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  for (const char* name : {"b500_d8_f100", "b100_d4_f20"}) {
    benchmark::RegisterBenchmark((std::string("KeelF64/") + name).c_str(), BM_KeelF64, std::string(name), false)
        ->Args({1, 1})->Args({4096, 1})->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
