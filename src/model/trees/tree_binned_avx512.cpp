// The binned heap kernel (tree_binned.hpp): AVX-512 with VBMI's byte
// permute. A block of up to 64 rows is coded once, then every tree walks
// every row of the block: one vpermi2b and one byte compare decide the top
// six levels, the rest reads one node word and one code byte per level.

#include "model/trees/tree_binned.hpp"

#include <immintrin.h>

#include <cstring>

// GCC 12 at -O3 flags the intrinsics' own "undefined" pass-through operands
// as uninitialised once inlined (see tree_ensemble_avx512.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// vpermi2b: only this file's functions (after the includes) get VBMI;
// binned_cpu_supported() gates every call. Clang has no "#pragma GCC
// target"; its attribute push does the same and is popped at the end.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vbmi"))), apply_to = function)
#else
#pragma GCC target("avx512vbmi")
#endif

namespace keel::detail {
namespace {

constexpr std::size_t kRows = 64;  // rows coded per block

// The path through a 3-level subtree from its 7 decision bits (bit 0 the
// root, bits 1-2 its children, 3-6 the grandchildren, right = 1): the
// grandchild's index 0..7.
constexpr auto kPath3 = [] {
  struct {
    std::uint8_t v[128];
  } t{};
  for (unsigned m = 0; m < 128; ++m) {
    const unsigned b0 = m & 1u;
    const unsigned b1 = (m >> (1 + b0)) & 1u;
    const unsigned b2 = (m >> (3 + 2 * b0 + b1)) & 1u;
    t.v[m] = static_cast<std::uint8_t>(4 * b0 + 2 * b1 + b2);
  }
  return t;
}();

// The bits of heap nodes h, 2h, 2h + 1, 4h..4h + 3 (the 3-level subtree at
// h = 8 + j, levels 3-5) in a mask over nodes 1..63.
constexpr auto kSubtree3 = [] {
  struct {
    std::uint64_t v[8];
  } t{};
  for (unsigned j = 0; j < 8; ++j) {
    const unsigned h = 8 + j;
    t.v[j] = (std::uint64_t{1} << h) | (std::uint64_t{3} << (2 * h)) | (std::uint64_t{15} << (4 * h));
  }
  return t;
}();

// Node 64..127 at the end of the six top levels, from their decision mask.
inline std::size_t top6(std::uint64_t m) noexcept {
  const std::size_t j3 = kPath3.v[(m >> 1) & 127u];
  return 8 * (8 + j3) + kPath3.v[_pext_u64(m, kSubtree3.v[j3])];
}

// h = 2h + bit h of m (h < 64).
inline std::size_t step_mask(std::size_t h, std::uint64_t m) noexcept {
  asm("btq %[h], %[m]\n\tadcq %[h], %[h]" : [h] "+r"(h) : [m] "r"(m) : "cc");
  return h;
}

// Level 7 (h in 128..255): h = 2h + bit h of m2 (h < 192) or m3, without a
// branch (the side is data: a branch would mispredict half the time).
inline std::size_t step_mask2(std::size_t h, std::uint64_t m2, std::uint64_t m3) noexcept {
  asm("testq $64, %[h]\n\tcmovnzq %[m3], %[m2]\n\tbtq %[h], %[m2]\n\tadcq %[h], %[h]"
      : [h] "+r"(h), [m2] "+r"(m2)
      : [m3] "r"(m3)
      : "cc");
  return h;
}

// h = 2h + (ccm1 < row[off]), unsigned.
inline std::size_t step_byte(std::size_t h, const std::uint8_t* row, std::size_t off, std::uint8_t ccm1) noexcept {
  asm("cmpb (%[row],%[off]), %[c]\n\tadcq %[h], %[h]" : [h] "+r"(h) : [row] "r"(row), [off] "r"(off), [c] "q"(ccm1)
      : "cc");
  return h;
}

// Codes of one row into c ([2 * half]: bins, then bins + 1); true when the
// row has a NaN among the features the trees read.
bool code_row(const BinnedView& p, const float* row, std::uint8_t* c) noexcept {
  unsigned nan = 0;
  c[0] = 0;
  for (std::size_t pos = 1; pos < p.positions; ++pos) {
    const float x = row[p.pos_feature[pos]];
    const float* tab = p.thr + p.thr_offset[pos];
    const __m512 xv = _mm512_set1_ps(x);
    // Pivots t_0, t_16, ...: q groups start at or below x; the count within
    // group q - 1 (or 0) completes it (x < every threshold of later groups).
    const unsigned q = static_cast<unsigned>(_mm_popcnt_u32(_mm512_cmp_ps_mask(xv, _mm512_load_ps(tab), _CMP_GE_OQ)));
    const unsigned g = q - (q != 0 ? 1u : 0u);
    const unsigned k = static_cast<unsigned>(
        _mm_popcnt_u32(_mm512_cmp_ps_mask(xv, _mm512_load_ps(tab + kBinGroup * (1 + g)), _CMP_GE_OQ)));
    const unsigned isnan = x != x ? 1u : 0u;
    nan |= isnan;
    c[pos] = static_cast<std::uint8_t>(isnan ? kBinNaN : kBinGroup * g + k);
  }
  std::memset(c + p.positions, 0, p.half - p.positions);
  const __m512i one = _mm512_set1_epi8(1);
  for (std::size_t i = 0; i < p.half; i += 64) {
    _mm512_store_si512(c + p.half + i, _mm512_add_epi8(_mm512_load_si512(c + i), one));
  }
  return nan != 0;
}

// kVec: the levels decided from masks, or kRuntimeVec: p.vec_levels (<= 6).
constexpr std::size_t kRuntimeVec = 99;

// The masks of a row's node groups.
template <std::size_t kGroups, bool kNan>
inline void group_masks(const __m512i* idx, const __m512i* c, const __m512i* a, const __m512i* cc, __m512i lo,
                        __m512i hi, std::uint64_t* m) noexcept {
  for (std::size_t g = 0; g < kGroups; ++g) {
    const __m512i v = _mm512_permutex2var_epi8(lo, idx[g], hi);
    if constexpr (kNan) {
      m[g] = _mm512_cmpge_epu8_mask(_mm512_add_epi8(v, a[g]), cc[g]);
    } else {
      m[g] = _mm512_cmpge_epu8_mask(v, c[g]);
    }
  }
}

// One tree's registers and pointers for a pass over the block's rows.
template <std::size_t kGroups, class Acc>
struct TreeRegs {
  __m512i idx[kGroups], c[kGroups], a[kGroups], cc[kGroups];
  const std::uint16_t* doff = nullptr;  // node h >= 2^V at doff[h - 2^V]
  const std::uint8_t* dcc = nullptr;
  const Acc* lv = nullptr;              // leaf h >= 2^depth at lv[h - 2^depth]
  Acc* at = nullptr;

  void load(const BinnedView& p, std::size_t t, bool deep, const Acc* leaves, Acc* acc) noexcept {
    const std::uint8_t* rec = p.top + t * kGroups * kBinGroupRecord;
    for (std::size_t g = 0; g < kGroups; ++g) {
      idx[g] = _mm512_load_si512(rec + g * kBinGroupRecord);
      c[g] = _mm512_load_si512(rec + g * kBinGroupRecord + kBinGroupBytes);
      a[g] = _mm512_load_si512(rec + g * kBinGroupRecord + 2 * kBinGroupBytes);
      cc[g] = _mm512_load_si512(rec + g * kBinGroupRecord + 3 * kBinGroupBytes);
    }
    if (deep) {
      doff = p.deep_off + t * p.deep_stride;
      dcc = p.deep_cc + t * p.deep_stride;
    }
    lv = leaves + t * p.leaf_stride;
    at = acc + p.out[t];
  }
};

// The leaf (0 .. 2^depth - 1) a row reaches in one tree.
template <std::size_t kDepth, std::size_t kVec, bool kNan, std::size_t kGroups, class Acc>
inline std::size_t walk_row(const TreeRegs<kGroups, Acc>& tr, std::size_t vec, const std::uint8_t* row, __m512i lo,
                            __m512i hi) noexcept {
  std::uint64_t m[kGroups];
  group_masks<kGroups, kNan>(tr.idx, tr.c, tr.a, tr.cc, lo, hi, m);
  std::size_t h = 1;
  if constexpr (kVec == kRuntimeVec) {
    for (std::size_t l = 0; l < vec; ++l) h = step_mask(h, m[0]);
    const std::size_t v0 = std::size_t{1} << vec;
    for (std::size_t l = vec; l < kDepth; ++l) h = step_byte(h, row, tr.doff[h - v0], tr.dcc[h - v0]);
  } else {
    if constexpr (kVec >= kBinTopLevels) {
      h = top6(m[0]);
    } else {
      for (std::size_t l = 0; l < kVec; ++l) h = step_mask(h, m[0]);
    }
    if constexpr (kVec >= 7) h = step_mask(h, m[1]);
    if constexpr (kVec >= 8) h = step_mask2(h, m[2], m[3]);
    constexpr std::size_t kV0 = std::size_t{1} << kVec;
    for (std::size_t l = kVec; l < kDepth; ++l) h = step_byte(h, row, tr.doff[h - kV0], tr.dcc[h - kV0]);
  }
  return h - (std::size_t{1} << kDepth);
}

// kVec: the levels decided from masks, or kRuntimeVec: p.vec_levels (<= 6).
// Trees go in pairs: one load of a row's codes serves both.
template <std::size_t kDepth, std::size_t kVec, bool kNan, class Acc>
void walk_trees(const BinnedView& p, const std::uint8_t* codes, std::size_t n, const Acc* leaves, Acc* acc,
                std::size_t outputs) noexcept {
  constexpr bool kRuntime = kVec == kRuntimeVec;
  constexpr std::size_t kGroups = kRuntime || kVec <= kBinTopLevels ? 1 : kVec == kBinTopLevels + 1 ? 2 : 4;
  const std::size_t vec = kRuntime ? p.vec_levels : kVec;
  const bool deep = kRuntime || kDepth > kVec;
  const std::size_t stride = 2 * p.half;
  std::size_t t = 0;
  for (; t + 2 <= p.num_trees; t += 2) {
    TreeRegs<kGroups, Acc> t0, t1;
    t0.load(p, t, deep, leaves, acc);
    t1.load(p, t + 1, deep, leaves, acc);
    for (std::size_t r = 0; r < n; ++r) {
      const std::uint8_t* row = codes + r * stride;
      const __m512i lo = _mm512_load_si512(row), hi = _mm512_load_si512(row + 64);
      const std::size_t h0 = walk_row<kDepth, kVec, kNan>(t0, vec, row, lo, hi);
      const std::size_t h1 = walk_row<kDepth, kVec, kNan>(t1, vec, row, lo, hi);
      t0.at[r * outputs] += t0.lv[h0];
      t1.at[r * outputs] += t1.lv[h1];
    }
  }
  if (t < p.num_trees) {
    TreeRegs<kGroups, Acc> t0;
    t0.load(p, t, deep, leaves, acc);
    for (std::size_t r = 0; r < n; ++r) {
      const std::uint8_t* row = codes + r * stride;
      const std::size_t h0 =
          walk_row<kDepth, kVec, kNan>(t0, vec, row, _mm512_load_si512(row), _mm512_load_si512(row + 64));
      t0.at[r * outputs] += t0.lv[h0];
    }
  }
}

template <std::size_t kDepth, std::size_t kVec, class Acc>
void walk_vec(const BinnedView& p, const std::uint8_t* codes, std::size_t n, bool nan, const Acc* leaves, Acc* acc,
              std::size_t outputs) noexcept {
  nan ? walk_trees<kDepth, kVec, true>(p, codes, n, leaves, acc, outputs)
      : walk_trees<kDepth, kVec, false>(p, codes, n, leaves, acc, outputs);
}

// V is min(depth, 8), or (wide models) 6, or fewer (runtime).
template <std::size_t kDepth, class Acc>
void walk_depth(const BinnedView& p, const std::uint8_t* codes, std::size_t n, bool nan, const Acc* leaves, Acc* acc,
                std::size_t outputs) noexcept {
  constexpr std::size_t k6 = kDepth < 6 ? kDepth : 6;
  constexpr std::size_t k8 = kDepth < 8 ? kDepth : 8;
  if (p.vec_levels == k8) {
    walk_vec<kDepth, k8>(p, codes, n, nan, leaves, acc, outputs);
  } else if (p.vec_levels == k6) {
    walk_vec<kDepth, k6>(p, codes, n, nan, leaves, acc, outputs);
  } else {
    walk_vec<kDepth, kRuntimeVec>(p, codes, n, nan, leaves, acc, outputs);
  }
}

template <class Acc>
void run_block(const BinnedView& p, const HeapBlock& b, const Acc* leaves, Acc* acc) noexcept {
  alignas(64) std::uint8_t codes[kRows * 2 * kMaxBinPositions];
  const std::size_t stride = 2 * p.half;
  for (std::size_t r0 = 0; r0 < b.n; r0 += kRows) {
    const std::size_t m = b.n - r0 < kRows ? b.n - r0 : kRows;
    bool nan = false;
    for (std::size_t r = 0; r < m; ++r) nan |= code_row(p, b.rows + (r0 + r) * b.nf, codes + r * stride);
    Acc* a = acc + r0 * b.outputs;
    switch (p.depth) {
      case 1: walk_depth<1>(p, codes, m, nan, leaves, a, b.outputs); break;
      case 2: walk_depth<2>(p, codes, m, nan, leaves, a, b.outputs); break;
      case 3: walk_depth<3>(p, codes, m, nan, leaves, a, b.outputs); break;
      case 4: walk_depth<4>(p, codes, m, nan, leaves, a, b.outputs); break;
      case 5: walk_depth<5>(p, codes, m, nan, leaves, a, b.outputs); break;
      case 6: walk_depth<6>(p, codes, m, nan, leaves, a, b.outputs); break;
      case 7: walk_depth<7>(p, codes, m, nan, leaves, a, b.outputs); break;
      case 8: walk_depth<8>(p, codes, m, nan, leaves, a, b.outputs); break;
      case 9: walk_depth<9>(p, codes, m, nan, leaves, a, b.outputs); break;
      case 10: walk_depth<10>(p, codes, m, nan, leaves, a, b.outputs); break;
      default: break;  // build_binned is only called for heaps of depth <= kMaxHeapDepth (10)
    }
  }
}

}  // namespace

void binned_block_avx512(const BinnedView& p, const HeapBlock& b) noexcept {
  if (p.double_acc) {
    run_block(p, b, p.leaf_d, b.acc_d);
  } else {
    run_block(p, b, p.leaf_f, b.acc_f);
  }
}

void binned_codes_avx512(const BinnedView& p, const float* row, std::uint8_t* codes) noexcept {
  (void)code_row(p, row, codes);
}

}  // namespace keel::detail

#if defined(__clang__)
#pragma clang attribute pop
#endif
