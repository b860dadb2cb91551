// TreeEnsemble: flattening a TreeEnsembleSpec at load, kernel dispatch, the
// portable kernels (heap lockstep, compact lockstep, single row) and the
// batch driver with its thread split. See tree_ensemble_impl.hpp for the
// comparison encoding every kernel shares.

#include <keel/model/tree_ensemble.hpp>
#include <keel/model/reference_evaluator.hpp>

#include "model/support/small_buffer.hpp"
#include "model/support/thread_pool.hpp"
#include "model/trees/tree_binned.hpp"
#include "model/trees/tree_double_rows.hpp"
#include "model/trees/tree_ensemble_impl.hpp"
#include "model/trees/tree_row.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace keel {
namespace detail {

bool block_has_nan(const float* p, std::size_t n) noexcept {
  // NaN iff |bits| > the bits of +inf: integer compares, which vectorise.
  std::int32_t any = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::int32_t u;
    std::memcpy(&u, p + i, sizeof u);
    any |= static_cast<std::int32_t>((u & 0x7fffffff) > 0x7f800000);
  }
  return any != 0;
}

namespace {

template <bool kHasNan, class Acc>
void heap_scalar_impl(const HeapView& p, const HeapBlock& b, const Acc* leaves, Acc* acc) noexcept {
  // 16 walks in lockstep: independent load chains hide each other's latency.
  constexpr std::size_t kG = 16;
  const std::size_t depth = p.depth;
  for (std::size_t r0 = 0; r0 < b.n; r0 += kG) {
    const std::size_t g = std::min(kG, b.n - r0);
    const float* row[kG];
    for (std::size_t k = 0; k < kG; ++k) row[k] = b.rows + std::min(r0 + k, b.n - 1) * b.nf;
    for (std::size_t t = 0; t < p.num_trees; ++t) {
      const std::uint32_t* feat = p.feat + t * p.node_stride;
      const float* thr = p.thr + t * p.node_stride;
      std::uint32_t j[kG] = {};
      for (std::size_t l = 0; l < depth; ++l) {
        const std::uint32_t* fl = feat + ((std::size_t{1} << l) - 1);
        const float* tl = thr + ((std::size_t{1} << l) - 1);
        for (std::size_t k = 0; k < kG; ++k) {
          const std::uint32_t f = fl[j[k]];
          const float x = row[k][f & kFeatureMask];
          std::uint32_t right = x >= tl[j[k]];
          if constexpr (kHasNan) right |= static_cast<std::uint32_t>(x != x) & (f >> 31);
          j[k] = 2 * j[k] + right;
        }
      }
      const Acc* lv = leaves + t * p.leaf_stride;
      const std::size_t o = p.out[t];
      for (std::size_t k = 0; k < g; ++k) acc[(r0 + k) * b.outputs + o] += lv[j[k]];
    }
  }
}

}  // namespace

void heap_block_scalar(const HeapView& p, const HeapBlock& b) noexcept {
  const bool nan = block_has_nan(b.rows, b.n * b.nf);
  if (p.double_acc) {
    nan ? heap_scalar_impl<true>(p, b, p.leaf_d, b.acc_d) : heap_scalar_impl<false>(p, b, p.leaf_d, b.acc_d);
  } else {
    nan ? heap_scalar_impl<true>(p, b, p.leaf_f, b.acc_f) : heap_scalar_impl<false>(p, b, p.leaf_f, b.acc_f);
  }
}

}  // namespace detail

namespace {

using detail::kFeatureMask;
using detail::kNanRight;

// LightGBM's zero band for MissingType::kZero (see tree_spec.cpp).
constexpr double kZeroThreshold = static_cast<double>(1e-35f);

// Compact node flags, above the 24 feature bits.
constexpr std::uint32_t kLeafFlag = 1u << 30;
constexpr std::uint32_t kSpecialFlag = 1u << 29;  // split tested by the reference
constexpr std::uint32_t kLinearFlag = 1u << 28;   // linear leaf, evaluated from the spec

// Compact node: right child = next + 1. A leaf points at itself, reads
// feature 0 against a NaN threshold and so stays put: walks need no per-lane
// "done" test. aux: the leaf's value index, or the special-node index.
struct CNode {
  std::uint32_t feat = 0;
  float thr = 0.0f;
  std::uint32_t next = 0;
  std::uint32_t aux = 0;
};

struct Special {
  const Tree* tree = nullptr;
  const TreeNode* node = nullptr;
};

float next_up(float f) noexcept { return std::nextafter(f, std::numeric_limits<float>::infinity()); }

using detail::float_floor;

// A numeric split as (thr, NaN goes right); false when the node needs the
// reference test (categorical; a zero band that does not fit one threshold).
// LightGBM reads |x| <= z (z = kZeroThreshold, a float) as 0.0 and, for
// MissingType::kZero, sends that band the default way. The band and its
// complement sides form one "x <= t'" split unless the band goes against
// the side its threshold puts next to it.
bool encode_numeric(const TreeNode& n, bool lightgbm, float& thr, bool& nan_right) noexcept {
  if (n.kind == SplitKind::kNumericLess) {
    thr = static_cast<float>(n.threshold);
    nan_right = !n.default_left;
    return true;
  }
  if (n.kind != SplitKind::kNumericLessEqual) return false;
  const double t = n.threshold;
  bool band = lightgbm;                 // does the band [-z, z] move as one?
  bool band_left = 0.0 <= t;            // where it goes
  nan_right = n.missing == MissingType::kNone ? !(0.0 <= t) : !n.default_left;
  if (n.missing == MissingType::kZero) {
    band = true;
    band_left = n.default_left;
  }
  const float zf = static_cast<float>(kZeroThreshold);
  double eff = t;  // the equivalent plain threshold
  if (band) {
    if (t >= kZeroThreshold) {
      if (!band_left) return false;
    } else if (t < -kZeroThreshold) {
      if (band_left) return false;
    } else {
      eff = band_left ? kZeroThreshold : static_cast<double>(std::nextafter(-zf, -std::numeric_limits<float>::infinity()));
    }
  }
  const float tl = float_floor(eff);
  thr = tl == std::numeric_limits<float>::infinity() ? std::numeric_limits<float>::quiet_NaN() : next_up(tl);
  return true;
}

template <class Acc>
Acc weighted_leaf(const Tree& t, double value) noexcept {
  if constexpr (std::is_same_v<Acc, float>) {
    float v = static_cast<float>(value);
    if (t.weight != 1.0) v *= static_cast<float>(t.weight);
    return v;
  } else {
    return value * t.weight;
  }
}

// The reference's leaf_output on a float row.
double linear_leaf(const TreeEnsembleSpec& spec, const Tree& t, const TreeNode& leaf, const float* row) noexcept {
  double out = leaf.linear_const;
  for (std::uint32_t k = 0; k < leaf.linear_count; ++k) {
    const LinearTerm& term = t.linear_terms[leaf.linear_offset + k];
    double x = static_cast<double>(row[static_cast<std::size_t>(term.feature)]);
    if (spec.arithmetic == Arithmetic::kLightGBM && std::fabs(x) <= kZeroThreshold) x = 0.0;
    if (std::isnan(x)) return leaf.leaf_value;
    out += term.coeff * x;
  }
  return out;
}

std::atomic<int> g_forced_kernel{-1};  // -1: none (use KEEL_KERNEL / CPU)

TreeKernel best_cpu_kernel() noexcept {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return TreeKernel::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")) {
    return TreeKernel::kAvx2;
  }
#endif
  return TreeKernel::kScalar;
}

TreeKernel env_or_cpu_kernel() noexcept {
  static const TreeKernel k = [] {
    const char* env = std::getenv("KEEL_KERNEL");
    TreeKernel parsed = TreeKernel::kAuto;
    if (env != nullptr && parse_tree_kernel(env, parsed) && parsed != TreeKernel::kAuto &&
        tree_kernel_supported(parsed)) {
      return parsed;
    }
    return best_cpu_kernel();
  }();
  return k;
}

}  // namespace

std::string_view to_string(TreeKernel k) noexcept {
  switch (k) {
    case TreeKernel::kAuto: return "auto";
    case TreeKernel::kScalar: return "scalar";
    case TreeKernel::kAvx2: return "avx2";
    case TreeKernel::kAvx512: return "avx512";
    case TreeKernel::kReference: return "reference";
  }
  return "unknown";
}

std::string_view to_string(TreeLayout l) noexcept {
  switch (l) {
    case TreeLayout::kAuto: return "auto";
    case TreeLayout::kHeap: return "heap";
    case TreeLayout::kCompact: return "compact";
  }
  return "unknown";
}

bool parse_tree_kernel(std::string_view name, TreeKernel& out) noexcept {
  for (TreeKernel k : {TreeKernel::kAuto, TreeKernel::kScalar, TreeKernel::kAvx2, TreeKernel::kAvx512,
                       TreeKernel::kReference}) {
    if (name == to_string(k)) {
      out = k;
      return true;
    }
  }
  return false;
}

bool tree_kernel_supported(TreeKernel k) noexcept {
  switch (k) {
    case TreeKernel::kAuto:
    case TreeKernel::kScalar:
    case TreeKernel::kReference: return true;
    case TreeKernel::kAvx2: return best_cpu_kernel() != TreeKernel::kScalar;
    case TreeKernel::kAvx512: return best_cpu_kernel() == TreeKernel::kAvx512;
  }
  return false;
}

TreeKernel default_tree_kernel() noexcept {
  const int forced = g_forced_kernel.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<TreeKernel>(forced);
  return env_or_cpu_kernel();
}

Status set_default_tree_kernel(TreeKernel k) noexcept {
  if (!tree_kernel_supported(k)) {
    return invalid_input(fmt::format("kernel {} is not supported on this CPU", to_string(k)));
  }
  g_forced_kernel.store(k == TreeKernel::kAuto ? -1 : static_cast<int>(k), std::memory_order_relaxed);
  return Status::ok();
}

namespace {

// Immutable after construction; predict() is thread-safe.
class TreeEnsembleModel final : public Model {
 public:
  explicit TreeEnsembleModel(TreeEnsembleSpec spec) : spec_(std::move(spec)) {}
  // The views point into the packs (and Special into spec_): no copies.
  TreeEnsembleModel(const TreeEnsembleModel&) = delete;
  TreeEnsembleModel& operator=(const TreeEnsembleModel&) = delete;

  // Flattens spec_ (in place: Special points into it). Throws keel::Error or
  // bad_alloc; called once by make_tree_ensemble.
  Status build(const TreeEnsembleOptions& opts);

  const ModelInfo& info() const noexcept override { return spec_.info; }
  TreeKernel kernel() const noexcept { return kernel_; }
  TreeLayout layout() const noexcept { return layout_; }
  bool binned() const noexcept { return binned_.built(); }
  const std::string& binning_note() const noexcept { return binning_note_; }
  TreeMemory memory() const noexcept;

  Status predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                 const PredictOptions& opts) const noexcept override;
  Status predict(std::span<const double> rows, std::size_t n_rows, std::span<float> out,
                 const PredictOptions& opts) const noexcept override;
  // float64 outputs: LightGBM's double margins and transforms unrounded
  // (the kernels accumulate in double in tree order, as the reference does);
  // XGBoost's float results widened.
  Status predict(std::span<const double> rows, std::size_t n_rows, std::span<double> out,
                 const PredictOptions& opts) const noexcept override;
  // Float64 rows of a LightGBM model: mapped exactly onto float rows
  // (tree_double_rows.hpp); rows that do not map take reference_row.
  // Throws bad_alloc.
  template <class Out>
  Status predict_mapped(std::span<const double> rows, std::size_t n_rows, std::span<Out> out,
                        const PredictOptions& opts) const;
  // Row r of rows by the reference evaluator, into row r of out.
  template <class Out>
  void reference_row(const double* rows, std::size_t r, Out* out, OutputKind kind) const;
  // Float rows (shapes checked) into float or double outputs.
  template <class Out>
  Status predict_rows(const float* rows, std::size_t n_rows, Out* out, const PredictOptions& opts) const noexcept;

  // Rows [r0, r1) of a batch, margins into acc ([rows][K], starting at r0).
  void margins_rows(const float* rows, std::size_t n, float* acc_f, double* acc_d) const noexcept;
  // The kernel over views hv/cv (whole model or a slice of trees), adding
  // tree t's leaf to column out[t] of acc rows `outputs` wide.
  void kernel_rows(const float* rows, std::size_t n, const detail::HeapView& hv, const detail::CompactView& cv,
                   const detail::BinnedView& bv, std::size_t outputs, float* acc_f, double* acc_d) const noexcept;
  // Views of trees [t0, t1) whose tree t0 + i adds to column i.
  void tree_slice(std::size_t t0, std::size_t t1, detail::HeapView& hv, detail::CompactView& cv,
                  detail::BinnedView& bv) const noexcept;

 private:
  bool heap_fits() const noexcept;
  void build_heap();
  void build_heap_top();
  void build_compact();
  void build_compact_pack(bool column_top);
  void build_compact_top();
  Status build_binned_pack(TreeBinning mode);
  void take_views() noexcept;  // after the packs are final

  template <class Acc>
  void compact_rows(const float* rows, std::size_t n, Acc* acc) const noexcept;
  template <class Acc>
  void compact_one(const float* row, Acc* acc) const noexcept;
  template <class Acc>
  void heap_one(const float* row, Acc* acc) const noexcept;
  template <class Acc>
  void init_acc(Acc* acc, std::size_t n) const noexcept;
  template <class Acc, class Out>
  void finish_row(const Acc* acc, Out* out, OutputKind kind) const noexcept;
  template <class Acc, class Out>
  Status predict_one(const float* row, Out* out, OutputKind kind) const noexcept;
  template <class Acc, class Out>
  Status predict_batch(const float* rows, std::size_t n, Out* out, const PredictOptions& opts) const noexcept;
  template <class Acc, class Out>
  Status predict_tree_split(const float* rows, std::size_t n, Out* out, const PredictOptions& opts,
                            unsigned threads) const noexcept;

  template <class Acc>
  const std::vector<Acc>& cleaves() const noexcept {
    if constexpr (std::is_same_v<Acc, float>) return leaf_f_; else return leaf_d_;
  }
  // Next node of a compact walk.
  std::uint32_t step(const CNode& nd, const float* row) const noexcept {
    const float x = row[nd.feat & kFeatureMask];
    if (nd.feat & kSpecialFlag) [[unlikely]] {
      const Special& s = specials_[nd.aux];
      return nd.next + (reference_goes_left(spec_, *s.tree, *s.node, static_cast<double>(x)) ? 0u : 1u);
    }
    return nd.next + static_cast<std::uint32_t>((x >= nd.thr) | ((x != x) & (nd.feat >> 31)));
  }
  template <class Acc>
  Acc leaf_value(std::size_t tree, const CNode& nd, const float* row) const noexcept {
    if (nd.feat & kLinearFlag) [[unlikely]] {
      const Special& s = specials_[nd.aux];
      return weighted_leaf<Acc>(spec_.trees[tree], linear_leaf(spec_, *s.tree, *s.node, row));
    }
    return cleaves<Acc>()[nd.aux];
  }

  TreeEnsembleSpec spec_;
  TreeKernel kernel_ = TreeKernel::kScalar;
  TreeLayout layout_ = TreeLayout::kCompact;
  bool double_acc_ = false;
  bool has_linear_ = false;
  void (*heap_kernel_)(const detail::HeapView&, const detail::HeapBlock&) noexcept = nullptr;
  detail::HeapPack heap_;
  detail::RowPack row_;         // heap models: the single-row layout
  detail::HeapView heap_view_;  // into heap_
  // AVX-512 deep-tree kernel over compact_pack_, or null (the scalar walk).
  void (*compact_kernel_)(const detail::CompactView&, const detail::HeapBlock&) noexcept = nullptr;
  detail::CompactPack compact_pack_;
  detail::CompactView compact_view_;  // into compact_pack_
  std::vector<CNode> nodes_;         // compact: all trees
  std::vector<std::uint32_t> roots_; // compact: root node of each tree
  std::vector<std::uint32_t> out_;   // margin column of each tree
  std::vector<std::uint32_t> columns_;  // 0, 1, 2, ...: tree i of a slice adds to column i
  std::vector<float> leaf_f_;        // compact leaf values
  std::vector<double> leaf_d_;
  std::vector<Special> specials_;
  detail::DoubleRowMap double_rows_;  // LightGBM models without linear leaves
  detail::BinnedPack binned_;         // heap models: the binned kernel's codes (built() when it runs)
  detail::BinnedView binned_view_;
  std::string binning_note_;          // why the binned kernel does not run
};

// A node reached at heap position j of its level while padding a tree.
template <class Index>
struct HeapPos {
  Index node;
  std::size_t level;
  std::size_t j;
};

bool TreeEnsembleModel::heap_fits() const noexcept {
  if (spec_.info.max_depth > kMaxHeapDepth || spec_.trees.empty()) return false;
  for (const Tree& t : spec_.trees) {
    for (const TreeNode& n : t.nodes) {
      if (n.kind == SplitKind::kLeaf) {
        if (n.linear) return false;
        continue;
      }
      float thr = 0;
      bool nan_right = false;
      if (!encode_numeric(n, double_acc_, thr, nan_right)) return false;
    }
  }
  return true;
}

void TreeEnsembleModel::build_heap() {
  detail::HeapPack& p = heap_;
  p.depth = std::max<std::size_t>(spec_.info.max_depth, 1);
  p.node_stride = std::size_t{1} << p.depth;
  p.leaf_stride = p.node_stride;
  p.num_trees = spec_.trees.size();
  p.double_acc = double_acc_;
  p.feat.assign(p.num_trees * p.node_stride + detail::kHeapPad, 0u);
  p.thr.assign(p.num_trees * p.node_stride + detail::kHeapPad, std::numeric_limits<float>::quiet_NaN());
  (double_acc_ ? p.leaf_d.resize(p.num_trees * p.leaf_stride + detail::kHeapPad)
               : p.leaf_f.resize(p.num_trees * p.leaf_stride + detail::kHeapPad));
  p.out.resize(p.num_trees);
  using Item = HeapPos<std::int32_t>;
  std::vector<Item> stack;
  for (std::size_t ti = 0; ti < p.num_trees; ++ti) {
    const Tree& t = spec_.trees[ti];
    p.out[ti] = t.output;
    if (t.output != 0) p.single_output = false;
    const std::size_t nb = ti * p.node_stride;
    const std::size_t lb = ti * p.leaf_stride;
    stack.assign(1, Item{0, 0, 0});
    while (!stack.empty()) {
      const Item it = stack.back();
      stack.pop_back();
      const TreeNode& n = t.nodes[static_cast<std::size_t>(it.node)];
      if (n.kind == SplitKind::kLeaf) {
        const std::size_t span = std::size_t{1} << (p.depth - it.level);
        for (std::size_t k = it.j * span; k < (it.j + 1) * span; ++k) {
          if (double_acc_) {
            p.leaf_d[lb + k] = weighted_leaf<double>(t, n.leaf_value);
          } else {
            p.leaf_f[lb + k] = weighted_leaf<float>(t, n.leaf_value);
          }
        }
        continue;
      }
      const std::size_t idx = nb + (std::size_t{1} << it.level) - 1 + it.j;
      bool nan_right = false;
      (void)encode_numeric(n, double_acc_, p.thr[idx], nan_right);
      p.feat[idx] = static_cast<std::uint32_t>(n.feature) | (nan_right ? kNanRight : 0u);
      stack.push_back({n.left, it.level + 1, 2 * it.j});
      stack.push_back({n.right, it.level + 1, 2 * it.j + 1});
    }
  }
}

// Collects TopLevels tree by tree; nodes not set stay padding (slot 0,
// NaN threshold: always left).
class TopBuilder {
 public:
  TopBuilder(std::size_t num_features, std::size_t trees) : slot_of_(num_features, ~0u) {
    top_.slot.assign(trees * detail::kTopNodes, 0u);
    top_.thr.assign(trees * detail::kTopNodes, std::numeric_limits<float>::quiet_NaN());
    (void)slot(0);
  }
  void set(std::size_t tree, std::size_t i, std::uint32_t feat, float thr) {
    top_.slot[tree * detail::kTopNodes + i] = slot(feat & kFeatureMask) | (feat & kNanRight);
    top_.thr[tree * detail::kTopNodes + i] = thr;
  }
  // Moves the result into out unless it needs too many slots to pay off.
  bool finish(detail::TopLevels& out) {
    if (top_.slot_feature.size() > detail::kMaxTopSlots) return false;
    out = std::move(top_);
    return true;
  }

 private:
  std::uint32_t slot(std::uint32_t feature) {
    std::uint32_t& s = slot_of_[feature];
    if (s == ~0u) {
      s = static_cast<std::uint32_t>(top_.slot_feature.size());
      top_.slot_feature.push_back(feature);
    }
    return s;
  }
  std::vector<std::uint32_t> slot_of_;
  detail::TopLevels top_;
};

void TreeEnsembleModel::build_heap_top() {
  detail::HeapPack& p = heap_;
  // Shallower models keep the plain walk (one kernel instance fewer).
  if (p.depth < detail::kTopDepth) return;
  TopBuilder b(std::max<std::size_t>(spec_.info.num_features, 1), p.num_trees);
  for (std::size_t t = 0; t < p.num_trees; ++t) {
    for (std::size_t i = 0; i < detail::kTopNodes; ++i) {
      b.set(t, i, p.feat[t * p.node_stride + i], p.thr[t * p.node_stride + i]);
    }
  }
  (void)b.finish(p.top);
}

void TreeEnsembleModel::build_compact() {
  std::size_t total = 0;
  for (const Tree& t : spec_.trees) total += t.nodes.size();
  if (total >= (std::size_t{1} << 31)) throw Error(model_error("model too large for the compact layout"));
  nodes_.reserve(total);
  roots_.reserve(spec_.trees.size());
  std::vector<std::pair<std::int32_t, std::uint32_t>> queue;  // (spec node, slot)
  for (const Tree& t : spec_.trees) {
    roots_.push_back(static_cast<std::uint32_t>(nodes_.size()));
    nodes_.emplace_back();
    queue.assign(1, {0, roots_.back()});
    // Breadth-first, so each node's two children sit side by side.
    for (std::size_t q = 0; q < queue.size(); ++q) {
      const auto [si, slot] = queue[q];
      const TreeNode& n = t.nodes[static_cast<std::size_t>(si)];
      CNode c;
      if (n.kind == SplitKind::kLeaf) {
        c.feat = kLeafFlag;
        c.thr = std::numeric_limits<float>::quiet_NaN();
        c.next = slot;
        if (n.linear) {
          has_linear_ = true;
          c.feat |= kLinearFlag;
          c.aux = static_cast<std::uint32_t>(specials_.size());
          specials_.push_back({&t, &n});
        } else if (double_acc_) {
          c.aux = static_cast<std::uint32_t>(leaf_d_.size());
          leaf_d_.push_back(weighted_leaf<double>(t, n.leaf_value));
        } else {
          c.aux = static_cast<std::uint32_t>(leaf_f_.size());
          leaf_f_.push_back(weighted_leaf<float>(t, n.leaf_value));
        }
      } else {
        bool nan_right = false;
        c.feat = static_cast<std::uint32_t>(n.feature);
        if (encode_numeric(n, double_acc_, c.thr, nan_right)) {
          c.feat |= nan_right ? kNanRight : 0u;
        } else {
          c.feat |= kSpecialFlag;
          c.aux = static_cast<std::uint32_t>(specials_.size());
          specials_.push_back({&t, &n});
        }
        c.next = static_cast<std::uint32_t>(nodes_.size());
        nodes_.emplace_back();
        nodes_.emplace_back();
        queue.push_back({n.left, c.next});
        queue.push_back({n.right, c.next + 1});
      }
      nodes_[slot] = c;
    }
  }
}

void TreeEnsembleModel::build_compact_pack(bool column_top) {
  static_assert(kLeafFlag == detail::kCompactLeaf);
  if (!specials_.empty()) return;  // categorical, zero-band or linear nodes: scalar walk
  detail::CompactPack& p = compact_pack_;
  const std::size_t n = nodes_.size();
  p.feat.resize(n);
  p.thr.resize(n);
  p.next.resize(n);
  (double_acc_ ? p.leaf_d.assign(n, 0.0) : p.leaf_f.assign(n, 0.0f));
  for (std::size_t i = 0; i < n; ++i) {
    const CNode& c = nodes_[i];
    p.feat[i] = c.feat;
    p.thr[i] = c.thr;
    p.next[i] = c.next;
    if (c.feat & kLeafFlag) {
      if (double_acc_) {
        p.leaf_d[i] = leaf_d_[c.aux];
      } else {
        p.leaf_f[i] = leaf_f_[c.aux];
      }
    }
  }
  compact_kernel_ = &detail::compact_block_avx512;
  if (column_top) build_compact_top();
}

void TreeEnsembleModel::build_compact_top() {
  // The top levels padded to a heap of kTopDepth levels; entry[j] is the
  // compact node at heap position j of level kTopDepth, or the leaf above it.
  detail::CompactPack& p = compact_pack_;
  constexpr std::size_t kEntries = std::size_t{1} << detail::kTopDepth;
  const std::size_t trees = roots_.size();
  TopBuilder b(std::max<std::size_t>(spec_.info.num_features, 1), trees);
  std::vector<std::uint32_t> entry(trees * kEntries);
  using Item = HeapPos<std::uint32_t>;
  std::vector<Item> stack;
  for (std::size_t t = 0; t < trees; ++t) {
    stack.assign(1, Item{roots_[t], 0, 0});
    while (!stack.empty()) {
      const Item it = stack.back();
      stack.pop_back();
      const std::uint32_t f = p.feat[it.node];
      if (it.level == detail::kTopDepth || (f & kLeafFlag)) {
        const std::size_t span = std::size_t{1} << (detail::kTopDepth - it.level);
        for (std::size_t k = it.j * span; k < (it.j + 1) * span; ++k) entry[t * kEntries + k] = it.node;
        continue;
      }
      b.set(t, (std::size_t{1} << it.level) - 1 + it.j, f, p.thr[it.node]);
      stack.push_back({p.next[it.node], it.level + 1, 2 * it.j});
      stack.push_back({p.next[it.node] + 1, it.level + 1, 2 * it.j + 1});
    }
  }
  if (b.finish(p.top)) p.entry = std::move(entry);
}

Status TreeEnsembleModel::build(const TreeEnsembleOptions& opts) {
  TreeKernel k = opts.kernel == TreeKernel::kAuto ? default_tree_kernel() : opts.kernel;
  if (!tree_kernel_supported(k)) {
    return invalid_input(fmt::format("kernel {} is not supported on this CPU", to_string(k)));
  }
  // The SIMD kernels index a block's rows with 32-bit offsets (row *
  // features + feature); models that wide take the scalar walk.
  if ((k == TreeKernel::kAvx2 || k == TreeKernel::kAvx512) &&
      spec_.info.num_features >= (std::size_t{1} << 31) / detail::kHeapBlockRows) {
    k = TreeKernel::kScalar;
  }
  kernel_ = k;
  double_acc_ = spec_.arithmetic == Arithmetic::kLightGBM;
  out_.reserve(spec_.trees.size());
  for (const Tree& t : spec_.trees) out_.push_back(t.output);
  columns_.resize(spec_.trees.size());
  for (std::size_t i = 0; i < columns_.size(); ++i) columns_[i] = static_cast<std::uint32_t>(i);
  const bool fits = heap_fits();
  if (opts.layout == TreeLayout::kHeap && !fits) {
    return invalid_input(fmt::format("heap layout needs numeric splits, no linear leaves and depth <= {} (model: {})",
                                     kMaxHeapDepth, spec_.info.max_depth));
  }
  layout_ = opts.layout == TreeLayout::kAuto ? (fits ? TreeLayout::kHeap : TreeLayout::kCompact) : opts.layout;
  if (layout_ == TreeLayout::kHeap) {
    build_heap();
    if (opts.single_row_copy && detail::row_pack_applies(heap_)) {
      detail::build_row_pack(heap_, spec_.info.num_features, row_);
    }
    heap_kernel_ = &detail::heap_block_scalar;
#if defined(__x86_64__)
    if (kernel_ == TreeKernel::kAvx2) heap_kernel_ = &detail::heap_block_avx2;
    if (kernel_ == TreeKernel::kAvx512) heap_kernel_ = &detail::heap_block_avx512;
    if (kernel_ != TreeKernel::kScalar && opts.column_top_levels) build_heap_top();
#endif
  } else {
    build_compact();
#if defined(__x86_64__)
    if (kernel_ == TreeKernel::kAvx512) build_compact_pack(opts.column_top_levels);
#endif
    if (compact_kernel_ == nullptr) kernel_ = TreeKernel::kScalar;  // the portable walk
    if (compact_kernel_ != nullptr && !opts.single_row_copy) {
      // Single rows run the kernel (predict_one); nothing else reads these.
      std::vector<CNode>().swap(nodes_);
      std::vector<float>().swap(leaf_f_);
      std::vector<double>().swap(leaf_d_);
    }
  }
  if (double_acc_ && !has_linear_) double_rows_ = detail::DoubleRowMap(spec_);
  if (Status s = build_binned_pack(opts.binning); !s) return s;
  take_views();
  return Status::ok();
}

Status TreeEnsembleModel::build_binned_pack(TreeBinning mode) {
  if (mode == TreeBinning::kOff) {
    binning_note_ = "off (TreeEnsembleOptions::binning)";
    return Status::ok();
  }
  if (layout_ != TreeLayout::kHeap) {
    binning_note_ = "needs the heap layout (numeric splits, no linear leaves, depth <= 10)";
#if defined(__x86_64__)
  } else if (kernel_ != TreeKernel::kAvx512 || !detail::binned_cpu_supported()) {
    binning_note_ = fmt::format("needs the avx512 kernel and AVX-512 VBMI (kernel {})", to_string(kernel_));
  } else {
    binning_note_ = detail::build_binned(heap_, spec_.info.num_features, binned_);
    // kAuto: only where it measured faster than the heap kernel (bench_trees,
    // one thread, batch 4096): depth 8, 500 trees, 100 features 1.2-1.5x;
    // depth 6, 1000 trees, 50 features 1.2x; but depth 4, 100 trees, 20
    // features 0.46x (coding the rows costs more than those levels' column
    // compares).
    if (binning_note_.empty() && mode == TreeBinning::kAuto &&
        (heap_.depth < 6 || heap_.num_trees < 2 * binned_.positions)) {
      binning_note_ = fmt::format("not chosen for depth {} and {} trees over {} coded features (the heap kernel is faster)",
                                  heap_.depth, heap_.num_trees, binned_.positions - 1);
    }
    if (!binning_note_.empty()) binned_ = detail::BinnedPack{};
    if (!binning_note_.empty()) binned_ = detail::BinnedPack{};
#else
  } else {
    binning_note_ = "needs x86-64 with AVX-512 VBMI";
#endif
  }
  if (mode == TreeBinning::kOn && !binning_note_.empty()) {
    return invalid_input(fmt::format("binned kernel: {}", binning_note_));
  }
  return Status::ok();
}

namespace {

detail::TopView view_of(const detail::TopLevels& t) noexcept {
  detail::TopView v;
  v.slot = t.slot.data();
  v.thr = t.thr.data();
  v.slot_feature = t.slot_feature.data();
  v.slots = t.slot_feature.size();
  return v;
}

}  // namespace

void TreeEnsembleModel::take_views() noexcept {
  const detail::HeapPack& h = heap_;
  detail::HeapView& hv = heap_view_;
  hv.depth = h.depth;
  hv.node_stride = h.node_stride;
  hv.leaf_stride = h.leaf_stride;
  hv.num_trees = h.num_trees;
  hv.feat = h.feat.data();
  hv.thr = h.thr.data();
  hv.leaf_f = h.leaf_f.data();
  hv.leaf_d = h.leaf_d.data();
  hv.out = h.out.data();
  hv.single_output = h.single_output;
  hv.double_acc = h.double_acc;
  hv.top = view_of(h.top);
  const detail::CompactPack& c = compact_pack_;
  detail::CompactView& cv = compact_view_;
  cv.num_trees = roots_.size();
  cv.feat = c.feat.data();
  cv.thr = c.thr.data();
  cv.next = c.next.data();
  cv.root = roots_.data();
  cv.out = out_.data();
  cv.leaf_f = c.leaf_f.data();
  cv.leaf_d = c.leaf_d.data();
  cv.double_acc = double_acc_;
  cv.top = view_of(c.top);
  cv.entry = c.entry.data();
  binned_view_ = detail::binned_view(binned_, heap_);
}

namespace {

template <class T, class A>
std::size_t bytes_of(const std::vector<T, A>& v) noexcept {
  return v.capacity() * sizeof(T);
}

std::size_t bytes_of(const detail::TopLevels& t) noexcept {
  return bytes_of(t.slot) + bytes_of(t.thr) + bytes_of(t.slot_feature);
}

}  // namespace

TreeMemory TreeEnsembleModel::memory() const noexcept {
  TreeMemory m;
  m.spec = sizeof(spec_) + bytes_of(spec_.trees) + bytes_of(spec_.base_margin);
  for (const Tree& t : spec_.trees) {
    m.spec += bytes_of(t.nodes) + bytes_of(t.category_bits) + bytes_of(t.linear_terms) + bytes_of(t.leaf_vectors) +
              bytes_of(t.cover) + bytes_of(t.source_id);
  }
  const detail::HeapPack& h = heap_;
  m.heap = bytes_of(h.feat) + bytes_of(h.thr) + bytes_of(h.leaf_f) + bytes_of(h.leaf_d) + bytes_of(h.out) +
           bytes_of(h.top);
  m.row = bytes_of(row_.nodes);
  m.compact = bytes_of(nodes_) + bytes_of(roots_) + bytes_of(leaf_f_) + bytes_of(leaf_d_) + bytes_of(specials_);
  const detail::CompactPack& c = compact_pack_;
  m.compact_simd = bytes_of(c.feat) + bytes_of(c.thr) + bytes_of(c.next) + bytes_of(c.leaf_f) + bytes_of(c.leaf_d) +
                   bytes_of(c.top) + bytes_of(c.entry);
  m.double_rows = double_rows_.bytes();
  m.binned = binned_.bytes();
  return m;
}

template <class Acc>
void TreeEnsembleModel::init_acc(Acc* acc, std::size_t n) const noexcept {
  const std::size_t k = spec_.info.num_margin_outputs;
  for (std::size_t r = 0; r < n; ++r) {
    for (std::size_t o = 0; o < k; ++o) acc[r * k + o] = static_cast<Acc>(spec_.base_margin[o]);
  }
}

template <class Acc>
void TreeEnsembleModel::compact_rows(const float* rows, std::size_t n, Acc* acc) const noexcept {
  // A block of rows sweeps the trees in order (accumulation stays in tree
  // order) so that each tree's nodes are reused by the whole block; within a
  // tree, 8 rows walk in lockstep.
  constexpr std::size_t kG = 8;
  constexpr std::size_t kBlock = 256;
  const std::size_t nf = spec_.info.num_features;
  const std::size_t k = spec_.info.num_margin_outputs;
  const CNode* nodes = nodes_.data();
  for (std::size_t b0 = 0; b0 < n; b0 += kBlock) {
    const std::size_t b1 = std::min(n, b0 + kBlock);
    for (std::size_t t = 0; t < roots_.size(); ++t) {
      const std::size_t o = out_[t];
      for (std::size_t r0 = b0; r0 < b1; r0 += kG) {
        const std::size_t g = std::min(kG, b1 - r0);
        const float* row[kG];
        std::uint32_t at[kG];
        for (std::size_t i = 0; i < kG; ++i) {
          row[i] = rows + std::min(r0 + i, b1 - 1) * nf;
          at[i] = roots_[t];
        }
        for (;;) {
          std::uint32_t inner = 0;
          for (std::size_t i = 0; i < kG; ++i) {
            const CNode& nd = nodes[at[i]];
            inner |= ~nd.feat & kLeafFlag;
            at[i] = step(nd, row[i]);
          }
          if (inner == 0) break;
        }
        for (std::size_t i = 0; i < g; ++i) acc[(r0 + i) * k + o] += leaf_value<Acc>(t, nodes[at[i]], row[i]);
      }
    }
  }
}

template <class Acc>
void TreeEnsembleModel::compact_one(const float* row, Acc* acc) const noexcept {
  // Eight trees walk in lockstep; their leaves are added in tree order.
  constexpr std::size_t kG = 8;
  const CNode* nodes = nodes_.data();
  const std::size_t nt = roots_.size();
  for (std::size_t t0 = 0; t0 < nt; t0 += kG) {
    const std::size_t g = std::min(kG, nt - t0);
    std::uint32_t at[kG];
    for (std::size_t i = 0; i < kG; ++i) at[i] = roots_[std::min(t0 + i, nt - 1)];
    for (;;) {
      std::uint32_t inner = 0;
      for (std::size_t i = 0; i < kG; ++i) {
        const CNode& nd = nodes[at[i]];
        inner |= ~nd.feat & kLeafFlag;
        at[i] = step(nd, row);
      }
      if (inner == 0) break;
    }
    for (std::size_t i = 0; i < g; ++i) acc[out_[t0 + i]] += leaf_value<Acc>(t0 + i, nodes[at[i]], row);
  }
}

template <class Acc>
void TreeEnsembleModel::heap_one(const float* row, Acc* acc) const noexcept {
  // Sixteen trees walk in lockstep down the padded heaps.
  constexpr std::size_t kG = 16;
  const detail::HeapPack& p = heap_;
  const std::vector<Acc>* leaves_p;
  if constexpr (std::is_same_v<Acc, float>) leaves_p = &p.leaf_f; else leaves_p = &p.leaf_d;
  const std::vector<Acc>& leaves = *leaves_p;
  const std::size_t nt = p.num_trees;
  for (std::size_t t0 = 0; t0 < nt; t0 += kG) {
    const std::size_t g = std::min(kG, nt - t0);
    std::size_t base[kG];
    std::uint32_t j[kG] = {};
    for (std::size_t i = 0; i < kG; ++i) base[i] = std::min(t0 + i, nt - 1) * p.node_stride;
    for (std::size_t l = 0; l < p.depth; ++l) {
      const std::size_t lo = (std::size_t{1} << l) - 1;
      for (std::size_t i = 0; i < kG; ++i) {
        const std::size_t idx = base[i] + lo + j[i];
        const std::uint32_t f = p.feat[idx];
        const float x = row[f & kFeatureMask];
        j[i] = 2 * j[i] + static_cast<std::uint32_t>((x >= p.thr[idx]) | ((x != x) & (f >> 31)));
      }
    }
    for (std::size_t i = 0; i < g; ++i) acc[p.out[t0 + i]] += leaves[(t0 + i) * p.leaf_stride + j[i]];
  }
}

template <class Acc, class Out>
void TreeEnsembleModel::finish_row(const Acc* acc, Out* out, OutputKind kind) const noexcept {
  const std::size_t k = spec_.info.num_margin_outputs;
  if (kind == OutputKind::kMargin) {
    for (std::size_t o = 0; o < k; ++o) out[o] = static_cast<Out>(acc[o]);
    return;
  }
  double m[64];
  if (k <= 64) {
    for (std::size_t o = 0; o < k; ++o) m[o] = static_cast<double>(acc[o]);
    apply_transform(spec_, std::span<const double>(m, k), std::span<Out>(out, spec_.info.num_outputs));
    return;
  }
  std::vector<double> big(acc, acc + k);  // more than 64 outputs: not allocation-free
  apply_transform(spec_, big, std::span<Out>(out, spec_.info.num_outputs));
}

template <class Acc, class Out>
Status TreeEnsembleModel::predict_one(const float* row, Out* out, OutputKind kind) const noexcept {
  const std::size_t k = spec_.info.num_margin_outputs;
  Acc small[64];
  std::vector<Acc> big;
  Acc* acc = small;
  if (k > 64) {
    try {
      big.resize(k);
    } catch (...) {
      return internal_error("predict: allocation failed");
    }
    acc = big.data();
  }
  init_acc(acc, 1);
  if (!row_.empty()) {
    detail::row_margins(row_, heap_, row, acc);
  } else if (layout_ == TreeLayout::kHeap) {
    heap_one(row, acc);
  } else if (!nodes_.empty()) {
    compact_one(row, acc);
  } else if constexpr (std::is_same_v<Acc, float>) {  // single_row_copy off: the batch kernel
    kernel_rows(row, 1, heap_view_, compact_view_, binned_view_, k, acc, nullptr);
  } else {
    kernel_rows(row, 1, heap_view_, compact_view_, binned_view_, k, nullptr, acc);
  }
  finish_row(acc, out, kind);
  return Status::ok();
}

void TreeEnsembleModel::margins_rows(const float* rows, std::size_t n, float* acc_f, double* acc_d) const noexcept {
  double_acc_ ? init_acc(acc_d, n) : init_acc(acc_f, n);
  if (layout_ == TreeLayout::kCompact && compact_kernel_ == nullptr) {
    double_acc_ ? compact_rows(rows, n, acc_d) : compact_rows(rows, n, acc_f);
    return;
  }
  kernel_rows(rows, n, heap_view_, compact_view_, binned_view_, spec_.info.num_margin_outputs, acc_f, acc_d);
}

void TreeEnsembleModel::kernel_rows(const float* rows, std::size_t n, const detail::HeapView& hv,
                                    const detail::CompactView& cv, const detail::BinnedView& bv,
                                    std::size_t outputs, float* acc_f, double* acc_d) const noexcept {
  detail::HeapBlock b;
  b.rows = rows;
  b.n = n;
  b.nf = spec_.info.num_features;
  b.outputs = outputs;
  b.acc_f = acc_f;
  b.acc_d = acc_d;
#if defined(__x86_64__)
  if (binned_.built()) {
    detail::binned_block_avx512(bv, b);
    return;
  }
#else
  (void)bv;
#endif
  // The column-compare levels need a feature-major copy of each piece;
  // without the memory the kernel walks every level.
  const detail::TopLevels& top = layout_ == TreeLayout::kCompact ? compact_pack_.top : heap_.top;
  std::unique_ptr<float[]> scratch;
  if (const std::size_t floats = top.built() ? top.scratch_floats() : 0; floats > 0) {
    scratch.reset(new (std::nothrow) float[floats + 16]);
    if (scratch) {
      const auto addr = reinterpret_cast<std::uintptr_t>(scratch.get());
      b.scratch = scratch.get() + ((64 - addr % 64) % 64) / sizeof(float);
    }
  }
  if (layout_ == TreeLayout::kCompact) {
    detail::for_each_piece(b, detail::kHeapBlockRows, [&](const detail::HeapBlock& sub) { compact_kernel_(cv, sub); });
    return;
  }
  detail::for_each_piece(b, detail::kHeapBlockRows, [&](const detail::HeapBlock& sub) { heap_kernel_(hv, sub); });
}

namespace {

template <class T>
T* offset(T* p, std::size_t k) noexcept {
  return p == nullptr ? p : p + k;
}

detail::TopView slice(detail::TopView v, std::size_t t0) noexcept {
  v.slot = offset(v.slot, t0 * detail::kTopNodes);
  v.thr = offset(v.thr, t0 * detail::kTopNodes);
  return v;
}

}  // namespace

void TreeEnsembleModel::tree_slice(std::size_t t0, std::size_t t1, detail::HeapView& hv, detail::CompactView& cv,
                                   detail::BinnedView& bv) const noexcept {
  hv = heap_view_;
  hv.num_trees = t1 - t0;
  hv.feat = offset(hv.feat, t0 * hv.node_stride);
  hv.thr = offset(hv.thr, t0 * hv.node_stride);
  hv.leaf_f = offset(hv.leaf_f, t0 * hv.leaf_stride);
  hv.leaf_d = offset(hv.leaf_d, t0 * hv.leaf_stride);
  hv.out = columns_.data();
  hv.single_output = false;
  hv.top = slice(hv.top, t0);
  cv = compact_view_;
  cv.num_trees = t1 - t0;
  cv.root = offset(cv.root, t0);
  cv.out = columns_.data();
  cv.entry = offset(cv.entry, t0 * (std::size_t{1} << detail::kTopDepth));
  cv.top = slice(cv.top, t0);
  bv = binned_.built() ? detail::binned_slice(binned_view_, t0, t1, columns_.data()) : binned_view_;
}

// Batches: rows split among threads in tasks of at most kTaskRows (whole
// 16-row vectors); batches too small to give each thread kMinTaskRows rows
// split the trees instead.
constexpr std::size_t kTaskRows = 512;
constexpr std::size_t kMinTaskRows = 32;
// Tree split keeps one value per (row, tree); above this many it row-splits.
constexpr std::size_t kMaxTreeSplitValues = std::size_t{1} << 20;
// Waking the pool and waiting for it costs tens of microseconds on a shared
// VM: batches under this many tree-rows (about 250 us of work) run on the
// calling thread (measured: 16 rows of a 500-tree model took 55 us on one
// thread, 90 us split in two).
constexpr std::size_t kMinParallelTreeRows = std::size_t{1} << 16;

template <class Acc, class Out>
Status TreeEnsembleModel::predict_batch(const float* rows, std::size_t n, Out* out,
                                        const PredictOptions& opts) const noexcept {
  const std::size_t nf = spec_.info.num_features;
  const std::size_t k = spec_.info.num_margin_outputs;
  const std::size_t w = spec_.info.width(opts.output);
  const std::size_t trees = spec_.trees.size();
  const unsigned want = n * trees < kMinParallelTreeRows ? 1u : std::max(1u, opts.threads);
  const bool kernel_walk = layout_ == TreeLayout::kHeap || compact_kernel_ != nullptr;
  if (want > 1 && kernel_walk && n < kMinTaskRows * 2 && trees >= 2 * want && n * trees <= kMaxTreeSplitValues) {
    return predict_tree_split<Acc>(rows, n, out, opts, want);
  }
  std::size_t task_rows = kTaskRows;
  if (want > 1) {
    const std::size_t share = (n + want - 1) / want;
    task_rows = std::clamp<std::size_t>((share + 15) / 16 * 16, kMinTaskRows, kTaskRows);
  }
  const std::size_t tasks = (n + task_rows - 1) / task_rows;
  std::vector<Acc> acc;
  try {
    acc.resize(n * k);
  } catch (...) {
    return internal_error(fmt::format("predict: cannot allocate margins for {} rows", n));
  }
  struct Ctx {
    const TreeEnsembleModel* self;
    const float* rows;
    std::size_t n, nf, k, w, task_rows;
    Acc* acc;
    Out* out;
    OutputKind kind;
  } ctx{this, rows, n, nf, k, w, task_rows, acc.data(), out, opts.output};
  auto task = [](void* p, std::size_t i) noexcept {
    const Ctx& c = *static_cast<const Ctx*>(p);
    const std::size_t r0 = i * c.task_rows;
    const std::size_t m = std::min(c.task_rows, c.n - r0);
    Acc* a = c.acc + r0 * c.k;
    if constexpr (std::is_same_v<Acc, float>) {
      c.self->margins_rows(c.rows + r0 * c.nf, m, a, nullptr);
    } else {
      c.self->margins_rows(c.rows + r0 * c.nf, m, nullptr, a);
    }
    for (std::size_t r = 0; r < m; ++r) c.self->finish_row(a + r * c.k, c.out + (r0 + r) * c.w, c.kind);
  };
  const unsigned threads = static_cast<unsigned>(std::min<std::size_t>(want, tasks));
  if (threads <= 1) {
    for (std::size_t i = 0; i < tasks; ++i) task(&ctx, i);
  } else {
    detail::ThreadPool::instance().run(tasks, threads, task, &ctx);
  }
  return Status::ok();
}

template <class Acc, class Out>
Status TreeEnsembleModel::predict_tree_split(const float* rows, std::size_t n, Out* out, const PredictOptions& opts,
                                             unsigned threads) const noexcept {
  // Each task walks a contiguous range of trees and keeps every leaf value
  // (one column per tree, starting from -0.0, so x + -0.0 == x exactly);
  // the leaves are then added in tree order, exactly as one thread would.
  const std::size_t trees = spec_.trees.size();
  const std::size_t k = spec_.info.num_margin_outputs;
  const std::size_t w = spec_.info.width(opts.output);
  std::vector<Acc> leaves;
  std::vector<Acc> acc;
  try {
    leaves.assign(n * trees, Acc(-0.0));
    acc.resize(n * k);
  } catch (...) {
    return internal_error(fmt::format("predict: cannot allocate leaves for {} rows", n));
  }
  struct Ctx {
    const TreeEnsembleModel* self;
    const float* rows;
    std::size_t n, trees, tasks;
    Acc* leaves;
  } ctx{this, rows, n, trees, threads, leaves.data()};
  auto task = [](void* p, std::size_t i) noexcept {
    const Ctx& c = *static_cast<const Ctx*>(p);
    const std::size_t t0 = i * c.trees / c.tasks;
    const std::size_t t1 = (i + 1) * c.trees / c.tasks;
    detail::HeapView hv;
    detail::CompactView cv;
    detail::BinnedView bv;
    c.self->tree_slice(t0, t1, hv, cv, bv);
    Acc* a = c.leaves + t0;
    if constexpr (std::is_same_v<Acc, float>) {
      c.self->kernel_rows(c.rows, c.n, hv, cv, bv, c.trees, a, nullptr);
    } else {
      c.self->kernel_rows(c.rows, c.n, hv, cv, bv, c.trees, nullptr, a);
    }
  };
  detail::ThreadPool::instance().run(threads, threads, task, &ctx);
  init_acc(acc.data(), n);
  for (std::size_t r = 0; r < n; ++r) {
    Acc* a = acc.data() + r * k;
    const Acc* lv = leaves.data() + r * trees;
    for (std::size_t t = 0; t < trees; ++t) a[out_[t]] += lv[t];
    finish_row(a, out + r * w, opts.output);
  }
  return Status::ok();
}

Status TreeEnsembleModel::predict(std::span<const float> rows, std::size_t n_rows, std::span<float> out,
                                  const PredictOptions& opts) const noexcept {
  if (Status s = check_shapes(rows.size(), n_rows, out.size(), opts); !s) return s;
  return predict_rows(rows.data(), n_rows, out.data(), opts);
}

template <class Out>
Status TreeEnsembleModel::predict_rows(const float* rows, std::size_t n_rows, Out* out,
                                       const PredictOptions& opts) const noexcept {
  const std::size_t nf = spec_.info.num_features;
  const std::size_t w = spec_.info.width(opts.output);
  // Below a few rows, interleaving trees of one row beats lockstep rows
  // (predict_one: the blocked row layout of tree_row.hpp when built).
  if (n_rows < 8) {
    for (std::size_t r = 0; r < n_rows; ++r) {
      Status s = double_acc_ ? predict_one<double>(rows + r * nf, out + r * w, opts.output)
                             : predict_one<float>(rows + r * nf, out + r * w, opts.output);
      if (!s) return s;
    }
    return Status::ok();
  }
  return double_acc_ ? predict_batch<double>(rows, n_rows, out, opts) : predict_batch<float>(rows, n_rows, out, opts);
}

Status TreeEnsembleModel::predict(std::span<const double> rows, std::size_t n_rows, std::span<float> out,
                                  const PredictOptions& opts) const noexcept {
  if (Status s = check_shapes(rows.size(), n_rows, out.size(), opts); !s) return s;
  // XGBoost compares float(x): narrowing first is exact, unless a linear
  // leaf reads x in double.
  if (spec_.arithmetic == Arithmetic::kXGBoost && !has_linear_) return Model::predict(rows, n_rows, out, opts);
  try {
    if (!has_linear_) return predict_mapped(rows, n_rows, out, opts);
    // Linear leaves read x itself: the reference evaluator, row by row.
    for (std::size_t r = 0; r < n_rows; ++r) reference_row(rows.data(), r, out.data(), opts.output);
    return Status::ok();
  } catch (...) {
    return internal_error("predict: allocation failed");
  }
}

Status TreeEnsembleModel::predict(std::span<const double> rows, std::size_t n_rows, std::span<double> out,
                                  const PredictOptions& opts) const noexcept {
  if (spec_.arithmetic == Arithmetic::kXGBoost) return Model::predict(rows, n_rows, out, opts);
  // Linear leaves read x in double: the reference evaluator.
  if (has_linear_) return reference_predict(spec_, rows, n_rows, out, opts);
  if (Status s = check_shapes(rows.size(), n_rows, out.size(), opts); !s) return s;
  try {
    return predict_mapped(rows, n_rows, out, opts);
  } catch (...) {
    return internal_error("predict: allocation failed");
  }
}

template <class Out>
Status TreeEnsembleModel::predict_mapped(std::span<const double> rows, std::size_t n_rows, std::span<Out> out,
                                         const PredictOptions& opts) const {
  const std::size_t nf = spec_.info.num_features;
  const std::size_t w = spec_.info.width(opts.output);
  if (n_rows < 8) {
    detail::SmallBuffer<float, 256> y(nf);
    for (std::size_t r = 0; r < n_rows; ++r) {
      if (!double_rows_.map_row(rows.data() + r * nf, y.data())) {
        reference_row(rows.data(), r, out.data(), opts.output);
        continue;
      }
      if (Status s = predict_rows(y.data(), 1, out.data() + r * w, opts); !s) return s;
    }
    return Status::ok();
  }
  std::vector<float> y(n_rows * nf);
  std::vector<std::size_t> unmapped;
  for (std::size_t r = 0; r < n_rows; ++r) {
    if (!double_rows_.map_row(rows.data() + r * nf, y.data() + r * nf)) unmapped.push_back(r);
  }
  if (Status s = predict_rows(y.data(), n_rows, out.data(), opts); !s) return s;
  for (std::size_t r : unmapped) reference_row(rows.data(), r, out.data(), opts.output);
  return Status::ok();
}

template <class Out>
void TreeEnsembleModel::reference_row(const double* rows, std::size_t r, Out* out, OutputKind kind) const {
  const std::size_t nf = spec_.info.num_features;
  const std::size_t k = spec_.info.num_margin_outputs;
  const std::size_t w = spec_.info.width(kind);
  detail::SmallBuffer<double, 64> margin(k);
  reference_margin(spec_, std::span<const double>(rows + r * nf, nf), std::span<double>(margin.data(), k));
  if (kind == OutputKind::kMargin) {
    for (std::size_t o = 0; o < k; ++o) out[r * w + o] = static_cast<Out>(margin[o]);
  } else {
    apply_transform(spec_, std::span<const double>(margin.data(), k), std::span<Out>(out + r * w, w));
  }
}

}  // namespace

Result<ModelPtr> make_tree_ensemble(TreeEnsembleSpec spec, const TreeEnsembleOptions& opts) {
  // Validate first: compute_shape walks child indices.
  if (Status s = validate(spec); !s) return s;
  compute_shape(spec);
  const TreeKernel k = opts.kernel == TreeKernel::kAuto ? default_tree_kernel() : opts.kernel;
  // Vector leaves (XGBoost multi_output_tree) are not in the kernels' layouts.
  if (k == TreeKernel::kReference || spec.info.num_features > kFeatureMask + 1 || has_vector_leaves(spec)) {
    return make_reference_model(std::move(spec));
  }
  if (spec.info.version == 0) spec.info.version = next_model_version();
  try {
    auto m = std::make_shared<TreeEnsembleModel>(std::move(spec));
    if (Status s = m->build(opts); !s) return s;
    return ModelPtr(std::move(m));
  } catch (const Error& e) {
    return e.status();
  } catch (const std::bad_alloc&) {
    return model_error("tree ensemble: out of memory while flattening the trees");
  }
}

TreeKernel tree_kernel_of(const Model& m) noexcept {
  const auto* te = dynamic_cast<const TreeEnsembleModel*>(&m);
  return te ? te->kernel() : TreeKernel::kAuto;
}

TreeLayout tree_layout_of(const Model& m) noexcept {
  const auto* te = dynamic_cast<const TreeEnsembleModel*>(&m);
  return te ? te->layout() : TreeLayout::kAuto;
}

TreeMemory tree_memory_of(const Model& m) noexcept {
  const auto* te = dynamic_cast<const TreeEnsembleModel*>(&m);
  return te ? te->memory() : TreeMemory{};
}

bool tree_binned_of(const Model& m) noexcept {
  const auto* te = dynamic_cast<const TreeEnsembleModel*>(&m);
  return te != nullptr && te->binned();
}

std::string tree_binning_note(const Model& m) {
  const auto* te = dynamic_cast<const TreeEnsembleModel*>(&m);
  return te ? te->binning_note() : std::string();
}

}  // namespace keel
