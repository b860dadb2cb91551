// TreeEnsembleSpec: validation, shape, and the output transforms (shared by
// the reference evaluator, the kernels and the linear models). The reference
// evaluator itself is in reference_evaluator.cpp.

#include <keel/model/tree_spec.hpp>

#include "model/support/small_buffer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace keel {
namespace {

float xgb_sigmoid(float m) noexcept {
  // XGBoost clamps the exponent so the result never reaches 0.
  const float e = std::min(-m, 88.7f);
  return 1.0f / (1.0f + std::exp(e));
}

}  // namespace

Status validate(const TreeEnsembleSpec& spec) {
  const ModelInfo& mi = spec.info;
  if (mi.num_features == 0) return model_error("model has no features");
  if (mi.features.size() != mi.num_features) {
    return model_error(fmt::format("feature list has {} entries but the model has {} features", mi.features.size(),
                                   mi.num_features));
  }
  if (mi.num_margin_outputs == 0) return model_error("model has no outputs");
  if (spec.base_margin.size() != mi.num_margin_outputs) {
    return model_error(fmt::format("base margin has {} values for {} outputs", spec.base_margin.size(),
                                   mi.num_margin_outputs));
  }
  for (std::size_t k = 0; k < spec.base_margin.size(); ++k) {
    if (!std::isfinite(spec.base_margin[k])) return model_error(fmt::format("base margin {} is not finite", k));
  }
  const std::size_t want_out = spec.transform == Transform::kSoftmaxArgmax ? 1 : mi.num_margin_outputs;
  if (mi.num_outputs != want_out) {
    return model_error(fmt::format("model declares {} outputs; its transform gives {}", mi.num_outputs, want_out));
  }
  if (spec.average_output && spec.num_iterations == 0) return model_error("average_output with zero iterations");

  std::vector<std::uint8_t> seen;
  std::vector<std::int32_t> stack;
  for (std::size_t ti = 0; ti < spec.trees.size(); ++ti) {
    const Tree& t = spec.trees[ti];
    if (t.nodes.empty()) return model_error(fmt::format("tree {}: has no nodes", ti));
    if (t.leaf_width == 0 || t.output >= mi.num_margin_outputs ||
        t.leaf_width > mi.num_margin_outputs - t.output) {
      return model_error(fmt::format("tree {}: outputs [{}, +{}) out of range (model has {})", ti, t.output,
                                     t.leaf_width, mi.num_margin_outputs));
    }
    if (!std::isfinite(t.weight)) return model_error(fmt::format("tree {}: weight is not finite", ti));
    const std::size_t n = t.nodes.size();
    if (n > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
      return model_error(fmt::format("tree {}: too many nodes", ti));
    }
    seen.assign(n, 0);
    stack.assign(1, 0);
    seen[0] = 1;
    std::size_t visited = 0;
    while (!stack.empty()) {
      const std::int32_t i = stack.back();
      stack.pop_back();
      ++visited;
      const TreeNode& nd = t.nodes[static_cast<std::size_t>(i)];
      if (nd.kind == SplitKind::kLeaf) {
        if (t.leaf_width > 1) {
          if (nd.linear) return model_error(fmt::format("tree {} node {}: a vector leaf cannot be linear", ti, i));
          if (static_cast<std::size_t>(nd.leaf_vector_offset) + t.leaf_width > t.leaf_vectors.size()) {
            return model_error(fmt::format("tree {} node {}: leaf vector out of range", ti, i));
          }
          for (std::uint32_t c = 0; c < t.leaf_width; ++c) {
            if (!std::isfinite(t.leaf_vectors[nd.leaf_vector_offset + c])) {
              return model_error(fmt::format("tree {} node {}: leaf value {} is not finite", ti, i, c));
            }
          }
          continue;
        }
        if (!std::isfinite(nd.leaf_value)) return model_error(fmt::format("tree {} node {}: leaf value is not finite", ti, i));
        if (nd.linear) {
          if (!std::isfinite(nd.linear_const)) return model_error(fmt::format("tree {} node {}: leaf constant is not finite", ti, i));
          if (static_cast<std::size_t>(nd.linear_offset) + nd.linear_count > t.linear_terms.size()) {
            return model_error(fmt::format("tree {} node {}: linear terms out of range", ti, i));
          }
          for (std::uint32_t k = 0; k < nd.linear_count; ++k) {
            const LinearTerm& term = t.linear_terms[nd.linear_offset + k];
            if (term.feature < 0 || static_cast<std::size_t>(term.feature) >= mi.num_features) {
              return model_error(fmt::format("tree {} node {}: linear feature {} out of range [0, {})", ti, i,
                                             term.feature, mi.num_features));
            }
            if (!std::isfinite(term.coeff)) return model_error(fmt::format("tree {} node {}: linear coefficient is not finite", ti, i));
          }
        }
        continue;
      }
      if (nd.feature < 0 || static_cast<std::size_t>(nd.feature) >= mi.num_features) {
        return model_error(fmt::format("tree {} node {}: split feature {} out of range [0, {})", ti, i, nd.feature,
                                       mi.num_features));
      }
      if (nd.kind == SplitKind::kCategorical) {
        if (static_cast<std::size_t>(nd.cat_offset) + nd.cat_words > t.category_bits.size()) {
          return model_error(fmt::format("tree {} node {}: category bitset out of range", ti, i));
        }
      } else if (std::isnan(nd.threshold)) {
        return model_error(fmt::format("tree {} node {}: threshold is NaN", ti, i));
      }
      for (const std::int32_t c : {nd.left, nd.right}) {
        if (c < 0 || static_cast<std::size_t>(c) >= n) {
          return model_error(fmt::format("tree {} node {}: child {} out of range [0, {})", ti, i, c, n));
        }
        if (seen[static_cast<std::size_t>(c)]) {
          return model_error(fmt::format("tree {} node {}: child {} is reached twice (cycle or shared node)", ti, i, c));
        }
        seen[static_cast<std::size_t>(c)] = 1;
        stack.push_back(c);
      }
    }
    if (visited != n) {
      return model_error(fmt::format("tree {}: {} of {} nodes are unreachable from the root", ti, n - visited, n));
    }
  }
  return Status::ok();
}

void compute_shape(TreeEnsembleSpec& spec) {
  std::size_t max_depth = 0;
  std::vector<std::pair<std::int32_t, std::size_t>> stack;
  for (const Tree& t : spec.trees) {
    if (t.nodes.empty()) continue;
    stack.assign(1, {0, 0});
    while (!stack.empty()) {
      auto [i, d] = stack.back();
      stack.pop_back();
      const TreeNode& nd = t.nodes[static_cast<std::size_t>(i)];
      if (nd.kind == SplitKind::kLeaf) {
        max_depth = std::max(max_depth, d);
      } else {
        stack.push_back({nd.left, d + 1});
        stack.push_back({nd.right, d + 1});
      }
    }
  }
  spec.info.num_trees = spec.trees.size();
  spec.info.max_depth = max_depth;
}

bool has_vector_leaves(const TreeEnsembleSpec& spec) noexcept {
  for (const Tree& t : spec.trees) {
    if (t.leaf_width > 1) return true;
  }
  return false;
}

namespace {

// The transforms, writing Out (float or double). XGBoost computes in float
// (a double output is the float result widened); LightGBM in double.
template <class Out>
void transform_into(Transform transform, Arithmetic arithmetic, double sigmoid_scale, std::span<const double> margin,
                    std::span<Out> out) noexcept {
  const std::size_t k = margin.size();
  if (arithmetic == Arithmetic::kXGBoost) {
    switch (transform) {
      case Transform::kIdentity:
        for (std::size_t o = 0; o < k; ++o) out[o] = static_cast<float>(margin[o]);
        return;
      case Transform::kSigmoid:
        for (std::size_t o = 0; o < k; ++o) out[o] = xgb_sigmoid(static_cast<float>(margin[o]));
        return;
      case Transform::kExp:
        for (std::size_t o = 0; o < k; ++o) out[o] = std::exp(static_cast<float>(margin[o]));
        return;
      case Transform::kHinge:
        for (std::size_t o = 0; o < k; ++o) out[o] = margin[o] > 0.0 ? 1.0f : 0.0f;
        return;
      case Transform::kSoftmax: {
        float mx = static_cast<float>(margin[0]);
        for (std::size_t o = 1; o < k; ++o) mx = std::max(mx, static_cast<float>(margin[o]));
        double sum = 0.0;
        for (std::size_t o = 0; o < k; ++o) {
          const float e = std::exp(static_cast<float>(margin[o]) - mx);
          out[o] = e;
          sum += e;
        }
        for (std::size_t o = 0; o < k; ++o) out[o] = static_cast<float>(out[o]) / static_cast<float>(sum);
        return;
      }
      case Transform::kSoftmaxArgmax: {
        std::size_t best = 0;
        for (std::size_t o = 1; o < k; ++o) {
          if (static_cast<float>(margin[o]) > static_cast<float>(margin[best])) best = o;
        }
        out[0] = static_cast<float>(best);
        return;
      }
      case Transform::kLog1pExp:
        for (std::size_t o = 0; o < k; ++o) out[o] = std::log1p(std::exp(static_cast<float>(margin[o])));
        return;
      case Transform::kSignedSquare:
        for (std::size_t o = 0; o < k; ++o) {
          const float v = static_cast<float>(margin[o]);
          out[o] = (v < 0 ? -1.0f : 1.0f) * v * v;
        }
        return;
    }
    return;
  }
  // LightGBM: double arithmetic.
  detail::SmallBuffer<double, 64> buf(k);
  double* m = buf.data();
  for (std::size_t o = 0; o < k; ++o) m[o] = margin[o];
  switch (transform) {
    case Transform::kIdentity:
      for (std::size_t o = 0; o < k; ++o) out[o] = static_cast<Out>(m[o]);
      return;
    case Transform::kSigmoid:
      for (std::size_t o = 0; o < k; ++o) out[o] = static_cast<Out>(1.0 / (1.0 + std::exp(-sigmoid_scale * m[o])));
      return;
    case Transform::kExp:
      for (std::size_t o = 0; o < k; ++o) out[o] = static_cast<Out>(std::exp(m[o]));
      return;
    case Transform::kHinge:
      for (std::size_t o = 0; o < k; ++o) out[o] = m[o] > 0.0 ? 1.0f : 0.0f;
      return;
    case Transform::kSoftmax:
    case Transform::kSoftmaxArgmax: {
      double mx = m[0];
      for (std::size_t o = 1; o < k; ++o) mx = std::max(mx, m[o]);
      double sum = 0.0;
      for (std::size_t o = 0; o < k; ++o) {
        m[o] = std::exp(m[o] - mx);
        sum += m[o];
      }
      if (transform == Transform::kSoftmaxArgmax) {
        std::size_t best = 0;
        for (std::size_t o = 1; o < k; ++o) if (m[o] > m[best]) best = o;
        out[0] = static_cast<Out>(best);
        return;
      }
      for (std::size_t o = 0; o < k; ++o) out[o] = static_cast<Out>(m[o] / sum);
      return;
    }
    case Transform::kLog1pExp:
      for (std::size_t o = 0; o < k; ++o) out[o] = static_cast<Out>(std::log1p(std::exp(m[o])));
      return;
    case Transform::kSignedSquare:
      for (std::size_t o = 0; o < k; ++o) out[o] = static_cast<Out>((m[o] < 0 ? -1.0 : 1.0) * m[o] * m[o]);
      return;
  }
}

}  // namespace

namespace {

// The transform of spec (with LightGBM rf's average_output division).
template <class Out>
void transform_spec(const TreeEnsembleSpec& spec, std::span<const double> margin, std::span<Out> out) noexcept {
  const std::size_t k = spec.info.num_margin_outputs;
  if (spec.arithmetic == Arithmetic::kLightGBM && spec.average_output) {
    // LightGBM rf: transform(sum / iterations).
    detail::SmallBuffer<double, 64> buf(k);
    double* m = buf.data();
    const double div = static_cast<double>(spec.num_iterations);
    for (std::size_t o = 0; o < k; ++o) m[o] = margin[o] / div;
    transform_into(spec.transform, spec.arithmetic, spec.sigmoid_scale, std::span<const double>(m, k), out);
    return;
  }
  transform_into(spec.transform, spec.arithmetic, spec.sigmoid_scale, margin.first(k), out);
}

}  // namespace

void apply_transform(const TreeEnsembleSpec& spec, std::span<const double> margin, std::span<float> out) noexcept {
  transform_spec(spec, margin, out);
}

void apply_transform(const TreeEnsembleSpec& spec, std::span<const double> margin, std::span<double> out) noexcept {
  transform_spec(spec, margin, out);
}

void apply_transform(Transform transform, Arithmetic arithmetic, double sigmoid_scale, std::span<const double> margin,
                     std::span<float> out) noexcept {
  transform_into(transform, arithmetic, sigmoid_scale, margin, out);
}

}  // namespace keel
