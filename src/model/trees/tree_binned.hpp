#pragma once
// Binned heap kernel (AVX-512 VBMI): a heap-layout model whose every split
// is "right iff x >= thr, NaN by a per-node bit" (tree_ensemble_impl.hpp)
// decided on byte codes instead of floats.
//
// Codes. Each feature the trees read gets a position p; its distinct non-NaN
// thresholds t_0 < ... < t_{T-1} (-0.0 and 0.0 are one value, as the float
// compare sees them) turn a value x into
//   bin(x) = #{k : x >= t_k}   (0..T),   bin(NaN) = kBinNaN = 255.
// A feature with more than kMaxBinThresholds (254) distinct thresholds is
// cut into chunks of at most 254 consecutive thresholds, each a position of
// its own with its own count (XGBoost's hist method gives up to 255).
// For a node with threshold t_k, x >= t_k  <=>  bin(x) >= k + 1 (the t are
// sorted and distinct). A node stores an offset a in {0, 1} and a code cc;
// it sends the row right iff uint8(bin + a) >= cc:
//   threshold t_k, NaN right:  a = 0, cc = k + 1  (NaN: 255 >= cc, right)
//   threshold t_k, NaN left:   a = 1, cc = k + 2  (NaN: 255 + 1 = 0 < cc, left;
//                                                 others: bin + 1 <= 255, no wrap)
//   NaN threshold, NaN right:  a = 0, cc = 255    (bins <= 254 left, NaN right)
//   NaN threshold, NaN left (and the heap's padding nodes): the dummy
//                              position 0, whose bin is always 0; a = 0, cc = 1.
// A row's codes are stored twice: B[p] = bin at [0, half) and B[p] + 1 at
// [half, 2 half), so a node reads byte p + a * half and compares once.
// Without NaN in a block, uint8(bin + a) >= cc is bin >= cc - a = c.
//
// Walk. Heap nodes are numbered from 1 (children 2h, 2h + 1). The first V
// levels of a tree (V = min(depth, 8) when the positions they read are all
// < 128; else as many levels, at most 6, as fit) are decided for one row
// without a load that depends on the walk: per group of 64 nodes (nodes
// 1..63, 64..127, 128..191, 192..255) a two-register byte permute (vpermi2b)
// picks the row's codes at the nodes' positions and one byte compare gives
// a 64-bit mask of their decisions. The walk then reads bits: the top six
// levels by two 3-level table steps (pext), levels 6 and 7 by bt + adc.
// Levels from V on read a node's byte offset (position + a * half, 16 bits)
// and cc - 1 (8 bits): h = 2h + (cc - 1 < the row's byte) (cmp, adc).
// Leaf = h - 2^depth, the heap's own leaves. Rows are coded once per block
// of 64 and reused by every tree.
//
// Kernels see only BinnedView (see HeapView in tree_ensemble_impl.hpp on
// why ISA files share no inline code with portable ones).

#include "model/trees/tree_ensemble_impl.hpp"
#include "model/trees/tree_row.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace keel::detail {

inline constexpr std::size_t kBinTopLevels = 6;     // levels in the first group of 64 nodes (node 0 unused)
inline constexpr std::size_t kBinVecLevels = 8;     // at most: 4 groups, nodes 1..255
inline constexpr std::size_t kBinGroupBytes = 64;   // nodes per group
inline constexpr std::size_t kBinGroupRecord = 4 * kBinGroupBytes;  // per group: idx, c, a, cc
inline constexpr std::size_t kMaxBinThresholds = 254;
inline constexpr std::uint8_t kBinNaN = 255;
inline constexpr std::size_t kBinVecPositions = 128;  // what one vpermi2b reaches
inline constexpr std::size_t kMaxBinPositions = 256;  // dummy + up to 255 features or chunks
inline constexpr std::size_t kBinGroup = 16;          // floats per threshold group

struct BinnedPack {
  std::size_t depth = 0;
  std::size_t positions = 0;  // dummy + features the trees read
  std::size_t half = 0;       // 128 or 256: bytes of B (B + 1 follows); row stride 2 * half
  std::size_t vec_levels = 0;   // V
  std::size_t groups = 0;       // 64-node groups per tree (1, 2 or 4)
  std::size_t deep_stride = 0;  // nodes per tree from level V on (2^depth - 2^V)
  std::size_t num_trees = 0;
  std::size_t max_thresholds = 0;                 // largest T (for inspect)
  std::vector<std::uint32_t> pos_feature;         // position -> feature (0: dummy, unused)
  std::vector<std::uint32_t> thr_offset;          // position -> start in thr (a multiple of 16)
  std::vector<std::uint32_t> thr_first;           // position -> index of its first threshold in its feature's
  std::vector<std::uint32_t> thr_count;           //   sorted distinct thresholds, and how many it holds
  // Per position: 16 pivots t_0, t_16, t_32, ... then ceil(T/16) groups of
  // 16 thresholds; unused slots NaN (x >= NaN is false).
  std::vector<float, AlignedAlloc<float, 64>> thr;
  std::vector<std::uint8_t, AlignedAlloc<std::uint8_t, 64>> top;  // [tree][groups][kBinGroupRecord]
  std::vector<std::uint16_t> deep_off;  // [tree][deep_stride]: position + a * half
  std::vector<std::uint8_t> deep_cc;    // [tree][deep_stride]: cc - 1

  bool built() const noexcept { return num_trees > 0; }
  std::size_t bytes() const noexcept;
};

struct BinnedView {
  std::size_t depth = 0;
  std::size_t positions = 0;
  std::size_t half = 0;
  std::size_t vec_levels = 0;
  std::size_t groups = 0;
  std::size_t deep_stride = 0;
  std::size_t leaf_stride = 0;
  std::size_t num_trees = 0;
  const std::uint32_t* pos_feature = nullptr;
  const std::uint32_t* thr_offset = nullptr;
  const float* thr = nullptr;
  const std::uint8_t* top = nullptr;
  const std::uint16_t* deep_off = nullptr;
  const std::uint8_t* deep_cc = nullptr;
  const float* leaf_f = nullptr;
  const double* leaf_d = nullptr;
  const std::uint32_t* out = nullptr;
  bool double_acc = false;
};

// Builds the binned pack of a heap pack (its nodes as the kernels read
// them). Returns an empty string, or why the model keeps the heap kernel
// (too many features or threshold chunks read).
// Throws bad_alloc.
std::string build_binned(const HeapPack& heap, std::size_t num_features, BinnedPack& out);

BinnedView binned_view(const BinnedPack& b, const HeapPack& heap) noexcept;
// Trees [t0, t1) of v, tree t0 + i adding to column out[i].
BinnedView binned_slice(const BinnedView& v, std::size_t t0, std::size_t t1, const std::uint32_t* out) noexcept;

// bin(x) as defined above, by a plain search: what the kernel must match.
std::uint8_t bin_code_reference(const BinnedView& v, std::size_t position, float x) noexcept;

#if defined(__x86_64__)
// Whether this CPU runs binned_block_avx512 (AVX-512 F/BW and VBMI).
bool binned_cpu_supported() noexcept;
void binned_block_avx512(const BinnedView& p, const HeapBlock& b) noexcept;
// Test hook: the codes the kernel computes for one row ([2 * half]).
void binned_codes_avx512(const BinnedView& p, const float* row, std::uint8_t* codes) noexcept;
#endif

}  // namespace keel::detail
