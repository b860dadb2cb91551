// LinearModel against a plain Eigen baseline with the same weights:
// dense rows (100 and 1,000 features; one row and batches of 256 / 4096)
// and sparse hashed rows (1,000,000 weights, 50 non-zeros per row).
// Baselines do the bare arithmetic (no shape checks, no NaN handling, the
// sparse matrix built outside the timed loop); Keel's numbers include its
// checks and NaN-as-missing handling.

#include <keel/model/linear_model.hpp>

#include <Eigen/Core>
#include <Eigen/SparseCore>
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Lcg {
  std::uint64_t s;
  float next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(s >> 40) / static_cast<double>(1ull << 23) - 1.0);
  }
  std::uint32_t index(std::uint32_t n) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>((s >> 32) % n);
  }
};

std::shared_ptr<const keel::LinearModel> model(std::size_t f, bool exact) {
  keel::LinearSpec s;
  s.info.num_features = f;
  s.info.features.resize(f);
  Lcg g{42};
  s.weights.resize(f);
  for (float& w : s.weights) w = g.next();
  s.intercept = {0.25f};
  s.exact_order = exact;
  return keel::make_linear_model(std::move(s)).value();
}

std::vector<float> rows(std::size_t n, std::size_t f) {
  Lcg g{7};
  std::vector<float> x(n * f);
  for (float& v : x) v = g.next() * 4;
  return x;
}

void keel_dense(benchmark::State& st, bool exact) {
  const auto f = static_cast<std::size_t>(st.range(0));
  const auto n = static_cast<std::size_t>(st.range(1));
  const auto m = model(f, exact);
  const auto x = rows(n, f);
  std::vector<float> out(n);
  keel::PredictOptions o;
  o.output = keel::OutputKind::kMargin;
  for (auto _ : st) {
    if (!m->predict(x, n, out, o).is_ok()) st.SkipWithError("predict failed");
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * n));
}

void BM_Keel_Dense(benchmark::State& st) { keel_dense(st, false); }
void BM_Keel_Dense_ExactOrder(benchmark::State& st) { keel_dense(st, true); }

void BM_Eigen_Dense(benchmark::State& st) {
  const auto f = static_cast<std::size_t>(st.range(0));
  const auto n = static_cast<std::size_t>(st.range(1));
  const auto m = model(f, false);
  const auto x = rows(n, f);
  std::vector<float> out(n);
  Eigen::Map<const Eigen::VectorXf> w(m->spec().weights.data(), static_cast<Eigen::Index>(f));
  const float b = m->spec().intercept[0];
  for (auto _ : st) {
    Eigen::Map<const RowMajor> xm(x.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(f));
    Eigen::Map<Eigen::VectorXf> o(out.data(), static_cast<Eigen::Index>(n));
    o.noalias() = xm * w;
    o.array() += b;
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * n));
}

constexpr std::uint32_t kHashed = 1'000'000;
constexpr std::size_t kNnz = 50;

struct SparseRows {
  std::vector<std::uint32_t> idx;
  std::vector<float> val;
};

SparseRows sparse_rows(std::size_t n) {
  Lcg g{9};
  SparseRows r;
  for (std::size_t i = 0; i < n * kNnz; ++i) {
    r.idx.push_back(g.index(kHashed));
    r.val.push_back(g.next());
  }
  return r;
}

void BM_Keel_Sparse(benchmark::State& st) {
  const auto n = static_cast<std::size_t>(st.range(0));
  const auto m = model(kHashed, false);
  const SparseRows r = sparse_rows(n);
  std::vector<float> out(n);
  keel::PredictOptions o;
  o.output = keel::OutputKind::kMargin;
  for (auto _ : st) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::span<const std::uint32_t> idx(r.idx.data() + i * kNnz, kNnz);
      const std::span<const float> val(r.val.data() + i * kNnz, kNnz);
      if (!m->predict_sparse(idx, val, std::span<float>(&out[i], 1), o).is_ok()) st.SkipWithError("failed");
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * n));
}

void BM_Eigen_Sparse(benchmark::State& st) {
  const auto n = static_cast<std::size_t>(st.range(0));
  const auto m = model(kHashed, false);
  const SparseRows r = sparse_rows(n);
  std::vector<Eigen::Triplet<float>> trip;
  for (std::size_t i = 0; i < n * kNnz; ++i) {
    trip.emplace_back(static_cast<int>(i / kNnz), static_cast<int>(r.idx[i]), r.val[i]);
  }
  Eigen::SparseMatrix<float, Eigen::RowMajor> xs(static_cast<Eigen::Index>(n), kHashed);
  xs.setFromTriplets(trip.begin(), trip.end());
  Eigen::Map<const Eigen::VectorXf> w(m->spec().weights.data(), kHashed);
  Eigen::VectorXf out(static_cast<Eigen::Index>(n));
  const float b = m->spec().intercept[0];
  for (auto _ : st) {
    out.noalias() = xs * w;
    out.array() += b;
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * n));
}

void dense_args(benchmark::internal::Benchmark* b) {
  for (const int f : {100, 1000}) {
    for (const int n : {1, 256, 4096}) b->Args({f, n});
  }
  b->ArgNames({"features", "rows"});
}

}  // namespace

BENCHMARK(BM_Keel_Dense)->Apply(dense_args);
BENCHMARK(BM_Eigen_Dense)->Apply(dense_args);
BENCHMARK(BM_Keel_Dense_ExactOrder)->Apply(dense_args);
BENCHMARK(BM_Keel_Sparse)->Arg(1)->Arg(256)->Arg(4096)->ArgName("rows");
BENCHMARK(BM_Eigen_Sparse)->Arg(1)->Arg(256)->Arg(4096)->ArgName("rows");

BENCHMARK_MAIN();
