#pragma once
// Dot-product kernels for LinearModel, chosen once at run time: an AVX2+FMA
// one where the CPU has it (linear_kernels_avx2.cpp, the only file built
// with those flags), a portable one otherwise. NaN in x counts as 0. The two
// round differently (FMA, lane order), so a fast linear model's last bits
// depend on the CPU; exact-order models never use these. Thread-safe.

#include <cstddef>

namespace keel::detail {

using DotKernel = float (*)(const float* x, const float* w, std::size_t n) noexcept;

float dot_portable(const float* x, const float* w, std::size_t n) noexcept;
float dot_avx2_fma(const float* x, const float* w, std::size_t n) noexcept;

// The best kernel this CPU runs (decided on first use).
DotKernel best_dot_kernel() noexcept;

}  // namespace keel::detail
