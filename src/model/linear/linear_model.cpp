// LinearModel: dense rows (one row: unrolled float accumulators; a batch:
// Eigen matrix product), sparse rows, and XGBoost's exact summation order.

#include <keel/model/linear_model.hpp>

#include "model/linear/linear_kernels.hpp"
#include "model/support/small_buffer.hpp"

#include <Eigen/Core>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace keel {
namespace {

// Rows below this go through the one-row kernel: the matrix product only
// pays off once its packing cost is spread over enough rows.
constexpr std::size_t kMinEigenRows = 8;
// Outputs held on the stack; wider models use the heap.
constexpr std::size_t kStackOutputs = 16;

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline float present(float x) noexcept { return x == x ? x : 0.0f; }  // NaN contributes nothing

// XGBoost gblinear: psum = float(bias + base); psum += x * w for each
// non-missing feature in order (no FMA: separately rounded product).
void margin_exact(const float* x, const float* w, const float* intercept, std::size_t f, std::size_t k,
                  float* m) noexcept {
  for (std::size_t o = 0; o < k; ++o) {
    float acc = intercept[o];
    for (std::size_t j = 0; j < f; ++j) {
      const float xv = x[j];
      if (xv != xv) continue;
      const float p = xv * w[j * k + o];
      acc += p;
    }
    m[o] = acc;
  }
}

void margin_fast(const float* x, const float* w, const float* intercept, std::size_t f, std::size_t k,
                 float* m) noexcept {
  if (k == 1) {
    static const detail::DotKernel dot = detail::best_dot_kernel();
    m[0] = intercept[0] + dot(x, w, f);
    return;
  }
  std::fill(m, m + k, 0.0f);
  for (std::size_t j = 0; j < f; ++j) {
    const float xv = present(x[j]);
    if (xv == 0.0f) continue;
    const float* wj = w + j * k;
    for (std::size_t o = 0; o < k; ++o) m[o] += xv * wj[o];
  }
  for (std::size_t o = 0; o < k; ++o) m[o] += intercept[o];
}

// margin_exact for a block of rows: each row keeps XGBoost's order (so the
// result is bit-identical), but eight rows advance together, which hides
// the add latency of one long dependency chain.
constexpr std::size_t kExactBlock = 8;
void margin_exact_block(const float* x, const float* w, const float* intercept, std::size_t f, std::size_t k,
                        float* m) noexcept {
  for (std::size_t o = 0; o < k; ++o) {
    float acc[kExactBlock];
    for (std::size_t r = 0; r < kExactBlock; ++r) acc[r] = intercept[o];
    for (std::size_t j = 0; j < f; ++j) {
      const float wj = w[j * k + o];
      for (std::size_t r = 0; r < kExactBlock; ++r) {
        const float xv = x[r * f + j];
        const float p = xv * wj;
        const float sum = acc[r] + p;
        acc[r] = xv == xv ? sum : acc[r];
      }
    }
    for (std::size_t r = 0; r < kExactBlock; ++r) m[r * k + o] = acc[r];
  }
}

Status check_spec(const LinearSpec& s) {
  const ModelInfo& mi = s.info;
  if (mi.num_features == 0) return model_error("linear model has no features");
  if (mi.features.size() != mi.num_features) {
    return model_error(fmt::format("feature list has {} entries but the model has {} features", mi.features.size(),
                                   mi.num_features));
  }
  const std::size_t k = mi.num_margin_outputs;
  if (k == 0) return model_error("linear model has no outputs");
  if (s.weights.size() / k != mi.num_features || s.weights.size() % k != 0) {
    return model_error(fmt::format("weights: {} values, expected {} features x {} outputs", s.weights.size(),
                                   mi.num_features, k));
  }
  if (s.intercept.size() != k) {
    return model_error(fmt::format("intercept: {} values for {} outputs", s.intercept.size(), k));
  }
  for (std::size_t i = 0; i < s.weights.size(); ++i) {
    if (!std::isfinite(s.weights[i])) {
      return model_error(fmt::format("weight of feature {} output {} is not finite", i / k, i % k));
    }
  }
  for (std::size_t o = 0; o < k; ++o) {
    if (!std::isfinite(s.intercept[o])) return model_error(fmt::format("intercept {} is not finite", o));
  }
  const std::size_t want = s.transform == Transform::kSoftmaxArgmax ? 1 : k;
  if (mi.num_outputs != want) {
    return model_error(fmt::format("model declares {} outputs; its transform gives {}", mi.num_outputs, want));
  }
  if (!mi.base_score.empty() && mi.base_score.size() != k) {
    return model_error(fmt::format("base_score has {} values for {} outputs", mi.base_score.size(), k));
  }
  return Status::ok();
}

}  // namespace

// One output: eight independent accumulators so the adds pipeline (and
// vectorise), then a fixed pairwise reduction.
float detail::dot_portable(const float* x, const float* w, std::size_t n) noexcept {
  float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (std::size_t l = 0; l < 8; ++l) a[l] += present(x[j + l]) * w[j + l];
  }
  for (std::size_t l = 0; j < n; ++j, ++l) a[l] += present(x[j]) * w[j];
  return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

detail::DotKernel detail::best_dot_kernel() noexcept {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &dot_avx2_fma;
#endif
  return &dot_portable;
}

LinearModel::LinearModel(LinearSpec spec) : spec_(std::move(spec)) {}

void LinearModel::margin_row(const float* x, float* m) const noexcept {
  const std::size_t f = spec_.info.num_features;
  const std::size_t k = spec_.info.num_margin_outputs;
  if (spec_.exact_order) {
    margin_exact(x, spec_.weights.data(), spec_.intercept.data(), f, k, m);
  } else {
    margin_fast(x, spec_.weights.data(), spec_.intercept.data(), f, k, m);
  }
}

// m holds K margins; writes the row's output. `scratch` holds K doubles.
void LinearModel::finish_row(float* m, float* out, const PredictOptions& opts) const noexcept {
  const std::size_t k = spec_.info.num_margin_outputs;
  if (opts.output == OutputKind::kMargin) {
    std::copy(m, m + k, out);
    return;
  }
  detail::SmallBuffer<double, kStackOutputs> buf(k);  // the callers catch allocation failure
  double* d = buf.data();
  for (std::size_t o = 0; o < k; ++o) d[o] = m[o];
  apply_transform(spec_.transform, Arithmetic::kXGBoost, 1.0, std::span<const double>(d, k),
                  std::span<float>(out, spec_.info.num_outputs));
}

Status LinearModel::predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                            const PredictOptions& opts) const noexcept {
  if (Status s = check_shapes(rows.size(), n_rows, out.size(), opts); !s) return s;
  try {
    const std::size_t f = spec_.info.num_features;
    const std::size_t k = spec_.info.num_margin_outputs;
    const std::size_t w = spec_.info.width(opts.output);
    detail::SmallBuffer<float, kStackOutputs> buf(k);
    float* m = buf.data();
    if (spec_.exact_order) {
      detail::SmallBuffer<float, kExactBlock * kStackOutputs> block(kExactBlock * k);
      std::size_t r = 0;
      for (; r + kExactBlock <= n_rows; r += kExactBlock) {
        margin_exact_block(rows.data() + r * f, spec_.weights.data(), spec_.intercept.data(), f, k, block.data());
        for (std::size_t i = 0; i < kExactBlock; ++i) finish_row(block.data() + i * k, out.data() + (r + i) * w, opts);
      }
      for (; r < n_rows; ++r) {
        margin_row(rows.data() + r * f, m);
        finish_row(m, out.data() + r * w, opts);
      }
      return Status::ok();
    }
    if (n_rows < kMinEigenRows) {
      for (std::size_t r = 0; r < n_rows; ++r) {
        margin_row(rows.data() + r * f, m);
        finish_row(m, out.data() + r * w, opts);
      }
      return Status::ok();
    }
    // Batch: margins = X * W + intercept. A NaN (missing) input makes its
    // row's margin NaN; only those rows are redone with NaN read as 0, so
    // clean batches pay nothing for missing-value support.
    const auto n = static_cast<Eigen::Index>(n_rows);
    const auto fi = static_cast<Eigen::Index>(f);
    const auto ki = static_cast<Eigen::Index>(k);
    Eigen::Map<const RowMajor> x(rows.data(), n, fi);
    Eigen::Map<const RowMajor> wm(spec_.weights.data(), fi, ki);
    Eigen::Map<const Eigen::RowVectorXf> b(spec_.intercept.data(), ki);
    const bool direct = opts.output == OutputKind::kMargin || spec_.transform == Transform::kIdentity;
    RowMajor tmp;
    if (!direct) tmp.resize(n, ki);
    float* mp = direct ? out.data() : tmp.data();
    if (k == 1) {  // matrix-vector: Eigen's GEMV kernel directly
      Eigen::Map<Eigen::VectorXf> margins(mp, n);
      margins.noalias() = x * Eigen::Map<const Eigen::VectorXf>(spec_.weights.data(), fi);
      margins.array() += spec_.intercept[0];
      for (std::size_t r = 0; r < n_rows; ++r) {
        if (mp[r] != mp[r]) margin_row(rows.data() + r * f, mp + r);
      }
    } else {
      Eigen::Map<RowMajor> margins(mp, n, ki);
      margins.noalias() = x * wm;
      margins.rowwise() += b;
      for (std::size_t r = 0; r < n_rows; ++r) {
        float* mr = mp + r * k;
        if (std::any_of(mr, mr + k, [](float v) { return v != v; })) margin_row(rows.data() + r * f, mr);
      }
    }
    if (!direct) {
      for (std::size_t r = 0; r < n_rows; ++r) finish_row(tmp.data() + r * k, out.data() + r * w, opts);
    }
    return Status::ok();
  } catch (...) {
    return internal_error("linear predict: allocation failed");
  }
}

Status LinearModel::predict_sparse(std::span<const std::uint32_t> idx, std::span<const float> val,
                                   std::span<float> out, const PredictOptions& opts) const noexcept {
  try {
    const std::size_t f = spec_.info.num_features;
    const std::size_t k = spec_.info.num_margin_outputs;
    if (idx.size() != val.size()) {
      return invalid_input(fmt::format("sparse row: {} indices but {} values", idx.size(), val.size()));
    }
    if (out.size() != spec_.info.width(opts.output)) {
      return invalid_input(fmt::format("out: expected {} outputs, got {}", spec_.info.width(opts.output), out.size()));
    }
    detail::SmallBuffer<float, kStackOutputs> buf(k);
    float* m = buf.data();
    const float* w = spec_.weights.data();
    auto bad_index = [&](std::size_t i) {
      return invalid_input(fmt::format("sparse row: index {} (pair {}) out of range [0, {})", idx[i], i, f));
    };
    std::copy(spec_.intercept.begin(), spec_.intercept.end(), m);
    if (k == 1 && spec_.exact_order) {
      float acc = m[0];
      for (std::size_t i = 0; i < idx.size(); ++i) {
        if (idx[i] >= f) return bad_index(i);
        const float v = val[i];
        if (v != v) continue;
        const float p = v * w[idx[i]];
        acc += p;
      }
      m[0] = acc;
    } else if (k == 1) {
      // Four accumulators: independent adds instead of one chain.
      float a[4] = {0, 0, 0, 0};
      for (std::size_t i = 0; i < idx.size(); ++i) {
        if (idx[i] >= f) return bad_index(i);
        const float v = val[i];
        a[i % 4] += (v == v ? v : 0.0f) * w[idx[i]];
      }
      m[0] += (a[0] + a[2]) + (a[1] + a[3]);
    } else {
      for (std::size_t i = 0; i < idx.size(); ++i) {
        if (idx[i] >= f) return bad_index(i);
        const float v = val[i];
        if (v != v) continue;
        const float* wj = w + static_cast<std::size_t>(idx[i]) * k;
        for (std::size_t o = 0; o < k; ++o) m[o] += v * wj[o];
      }
    }
    finish_row(m, out.data(), opts);
    return Status::ok();
  } catch (...) {
    return internal_error("linear predict_sparse: allocation failed");
  }
}

template <class T>
Status LinearModel::contrib(std::span<const T> rows, std::size_t n_rows, std::span<float> out) const noexcept {
  const std::size_t f = spec_.info.num_features;
  const std::size_t k = spec_.info.num_margin_outputs;
  const std::size_t w = k * (f + 1);
  if (rows.size() != n_rows * f || out.size() != n_rows * w) {
    try {
      return invalid_input(fmt::format("contributions: expected {} rows x {} features and {} x {} outputs, got {} and {}",
                                       n_rows, f, n_rows, w, rows.size(), out.size()));
    } catch (...) {
      return invalid_input("contributions: sizes disagree");
    }
  }
  for (std::size_t r = 0; r < n_rows; ++r) {
    const T* x = rows.data() + r * f;
    float* o = out.data() + r * w;
    for (std::size_t c = 0; c < k; ++c) {
      for (std::size_t j = 0; j < f; ++j) {
        const float xv = static_cast<float>(x[j]);
        o[c * (f + 1) + j] = xv == xv ? xv * spec_.weights[j * k + c] : 0.0f;
      }
      o[c * (f + 1) + f] = spec_.intercept[c];
    }
  }
  return Status::ok();
}

Status LinearModel::contributions(std::span<const float> rows, std::size_t n_rows,
                                  std::span<float> out) const noexcept {
  return contrib(rows, n_rows, out);
}

Status LinearModel::contributions(std::span<const double> rows, std::size_t n_rows,
                                  std::span<float> out) const noexcept {
  return contrib(rows, n_rows, out);
}

Result<std::shared_ptr<const LinearModel>> make_linear_model(LinearSpec spec) {
  spec.info.num_trees = 0;
  spec.info.max_depth = 0;
  if (Status s = check_spec(spec); !s) return s;
  if (spec.info.version == 0) spec.info.version = next_model_version();
  return std::shared_ptr<const LinearModel>(std::make_shared<LinearModel>(std::move(spec)));
}

}  // namespace keel
