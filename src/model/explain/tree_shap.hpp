#pragma once
// The tree explainer's layout and its per-row passes, shared by the
// portable and the AVX2 translation units (tree_shap.cpp, tree_shap_avx2.cpp)
// which instantiate the same templates under different ISA flags.
//
// The algorithm (exact path-dependent TreeSHAP in O(nodes * D) per tree):
// for a leaf l whose path holds the distinct features P, with Z_k the
// product of cover ratios of the path's k-splits and O_k in {0,1} whether
// the row follows all of them, feature j's Shapley value is
//   v_l (O_j - Z_j) * sum_s e_s s!(d-1-s)!/d!,  e_s the degree-s coefficient of
//   prod_{k != j} (Z_k + (O_k - Z_k) y),
// and since s!(d-1-s)!/d! = integral_0^1 t^s (1-t)^(d-1-s) dt this is
//   v_l (O_j - Z_j) * integral_0^1 prod_{k != j} F_k(t) dt,  F_k = Z_k (1-t) + O_k t,
// a polynomial of degree d-1, integrated exactly by Gauss-Legendre with
// W >= d/2 points. At each point t the sum over leaves factors along the
// tree: Up(n) = product of edge factors from the root to n, Down(n) = sum
// over leaves below n of v times the edge factors from n down; an edge
// n -> c splitting on j adds Up(n) * b_c * Down(c) to phi_j. A feature
// repeated on a path merges (Z and O multiply): the repeat edge's factor
// a_c is F(merged) / F(before), its b_c the matching increment of
// (O - Z) / F, both fixed at load for the two row cases (see DupEdge).
// So a row costs one pass down (decisions, Up) and one pass up (Down,
// phi) over the nodes, W lanes wide; bias and tables are precomputed.

#include <keel/model/explain.hpp>
#include <keel/model/reference_evaluator.hpp>
#include <keel/model/tree_spec.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

namespace keel::detail {

enum : std::uint8_t {
  kShapLeft = 1,         // this node is its parent's left child
  kShapDefaultLeft = 2,  // fast split: NaN goes left
  kShapSpecial = 4,      // split decided by reference_goes_left (LightGBM, categorical)
  kShapLeaf = 8,
};

// One node in preorder (a node's left child is the next node), with the
// edge from its parent.
struct ShapNode {
  std::int32_t parent = -1;   // -1 at the root
  std::int32_t feature = -1;  // split feature (internal nodes)
  std::int32_t right = -1;    // preorder index of the right child
  // The child node of the nearest edge above that splits on the same
  // feature as this node's edge, or -1 if this edge is the feature's first
  // on the path.
  std::int32_t prev = -1;
  float thr = 0.0f;           // fast split: left iff x < thr (XGBoost numeric)
  std::uint8_t flags = 0;
  std::uint32_t aux = 0;      // special: index into specials; leaf: the library's leaf id
  std::int32_t dup = -1;      // repeat edge: its DupEdge index
  double z = 1.0;             // cover / parent's cover
  double value = 0.0;         // leaf: value (times the DART weight)
};

// Per-point factors of a repeat edge, for the edge followed (a1, b1) or not
// (a0, b0) while the feature's earlier splits were all followed; when one
// was not, the factor is the scalar `stale` and b is 0.
struct DupEdge {
  std::uint32_t offset = 0;  // into ShapLayout::dup_values: a1[W] b1[W] a0[W] b0[W]
  double stale = 0.0;
};

struct ShapTree {
  std::uint32_t first = 0;  // into nodes
  std::uint32_t size = 0;
  std::uint32_t output = 0;
  std::uint32_t width = 1;  // quadrature points W (a power of two)
  std::uint32_t quad = 0;   // into ShapLayout::quad_values: t[W] 1-t[W] w[W]
  double bias = 0.0;        // expected value: sum of v_l * prod z along its path
};

struct ShapLayout {
  std::vector<ShapNode> nodes;
  std::vector<ShapTree> trees;
  std::vector<DupEdge> dups;
  std::vector<double> dup_values;
  std::vector<double> quad_values;
  std::size_t num_features = 0;
  std::size_t outputs = 1;
  std::size_t max_width = 1;
  std::size_t max_work = 0;  // max over trees of size * width
  std::size_t max_nodes = 0;
};

// What decides a special split (reference_goes_left): the library's rules
// and category bits (semantics->trees[k] has the bits of tree k, no nodes),
// the special nodes' copies and the tree each belongs to.
// Raw pointers, as in ShapView: the passes call no std::vector member.
struct ShapSemantics {
  const TreeEnsembleSpec* semantics = nullptr;
  const Tree* trees = nullptr;  // semantics->trees.data()
  const TreeNode* specials = nullptr;
  const std::uint32_t* special_tree = nullptr;
};

// What the passes read of a ShapLayout, as raw pointers: a std::vector
// member called from an ISA translation unit would be emitted there as a
// weak symbol the linker may also pick for portable callers
// (tests/build/isa_objects.sh).
struct ShapView {
  const ShapNode* nodes = nullptr;
  const DupEdge* dups = nullptr;
  const double* dup_values = nullptr;
  const double* quad_values = nullptr;
  std::size_t num_features = 0;
  std::size_t max_width = 1;
};

inline ShapView shap_view(const ShapLayout& L) noexcept {
  return ShapView{L.nodes.data(), L.dups.data(), L.dup_values.data(), L.quad_values.data(), L.num_features,
                  L.max_width};
}

// The passes below have internal linkage: each ISA's translation unit
// compiles its own copy (no ODR mixing of AVX2 and portable code).
namespace {

template <class T>
inline bool shap_goes_left(const ShapSemantics& sem, const ShapNode& n, const T* row) noexcept {
  const T x = row[n.feature];
  if (!(n.flags & kShapSpecial)) {
    if (x != x) return (n.flags & kShapDefaultLeft) != 0;
    return static_cast<float>(x) < n.thr;
  }
  const TreeNode& s = sem.specials[n.aux];
  return reference_goes_left(*sem.semantics, sem.trees[sem.special_tree[n.aux]], s,
                             static_cast<double>(x));
}

// Per-node row state bits.
enum : std::uint8_t {
  kStFollowed = 1,  // the row goes through this edge
  kStMerged = 2,    // ... and through every earlier split on its feature (O)
  kStStale = 4,     // an earlier split on the feature was not followed
  kStGoLeft = 8,    // internal node: the row goes left
};

// One tree, one row: adds W-lane partial phi to acc[(output * F + f) *
// max_width + lane]. buf holds size * W doubles, state size bytes.
template <int W, class T>
void shap_tree(const ShapView& L, const ShapTree& tr, const ShapSemantics& dec, const T* row, double* buf,
                      std::uint8_t* state, double* acc) noexcept {
  const ShapNode* nd = L.nodes + tr.first;
  const double* t = L.quad_values + tr.quad;
  const double* omt = t + W;
  const double* w = t + 2 * W;
  const std::size_t n = tr.size;
  const std::size_t stride = L.max_width;
  double* accf = acc + static_cast<std::size_t>(tr.output) * L.num_features * stride;

  if (nd[0].flags & kShapLeaf) return;  // a single leaf: bias only
  state[0] = shap_goes_left(dec, nd[0], row) ? kStGoLeft : 0;
  for (int q = 0; q < W; ++q) buf[q] = w[q];

  // Down the tree: decisions, edge states, Up at internal nodes.
  for (std::size_t i = 1; i < n; ++i) {
    const ShapNode& c = nd[i];
    const auto p = static_cast<std::size_t>(c.parent);
    const bool o = ((c.flags & kShapLeft) != 0) == ((state[p] & kStGoLeft) != 0);
    std::uint8_t st = o ? kStFollowed : 0;
    if (c.prev < 0) {
      if (o) st |= kStMerged;
    } else if (state[c.prev] & kStMerged) {
      if (o) st |= kStMerged;
    } else {
      st |= kStStale;
    }
    if (c.flags & kShapLeaf) {
      state[i] = st;
      continue;
    }
    if (shap_goes_left(dec, c, row)) st |= kStGoLeft;
    state[i] = st;
    const double* up = buf + p * W;
    double* me = buf + i * W;
    if (c.dup < 0) {
      const double ot = o ? 1.0 : 0.0;
      for (int q = 0; q < W; ++q) me[q] = up[q] * (c.z * omt[q] + ot * t[q]);
    } else if (st & kStStale) {
      const double s = L.dups[static_cast<std::size_t>(c.dup)].stale;
      for (int q = 0; q < W; ++q) me[q] = up[q] * s;
    } else {
      const double* a = L.dup_values + L.dups[static_cast<std::size_t>(c.dup)].offset + (o ? 0 : 2 * W);
      for (int q = 0; q < W; ++q) me[q] = up[q] * a[q];
    }
  }

  // Up the tree: Down replaces Up in buf once a node is done.
  alignas(64) double al[W], bl[W], ar[W], br[W];
  auto edge = [&](std::size_t i, double* a, double* b) {
    const ShapNode& c = nd[i];
    const std::uint8_t st = state[i];
    const bool o = (st & kStFollowed) != 0;
    if (c.dup < 0) {
      const double ot = o ? 1.0 : 0.0;
      const double bv = ot - c.z;
      for (int q = 0; q < W; ++q) {
        a[q] = c.z * omt[q] + ot * t[q];
        b[q] = bv;
      }
    } else if (st & kStStale) {
      const double s = L.dups[static_cast<std::size_t>(c.dup)].stale;
      for (int q = 0; q < W; ++q) {
        a[q] = s;
        b[q] = 0.0;
      }
    } else {
      const double* v = L.dup_values + L.dups[static_cast<std::size_t>(c.dup)].offset + (o ? 0 : 2 * W);
      for (int q = 0; q < W; ++q) {
        a[q] = v[q];
        b[q] = v[W + q];
      }
    }
  };
  for (std::size_t i = n; i-- > 0;) {
    const ShapNode& c = nd[i];
    double* me = buf + i * W;
    if (c.flags & kShapLeaf) {
      for (int q = 0; q < W; ++q) me[q] = c.value;
      continue;
    }
    const std::size_t l = i + 1;
    const auto r = static_cast<std::size_t>(c.right);
    edge(l, al, bl);
    edge(r, ar, br);
    const double* dl = buf + l * W;
    const double* dr = buf + r * W;
    double* phi = accf + static_cast<std::size_t>(c.feature) * stride;
    for (int q = 0; q < W; ++q) {
      phi[q] += me[q] * (bl[q] * dl[q] + br[q] * dr[q]);
      me[q] = al[q] * dl[q] + ar[q] * dr[q];
    }
  }
}

}  // namespace

template <class T>
using ShapTreeFn = void (*)(const ShapView&, const ShapTree&, const ShapSemantics&, const T*, double*,
                            std::uint8_t*, double*) noexcept;

// The table of passes by width, for one ISA's translation unit.
#define KEEL_SHAP_TABLE(T, w)                                                               \
  switch (w) {                                                                              \
    case 1: return &shap_tree<1, T>;                                                  \
    case 2: return &shap_tree<2, T>;                                                  \
    case 4: return &shap_tree<4, T>;                                                  \
    case 8: return &shap_tree<8, T>;                                                  \
    case 16: return &shap_tree<16, T>;                                                \
    case 32: return &shap_tree<32, T>;                                                \
    case 64: return &shap_tree<64, T>;                                                \
    case 128: return &shap_tree<128, T>;                                              \
    default: return nullptr;                                                                \
  }

// Widths the passes are instantiated for; wider trees are refused.
inline constexpr std::uint32_t kMaxShapWidth = 128;

// The pass for width w (a power of two <= kMaxShapWidth), portable build.
ShapTreeFn<float> shap_tree_fn_f(std::uint32_t w) noexcept;
ShapTreeFn<double> shap_tree_fn_d(std::uint32_t w) noexcept;
// The same compiled for AVX2 + FMA; null when this build has none.
ShapTreeFn<float> shap_tree_fn_f_avx2(std::uint32_t w) noexcept;
ShapTreeFn<double> shap_tree_fn_d_avx2(std::uint32_t w) noexcept;

}  // namespace keel::detail
