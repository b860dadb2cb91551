#pragma once
// Exact float64 rows on the float kernels (LightGBM compares double(x) <= t).
//
// For a double x that is not a float, lo < x < hi are the two floats around
// it. A tree decides a numeric split "x <= t" the same way for x and for any
// y in {lo, hi}, unless t lies in [lo, hi): then x > t needs y = hi and
// x <= t needs y = lo. LightGBM's zero band (|x| <= z, z = 1e-35f) counts as
// two more such splits per feature, at z and just below -z. NaN is NaN in
// both, and a categorical split reads trunc(x), which rounding toward zero
// keeps. So each value maps to one float that takes
// x's path through every tree, unless two splits of its feature need
// different ones (thresholds closer than one float apart, around x): such a
// row is not mapped and the caller scores it by the reference evaluator.
//
// The few float intervals [lo, hi) holding a threshold are found through a
// bitmap filter (L1/L2-resident) and, on a hit, a sorted list.
// Immutable after build; map_row is thread-safe.

#include <keel/model/tree_spec.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace keel::detail {

// The largest float <= t (t not NaN), with -0.0 as +0.0.
float float_floor(double t) noexcept;

class DoubleRowMap {
 public:
  DoubleRowMap() = default;
  // Collects the thresholds of spec's numeric splits per feature. Throws
  // bad_alloc.
  explicit DoubleRowMap(const TreeEnsembleSpec& spec);

  // Writes nf floats to y that take x's path through every tree; false when
  // no float row does (y is then partly written).
  [[nodiscard]] bool map_row(const double* x, float* y) const noexcept;
  [[nodiscard]] std::size_t bytes() const noexcept;

 private:
  [[nodiscard]] bool map_inexact(std::uint32_t f, double x, float& y) const noexcept;

  std::vector<std::uint64_t> filter_;   // bit hash(key) set for every key below
  unsigned filter_shift_ = 64;
  std::vector<std::uint64_t> keys_;     // (feature << 32) | bits(float_floor(t)), sorted, with cut_
  std::vector<double> cut_;             // the threshold t of each key
  std::vector<std::uint8_t> toward_zero_;  // per feature: read by a categorical split
};

}  // namespace keel::detail
