// DoubleRowMap: float64 rows mapped exactly onto float rows (see the header).

#include "model/trees/tree_double_rows.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace keel::detail {
namespace {

std::uint32_t bits_of(float f) noexcept { return std::bit_cast<std::uint32_t>(f); }

// The next float toward -inf (f not NaN, not -inf).
float next_down(float f) noexcept {
  if (f == 0.0f) return -std::numeric_limits<float>::denorm_min();
  const std::uint32_t u = bits_of(f);
  return std::bit_cast<float>(f > 0.0f ? u - 1 : u + 1);
}

// The next float toward +inf (f not NaN, not +inf).
float next_up(float f) noexcept {
  if (f == 0.0f) return std::numeric_limits<float>::denorm_min();
  const std::uint32_t u = bits_of(f);
  return std::bit_cast<float>(f > 0.0f ? u + 1 : u - 1);
}

std::uint64_t key_of(std::uint32_t feature, float lo) noexcept {
  return (std::uint64_t{feature} << 32) | bits_of(lo);
}

std::uint64_t hash_of(std::uint64_t key, unsigned shift) noexcept {
  return (key * 0x9E3779B97F4A7C15ull) >> shift;
}

}  // namespace

float float_floor(double t) noexcept {
  float f = static_cast<float>(t);
  if (f == 0.0f) f = 0.0f;  // -0.0 -> +0.0: one key per interval
  if (static_cast<double>(f) > t) f = next_down(f);
  return f;
}

DoubleRowMap::DoubleRowMap(const TreeEnsembleSpec& spec) {
  const std::size_t nf = spec.info.num_features;
  toward_zero_.assign(nf, 0);
  std::vector<std::pair<std::uint64_t, double>> cuts;
  for (const Tree& t : spec.trees) {
    for (const TreeNode& n : t.nodes) {
      const auto f = static_cast<std::uint32_t>(n.feature);
      if (n.kind == SplitKind::kCategorical) {
        toward_zero_[f] = 1;
      } else if (n.kind != SplitKind::kLeaf) {
        cuts.emplace_back(key_of(f, float_floor(n.threshold)), n.threshold);
      }
    }
  }
  // The zero band |x| <= z reads as 0.0: its edges are splits "x <= z" and
  // "x <= the double below -z" (i.e. x < -z) on every feature read.
  constexpr double z = static_cast<double>(1e-35f);
  const double below = std::nextafter(-z, -std::numeric_limits<double>::infinity());
  std::vector<std::uint8_t> read(nf, 0);
  for (const Tree& t : spec.trees) {
    for (const TreeNode& n : t.nodes) {
      if (n.kind != SplitKind::kLeaf) read[static_cast<std::size_t>(n.feature)] = 1;
    }
  }
  for (std::uint32_t f = 0; f < nf; ++f) {
    if (!read[f]) continue;
    cuts.emplace_back(key_of(f, float_floor(z)), z);
    cuts.emplace_back(key_of(f, float_floor(below)), below);
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  keys_.reserve(cuts.size());
  cut_.reserve(cuts.size());
  for (const auto& [k, t] : cuts) {
    keys_.push_back(k);
    cut_.push_back(t);
  }
  // About 16 bits per key: a value misses the filter unless its interval
  // holds a threshold, or 1 time in 16 by chance.
  const std::size_t bits = std::bit_ceil(std::max<std::size_t>(64, cuts.size() * 16));
  filter_shift_ = 64u - static_cast<unsigned>(std::countr_zero(bits));
  filter_.assign(bits / 64, 0);
  for (std::uint64_t k : keys_) {
    const std::uint64_t h = hash_of(k, filter_shift_);
    filter_[h >> 6] |= std::uint64_t{1} << (h & 63);
  }
}

bool DoubleRowMap::map_inexact(std::uint32_t f, double x, float& y) const noexcept {
  const float lo = static_cast<double>(y) > x ? next_down(y) : y;
  // 0: either float; 1: lo; 2: hi. trunc(x) needs rounding toward zero.
  int need = toward_zero_[f] ? (x > 0.0 ? 1 : 2) : 0;
  const std::uint64_t key = key_of(f, lo);
  const std::uint64_t h = hash_of(key, filter_shift_);
  if ((filter_[h >> 6] >> (h & 63)) & 1u) [[unlikely]] {
    auto it = std::lower_bound(keys_.begin(), keys_.end(), key);
    for (; it != keys_.end() && *it == key; ++it) {
      const int req = x > cut_[static_cast<std::size_t>(it - keys_.begin())] ? 2 : 1;
      if (need != 0 && need != req) return false;
      need = req;
    }
  }
  if (need == 1) y = lo;
  if (need == 2) y = next_up(lo);
  return true;
}

bool DoubleRowMap::map_row(const double* x, float* y) const noexcept {
  const std::size_t nf = toward_zero_.size();
  for (std::size_t f = 0; f < nf; ++f) {
    float v = static_cast<float>(x[f]);
    // Floats (and NaN) read the same either way.
    if (static_cast<double>(v) != x[f] && x[f] == x[f]) {
      if (!map_inexact(static_cast<std::uint32_t>(f), x[f], v)) return false;
    }
    y[f] = v;
  }
  return true;
}

std::size_t DoubleRowMap::bytes() const noexcept {
  return filter_.size() * sizeof(std::uint64_t) + keys_.size() * sizeof(std::uint64_t) +
         cut_.size() * sizeof(double) + toward_zero_.size();
}

}  // namespace keel::detail
