#pragma once
// Internals of TreeEnsemble shared by the portable code and the per-ISA
// kernel files (tree_ensemble_avx2.cpp, tree_ensemble_avx512.cpp).
//
// Every numeric split is reduced to one float comparison on float rows:
//   right  iff  x >= thr           (x not NaN)
//   right  iff  feat & kNanRight   (x NaN)
// XGBoost (left iff x < float(t)) gives thr = float(t). LightGBM (left iff
// double(x) <= t) gives thr = the float just above tl, the largest float <= t:
// for a float x, x <= t exactly when x <= tl, i.e. when x < next_up(tl); if tl
// is +inf every non-NaN x goes left and thr is NaN (x >= NaN is false).

#include <keel/model/tree_spec.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace keel::detail {

inline constexpr std::uint32_t kNanRight = 1u << 31;
inline constexpr std::uint32_t kFeatureMask = (1u << 24) - 1;

// Implicit heap, every tree padded to `depth` levels. Per tree: nodes
// [2^l - 1, 2^(l+1) - 1) hold level l in order (node_stride entries, the
// last one unused), leaves [0, 2^depth). A leaf above full depth is copied
// into all the slots below it; padding nodes send everything left.
struct HeapPack {
  std::size_t depth = 0;
  std::size_t node_stride = 0;  // 2^depth
  std::size_t leaf_stride = 0;  // 2^depth
  std::size_t num_trees = 0;
  std::vector<std::uint32_t> feat;  // feature | kNanRight; padded at the end
  std::vector<float> thr;
  std::vector<float> leaf_f;        // Arithmetic::kXGBoost (leaf * weight in float)
  std::vector<double> leaf_d;       // Arithmetic::kLightGBM (leaf * weight in double)
  std::vector<std::uint32_t> out;   // margin column of each tree
  bool single_output = true;
  bool double_acc = false;

  // Gather-free top levels (the AVX-512 kernel): the first top_depth levels
  // of every tree are decided by comparing whole columns of a feature-major
  // copy of the block (one load + one compare per node for 16 rows, no
  // gather). Slots number the distinct features those nodes read.
  std::size_t top_depth = 0;                 // 0: not built
  std::size_t top_nodes = 0;                 // 2^top_depth - 1 per tree
  std::vector<std::uint32_t> top_slot;       // [tree][top_nodes]: slot | kNanRight
  std::vector<float> top_thr;                // [tree][top_nodes]
  std::vector<std::uint32_t> slot_feature;   // slot -> feature
};

// Levels decided by column compares (15 nodes: one compare each beats the
// gather of a walk step; 31 would not).
inline constexpr std::size_t kTopDepth = 4;
// Above this many slots the feature-major copy costs more than it saves.
inline constexpr std::size_t kMaxTopSlots = 1024;

// Padding appended to node arrays so that vector loads of a level (up to
// 16 entries from any level start) never leave the array.
inline constexpr std::size_t kHeapPad = 64;

// One (ISA-specific) heap kernel call: rows [0, n) of a row-major block of
// `nf` features through all trees, adding to acc_f or acc_d ([n][outputs]).
struct HeapBlock {
  const float* rows = nullptr;
  std::size_t n = 0;
  std::size_t nf = 0;
  std::size_t outputs = 1;
  float* acc_f = nullptr;
  double* acc_d = nullptr;
  // 64-byte aligned room for the feature-major copy of up to kHeapBlockRows
  // rows (top_scratch_floats(p) floats), or null: kernels then skip the
  // column-compare levels.
  float* scratch = nullptr;
};

// Rows a kernel call handles at most (the caller splits larger batches).
inline constexpr std::size_t kHeapBlockRows = 128;

// Floats of HeapBlock::scratch a block of kHeapBlockRows rows needs.
inline std::size_t top_scratch_floats(const HeapPack& p) noexcept {
  return p.top_depth == 0 ? 0 : p.slot_feature.size() * kHeapBlockRows;
}

bool block_has_nan(const float* p, std::size_t n) noexcept;

// Calls run(sub_block) on consecutive pieces of at most `rows` rows of b.
template <class Fn>
void for_each_piece(const HeapBlock& b, std::size_t rows, Fn&& run) noexcept {
  for (std::size_t r0 = 0; r0 < b.n; r0 += rows) {
    HeapBlock sub = b;
    sub.rows = b.rows + r0 * b.nf;
    sub.n = b.n - r0 < rows ? b.n - r0 : rows;
    sub.acc_f = b.acc_f ? b.acc_f + r0 * b.outputs : nullptr;
    sub.acc_d = b.acc_d ? b.acc_d + r0 * b.outputs : nullptr;
    run(sub);
  }
}

// Picks the kernel instance for the block: NaN handling only when the block
// has a NaN; vector accumulation only for one float output. Each ISA file
// passes its own distinctly named Run: GCC gives instantiations with a
// template template argument from an anonymous namespace weak external
// linkage, so equal names in two files would be merged by the linker.
template <template <bool, bool> class Run>
void run_variant(const HeapPack& p, const HeapBlock& b, bool nan) noexcept {
  const bool vec = !p.double_acc && p.single_output && b.outputs == 1;
  if (nan) {
    vec ? Run<true, true>::go(p, b) : Run<true, false>::go(p, b);
  } else {
    vec ? Run<false, true>::go(p, b) : Run<false, false>::go(p, b);
  }
}

void heap_block_scalar(const HeapPack& p, const HeapBlock& b) noexcept;
#if defined(__x86_64__)
void heap_block_avx2(const HeapPack& p, const HeapBlock& b) noexcept;
void heap_block_avx512(const HeapPack& p, const HeapBlock& b) noexcept;
#endif

}  // namespace keel::detail
