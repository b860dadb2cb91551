// AVX2 heap kernel: 8 rows per vector, 8 vectors in flight. The top 4
// levels are decided by column compares (see TopLevels); then levels with
// <= 32 nodes select their node fields by permutes and blends, deeper levels
// gather them.

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

constexpr std::size_t kLanes = 8;
constexpr std::size_t kRegLevelMax = 32;

struct LevelRegs {
  __m256i r[4];
  std::size_t size = 0;

  void load(const void* base, std::size_t sz) noexcept {
    size = sz;
    const auto* p = static_cast<const __m256i*>(base);
    const std::size_t regs = sz <= 8 ? 1 : sz / 8;
    for (std::size_t i = 0; i < regs; ++i) r[i] = _mm256_loadu_si256(p + i);
  }
  __m256i select(__m256i j) const noexcept {
    const __m256i a = _mm256_permutevar8x32_epi32(r[0], j);
    if (size <= 8) return a;
    const __m256 m8 = _mm256_castsi256_ps(_mm256_slli_epi32(j, 28));  // bit 3 -> sign
    const __m256i ab = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(r[1], j)), m8));
    if (size == 16) return ab;
    const __m256i cd = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(_mm256_permutevar8x32_epi32(r[2], j)),
                                                            _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(r[3], j)), m8));
    const __m256 m16 = _mm256_castsi256_ps(_mm256_slli_epi32(j, 27));  // bit 4 -> sign
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(ab), _mm256_castsi256_ps(cd), m16));
  }
};

struct Avx2 {
  using F = __m256;
  using I = __m256i;
  static constexpr std::size_t kLanes = 8;
  static I zero() noexcept { return _mm256_setzero_si256(); }
  static F set1f(float x) noexcept { return _mm256_set1_ps(x); }
  static I set1i(int x) noexcept { return _mm256_set1_epi32(x); }
  static F load(const float* p) noexcept { return _mm256_load_ps(p); }
  static void store(float* p, F x) noexcept { _mm256_store_ps(p, x); }
  static F gather(const float* base, I idx) noexcept { return _mm256_i32gather_ps(base, idx, 4); }
  static I add(I a, I b) noexcept { return _mm256_add_epi32(a, b); }
  static I sub(I a, I b) noexcept { return _mm256_sub_epi32(a, b); }
  static I and_(I a, I b) noexcept { return _mm256_and_si256(a, b); }
  static I srlv(I a, I n) noexcept { return _mm256_srlv_epi32(a, n); }
  static I set_right(I bits, F x, F th, bool nan_right, I bit) noexcept {
    F r = _mm256_cmp_ps(x, th, _CMP_GE_OQ);
    if (nan_right) r = _mm256_or_ps(r, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    return _mm256_or_si256(bits, _mm256_and_si256(_mm256_castps_si256(r), bit));
  }
};

template <std::size_t V, bool kTop, bool kNan, bool kVecAcc>
void run(const HeapView& p, const HeapBlock& b) noexcept {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i fmask = _mm256_set1_epi32(static_cast<int>(kFeatureMask));
  const int last = static_cast<int>(b.n) - 1;
  __m256i rowoff[V];
  __m256i valid[V];
  __m256 acc[V];
  for (std::size_t v = 0; v < V; ++v) {
    const __m256i r = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(v * kLanes)));
    valid[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(last + 1), r);
    rowoff[v] = _mm256_mullo_epi32(_mm256_min_epi32(r, _mm256_set1_epi32(last)),
                                   _mm256_set1_epi32(static_cast<int>(b.nf)));
    if constexpr (kVecAcc) acc[v] = _mm256_maskload_ps(b.acc_f + v * kLanes, valid[v]);
  }
  alignas(32) std::uint32_t jbuf[V * kLanes];
  LevelRegs fr;
  LevelRegs tr;
  if constexpr (kTop) copy_columns<Avx2, V>(p.top, b.rows, rowoff, b.scratch);
  for (std::size_t t = 0; t < p.num_trees; ++t) {
    const std::uint32_t* feat = p.feat + t * p.node_stride;
    const float* thr = p.thr + t * p.node_stride;
    __m256i j[V];
    if constexpr (kTop) {
      top_levels<Avx2, V, kNan>(p.top, t, b.scratch, j);
    } else {
      for (std::size_t v = 0; v < V; ++v) j[v] = _mm256_setzero_si256();
    }
    for (std::size_t l = kTop ? kTopDepth : 0; l < p.depth; ++l) {
      const std::size_t lo = (std::size_t{1} << l) - 1;
      const std::size_t size = std::size_t{1} << l;
      const bool in_regs = size <= kRegLevelMax;
      if (in_regs) {
        fr.load(feat + lo, size);
        tr.load(thr + lo, size);
      }
      for (std::size_t v = 0; v < V; ++v) {
        __m256i f;
        __m256 th;
        if (in_regs) {
          f = fr.select(j[v]);
          th = _mm256_castsi256_ps(tr.select(j[v]));
        } else {
          f = _mm256_i32gather_epi32(reinterpret_cast<const int*>(feat + lo), j[v], 4);
          th = _mm256_i32gather_ps(thr + lo, j[v], 4);
        }
        const __m256i idx = _mm256_add_epi32(rowoff[v], _mm256_and_si256(f, fmask));
        const __m256 x = _mm256_i32gather_ps(b.rows, idx, 4);
        __m256i right = _mm256_castps_si256(_mm256_cmp_ps(x, th, _CMP_GE_OQ));
        if constexpr (kNan) {
          const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
          right = _mm256_or_si256(right, _mm256_and_si256(nan, _mm256_srai_epi32(f, 31)));
        }
        // right is 0 or -1: j = 2j + 1 when right.
        j[v] = _mm256_sub_epi32(_mm256_add_epi32(j[v], j[v]), right);
      }
    }
    if constexpr (kVecAcc) {
      const float* lv = p.leaf_f + t * p.leaf_stride;
      if (p.leaf_stride <= kRegLevelMax) {  // the tree's leaves fit the registers
        fr.load(lv, p.leaf_stride);
        for (std::size_t v = 0; v < V; ++v) acc[v] = _mm256_add_ps(acc[v], _mm256_castsi256_ps(fr.select(j[v])));
      } else {
        for (std::size_t v = 0; v < V; ++v) acc[v] = _mm256_add_ps(acc[v], _mm256_i32gather_ps(lv, j[v], 4));
      }
    } else {
      for (std::size_t v = 0; v < V; ++v) _mm256_store_si256(reinterpret_cast<__m256i*>(jbuf + v * kLanes), j[v]);
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
    for (std::size_t v = 0; v < V; ++v) _mm256_maskstore_ps(b.acc_f + v * kLanes, valid[v], acc[v]);
  }
}

template <std::size_t V, bool kTop>
struct Avx2Width {
  template <bool kNan, bool kVecAcc>
  struct Run {
    static void go(const HeapView& p, const HeapBlock& b) noexcept { run<V, kTop, kNan, kVecAcc>(p, b); }
  };
};

template <bool kTop>
void heap_avx2(const HeapView& p, const HeapBlock& b, bool nan) noexcept {
  const std::size_t vecs = (b.n + kLanes - 1) / kLanes;
  if (vecs <= 2) return run_variant<Avx2Width<2, kTop>::template Run>(p, b, nan);
  if (vecs <= 4) return run_variant<Avx2Width<4, kTop>::template Run>(p, b, nan);
  for_each_piece(b, 8 * kLanes, [&](const HeapBlock& sub) { run_variant<Avx2Width<8, kTop>::template Run>(p, sub, nan); });
}

}  // namespace

void heap_block_avx2(const HeapView& p, const HeapBlock& b) noexcept {
  if (b.n == 0) return;
  const bool nan = block_has_nan(b.rows, b.n * b.nf);
  if (b.scratch != nullptr && p.top.slots > 0) return heap_avx2<true>(p, b, nan);
  heap_avx2<false>(p, b, nan);
}

}  // namespace keel::detail
