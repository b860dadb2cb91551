// Cost per 100-feature row of the validate layer's hot path: schema
// validation, anomaly scoring, both together (the engine's per-request
// cost), and drift observation; with XGBoost, the cost of scoring the same
// row with a 500-tree model, in the same run, for the ratio.
//
//   cmake --preset release && cmake --build --preset release --target bench_validate
//   build/release/benchmarks/bench_validate --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <keel/validate/anomaly_detector.hpp>
#include <keel/validate/drift_monitor.hpp>
#include <keel/validate/profile_builder.hpp>
#include <keel/validate/schema_validator.hpp>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#ifdef KEEL_HAVE_XGBOOST
#include <xgboost/c_api.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kFeatures = 100;

// 70 numeric, 10 integer, 10 indicator, 10 categorical (ids 0..19).
std::vector<keel::FeatureInfo> features() {
  std::vector<keel::FeatureInfo> f(kFeatures);
  for (std::size_t j = 0; j < kFeatures; ++j) {
    f[j].name = fmt::format("f{}", j);  // not "f" + to_string: GCC 12 -Wrestrict false positive
    f[j].type = j < 70 ? keel::FeatureType::kNumeric
                : j < 80 ? keel::FeatureType::kInteger
                : j < 90 ? keel::FeatureType::kIndicator
                         : keel::FeatureType::kCategorical;
  }
  return f;
}

std::vector<float> rows(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> z(0.0f, 1.0f);
  std::uniform_int_distribution<int> i100(0, 100), bit(0, 1), cat(0, 19);
  std::vector<float> out(n * kFeatures);
  for (std::size_t r = 0; r < n; ++r) {
    float* row = out.data() + r * kFeatures;
    for (std::size_t j = 0; j < kFeatures; ++j) {
      row[j] = j < 70 ? z(rng) : j < 80 ? static_cast<float>(i100(rng)) : j < 90 ? static_cast<float>(bit(rng))
                                                                               : static_cast<float>(cat(rng));
    }
  }
  return out;
}

struct Fixture {
  keel::Profile profile;
  std::unique_ptr<keel::SchemaValidator> validator;
  std::unique_ptr<keel::AnomalyDetector> detector;
  std::vector<float> clean;  // rows that pass both checks
  std::vector<float> dirty;  // rows with a few flagged/clamped values

  Fixture() {
    keel::ProfileBuilder b(features());
    const auto train = rows(20000, 1);
    if (!b.add(train, 20000).is_ok()) std::abort();
    profile = b.build();
    keel::ModelInfo info;
    info.num_features = kFeatures;
    info.features = features();
    keel::Schema s = keel::Schema::from_model(info);
    for (std::size_t j = 0; j < 70; ++j) {
      s.features[j].min = -10;
      s.features[j].max = 10;
      s.features[j].set_action(keel::Rule::kBelowMin, keel::Action::kClamp);
      s.features[j].set_action(keel::Rule::kAboveMax, keel::Action::kClamp);
    }
    for (std::size_t j = 90; j < 100; ++j) {
      for (std::int32_t c = 0; c < 20; ++c) s.features[j].categories.push_back(c);
      s.features[j].set_action(keel::Rule::kUnknownCategory, keel::Action::kFlag);
    }
    validator = std::make_unique<keel::SchemaValidator>(s);
    detector = std::make_unique<keel::AnomalyDetector>(profile);
    // Rows within the profile's central range, so that both fast paths hold.
    auto all = rows(4096, 2);
    for (std::size_t r = 0; r < 4096; ++r) {
      float* row = all.data() + r * kFeatures;
      for (std::size_t j = 0; j < 70; ++j) row[j] = std::max(-2.5f, std::min(2.5f, row[j]));
    }
    clean = all;
    dirty = all;
    for (std::size_t r = 0; r < 4096; ++r) {
      dirty[r * kFeatures + 3] = 50.0f;                        // clamped, out of range
      dirty[r * kFeatures + 95] = 25.0f;                       // unknown category, flagged
      dirty[r * kFeatures + 7] = std::numeric_limits<float>::quiet_NaN();  // missing where none was
    }
  }
};

Fixture& fx() {
  static Fixture f;
  return f;
}

void BM_SchemaValidateRow(benchmark::State& state) {
  Fixture& f = fx();
  keel::ValidationReport rep;
  std::vector<float> out(kFeatures);
  const auto& data = state.range(0) == 0 ? f.clean : f.dirty;
  std::size_t r = 0;
  for (auto _ : state) {
    const std::span<const float> row(data.data() + r * kFeatures, kFeatures);
    f.validator->validate(row, 1, out, rep);
    benchmark::DoNotOptimize(rep.ok(0));
    r = (r + 1) % 4096;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(state.range(0) == 0 ? "clean" : "dirty");
}
BENCHMARK(BM_SchemaValidateRow)->Arg(0)->Arg(1);

void BM_AnomalyRow(benchmark::State& state) {
  Fixture& f = fx();
  keel::AnomalyReport rep;
  const auto& data = state.range(0) == 0 ? f.clean : f.dirty;
  std::size_t r = 0;
  for (auto _ : state) {
    f.detector->score(std::span<const float>(data.data() + r * kFeatures, kFeatures), 1, rep);
    benchmark::DoNotOptimize(rep.score(0));
    r = (r + 1) % 4096;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(state.range(0) == 0 ? "clean" : "dirty");
}
BENCHMARK(BM_AnomalyRow)->Arg(0)->Arg(1);

// The engine's per-request cost: validate (into its buffer), then score
// anomalies on the fixed row.
void BM_ValidatePlusAnomalyRow(benchmark::State& state) {
  Fixture& f = fx();
  keel::ValidationReport vrep;
  keel::AnomalyReport arep;
  std::vector<float> out(kFeatures);
  const auto& data = state.range(0) == 0 ? f.clean : f.dirty;
  std::size_t r = 0;
  for (auto _ : state) {
    f.validator->validate(std::span<const float>(data.data() + r * kFeatures, kFeatures), 1, out, vrep);
    f.detector->score(out, 1, arep);
    benchmark::DoNotOptimize(arep.score(0));
    r = (r + 1) % 4096;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(state.range(0) == 0 ? "clean" : "dirty");
}
BENCHMARK(BM_ValidatePlusAnomalyRow)->Arg(0)->Arg(1);

// The same on a batch of 256 rows; items/s is rows/s.
void BM_ValidatePlusAnomalyBatch256(benchmark::State& state) {
  Fixture& f = fx();
  keel::ValidationReport vrep;
  keel::AnomalyReport arep;
  std::vector<float> out(256 * kFeatures);
  const std::span<const float> batch(f.clean.data(), 256 * kFeatures);
  for (auto _ : state) {
    f.validator->validate(batch, 256, out, vrep);
    f.detector->score(out, 256, arep);
    benchmark::DoNotOptimize(arep.score(255));
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_ValidatePlusAnomalyBatch256);

void BM_DriftObserveRow(benchmark::State& state) {
  Fixture& f = fx();
  keel::DriftMonitor m(f.profile);
  std::size_t r = 0;
  for (auto _ : state) {
    m.observe(std::span<const float>(f.clean.data() + r * kFeatures, kFeatures), 0.5f);
    r = (r + 1) % 4096;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DriftObserveRow);

#ifdef KEEL_HAVE_XGBOOST
#define XGB_CHECK(call)                                                  \
  do {                                                                   \
    if ((call) != 0) {                                                   \
      std::fprintf(stderr, "xgboost: %s\n", XGBGetLastError());          \
      std::abort();                                                      \
    }                                                                    \
  } while (0)

// A 500-tree, depth-6 binary model on the same 100 features, trained here.
BoosterHandle xgb_model() {
  static BoosterHandle booster = [] {
    const auto x = rows(5000, 3);
    std::vector<float> y(5000);
    for (std::size_t r = 0; r < 5000; ++r) y[r] = x[r * kFeatures] + x[r * kFeatures + 1] > 0 ? 1.0f : 0.0f;
    DMatrixHandle d;
    XGB_CHECK(XGDMatrixCreateFromMat(x.data(), 5000, kFeatures, std::numeric_limits<float>::quiet_NaN(), &d));
    XGB_CHECK(XGDMatrixSetFloatInfo(d, "label", y.data(), 5000));
    BoosterHandle b;
    XGB_CHECK(XGBoosterCreate(&d, 1, &b));
    XGB_CHECK(XGBoosterSetParam(b, "objective", "binary:logistic"));
    XGB_CHECK(XGBoosterSetParam(b, "max_depth", "6"));
    XGB_CHECK(XGBoosterSetParam(b, "tree_method", "hist"));
    XGB_CHECK(XGBoosterSetParam(b, "nthread", "1"));
    XGB_CHECK(XGBoosterSetParam(b, "min_child_weight", "0"));
    XGB_CHECK(XGBoosterSetParam(b, "lambda", "0"));
    XGB_CHECK(XGBoosterSetParam(b, "subsample", "0.5"));
    for (int i = 0; i < 500; ++i) XGB_CHECK(XGBoosterUpdateOneIter(b, i, d));
    XGB_CHECK(XGDMatrixFree(d));
    return b;
  }();
  return booster;
}

// XGBoost's own in-place prediction of n rows; items/s is rows/s.
void BM_Xgboost500TreesPredict(benchmark::State& state) {
  Fixture& f = fx();
  BoosterHandle b = xgb_model();
  const auto n = static_cast<std::size_t>(state.range(0));
  char iface[256];
  std::snprintf(iface, sizeof iface,
                R"({"data": [%llu, true], "shape": [%zu, %zu], "typestr": "<f4", "version": 3})",
                static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(f.clean.data())), n, kFeatures);
  const char* config = R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false, "cache_id": 0, "missing": -1e38})";
  for (auto _ : state) {
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* out = nullptr;
    XGB_CHECK(XGBoosterPredictFromDense(b, iface, config, nullptr, &shape, &dim, &out));
    benchmark::DoNotOptimize(out[0]);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_Xgboost500TreesPredict)->Arg(1)->Arg(256);
#endif

}  // namespace

BENCHMARK_MAIN();
