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

// Rows a kernel call handles at most (the caller splits larger batches).
inline constexpr std::size_t kHeapBlockRows = 128;

// Gather-free top levels (AVX-512 kernels): the first kTopDepth levels of
// every tree are decided by comparing whole columns of a feature-major copy
// of the block (one load + one compare per node for 16 rows, no gather),
// packing the results into a 15-bit word per row and walking it by shifts.
// Slots number the distinct features those nodes read. Heap numbering:
// node i has children 2i+1, 2i+2; a padding node (below a leaf) reads slot
// 0 against a NaN threshold, so it always goes left.
inline constexpr std::size_t kTopDepth = 4;  // 15 compares beat 4 gathers; 31 would not beat 5
inline constexpr std::size_t kTopNodes = (std::size_t{1} << kTopDepth) - 1;
// Above this many slots the feature-major copy costs more than it saves.
inline constexpr std::size_t kMaxTopSlots = 1024;

struct TopLevels {
  std::vector<std::uint32_t> slot;          // [tree][kTopNodes]: slot | kNanRight
  std::vector<float> thr;                   // [tree][kTopNodes]
  std::vector<std::uint32_t> slot_feature;  // slot -> feature

  bool built() const noexcept { return !slot_feature.empty(); }
  // Floats of HeapBlock::scratch that a block of kHeapBlockRows rows needs.
  std::size_t scratch_floats() const noexcept { return slot_feature.size() * kHeapBlockRows; }
};

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

  TopLevels top;                    // AVX-512 only; empty when not built
};

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
  // rows (TopLevels::scratch_floats()), or null: kernels then walk the top
  // levels too.
  float* scratch = nullptr;
};

// What the kernels read: plain pointers into a pack, taken once at load.
// Code in an ISA file (compiled with AVX flags) must call no inline function
// that portable code also calls -- std::vector members, <algorithm>, the
// inline members above: GCC emits such a function as a weak copy in every
// object that uses it out of line (as -O0 builds do) and the linker keeps
// one, possibly the AVX copy, for all callers, which would fault on a CPU
// without AVX. So kernels see only these aggregates.
struct TopView {
  const std::uint32_t* slot = nullptr;
  const float* thr = nullptr;
  const std::uint32_t* slot_feature = nullptr;
  std::size_t slots = 0;  // 0: no column-compare levels
};

struct HeapView {
  std::size_t depth = 0;
  std::size_t node_stride = 0;
  std::size_t leaf_stride = 0;
  std::size_t num_trees = 0;
  const std::uint32_t* feat = nullptr;
  const float* thr = nullptr;
  const float* leaf_f = nullptr;
  const double* leaf_d = nullptr;
  const std::uint32_t* out = nullptr;
  bool single_output = true;
  bool double_acc = false;
  TopView top;
};

struct CompactView {
  std::size_t num_trees = 0;
  const std::uint32_t* feat = nullptr;
  const float* thr = nullptr;
  const std::uint32_t* next = nullptr;
  const std::uint32_t* root = nullptr;
  const std::uint32_t* out = nullptr;
  const float* leaf_f = nullptr;
  const double* leaf_d = nullptr;
  bool double_acc = false;
  TopView top;
  const std::uint32_t* entry = nullptr;
};

bool block_has_nan(const float* p, std::size_t n) noexcept;

// Internal linkage on purpose: each kernel file gets its own copies (see
// HeapView below on why ISA files share no inline code).
namespace {

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
// has a NaN; vector accumulation only for one float output.
template <template <bool, bool> class Run>
void run_variant(const HeapView& p, const HeapBlock& b, bool nan) noexcept {
  const bool vec = !p.double_acc && p.single_output && b.outputs == 1;
  if (nan) {
    vec ? Run<true, true>::go(p, b) : Run<true, false>::go(p, b);
  } else {
    vec ? Run<false, true>::go(p, b) : Run<false, false>::go(p, b);
  }
}

}  // namespace

// The compact layout as flat arrays for the AVX-512 deep-tree kernel (models
// whose every split is one float comparison and every leaf a constant).
// Node i: right child = next[i] + 1; a leaf has kCompactLeaf set, a NaN
// threshold and next = i, so a finished walk stays put. Leaf values are
// indexed by node. Roots and output columns are the model's own (the view
// points at them).
inline constexpr std::uint32_t kCompactLeaf = 1u << 30;
struct CompactPack {
  std::vector<std::uint32_t> feat;  // feature | kNanRight | kCompactLeaf
  std::vector<float> thr;
  std::vector<std::uint32_t> next;
  std::vector<float> leaf_f;        // Arithmetic::kXGBoost
  std::vector<double> leaf_d;       // Arithmetic::kLightGBM
  TopLevels top;                    // empty when not built
  std::vector<std::uint32_t> entry; // [tree][2^kTopDepth]: node where the walk goes on below the top
};

void heap_block_scalar(const HeapView& p, const HeapBlock& b) noexcept;
#if defined(__x86_64__)
void heap_block_avx2(const HeapView& p, const HeapBlock& b) noexcept;
void heap_block_avx512(const HeapView& p, const HeapBlock& b) noexcept;
void compact_block_avx512(const CompactView& p, const HeapBlock& b) noexcept;
#endif

}  // namespace keel::detail
