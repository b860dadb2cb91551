#pragma once
// SchemaValidator's first loop (the value checks of every feature of a
// block of rows), chosen once at run time: an AVX2 one where the CPU has
// it (validate_kernels_avx2.cpp, the only validator file built with those
// flags), the portable one otherwise. Both compute exactly the same
// predicate: a value v of feature j passes when lo[j] <= v <= hi[j] and,
// where whole[j] is set, v is a whole number; or when v is NaN and
// nan_ok[j]. Returns whether every value passes. Thread-safe.

#include <cstddef>
#include <cstdint>

namespace keel::detail {

struct CleanTables {
  const float* lo;
  const float* hi;
  const std::int32_t* nan_ok;  // 0 or 1
  const std::int32_t* whole;   // 0 or 1
};

using CleanKernel = bool (*)(const float* v, const CleanTables& t, std::size_t count) noexcept;

bool values_clean_portable(const float* v, const CleanTables& t, std::size_t count) noexcept;
bool values_clean_avx2(const float* v, const CleanTables& t, std::size_t count) noexcept;

// The best kernel this CPU runs.
CleanKernel best_clean_kernel() noexcept;

}  // namespace keel::detail
