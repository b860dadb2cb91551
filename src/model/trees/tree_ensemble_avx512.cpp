// AVX-512 heap kernel: 16 rows per vector, up to 8 vectors in flight. The
// node fields of levels with <= 128 nodes come from registers by permutes
// (permutexvar / permutex2var and blends), so only the feature values are
// gathered there; deeper levels gather their nodes too.

#include "model/trees/tree_ensemble_impl.hpp"
#include "model/trees/tree_top_levels.hpp"

#include <immintrin.h>

// GCC 12 at -O3 flags the intrinsics' own "undefined" pass-through operands
// (_mm512_undefined_*) as uninitialised once inlined here: a known false
// positive in its headers, not in this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>

namespace keel::detail {
namespace {

// The level's field for each lane's index j (< 2^level), from `base`.
template <class Field>
struct LevelRegs {
  __m512i r[8];
  std::size_t size = 0;

  void load(const Field* base, std::size_t sz) noexcept {
    size = sz;
    const std::size_t regs = sz <= 16 ? 1 : sz / 16;
    for (std::size_t i = 0; i < regs && i < 8; ++i) r[i] = _mm512_loadu_si512(base + 16 * i);
  }
  __m512i select(__m512i j) const noexcept {
    if (size <= 16) return _mm512_permutexvar_epi32(j, r[0]);
    const __m512i a = _mm512_permutex2var_epi32(r[0], j, r[1]);
    if (size == 32) return a;
    const __m512i b = _mm512_permutex2var_epi32(r[2], j, r[3]);
    const __mmask16 m32 = _mm512_test_epi32_mask(j, _mm512_set1_epi32(32));
    const __m512i ab = _mm512_mask_blend_epi32(m32, a, b);
    if (size == 64) return ab;
    const __m512i c = _mm512_permutex2var_epi32(r[4], j, r[5]);
    const __m512i d = _mm512_permutex2var_epi32(r[6], j, r[7]);
    const __m512i cd = _mm512_mask_blend_epi32(m32, c, d);
    return _mm512_mask_blend_epi32(_mm512_test_epi32_mask(j, _mm512_set1_epi32(64)), ab, cd);
  }
};

constexpr std::size_t kLanes = 16;
constexpr std::size_t kRegLevelMax = 128;  // levels up to this many nodes use permutes

// The shared top-level code's operations (tree_top_levels.hpp).
struct Avx512 {
  using F = __m512;
  using I = __m512i;
  static constexpr std::size_t kLanes = 16;
  static I zero() noexcept { return _mm512_setzero_si512(); }
  static F set1f(float x) noexcept { return _mm512_set1_ps(x); }
  static I set1i(int x) noexcept { return _mm512_set1_epi32(x); }
  static F load(const float* p) noexcept { return _mm512_load_ps(p); }
  static void store(float* p, F x) noexcept { _mm512_store_ps(p, x); }
  static F gather(const float* base, I idx) noexcept { return _mm512_i32gather_ps(idx, base, 4); }
  static I add(I a, I b) noexcept { return _mm512_add_epi32(a, b); }
  static I sub(I a, I b) noexcept { return _mm512_sub_epi32(a, b); }
  static I and_(I a, I b) noexcept { return _mm512_and_si512(a, b); }
  static I srlv(I a, I n) noexcept { return _mm512_srlv_epi32(a, n); }
  static I set_right(I bits, F x, F th, bool nan_right, I bit) noexcept {
    __mmask16 r = _mm512_cmp_ps_mask(x, th, _CMP_GE_OQ);
    if (nan_right) r |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_or_si512(bits, _mm512_maskz_mov_epi32(r, bit));
  }
};

template <std::size_t V, std::size_t kTop, bool kNan, bool kVecAcc>
void run(const HeapView& p, const HeapBlock& b) noexcept {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i fmask = _mm512_set1_epi32(static_cast<int>(kFeatureMask));
  const __m512i nanbit = _mm512_set1_epi32(static_cast<int>(kNanRight));
  const __m512i one = _mm512_set1_epi32(1);
  const int last = static_cast<int>(b.n) - 1;
  __m512i rowoff[V];
  __mmask16 valid[V];
  __m512 acc[V];
  for (std::size_t v = 0; v < V; ++v) {
    const __m512i r = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(v * kLanes)));
    valid[v] = _mm512_cmple_epi32_mask(r, _mm512_set1_epi32(last));
    rowoff[v] = _mm512_mullo_epi32(_mm512_min_epi32(r, _mm512_set1_epi32(last)),
                                   _mm512_set1_epi32(static_cast<int>(b.nf)));
    if constexpr (kVecAcc) acc[v] = _mm512_maskz_loadu_ps(valid[v], b.acc_f + v * kLanes);
  }
  alignas(64) std::uint32_t jbuf[V * kLanes];
  LevelRegs<std::uint32_t> fr;
  LevelRegs<float> tr;
  float* const xt = b.scratch;
  if constexpr (kTop > 0) copy_columns<Avx512, V>(p.top, b.rows, rowoff, xt);
  for (std::size_t t = 0; t < p.num_trees; ++t) {
    const std::uint32_t* feat = p.feat + t * p.node_stride;
    const float* thr = p.thr + t * p.node_stride;
    __m512i j[V];
    if constexpr (kTop > 0) {
      top_levels<Avx512, V, kNan>(p.top, t, xt, j);
    } else {
      for (std::size_t v = 0; v < V; ++v) j[v] = _mm512_setzero_si512();
    }
    for (std::size_t l = kTop; l < p.depth; ++l) {
      const std::size_t lo = (std::size_t{1} << l) - 1;
      const std::size_t size = std::size_t{1} << l;
      const bool in_regs = size <= kRegLevelMax;
      if (in_regs) {
        fr.load(feat + lo, size);
        tr.load(thr + lo, size);
      }
      for (std::size_t v = 0; v < V; ++v) {
        __m512i f;
        __m512 th;
        if (in_regs) {
          f = fr.select(j[v]);
          th = _mm512_castsi512_ps(tr.select(j[v]));
        } else {
          f = _mm512_i32gather_epi32(j[v], feat + lo, 4);
          th = _mm512_i32gather_ps(j[v], thr + lo, 4);
        }
        const __m512i idx = _mm512_add_epi32(rowoff[v], _mm512_and_si512(f, fmask));
        const __m512 x = _mm512_i32gather_ps(idx, b.rows, 4);
        __mmask16 right = _mm512_cmp_ps_mask(x, th, _CMP_GE_OQ);
        if constexpr (kNan) {
          right |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q) & _mm512_test_epi32_mask(f, nanbit);
        }
        const __m512i j2 = _mm512_add_epi32(j[v], j[v]);
        j[v] = _mm512_mask_add_epi32(j2, right, j2, one);
      }
    }
    if constexpr (kVecAcc) {
      const float* lv = p.leaf_f + t * p.leaf_stride;
      if (p.leaf_stride <= kLanes) {  // the tree's leaves fit one register
        const __m512 leaves = _mm512_loadu_ps(lv);
        for (std::size_t v = 0; v < V; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_permutexvar_ps(j[v], leaves));
      } else {
        for (std::size_t v = 0; v < V; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_i32gather_ps(j[v], lv, 4));
      }
    } else {
      for (std::size_t v = 0; v < V; ++v) _mm512_store_si512(jbuf + v * kLanes, j[v]);
      const std::size_t o = p.out[t];
      const std::size_t lb = t * p.leaf_stride;
      if (p.double_acc) {
        for (std::size_t r = 0; r < b.n; ++r) b.acc_d[r * b.outputs + o] += p.leaf_d[lb + jbuf[r]];
      } else {
        for (std::size_t r = 0; r < b.n; ++r) b.acc_f[r * b.outputs + o] += p.leaf_f[lb + jbuf[r]];
      }
    }
  }
  if constexpr (kVecAcc) {
    for (std::size_t v = 0; v < V; ++v) _mm512_mask_storeu_ps(b.acc_f + v * kLanes, valid[v], acc[v]);
  }
}

template <std::size_t V, std::size_t kTop>
struct Avx512Width {
  template <bool kNan, bool kVecAcc>
  struct Run {
    static void go(const HeapView& p, const HeapBlock& b) noexcept { run<V, kTop, kNan, kVecAcc>(p, b); }
  };
};

// Deep trees: V vectors of 16 rows walk one tree until every lane sits on a
// leaf; each step gathers the node's feature, threshold and child, then the
// feature value. Leaves are added in tree order by scalar code.
template <std::size_t V, bool kTop, bool kNan>
void compact_run(const CompactView& p, const HeapBlock& b) noexcept {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i fmask = _mm512_set1_epi32(static_cast<int>(kFeatureMask));
  const __m512i nanbit = _mm512_set1_epi32(static_cast<int>(kNanRight));
  const __m512i leafbit = _mm512_set1_epi32(static_cast<int>(kCompactLeaf));
  const __m512i one = _mm512_set1_epi32(1);
  const int last = static_cast<int>(b.n) - 1;
  __m512i rowoff[V];
  for (std::size_t v = 0; v < V; ++v) {
    const __m512i r = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(v * kLanes)));
    rowoff[v] = _mm512_mullo_epi32(_mm512_min_epi32(r, _mm512_set1_epi32(last)),
                                   _mm512_set1_epi32(static_cast<int>(b.nf)));
  }
  const auto* feat = reinterpret_cast<const int*>(p.feat);
  const float* thr = p.thr;
  const auto* next = reinterpret_cast<const int*>(p.next);
  alignas(64) std::uint32_t at_buf[V * kLanes];
  if constexpr (kTop) copy_columns<Avx512, V>(p.top, b.rows, rowoff, b.scratch);
  for (std::size_t t = 0; t < p.num_trees; ++t) {
    __m512i at[V];
    __mmask16 live[V];
    if constexpr (kTop) {
      __m512i j[V];
      top_levels<Avx512, V, kNan>(p.top, t, b.scratch, j);
      const __m512i entry = _mm512_loadu_si512(p.entry + t * (std::size_t{1} << kTopDepth));
      for (std::size_t v = 0; v < V; ++v) at[v] = _mm512_permutexvar_epi32(j[v], entry);
    } else {
      for (std::size_t v = 0; v < V; ++v) at[v] = _mm512_set1_epi32(static_cast<int>(p.root[t]));
    }
    for (std::size_t v = 0; v < V; ++v) live[v] = 0xffff;
    for (;;) {
      __mmask16 any = 0;
      for (std::size_t v = 0; v < V; ++v) {
        if (live[v] == 0) continue;
        const __m512i f = _mm512_i32gather_epi32(at[v], feat, 4);
        const __m512 th = _mm512_i32gather_ps(at[v], thr, 4);
        const __m512i nx = _mm512_i32gather_epi32(at[v], next, 4);
        const __m512 x = _mm512_i32gather_ps(_mm512_add_epi32(rowoff[v], _mm512_and_si512(f, fmask)), b.rows, 4);
        __mmask16 right = _mm512_cmp_ps_mask(x, th, _CMP_GE_OQ);
        if constexpr (kNan) {
          right |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q) & _mm512_test_epi32_mask(f, nanbit);
        }
        at[v] = _mm512_mask_add_epi32(nx, right, nx, one);
        live[v] = _mm512_testn_epi32_mask(f, leafbit);
        any |= live[v];
      }
      if (any == 0) break;
    }
    for (std::size_t v = 0; v < V; ++v) _mm512_store_si512(at_buf + v * kLanes, at[v]);
    const std::size_t o = p.out[t];
    if (p.double_acc) {
      for (std::size_t r = 0; r < b.n; ++r) b.acc_d[r * b.outputs + o] += p.leaf_d[at_buf[r]];
    } else {
      for (std::size_t r = 0; r < b.n; ++r) b.acc_f[r * b.outputs + o] += p.leaf_f[at_buf[r]];
    }
  }
}

template <std::size_t V>
void compact_width(const CompactView& p, const HeapBlock& b, bool nan) noexcept {
  if (b.scratch != nullptr && p.top.slots > 0) {
    nan ? compact_run<V, true, true>(p, b) : compact_run<V, true, false>(p, b);
  } else {
    nan ? compact_run<V, false, true>(p, b) : compact_run<V, false, false>(p, b);
  }
}

}  // namespace

void compact_block_avx512(const CompactView& p, const HeapBlock& b) noexcept {
  if (b.n == 0) return;
  const bool nan = block_has_nan(b.rows, b.n * b.nf);
  const std::size_t vecs = (b.n + kLanes - 1) / kLanes;
  if (vecs <= 1) return compact_width<1>(p, b, nan);
  if (vecs <= 2) return compact_width<2>(p, b, nan);
  if (vecs <= 4) return compact_width<4>(p, b, nan);
  for_each_piece(b, 8 * kLanes, [&](const HeapBlock& sub) { compact_width<8>(p, sub, nan); });
}

void heap_block_avx512(const HeapView& p, const HeapBlock& b) noexcept {
  if (b.n == 0) return;
  const bool nan = block_has_nan(b.rows, b.n * b.nf);
  const std::size_t vecs = (b.n + kLanes - 1) / kLanes;
  if (b.scratch != nullptr && p.top.slots > 0) {
    if (vecs <= 1) return run_variant<Avx512Width<1, kTopDepth>::Run>(p, b, nan);
    if (vecs <= 2) return run_variant<Avx512Width<2, kTopDepth>::Run>(p, b, nan);
    if (vecs <= 4) return run_variant<Avx512Width<4, kTopDepth>::Run>(p, b, nan);
    return for_each_piece(b, 8 * kLanes, [&](const HeapBlock& sub) {
      run_variant<Avx512Width<8, kTopDepth>::Run>(p, sub, nan);
    });
  }
  if (vecs <= 1) return run_variant<Avx512Width<1, 0>::Run>(p, b, nan);
  if (vecs <= 2) return run_variant<Avx512Width<2, 0>::Run>(p, b, nan);
  if (vecs <= 4) return run_variant<Avx512Width<4, 0>::Run>(p, b, nan);
  for_each_piece(b, 8 * kLanes, [&](const HeapBlock& sub) { run_variant<Avx512Width<8, 0>::Run>(p, sub, nan); });
}

}  // namespace keel::detail
