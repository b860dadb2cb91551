// LinearModel and the Keel linear JSON loader: values, missing handling,
// batch vs row, the sparse API on a 1,000,000-weight model, and errors.

#include <keel/model/linear_model.hpp>
#include <keel/model/loaders.hpp>

#include "model/linear/linear_kernels.hpp"
#include "support/fixture_csv.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

using namespace keel;
using Json = nlohmann::json;

namespace {

const std::string kData = KEEL_TEST_DATA_DIR;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::shared_ptr<const LinearModel> as_linear(const Result<ModelPtr>& r) {
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  auto lm = std::dynamic_pointer_cast<const LinearModel>(*r);
  REQUIRE(lm);
  return lm;
}

std::vector<float> run(const Model& m, const std::vector<float>& rows, std::size_t n,
                       OutputKind kind = OutputKind::kTransformed) {
  std::vector<float> out(n * m.info().width(kind));
  PredictOptions o;
  o.output = kind;
  const Status s = m.predict(rows, n, out, o);
  INFO(s.to_string());
  REQUIRE(s.is_ok());
  return out;
}

// Deterministic pseudo-random floats in [-1, 1).
struct Lcg {
  std::uint64_t s;
  float next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(s >> 40) / static_cast<double>(1ull << 23) - 1.0);
  }
};

LinearSpec random_spec(std::size_t f, std::size_t k, std::uint64_t seed) {
  LinearSpec s;
  s.info.num_features = f;
  s.info.features.resize(f);
  s.info.num_margin_outputs = k;
  s.info.num_outputs = k;
  Lcg g{seed};
  s.weights.resize(f * k);
  for (float& w : s.weights) w = g.next();
  for (std::size_t o = 0; o < k; ++o) s.intercept.push_back(g.next());
  return s;
}

// The margin in double, for checking float results.
double reference(const LinearSpec& s, const float* x, std::size_t o) {
  const std::size_t k = s.info.num_margin_outputs;
  double m = s.intercept[o];
  for (std::size_t j = 0; j < s.info.num_features; ++j) {
    if (!std::isnan(x[j])) m += static_cast<double>(x[j]) * s.weights[j * k + o];
  }
  return m;
}

}  // namespace

TEST_CASE("keel linear JSON: logistic link, names, NaN as missing", "[model][linear]") {
  auto lm = as_linear(load_model(kData + "/linear/credit_logistic.json"));
  const ModelInfo& mi = lm->info();
  CHECK(mi.format == ModelFormat::kKeelLinearJson);
  CHECK(mi.id == "credit_logistic");
  CHECK(mi.has_feature_names);
  CHECK(mi.features[2].name == "debt ratio");
  CHECK(mi.num_trees == 0);
  CHECK(mi.objective == "logistic");
  CHECK_FALSE(lm->spec().exact_order);

  const std::vector<float> rows = {2, 1, 0.5f, 2, kNaN, 0.5f, 2, 0, 0.5f};
  const auto margin = run(*lm, rows, 3, OutputKind::kMargin);
  CHECK(margin[0] == 0.5f + 0.5f - 1.5f + 1.0f);
  CHECK(margin[1] == margin[2]);  // NaN contributes nothing, like 0
  const auto prob = run(*lm, rows, 3);
  CHECK(prob[0] == Approx(1.0 / (1.0 + std::exp(-0.5))));
}

TEST_CASE("keel linear JSON: softmax over three outputs", "[model][linear]") {
  auto lm = as_linear(load_model(kData + "/linear/iris_softmax.json"));
  CHECK(lm->info().num_classes == 3);
  const std::vector<float> row = {1.0f, 2.0f};
  const auto m = run(*lm, row, 1, OutputKind::kMargin);
  CHECK(m == std::vector<float>{1.1f, 3.2f, 0.3f});
  const auto p = run(*lm, row, 1);
  const double z = std::exp(1.1) + std::exp(3.2) + std::exp(0.3);
  CHECK(p[1] == Approx(std::exp(3.2) / z));
  CHECK(p[0] + p[1] + p[2] == Approx(1.0f));
}

TEST_CASE("linear: a batch (Eigen) agrees with row-by-row, NaN included", "[model][linear]") {
  for (const std::size_t k : {std::size_t{1}, std::size_t{3}}) {
    LinearSpec s = random_spec(100, k, 7 + k);
    auto r = make_linear_model(s);
    REQUIRE(r.ok());
    const LinearModel& m = **r;
    const std::size_t n = 64;
    Lcg g{99};
    std::vector<float> rows(n * 100);
    for (float& v : rows) v = g.next() * 10;
    for (std::size_t i = 0; i < n; i += 5) rows[i * 100 + i % 100] = kNaN;  // some rows have a missing value
    const auto batch = run(m, rows, n, OutputKind::kMargin);
    double max_diff = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const auto one = run(m, std::vector<float>(rows.begin() + i * 100, rows.begin() + (i + 1) * 100), 1,
                           OutputKind::kMargin);
      for (std::size_t o = 0; o < k; ++o) {
        const double want = reference(s, rows.data() + i * 100, o);
        CHECK(batch[i * k + o] == Approx(want).margin(1e-4));
        CHECK(one[o] == Approx(want).margin(1e-4));
        max_diff = std::max(max_diff, std::fabs(static_cast<double>(batch[i * k + o]) - one[o]));
      }
    }
    std::printf("linear F=100 K=%zu: max |batch - row| = %.3g\n", k, max_diff);
    // Transformed batch output goes through the same transform.
    s.transform = Transform::kExp;
    auto e = make_linear_model(s);
    REQUIRE(e.ok());
    const auto exp_batch = run(**e, rows, n);
    for (std::size_t i = 0; i < n * k; ++i) CHECK(exp_batch[i] == Approx(std::exp(batch[i])).epsilon(1e-5));
  }
}

TEST_CASE("linear: exact-order models give bit-identical batches and rows", "[model][linear]") {
  LinearSpec s = random_spec(50, 2, 3);
  s.exact_order = true;
  auto r = make_linear_model(s);
  REQUIRE(r.ok());
  std::vector<float> rows(20 * 50);
  Lcg g{5};
  for (float& v : rows) v = g.next();
  rows[7] = kNaN;
  const auto batch = run(**r, rows, 20, OutputKind::kMargin);
  for (std::size_t i = 0; i < 20; ++i) {
    // The strict order: intercept, then + x*w feature by feature, in float.
    for (std::size_t o = 0; o < 2; ++o) {
      float acc = s.intercept[o];
      for (std::size_t j = 0; j < 50; ++j) {
        const float x = rows[i * 50 + j];
        if (std::isnan(x)) continue;
        const float p = x * s.weights[j * 2 + o];
        acc += p;
      }
      CHECK(batch[i * 2 + o] == acc);
    }
  }
}

TEST_CASE("linear: gblinear fixture through the fast kernel vs XGBoost's order", "[model][linear][xgboost]") {
  const std::string dir = kData + "/xgboost/";
  for (const char* name : {"gblinear", "gblinear_multiclass"}) {
    auto lm = as_linear(load_model(dir + name + ".json"));
    LinearSpec fast = lm->spec();
    fast.exact_order = false;
    fast.info.version = 0;
    auto fm = make_linear_model(fast);
    REQUIRE(fm.ok());
    const auto in = test::read_csv(dir + name + ".input.csv");
    const auto want = test::read_csv(dir + name + ".margin.csv");
    test::DiffStats exact, quick;
    const auto a = run(*lm, in.values, in.rows, OutputKind::kMargin);
    const auto b = run(**fm, in.values, in.rows, OutputKind::kMargin);
    for (std::size_t i = 0; i < a.size(); ++i) {
      exact.add(a[i], want.values[i], 1e-5, "exact");
      quick.add(b[i], want.values[i], 1e-5, "fast");
    }
    std::printf("%s: exact order max abs %.3g rel %.3g; fast kernel max abs %.3g rel %.3g\n", name, exact.max_abs,
                exact.max_rel, quick.max_abs, quick.max_rel);
    CHECK(exact.max_abs == 0);
    CHECK(quick.failures == 0);
  }
}

TEST_CASE("linear: sparse rows on a 1,000,000-weight hashed model", "[model][linear][sparse]") {
  constexpr std::size_t kF = 1'000'000;
  LinearSpec s = random_spec(kF, 1, 11);
  s.transform = Transform::kSigmoid;
  auto r = make_linear_model(s);
  REQUIRE(r.ok());
  const LinearModel& m = **r;
  Lcg g{17};
  std::vector<std::uint32_t> idx;
  std::vector<float> val;
  std::vector<float> dense(kF, 0.0f);
  for (int i = 0; i < 50; ++i) {
    const auto j = static_cast<std::uint32_t>((static_cast<std::uint64_t>(i) * 2654435761u) % kF);
    idx.push_back(j);
    val.push_back(g.next() * 3);
    dense[j] = val.back();
  }
  idx.push_back(5);  // a NaN value is skipped
  val.push_back(kNaN);
  float sparse_margin = 0, sparse_prob = 0;
  PredictOptions mo;
  mo.output = OutputKind::kMargin;
  REQUIRE(m.predict_sparse(idx, val, std::span<float>(&sparse_margin, 1), mo).is_ok());
  REQUIRE(m.predict_sparse(idx, val, std::span<float>(&sparse_prob, 1)).is_ok());
  const double want = reference(s, dense.data(), 0);
  CHECK(sparse_margin == Approx(want).margin(1e-5));
  CHECK(sparse_prob == Approx(1.0 / (1.0 + std::exp(-want))).margin(1e-6));
  const auto dense_margin = run(m, dense, 1, OutputKind::kMargin);
  CHECK(dense_margin[0] == Approx(sparse_margin).margin(1e-5));

  // Errors name what is wrong.
  std::vector<std::uint32_t> bad = idx;
  bad[3] = kF;
  Status st = m.predict_sparse(bad, val, std::span<float>(&sparse_margin, 1));
  CHECK(st.code() == StatusCode::kInvalidInput);
  CHECK_THAT(st.message(), Catch::Contains("index 1000000 (pair 3) out of range"));
  st = m.predict_sparse(std::span<const std::uint32_t>(idx).first(3), val, std::span<float>(&sparse_margin, 1));
  CHECK_THAT(st.message(), Catch::Contains("3 indices but 51 values"));
  float two[2];
  st = m.predict_sparse(idx, val, two);
  CHECK_THAT(st.message(), Catch::Contains("expected 1 outputs"));
}

TEST_CASE("linear: sparse rows with several outputs", "[model][linear][sparse]") {
  LinearSpec s = random_spec(10, 3, 23);
  auto r = make_linear_model(s);
  REQUIRE(r.ok());
  const std::vector<std::uint32_t> idx = {9, 0, 4};
  const std::vector<float> val = {1.5f, -2.0f, 0.25f};
  std::vector<float> dense(10, 0.0f);
  for (std::size_t i = 0; i < idx.size(); ++i) dense[idx[i]] = val[i];
  float out[3];
  PredictOptions mo;
  mo.output = OutputKind::kMargin;
  REQUIRE((*r)->predict_sparse(idx, val, out, mo).is_ok());
  for (std::size_t o = 0; o < 3; ++o) CHECK(out[o] == Approx(reference(s, dense.data(), o)).margin(1e-6));
}

TEST_CASE("linear: make_linear_model rejects inconsistent specs", "[model][linear][errors]") {
  LinearSpec s = random_spec(4, 2, 1);
  s.weights.pop_back();
  CHECK_THAT(make_linear_model(s).status().message(), Catch::Contains("weights: 7 values, expected 4 features x 2"));
  s = random_spec(4, 2, 1);
  s.weights[5] = std::numeric_limits<float>::infinity();
  CHECK_THAT(make_linear_model(s).status().message(), Catch::Contains("feature 2 output 1 is not finite"));
  s = random_spec(4, 2, 1);
  s.intercept.resize(1);
  CHECK_THAT(make_linear_model(s).status().message(), Catch::Contains("intercept: 1 values for 2 outputs"));
  s = random_spec(4, 2, 1);
  s.transform = Transform::kSoftmaxArgmax;
  CHECK_THAT(make_linear_model(s).status().message(), Catch::Contains("its transform gives 1"));
  s = random_spec(4, 1, 1);
  auto r = make_linear_model(s);
  REQUIRE(r.ok());
  std::vector<float> out(1);
  const Status st = (*r)->predict(std::vector<float>(3), 1, out);
  CHECK(st.code() == StatusCode::kInvalidInput);
}

TEST_CASE("keel linear JSON: errors name the field", "[model][linear][errors]") {
  const Json good = Json::parse(keel::test::read_file(kData + "/linear/credit_logistic.json"));
  auto expect = [](const Json& j, const char* part) {
    auto r = load_keel_linear_json(j.dump());
    REQUIRE_FALSE(r.ok());
    INFO(r.status().message());
    CHECK(r.status().code() == StatusCode::kModelError);
    CHECK_THAT(r.status().message(), Catch::Contains(part));
  };
  Json j = good;
  j["wieghts"] = 1;
  expect(j, "unknown field 'wieghts'");
  j = good;
  j.erase("weights");
  expect(j, "missing field 'weights'");
  j = good;
  j["weights"][1] = {1.0, 2.0};
  expect(j, "weights[1]: 2 values for 1 outputs");
  j = good;
  j["weights"][2][0] = "x";
  expect(j, "weights[2][0]: expected a number");
  j = good;
  j["link"] = "probit";
  expect(j, "link: unknown link 'probit'");
  j = good;
  j["link"] = "softmax";
  expect(j, "softmax needs outputs >= 2");
  j = good;
  j["keel_linear"] = 2;
  expect(j, "format version 2 is not supported");
  j = good;
  j["feature_names"].erase(0);
  expect(j, "feature_names: 2 names for 3 features");
  j = good;
  j["intercept"] = {1.0, 2.0};
  expect(j, "intercept: 2 values for 1 outputs");
  j = good;
  j.erase("feature_names");
  j["num_features"] = 4;
  expect(j, "weights: 3 rows for 4 features");
  j = good;
  j["num_features"] = 1e12;
  expect(j, "num_features: 1000000000000 out of range");
  j = good;
  j["weights"][0][0] = 1e39;
  expect(j, "weights[0][0]: 1e+39 is not a finite float");

  // A flat weight list and a scalar intercept are fine when K == 1.
  j = good;
  j["weights"] = {0.25, -1.5, 2.0};
  j["intercept"] = 0.5;
  auto r = load_keel_linear_json(j.dump());
  REQUIRE(r.ok());
  CHECK(run(**r, {2, 1, 0.5f}, 1, OutputKind::kMargin)[0] == 0.5f);
}

TEST_CASE("linear: both dot kernels agree with a double reference, NaN as 0", "[model][linear][simd]") {
  std::vector<detail::DotKernel> kernels = {&detail::dot_portable};
  if (detail::best_dot_kernel() != &detail::dot_portable) kernels.push_back(detail::best_dot_kernel());
  std::printf("dot kernels tested: %zu (AVX2+FMA %s)\n", kernels.size(), kernels.size() > 1 ? "yes" : "not on this CPU");
  Lcg g{31};
  for (const std::size_t n : {0, 1, 7, 8, 9, 31, 32, 33, 100, 1000}) {
    std::vector<float> x(n), w(n);
    double want = 0;
    for (std::size_t j = 0; j < n; ++j) {
      x[j] = j % 11 == 3 ? kNaN : g.next();
      w[j] = g.next();
      if (!std::isnan(x[j])) want += static_cast<double>(x[j]) * w[j];
    }
    for (const auto k : kernels) CHECK(k(x.data(), w.data(), n) == Approx(want).margin(1e-4));
  }
}
