// Explanations at scoring speed: Keel's exact TreeSHAP contributions and
// leaf indices against XGBoost's own (XGBoosterPredictFromDMatrix, type 2
// = pred_contribs, type 6 = pred_leaf), and against Keel's plain scoring of
// the same rows, in one run. Model and rows: build/bench-models/b500_d8_f100
// (scripts/bench_models.py; or the directory in KEEL_BENCH_MODELS): 500
// trees, depth 8, 100 features.
//
// Before timing, Keel's and XGBoost's contributions for the first rows are
// compared (1e-4 of the row's largest |value|), so both sides compute the
// same thing. XGBoost's DMatrices are built before the timed loop (which
// favours XGBoost) and rotated so no call reuses the previous one's rows.
// Counter us_per_row = CPU time / rows. One thread on both sides.
// EngineScore/k: ScoringEngine::score() of one row asking for k reason
// codes (k = 0: none), the engine-level cost of reason codes.
// Run: build/release/benchmarks/bench_explain --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <keel/engine/scoring_engine.hpp>
#include <keel/model/explain.hpp>
#include <keel/model/loaders.hpp>

#include "support/fixture_csv.hpp"

#include <benchmark/benchmark.h>

#ifdef KEEL_HAVE_XGBOOST
#include <xgboost/c_api.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace {

constexpr const char* kName = "b500_d8_f100";
constexpr std::size_t kRing = 8;  // distinct row blocks per batch size

struct Fixture {
  keel::ModelPtr model;
  keel::test::Table rows;
  std::string error;  // why the benchmarks skip; empty when ready
#ifdef KEEL_HAVE_XGBOOST
  BoosterHandle booster = nullptr;
  std::map<std::size_t, std::vector<DMatrixHandle>> dmats;  // by batch size
#endif
  [[nodiscard]] std::size_t cols() const { return rows.cols(); }
  [[nodiscard]] const float* block(std::size_t batch, std::size_t i) const {
    return rows.values.data() + (i % kRing) * batch * cols();
  }
};

#ifdef KEEL_HAVE_XGBOOST
// XGBoost's answer for one DMatrix: type 2 contributions, 6 leaves.
const float* xgb_predict(BoosterHandle b, DMatrixHandle d, int type, std::size_t* size) {
  char config[160];
  std::snprintf(config, sizeof config,
                R"({"type": %d, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false})",
                type);
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* out = nullptr;
  if (XGBoosterPredictFromDMatrix(b, d, config, &shape, &dim, &out) != 0) return nullptr;
  *size = 1;
  for (bst_ulong i = 0; i < dim; ++i) *size *= shape[i];
  return out;
}

DMatrixHandle xgb_dmatrix(Fixture& f, std::size_t batch, std::size_t i) {
  auto& ring = f.dmats[batch];
  if (ring.empty()) {
    for (std::size_t k = 0; k < kRing; ++k) {
      DMatrixHandle d = nullptr;
      XGDMatrixCreateFromMat(f.block(batch, k), batch, f.cols(), std::nanf(""), &d);
      ring.push_back(d);
    }
  }
  return ring[i % kRing];
}
#endif

Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    const char* env = std::getenv("KEEL_BENCH_MODELS");
    const std::string dir = env ? env : std::string(KEEL_SOURCE_DIR) + "/build/bench-models";
    auto m = keel::load_model(dir + "/" + kName + ".json");
    if (!m.ok()) {
      x.error = m.status().to_string() + " (run scripts/bench_models.py)";
      return x;
    }
    x.model = *m;
    try {
      x.rows = keel::test::read_csv(dir + "/" + kName + ".csv");
    } catch (const std::exception& e) {
      x.error = e.what();
      return x;
    }
#ifdef KEEL_HAVE_XGBOOST
    XGBoosterCreate(nullptr, 0, &x.booster);
    XGBoosterSetParam(x.booster, "nthread", "1");
    if (XGBoosterLoadModel(x.booster, (dir + "/" + kName + ".json").c_str()) != 0) {
      x.error = std::string("XGBoost: ") + XGBGetLastError();
      return x;
    }
    // The same numbers on both sides, or the comparison means nothing.
    const std::size_t n = 16, w = keel::contributions_width(x.model->info());
    std::vector<float> keel_c(n * w);
    if (!x.model->contributions(std::span<const float>(x.block(n, 0), n * x.cols()), n, keel_c).is_ok()) {
      x.error = "Keel contributions failed";
      return x;
    }
    std::size_t size = 0;
    const float* xgb_c = xgb_predict(x.booster, xgb_dmatrix(x, n, 0), 2, &size);
    if (xgb_c == nullptr || size != keel_c.size()) {
      x.error = "XGBoost contributions failed or differ in shape";
      return x;
    }
    for (std::size_t r = 0; r < n; ++r) {
      float scale = 0;
      for (std::size_t j = 0; j < w; ++j) scale = std::max(scale, std::fabs(xgb_c[r * w + j]));
      for (std::size_t j = 0; j < w; ++j) {
        if (std::fabs(keel_c[r * w + j] - xgb_c[r * w + j]) > 1e-4f * scale) {
          x.error = "Keel and XGBoost contributions differ at row " + std::to_string(r) + " column " +
                    std::to_string(j);
          return x;
        }
      }
    }
#endif
    return x;
  }();
  return f;
}

void finish(benchmark::State& state, std::size_t batch) {
  const double rows = static_cast<double>(state.iterations()) * static_cast<double>(batch);
  state.counters["us_per_row"] =
      benchmark::Counter(rows * 1e-6, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

bool ready(benchmark::State& state, std::size_t batch) {
  const Fixture& f = fixture();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return false;
  }
  if (batch * kRing > f.rows.rows) {
    state.SkipWithError("not enough rows");
    return false;
  }
  return true;
}

enum class What { kPredict, kContribs, kLeaf };

void BM_Keel(benchmark::State& state, What what) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  if (!ready(state, batch)) return;
  const Fixture& f = fixture();
  const keel::Model& m = *f.model;
  const keel::ModelInfo& mi = m.info();
  std::vector<float> out(batch * std::max(keel::contributions_width(mi), mi.num_outputs));
  std::vector<std::int32_t> leaves(batch * keel::leaf_indices_width(mi));
  std::size_t i = 0;
  for (auto _ : state) {
    const std::span<const float> rows(f.block(batch, i++), batch * f.cols());
    keel::Status s;
    switch (what) {
      case What::kPredict: s = m.predict(rows, batch, std::span<float>(out.data(), batch * mi.num_outputs)); break;
      case What::kContribs: s = m.contributions(rows, batch, out); break;
      case What::kLeaf: s = m.leaf_indices(rows, batch, leaves); break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(leaves.data());
    if (!s.is_ok()) {
      state.SkipWithError(s.to_string().c_str());
      return;
    }
  }
  finish(state, batch);
}

void BM_EngineScore(benchmark::State& state) {
  if (!ready(state, 1)) return;
  const Fixture& f = fixture();
  auto engine = keel::EngineBuilder().model("primary", f.model).stage("primary").build();
  keel::Request req;
  req.reason_codes.k = static_cast<std::uint32_t>(state.range(0));
  std::size_t i = 0;
  for (auto _ : state) {
    req.features = std::span<const float>(f.block(1, i++), f.cols());
    auto r = engine->score(req);
    benchmark::DoNotOptimize(r);
    if (!r.ok()) {
      state.SkipWithError(r.status().to_string().c_str());
      return;
    }
  }
  finish(state, 1);
}

#ifdef KEEL_HAVE_XGBOOST
void BM_XGBoost(benchmark::State& state, int type) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  if (!ready(state, batch)) return;
  Fixture& f = fixture();
  for (std::size_t k = 0; k < kRing; ++k) xgb_dmatrix(f, batch, k);
  std::size_t i = 0;
  for (auto _ : state) {
    std::size_t size = 0;
    const float* out = xgb_predict(f.booster, xgb_dmatrix(f, batch, i++), type, &size);
    benchmark::DoNotOptimize(out);
    if (out == nullptr) {
      state.SkipWithError(XGBGetLastError());
      return;
    }
  }
  finish(state, batch);
}
#endif

// CPU time, not wall time: both sides run on one thread, and on a shared,
// overloaded machine the wall clock mostly measures the other processes.
// Explanations cost milliseconds per row at this size, so batches stay small.
void sizes(benchmark::internal::Benchmark* b, bool peer) {
  for (int batch : {1, 16}) b->Arg(batch);
  if (!peer) b->Arg(256);
  b->ArgName("batch")->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
  const std::string n = kName;
  benchmark::RegisterBenchmark(("KeelPredict/" + n).c_str(), BM_Keel, What::kPredict)->Apply([](auto* b) { sizes(b, false); });
  benchmark::RegisterBenchmark(("KeelContribs/" + n).c_str(), BM_Keel, What::kContribs)->Apply([](auto* b) { sizes(b, false); });
  benchmark::RegisterBenchmark(("KeelLeaf/" + n).c_str(), BM_Keel, What::kLeaf)->Apply([](auto* b) { sizes(b, false); });
  benchmark::RegisterBenchmark(("EngineScore/" + n).c_str(), BM_EngineScore)
      ->Arg(0)
      ->Arg(3)
      ->ArgName("k")
      ->Unit(benchmark::kMicrosecond);
#ifdef KEEL_HAVE_XGBOOST
  benchmark::RegisterBenchmark(("XGBoostContribs/" + n).c_str(), BM_XGBoost, 2)->Apply([](auto* b) { sizes(b, true); });
  benchmark::RegisterBenchmark(("XGBoostLeaf/" + n).c_str(), BM_XGBoost, 6)->Apply([](auto* b) { sizes(b, true); });
#endif
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
