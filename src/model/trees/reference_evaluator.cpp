// THE reference evaluator (the oracle): a plain, one-row-at-a-time walk of a
// TreeEnsembleSpec, written for obviousness rather than speed. Every fast
// kernel (scalar, AVX2, AVX-512, single-row, float64 rows, SHAP's leaf walk)
// is tested against it, and it is tested against the training libraries'
// own outputs (tests/data fixtures). Change it only with a fixture showing
// the training library does the same. Declared in
// include/keel/model/reference_evaluator.hpp.

#include <keel/model/reference_evaluator.hpp>

#include "model/support/small_buffer.hpp"

#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <utility>
#include <vector>

namespace keel {
namespace {

// LightGBM's kZeroThreshold: the float 1e-35f, widened to double.
constexpr double kZeroThreshold = static_cast<double>(1e-35f);

bool in_bitset(const Tree& t, const TreeNode& n, std::uint32_t id) noexcept {
  const std::uint32_t word = id / 32;
  if (word >= n.cat_words) return false;
  return (t.category_bits[n.cat_offset + word] >> (id % 32)) & 1u;
}

// The value a tree reads for feature f. LightGBM's C API drops |x| <= 1e-35
// from dense rows before predicting, so such values (and -0.0) read as 0.0.
double feature_value(const TreeEnsembleSpec& spec, std::span<const double> row, std::int32_t f) noexcept {
  const double x = row[static_cast<std::size_t>(f)];
  if (spec.arithmetic == Arithmetic::kLightGBM && std::fabs(x) <= kZeroThreshold) return 0.0;
  return x;
}

// Returns true when the row goes to the left child.
bool goes_left(const TreeEnsembleSpec& spec, const Tree& t, const TreeNode& n, double x) noexcept {
  switch (n.kind) {
    case SplitKind::kNumericLess: {
      if (std::isnan(x)) return n.default_left;
      return static_cast<float>(x) < static_cast<float>(n.threshold);
    }
    case SplitKind::kNumericLessEqual: {
      if (std::isnan(x) && n.missing != MissingType::kNaN) x = 0.0;
      if ((n.missing == MissingType::kZero && std::fabs(x) <= kZeroThreshold) ||
          (n.missing == MissingType::kNaN && std::isnan(x))) {
        return n.default_left;
      }
      return x <= n.threshold;
    }
    case SplitKind::kCategorical: {
      if (spec.category_rule == CategoryRule::kXGBoost) {
        if (std::isnan(x)) return n.default_left;
        const float xf = static_cast<float>(x);
        if (!(xf >= 0.0f) || xf >= 16777216.0f) return true;  // not a category: left
        return !in_bitset(t, n, static_cast<std::uint32_t>(xf));
      }
      if (std::isnan(x)) return false;
      if (!(x > -1.0 && x < 2147483648.0)) return false;
      return in_bitset(t, n, static_cast<std::uint32_t>(static_cast<std::int32_t>(x)));
    }
    case SplitKind::kLeaf: break;
  }
  return false;
}

std::int32_t find_leaf(const TreeEnsembleSpec& spec, const Tree& t, std::span<const double> row) noexcept {
  std::int32_t i = 0;
  while (t.nodes[static_cast<std::size_t>(i)].kind != SplitKind::kLeaf) {
    const TreeNode& n = t.nodes[static_cast<std::size_t>(i)];
    i = goes_left(spec, t, n, feature_value(spec, row, n.feature)) ? n.left : n.right;
  }
  return i;
}

double leaf_output(const TreeEnsembleSpec& spec, const Tree& t, const TreeNode& leaf,
                   std::span<const double> row) noexcept {
  if (!leaf.linear) return leaf.leaf_value;
  double out = leaf.linear_const;
  for (std::uint32_t k = 0; k < leaf.linear_count; ++k) {
    const LinearTerm& term = t.linear_terms[leaf.linear_offset + k];
    const double x = feature_value(spec, row, term.feature);
    if (std::isnan(x)) return leaf.leaf_value;
    out += term.coeff * x;
  }
  return out;
}

}  // namespace

bool reference_goes_left(const TreeEnsembleSpec& spec, const Tree& t, const TreeNode& n, double x) noexcept {
  if (spec.arithmetic == Arithmetic::kLightGBM && std::fabs(x) <= kZeroThreshold) x = 0.0;
  return goes_left(spec, t, n, x);
}

void reference_leaves(const TreeEnsembleSpec& spec, std::span<const double> row,
                      std::span<std::int32_t> leaves) noexcept {
  for (std::size_t ti = 0; ti < spec.trees.size(); ++ti) leaves[ti] = find_leaf(spec, spec.trees[ti], row);
}

void reference_margin(const TreeEnsembleSpec& spec, std::span<const double> row, std::span<double> margin) noexcept {
  const std::size_t k = spec.info.num_margin_outputs;
  if (spec.arithmetic == Arithmetic::kXGBoost) {
    // float32 accumulation in tree order, starting from the base margin.
    detail::SmallBuffer<float, 64> buf(k);
    float* m = buf.data();
    for (std::size_t o = 0; o < k; ++o) m[o] = static_cast<float>(spec.base_margin[o]);
    for (const Tree& t : spec.trees) {
      const TreeNode& leaf = t.nodes[static_cast<std::size_t>(find_leaf(spec, t, row))];
      if (t.leaf_width > 1) {
        // XGBoost's multi-target predictor adds each float leaf value to its target.
        for (std::uint32_t c = 0; c < t.leaf_width; ++c) {
          float v = static_cast<float>(t.leaf_vectors[leaf.leaf_vector_offset + c]);
          if (t.weight != 1.0) v *= static_cast<float>(t.weight);
          m[t.output + c] += v;
        }
        continue;
      }
      float v = static_cast<float>(leaf_output(spec, t, leaf, row));
      if (t.weight != 1.0) v *= static_cast<float>(t.weight);
      m[t.output] += v;
    }
    for (std::size_t o = 0; o < k; ++o) margin[o] = m[o];
    return;
  }
  for (std::size_t o = 0; o < k; ++o) margin[o] = spec.base_margin[o];
  for (const Tree& t : spec.trees) {
    const TreeNode& leaf = t.nodes[static_cast<std::size_t>(find_leaf(spec, t, row))];
    if (t.leaf_width > 1) {
      for (std::uint32_t c = 0; c < t.leaf_width; ++c) {
        margin[t.output + c] += t.leaf_vectors[leaf.leaf_vector_offset + c] * t.weight;
      }
      continue;
    }
    margin[t.output] += leaf_output(spec, t, leaf, row) * t.weight;
  }
}

namespace {

class ReferenceTreeModel final : public Model {
 public:
  explicit ReferenceTreeModel(TreeEnsembleSpec spec) : spec_(std::move(spec)) {}
  const ModelInfo& info() const noexcept override { return spec_.info; }

  Status predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                 const PredictOptions& opts) const noexcept override {
    if (Status s = check_shapes(rows.size(), n_rows, out.size(), opts); !s) return s;
    return run(spec_, rows, n_rows, out, opts);
  }
  Status predict(std::span<const double> rows, std::size_t n_rows, std::span<float> out,
                 const PredictOptions& opts) const noexcept override {
    if (Status s = check_shapes(rows.size(), n_rows, out.size(), opts); !s) return s;
    return run(spec_, rows, n_rows, out, opts);
  }
  Status predict(std::span<const double> rows, std::size_t n_rows, std::span<double> out,
                 const PredictOptions& opts) const noexcept override {
    return reference_predict(spec_, rows, n_rows, out, opts);
  }

  // One row at a time through the reference evaluator; shapes already checked.
  template <class T, class Out>
  static Status run(const TreeEnsembleSpec& spec, std::span<const T> rows, std::size_t n_rows, std::span<Out> out,
                    const PredictOptions& opts) noexcept {
    try {
      const std::size_t f = spec.info.num_features;
      const std::size_t k = spec.info.num_margin_outputs;
      const std::size_t w = spec.info.width(opts.output);
      std::vector<double> row(f), margin(k);
      for (std::size_t r = 0; r < n_rows; ++r) {
        for (std::size_t j = 0; j < f; ++j) row[j] = static_cast<double>(rows[r * f + j]);
        reference_margin(spec, row, margin);
        if (opts.output == OutputKind::kMargin) {
          // XGBoost margins are float sums already; LightGBM's are double.
          for (std::size_t o = 0; o < k; ++o) out[r * w + o] = static_cast<Out>(margin[o]);
        } else {
          apply_transform(spec, margin, out.subspan(r * w, w));
        }
      }
      return Status::ok();
    } catch (...) {
      return internal_error("reference predict: allocation failed");
    }
  }

 private:
  TreeEnsembleSpec spec_;
};

}  // namespace

Status reference_predict(const TreeEnsembleSpec& spec, std::span<const double> rows, std::size_t n_rows,
                         std::span<double> out, const PredictOptions& opts) noexcept {
  const std::size_t f = spec.info.num_features;
  const std::size_t w = spec.info.width(opts.output);
  if (rows.size() != n_rows * f) {
    return invalid_input(fmt::format("rows: expected {} rows x {} features = {} values, got {}", n_rows, f,
                                     n_rows * f, rows.size()));
  }
  if (out.size() != n_rows * w) {
    return invalid_input(fmt::format("out: expected {} rows x {} outputs = {} values, got {}", n_rows, w, n_rows * w,
                                     out.size()));
  }
  return ReferenceTreeModel::run(spec, rows, n_rows, out, opts);
}

Result<ModelPtr> make_reference_model(TreeEnsembleSpec spec) {
  compute_shape(spec);
  if (Status s = validate(spec); !s) return s;
  if (spec.info.version == 0) spec.info.version = next_model_version();
  return ModelPtr(std::make_shared<ReferenceTreeModel>(std::move(spec)));
}

}  // namespace keel
