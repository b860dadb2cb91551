#pragma once
// CategorySets: per feature, a set of allowed (or seen) category ids, for
// membership tests on the hot path: a bitmap when the largest id is small,
// a sorted list otherwise; a feature without a set accepts every id.
// Plus is_integral, which avoids a libm call per value (std::trunc is a
// call without SSE4.1). Immutable once built; thread-safe to read.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace keel::detail {

// Whether a finite float is a whole number. Floats of magnitude 2^23 and
// above are all whole; below, the round trip through int32 is exact.
inline bool is_integral(float v) noexcept {
  if (!(std::abs(v) < 8388608.0f)) return true;
  return static_cast<float>(static_cast<std::int32_t>(v)) == v;
}

class CategorySets {
 public:
  static constexpr std::int64_t kMaxBitmapId = std::int64_t{1} << 20;

  explicit CategorySets(std::size_t features = 0) : sets_(features) {}

  // Sets feature j's ids (non-negative; duplicates allowed).
  void set(std::size_t j, std::span<const std::int64_t> ids) {
    Set& s = sets_[j];
    s.present = true;
    const std::int64_t top = ids.empty() ? -1 : *std::max_element(ids.begin(), ids.end());
    if (top < kMaxBitmapId) {
      s.begin = static_cast<std::uint32_t>(bits_.size());
      s.words = static_cast<std::uint32_t>(top / 64 + 1);
      bits_.resize(bits_.size() + s.words, 0);
      for (std::int64_t id : ids) bits_[s.begin + static_cast<std::size_t>(id / 64)] |= std::uint64_t{1} << (id % 64);
    } else {
      s.sorted = true;
      s.begin = static_cast<std::uint32_t>(ids_.size());
      ids_.insert(ids_.end(), ids.begin(), ids.end());
      std::sort(ids_.begin() + s.begin, ids_.end());
      s.words = static_cast<std::uint32_t>(ids_.size() - s.begin);
    }
  }

  [[nodiscard]] bool has_set(std::size_t j) const noexcept { return sets_[j].present; }

  // Whether v is an id in feature j's set (true for any non-negative whole
  // v when the feature has no set; false for NaN, negatives, fractions).
  [[nodiscard]] bool contains(std::size_t j, float v) const noexcept {
    if (!(v >= 0.0f && v < 9.0e15f) || !is_integral(v)) return false;
    const Set& s = sets_[j];
    if (!s.present) return true;
    const auto id = static_cast<std::int64_t>(v);
    if (s.sorted) return std::binary_search(ids_.begin() + s.begin, ids_.begin() + s.begin + s.words, id);
    const auto word = static_cast<std::uint64_t>(id) / 64;
    if (word >= s.words) return false;
    return (bits_[s.begin + word] >> (id % 64)) & 1u;
  }

 private:
  struct Set {
    bool present = false, sorted = false;
    std::uint32_t begin = 0, words = 0;  // words: bitmap words, or ids when sorted
  };
  std::vector<Set> sets_;
  std::vector<std::uint64_t> bits_;
  std::vector<std::int64_t> ids_;
};

}  // namespace keel::detail
