// AVX2 value checks of SchemaValidator (built with -mavx2; called only after
// a CPU check, see validate_kernels.hpp). Eight values per step; the tail
// is one masked step.

#include "validate/validate_kernels.hpp"

#include <immintrin.h>

namespace keel::detail {

bool values_clean_avx2(const float* v, const CleanTables& t, std::size_t count) noexcept {
  const __m256 two23 = _mm256_set1_ps(8388608.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i zero = _mm256_setzero_si256();
  const __m256 all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  __m256 bad = _mm256_setzero_ps();
  // One step of eight values with their bounds and flags.
  auto step = [&](__m256 x, __m256 lo, __m256 hi, __m256i nan_ok_i, __m256i whole_i) {
    // Ordered compares: NaN is never inside the bounds.
    const __m256 in = _mm256_and_ps(_mm256_cmp_ps(x, lo, _CMP_GE_OQ), _mm256_cmp_ps(x, hi, _CMP_LE_OQ));
    const __m256 nan_ok = _mm256_castsi256_ps(_mm256_cmpgt_epi32(nan_ok_i, zero));
    const __m256 whole = _mm256_castsi256_ps(_mm256_cmpgt_epi32(whole_i, zero));
    const __m256 nan_allowed = _mm256_and_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q), nan_ok);
    // Whole-number test (see schema_validator.cpp): |x| >= 2^23, or |x|
    // rounded through 2^23 is |x| itself.
    const __m256 a = _mm256_andnot_ps(sign, x);
    const __m256 is_whole = _mm256_or_ps(_mm256_cmp_ps(a, two23, _CMP_GE_OQ),
                                         _mm256_cmp_ps(_mm256_sub_ps(_mm256_add_ps(a, two23), two23), a, _CMP_EQ_OQ));
    // bad: neither inside nor an allowed NaN; or inside, to be whole, and not whole.
    const __m256 ok = _mm256_or_ps(in, nan_allowed);
    bad = _mm256_or_ps(bad, _mm256_andnot_ps(ok, all));
    bad = _mm256_or_ps(bad, _mm256_and_ps(_mm256_andnot_ps(is_whole, whole), in));
  };
  std::size_t j = 0;
  for (; j + 8 <= count; j += 8) {
    step(_mm256_loadu_ps(v + j), _mm256_loadu_ps(t.lo + j), _mm256_loadu_ps(t.hi + j),
         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.nan_ok + j)),
         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.whole + j)));
  }
  if (j < count) {
    // The last count % 8 values, by masked loads (nothing past the end is
    // read). A masked-off lane loads 0 with bounds [0, 0] and no flags:
    // inside, so never bad.
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count - j)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    step(_mm256_maskload_ps(v + j, mask), _mm256_maskload_ps(t.lo + j, mask), _mm256_maskload_ps(t.hi + j, mask),
         _mm256_maskload_epi32(reinterpret_cast<const int*>(t.nan_ok + j), mask),
         _mm256_maskload_epi32(reinterpret_cast<const int*>(t.whole + j), mask));
  }
  return _mm256_movemask_ps(bad) == 0;
}

}  // namespace keel::detail
