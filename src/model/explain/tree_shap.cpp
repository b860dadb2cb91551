// The tree explainer: builds the preorder layout, cover ratios, repeat-edge
// tables and quadrature points at load (tree_shap.hpp explains the
// algorithm), then answers contributions and leaf indices per row.

#include "model/explain/tree_shap.hpp"

#include <keel/model/explain.hpp>
#include <keel/model/tree_ensemble.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <string>
#include <utility>

namespace keel {
namespace detail {

ShapTreeFn<float> shap_tree_fn_f(std::uint32_t w) noexcept { KEEL_SHAP_TABLE(float, w) }
ShapTreeFn<double> shap_tree_fn_d(std::uint32_t w) noexcept { KEEL_SHAP_TABLE(double, w) }

}  // namespace detail

namespace {

using namespace detail;

// P_n(x) and P_{n-1}(x) by the three-term recurrence.
void legendre(std::uint32_t n, double x, double& pn, double& pn1) {
  double p0 = 1.0;
  double p1 = x;
  for (std::uint32_t k = 2; k <= n; ++k) {
    const double p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
    p0 = p1;
    p1 = p2;
  }
  pn = p1;
  pn1 = p0;
}

// Gauss-Legendre nodes and weights on [0, 1]: n points integrate
// polynomials of degree <= 2n - 1 exactly. Newton's method on P_n from the
// usual cosine guesses.
void gauss_legendre01(std::uint32_t n, std::vector<double>& t, std::vector<double>& w) {
  t.assign(n, 0.0);
  w.assign(n, 0.0);
  for (std::uint32_t i = 0; i < n; ++i) {
    double x = std::cos(std::numbers::pi * (static_cast<double>(i) + 0.75) / (static_cast<double>(n) + 0.5));
    double pn = 0.0;
    double pn1 = 0.0;
    for (int iter = 0; iter < 100; ++iter) {
      legendre(n, x, pn, pn1);
      const double dx = pn / (n * (x * pn - pn1) / (x * x - 1.0));
      x -= dx;
      if (std::fabs(dx) < 1e-16) break;
    }
    legendre(n, x, pn, pn1);
    const double dp = n * (x * pn - pn1) / (x * x - 1.0);
    t[i] = 0.5 * (1.0 - x);
    w[i] = 1.0 / ((1.0 - x * x) * dp * dp);  // 2 / ((1 - x^2) P'^2), halved for [0, 1]
  }
}

std::uint32_t width_for(std::size_t distinct_features) {
  const std::size_t points = (distinct_features + 1) / 2;
  std::uint32_t w = 1;
  while (w < points) w *= 2;
  return w;
}

// Per-thread scratch, grown to the largest model a thread has explained.
struct Workspace {
  std::vector<double> buf;
  std::vector<std::uint8_t> state;
  std::vector<double> acc;
};

Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
}

template <class V>
void grow(V& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

// Immutable after construction; thread-safe.
class TreeExplainer final : public Explainer {
 public:
  explicit TreeExplainer(const TreeEnsembleSpec& spec);

  Status contributions(std::span<const float> rows, std::size_t n_rows, std::span<float> out) const noexcept override {
    return contrib(rows, n_rows, out, fn_f_);
  }
  Status contributions(std::span<const double> rows, std::size_t n_rows, std::span<float> out) const noexcept override {
    return contrib(rows, n_rows, out, fn_d_);
  }
  Status leaf_indices(std::span<const float> rows, std::size_t n_rows,
                      std::span<std::int32_t> out) const noexcept override {
    return leaves(rows, n_rows, out);
  }
  Status leaf_indices(std::span<const double> rows, std::size_t n_rows,
                      std::span<std::int32_t> out) const noexcept override {
    return leaves(rows, n_rows, out);
  }

 private:
  void build_tree(const TreeEnsembleSpec& spec, std::size_t ti);
  void refuse(std::string why) {
    if (refused_.empty()) refused_ = std::move(why);
  }
  Status check_rows(std::size_t rows_size, std::size_t n_rows, std::size_t out_size, std::size_t width,
                    std::string_view what) const noexcept;
  template <class T>
  Status contrib(std::span<const T> rows, std::size_t n_rows, std::span<float> out,
                 const std::vector<ShapTreeFn<T>>& fns) const noexcept;
  template <class T>
  Status leaves(std::span<const T> rows, std::size_t n_rows, std::span<std::int32_t> out) const noexcept;

  ShapLayout L_;
  TreeEnsembleSpec semantics_;  // rules and category bits only (see ShapSemantics)
  std::vector<TreeNode> specials_;
  std::vector<std::uint32_t> special_tree_;
  ShapSemantics sem_;
  std::vector<double> bias_;  // per output: base margin + every tree's expected value
  std::string refused_;       // why contributions are unavailable; empty when they are
  std::vector<ShapTreeFn<float>> fn_f_;  // per tree, by its width
  std::vector<ShapTreeFn<double>> fn_d_;
  std::map<std::uint32_t, std::uint32_t> quad_of_width_;
};

TreeExplainer::TreeExplainer(const TreeEnsembleSpec& spec) {
  semantics_.arithmetic = spec.arithmetic;
  semantics_.category_rule = spec.category_rule;
  L_.num_features = spec.info.num_features;
  L_.outputs = spec.info.num_margin_outputs;
  bias_.assign(spec.base_margin.begin(), spec.base_margin.end());
  if (spec.arithmetic == Arithmetic::kXGBoost) {
    for (double& b : bias_) b = static_cast<float>(b);
  }
  semantics_.trees.resize(spec.trees.size());
  for (std::size_t ti = 0; ti < spec.trees.size(); ++ti) build_tree(spec, ti);
  for (const ShapTree& tr : L_.trees) bias_[tr.output] += tr.bias;

  const bool avx2 = tree_kernel_supported(TreeKernel::kAvx2) && shap_tree_fn_f_avx2(1) != nullptr;
  for (const ShapTree& tr : L_.trees) {
    fn_f_.push_back(avx2 ? shap_tree_fn_f_avx2(tr.width) : shap_tree_fn_f(tr.width));
    fn_d_.push_back(avx2 ? shap_tree_fn_d_avx2(tr.width) : shap_tree_fn_d(tr.width));
  }
  sem_ = ShapSemantics{&semantics_, semantics_.trees.data(), specials_.data(), special_tree_.data()};
}

void TreeExplainer::build_tree(const TreeEnsembleSpec& spec, std::size_t ti) {
  const Tree& t = spec.trees[ti];
  semantics_.trees[ti].category_bits = t.category_bits;
  const std::size_t n = t.nodes.size();
  const bool have_cover = t.cover.size() == n;
  if (t.leaf_width > 1) {
    refuse(fmt::format("tree {}: vector leaves (XGBoost multi_output_tree) have no TreeSHAP contributions yet", ti));
  }
  if (n > 1 && !have_cover) {
    refuse(fmt::format("tree {}: the model file has no node covers (XGBoost sum_hessian, LightGBM "
                       "internal_count/leaf_count), which exact contributions need",
                       ti));
  }

  // Preorder: a node's left child comes right after it.
  std::vector<std::int32_t> spec_of(n), pre_of(n);
  std::vector<std::int32_t> stack{0};
  std::int32_t next = 0;
  while (!stack.empty()) {
    const std::int32_t s = stack.back();
    stack.pop_back();
    spec_of[static_cast<std::size_t>(next)] = s;
    pre_of[static_cast<std::size_t>(s)] = next++;
    const TreeNode& nd = t.nodes[static_cast<std::size_t>(s)];
    if (nd.kind != SplitKind::kLeaf) {
      stack.push_back(nd.right);
      stack.push_back(nd.left);
    }
  }

  ShapTree tr;
  tr.first = static_cast<std::uint32_t>(L_.nodes.size());
  tr.size = static_cast<std::uint32_t>(n);
  tr.output = t.output;
  L_.nodes.resize(L_.nodes.size() + n);
  ShapNode* out = L_.nodes.data() + tr.first;
  std::vector<double> merged_z(n, 1.0), path_z(n, 1.0);
  std::vector<std::uint32_t> distinct(n, 0);
  std::size_t max_distinct = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto s = static_cast<std::size_t>(spec_of[i]);
    const TreeNode& nd = t.nodes[s];
    ShapNode& c = out[i];
    if (nd.kind == SplitKind::kLeaf) {
      c.flags |= kShapLeaf;
      c.aux = static_cast<std::uint32_t>(t.source_id.size() == n ? t.source_id[s] : static_cast<std::int32_t>(s));
      if (spec.arithmetic == Arithmetic::kXGBoost) {
        float v = static_cast<float>(nd.leaf_value);
        if (t.weight != 1.0) v *= static_cast<float>(t.weight);
        c.value = v;
      } else {
        c.value = nd.leaf_value * t.weight;
      }
      if (nd.linear) refuse(fmt::format("tree {}: linear leaves have no exact TreeSHAP contributions", ti));
    } else {
      c.feature = nd.feature;
      c.right = pre_of[static_cast<std::size_t>(nd.right)];
      if (nd.kind == SplitKind::kNumericLess) {
        c.thr = static_cast<float>(nd.threshold);
        if (nd.default_left) c.flags |= kShapDefaultLeft;
      } else {
        c.flags |= kShapSpecial;
        c.aux = static_cast<std::uint32_t>(specials_.size());
        specials_.push_back(nd);
        special_tree_.push_back(static_cast<std::uint32_t>(ti));
      }
      // Children: parent link, side, cover ratio.
      for (const std::int32_t child : {nd.left, nd.right}) {
        ShapNode& k = out[pre_of[static_cast<std::size_t>(child)]];
        k.parent = static_cast<std::int32_t>(i);
        if (child == nd.left) k.flags |= kShapLeft;
        if (have_cover) {
          const double pc = t.cover[s];
          const double cc = t.cover[static_cast<std::size_t>(child)];
          if (!(pc > 0.0) || !std::isfinite(pc) || !(cc >= 0.0) || !std::isfinite(cc)) {
            refuse(fmt::format("tree {} node {}: cover {} with child cover {} (need a positive parent cover)", ti, s,
                               pc, cc));
          } else {
            k.z = cc / pc;
          }
        }
      }
    }
    if (i == 0) continue;
    // The nearest edge above on the same feature.
    const auto p = static_cast<std::size_t>(c.parent);
    const std::int32_t f = out[p].feature;
    for (std::size_t a = p; a != 0; a = static_cast<std::size_t>(out[a].parent)) {
      if (out[static_cast<std::size_t>(out[a].parent)].feature == f) {
        c.prev = static_cast<std::int32_t>(a);
        break;
      }
    }
    merged_z[i] = c.z * (c.prev < 0 ? 1.0 : merged_z[static_cast<std::size_t>(c.prev)]);
    path_z[i] = c.z * path_z[p];
    distinct[i] = distinct[p] + (c.prev < 0 ? 1u : 0u);
    if (c.flags & kShapLeaf) {
      max_distinct = std::max<std::size_t>(max_distinct, distinct[i]);
      tr.bias += c.value * path_z[i];
    }
  }
  if (n == 1) tr.bias = out[0].value;

  tr.width = width_for(max_distinct);
  if (tr.width > kMaxShapWidth) {
    refuse(fmt::format("tree {}: {} distinct features on one path; exact contributions support up to {}", ti,
                       max_distinct, 2 * kMaxShapWidth));
    tr.width = kMaxShapWidth;
  }
  const std::uint32_t W = tr.width;
  std::vector<double> qt, qw;
  gauss_legendre01(W, qt, qw);
  if (auto it = quad_of_width_.find(W); it != quad_of_width_.end()) {
    tr.quad = it->second;
  } else {
    tr.quad = static_cast<std::uint32_t>(L_.quad_values.size());
    quad_of_width_.emplace(W, tr.quad);
    for (std::uint32_t q = 0; q < W; ++q) L_.quad_values.push_back(qt[q]);
    for (std::uint32_t q = 0; q < W; ++q) L_.quad_values.push_back(1.0 - qt[q]);
    for (std::uint32_t q = 0; q < W; ++q) L_.quad_values.push_back(qw[q]);
  }

  // Repeat edges: F(Z, O) = Z (1 - t) + O t and g = (O - Z) / F before (Zp)
  // and after (Zm) this edge, for the two cases where the earlier splits on
  // the feature were all followed.
  for (std::size_t i = 1; i < n; ++i) {
    ShapNode& c = out[i];
    if (c.prev < 0) continue;
    const double zp = merged_z[static_cast<std::size_t>(c.prev)];
    const double zm = merged_z[i];
    DupEdge d;
    d.offset = static_cast<std::uint32_t>(L_.dup_values.size());
    d.stale = zp > 0.0 ? zm / zp : 0.0;
    L_.dup_values.resize(L_.dup_values.size() + 4 * W);
    double* v = L_.dup_values.data() + d.offset;
    for (std::uint32_t q = 0; q < W; ++q) {
      const double tq = qt[q];
      const double om = 1.0 - tq;
      const double fp = zp * om + tq;           // > 0: t > 0
      const double gp = (1.0 - zp) / fp;
      const double f1 = zm * om + tq;
      const double a1 = f1 / fp;
      const double a0 = zm * om / fp;
      v[q] = a1;                                // followed
      v[W + q] = ((1.0 - zm) / f1 - gp) * a1;
      v[2 * W + q] = a0;                        // not followed: g = -1 / (1 - t)
      v[3 * W + q] = (-1.0 / om - gp) * a0;
    }
    c.dup = static_cast<std::int32_t>(L_.dups.size());
    L_.dups.push_back(d);
  }

  L_.max_width = std::max<std::size_t>(L_.max_width, W);
  L_.max_work = std::max<std::size_t>(L_.max_work, n * W);
  L_.max_nodes = std::max(L_.max_nodes, n);
  L_.trees.push_back(tr);
}

Status TreeExplainer::check_rows(std::size_t rows_size, std::size_t n_rows, std::size_t out_size, std::size_t width,
                                 std::string_view what) const noexcept {
  try {
    if (rows_size != n_rows * L_.num_features) {
      return invalid_input(fmt::format("rows: expected {} rows x {} features = {} values, got {}", n_rows,
                                       L_.num_features, n_rows * L_.num_features, rows_size));
    }
    if (out_size != n_rows * width) {
      return invalid_input(fmt::format("{}: expected {} rows x {} = {} values, got {}", what, n_rows, width,
                                       n_rows * width, out_size));
    }
    return Status::ok();
  } catch (...) {
    return internal_error("explain: allocation failed");
  }
}

template <class T>
Status TreeExplainer::contrib(std::span<const T> rows, std::size_t n_rows, std::span<float> out,
                              const std::vector<ShapTreeFn<T>>& fns) const noexcept {
  if (!refused_.empty()) {
    try {
      return model_error("contributions: " + refused_);
    } catch (...) {
      return internal_error("contributions: allocation failed");
    }
  }
  const std::size_t F = L_.num_features;
  const std::size_t K = L_.outputs;
  const std::size_t width = K * (F + 1);
  if (Status s = check_rows(rows.size(), n_rows, out.size(), width, "contributions"); !s) return s;
  const std::size_t stride = L_.max_width;
  Workspace& ws = workspace();
  try {
    grow(ws.buf, L_.max_work);
    grow(ws.state, L_.max_nodes);
    grow(ws.acc, K * F * stride);
  } catch (...) {
    return internal_error("contributions: workspace allocation failed");
  }
  double* acc = ws.acc.data();
  const ShapView view = shap_view(L_);
  for (std::size_t r = 0; r < n_rows; ++r) {
    const T* row = rows.data() + r * F;
    std::fill(acc, acc + K * F * stride, 0.0);
    for (std::size_t ti = 0; ti < L_.trees.size(); ++ti) {
      fns[ti](view, L_.trees[ti], sem_, row, ws.buf.data(), ws.state.data(), acc);
    }
    float* o = out.data() + r * width;
    for (std::size_t k = 0; k < K; ++k) {
      for (std::size_t f = 0; f < F; ++f) {
        const double* a = acc + (k * F + f) * stride;
        double s = 0.0;
        for (std::size_t q = 0; q < stride; ++q) s += a[q];
        o[k * (F + 1) + f] = static_cast<float>(s);
      }
      o[k * (F + 1) + F] = static_cast<float>(bias_[k]);
    }
  }
  return Status::ok();
}

template <class T>
Status TreeExplainer::leaves(std::span<const T> rows, std::size_t n_rows, std::span<std::int32_t> out) const noexcept {
  const std::size_t F = L_.num_features;
  const std::size_t nt = L_.trees.size();
  if (Status s = check_rows(rows.size(), n_rows, out.size(), nt, "leaf indices"); !s) return s;
  for (std::size_t r = 0; r < n_rows; ++r) {
    const T* row = rows.data() + r * F;
    for (std::size_t ti = 0; ti < nt; ++ti) {
      const ShapNode* nd = L_.nodes.data() + L_.trees[ti].first;
      std::size_t i = 0;
      while (!(nd[i].flags & kShapLeaf)) {
        i = shap_goes_left(sem_, nd[i], row) ? i + 1 : static_cast<std::size_t>(nd[i].right);
      }
      out[r * nt + ti] = static_cast<std::int32_t>(nd[i].aux);
    }
  }
  return Status::ok();
}

}  // namespace

std::shared_ptr<const Explainer> make_tree_explainer(const TreeEnsembleSpec& spec) {
  return std::make_shared<TreeExplainer>(spec);
}

Status attach_tree_explainer(TreeEnsembleSpec& spec) noexcept {
  try {
    if (!validate(spec)) return Status::ok();  // building the model reports why
    spec.info.explainer = make_tree_explainer(spec);
    return Status::ok();
  } catch (...) {
    return model_error("out of memory while building the model's explainer");
  }
}

}  // namespace keel
