#pragma once
// The column-compare top levels (see TopLevels in tree_ensemble_impl.hpp),
// written once for any vector ISA. Included only by the ISA kernel files;
// everything here has internal linkage, so each file compiles its own copy
// with its own target flags (see HeapView on why nothing inline is shared).
//
// Isa provides: F / I (float / int vectors of kLanes lanes), zero(), set1f,
// set1i, load (aligned), store (aligned), gather(rows, idx), add, sub, and_,
// srlv, and set_right(bits, x, th, nan_right, bit) -> bits with `bit` set in
// the lanes whose row goes right (x >= th, or x NaN and nan_right).

#include "model/trees/tree_ensemble_impl.hpp"

#include <cstddef>
#include <cstdint>

namespace keel::detail {
namespace {

// xt[(slot * V + v) * kLanes + lane]: the block's feature-major copy.
template <class Isa, std::size_t V>
void copy_columns(const TopView& top, const float* rows, const typename Isa::I* rowoff, float* xt) noexcept {
  for (std::size_t s = 0; s < top.slots; ++s) {
    const typename Isa::I f = Isa::set1i(static_cast<int>(top.slot_feature[s]));
    for (std::size_t v = 0; v < V; ++v) Isa::store(xt + (s * V + v) * Isa::kLanes, Isa::gather(rows, Isa::add(rowoff[v], f)));
  }
}

// Tree t's top levels for V vectors of rows: every node compared on every
// row (bit i of a lane: the row goes right at heap node i), then a walk
// through the bits. j[v] = position in level kTopDepth.
template <class Isa, std::size_t V, bool kNan>
void top_levels(const TopView& top, std::size_t t, const float* xt, typename Isa::I* j) noexcept {
  using I = typename Isa::I;
  const std::uint32_t* ts = top.slot + t * kTopNodes;
  const float* tt = top.thr + t * kTopNodes;
  const I one = Isa::set1i(1);
  I bits[V];
  for (std::size_t v = 0; v < V; ++v) bits[v] = Isa::zero();
#pragma GCC unroll 16
  for (std::size_t i = 0; i < kTopNodes; ++i) {
    const float* col = xt + (ts[i] & kFeatureMask) * V * Isa::kLanes;
    const typename Isa::F th = Isa::set1f(tt[i]);
    const I bit = Isa::set1i(1 << i);
    const bool nan_right = kNan && (ts[i] & kNanRight) != 0;
    for (std::size_t v = 0; v < V; ++v) {
      bits[v] = Isa::set_right(bits[v], Isa::load(col + v * Isa::kLanes), th, nan_right, bit);
    }
  }
  const I base = Isa::set1i(static_cast<int>(kTopNodes));
  for (std::size_t v = 0; v < V; ++v) {
    I n = Isa::zero();
    for (std::size_t l = 0; l < kTopDepth; ++l) {
      const I r = Isa::and_(Isa::srlv(bits[v], n), one);
      n = Isa::add(Isa::add(n, n), Isa::add(r, one));
    }
    j[v] = Isa::sub(n, base);
  }
}

}  // namespace
}  // namespace keel::detail
