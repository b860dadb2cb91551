// AVX2 + FMA dot product (built with -mavx2 -mfma; called only after a CPU
// check, see linear_kernels.hpp).

#include "model/linear/linear_kernels.hpp"

#include <immintrin.h>

#include <cmath>

namespace keel::detail {

namespace {
// x with NaN lanes zeroed (NaN is missing and contributes nothing).
inline __m256 present(__m256 x) noexcept { return _mm256_and_ps(x, _mm256_cmp_ps(x, x, _CMP_ORD_Q)); }
}  // namespace

float dot_avx2_fma(const float* x, const float* w, std::size_t n) noexcept {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + 32 <= n; j += 32) {
    a0 = _mm256_fmadd_ps(present(_mm256_loadu_ps(x + j)), _mm256_loadu_ps(w + j), a0);
    a1 = _mm256_fmadd_ps(present(_mm256_loadu_ps(x + j + 8)), _mm256_loadu_ps(w + j + 8), a1);
    a2 = _mm256_fmadd_ps(present(_mm256_loadu_ps(x + j + 16)), _mm256_loadu_ps(w + j + 16), a2);
    a3 = _mm256_fmadd_ps(present(_mm256_loadu_ps(x + j + 24)), _mm256_loadu_ps(w + j + 24), a3);
  }
  for (; j + 8 <= n; j += 8) a0 = _mm256_fmadd_ps(present(_mm256_loadu_ps(x + j)), _mm256_loadu_ps(w + j), a0);
  const __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  float acc = _mm_cvtss_f32(h);
  for (; j < n; ++j) {
    const float xv = x[j];
    if (xv == xv) acc = __builtin_fmaf(xv, w[j], acc);  // not std::fma: see tree_ensemble_impl.hpp
  }
  return acc;
}

}  // namespace keel::detail
