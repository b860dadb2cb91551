// Single-row walk over the blocked layout of tree_row.hpp: kRowGroup trees
// in lockstep, one kernel per depth so that block sizes, chunk offsets and
// the tree stride are constants (per-lane addresses become base + constant).
//
// Chunk step. A chunk of r levels has blocks of S = 2^r slots; block b
// starts at C + b * S (C: the chunk's offset in the tree). Inside a block,
// node m has children 2m + 1 and 2m + 2, so o' = o + m + 1 + right. The last
// level holds m = S/2 - 1 + k (k < S/2); the child block in the next chunk
// is b' = b * S + 2k + right, and with b * S = o - C - m this is
// b' = (o + m + right) + (2 - S - C). Below the last chunk b' is the leaf.

#include "model/trees/tree_row.hpp"

#include <keel/model/tree_ensemble.hpp>

#include <array>
#include <limits>
#include <type_traits>
#include <utility>

namespace keel::detail {
namespace {

constexpr std::size_t kMaxChunks = (kMaxHeapDepth + 2) / 3;

struct ChunkPlan {
  std::size_t chunks = 0;
  std::size_t levels[kMaxChunks] = {};  // levels per chunk, top first
  std::size_t first[kMaxChunks] = {};   // first level of each chunk
  std::size_t offset[kMaxChunks] = {};  // slot offset in the tree
  std::size_t stride = 0;               // slots per tree

  constexpr std::size_t chunk_of(std::size_t level) const noexcept {
    std::size_t c = 0;
    while (c + 1 < chunks && first[c + 1] <= level) ++c;
    return c;
  }
};

// Full chunks of 3 at the bottom (the bottom chunk always costs 2^depth
// slots, the ones above it less the larger it is), the rest on top.
constexpr ChunkPlan make_plan(std::size_t depth) noexcept {
  ChunkPlan p;
  p.chunks = (depth + 2) / 3;
  for (std::size_t c = 0; c < p.chunks; ++c) {
    p.levels[c] = c == 0 ? depth - 3 * (p.chunks - 1) : 3;
    p.first[c] = c == 0 ? 0 : p.first[c - 1] + p.levels[c - 1];
  }
  std::size_t off = 0;
  for (std::size_t c = p.chunks; c-- > 0;) {
    p.offset[c] = off;
    off += std::size_t{1} << (p.first[c] + p.levels[c]);
  }
  p.stride = (off + 7) & ~std::size_t{7};
  return p;
}

template <std::size_t D, std::size_t L, bool kNan>
[[gnu::always_inline]] inline void level_step(const RowNode* g, const float* row, std::size_t* o) noexcept {
  constexpr ChunkPlan P = make_plan(D);
  constexpr std::size_t c = P.chunk_of(L);
  constexpr std::size_t q = L - P.first[c];
  constexpr std::size_t S = std::size_t{1} << P.levels[c];
  constexpr std::size_t C = P.offset[c];
  constexpr std::size_t T = P.stride;
#pragma GCC unroll 16
  for (std::size_t i = 0; i < kRowGroup; ++i) {
    const RowNode* t = g + i * T;
    const std::size_t oi = o[i];
    const RowNode nd = t[oi];
    const float x = row[nd.feat];
    // right = 1 - left; "!(x >= thr)" lets the compiler subtract the
    // comparison's carry flag (sbb) instead of materialising a bool.
    std::size_t left = !(x >= nd.thr);
    const std::size_t m = oi & (S - 1);
    if constexpr (kNan) left &= ~static_cast<std::size_t>((x != x) & (t[oi | (S - 1)].feat >> m));
    // Unsigned wrap-around in the constants below is intended: the results
    // are in range.
    if constexpr (q + 1 < P.levels[c]) {
      o[i] = oi + m + 2 - left;
    } else if constexpr (c + 1 < P.chunks) {
      constexpr std::size_t S2 = std::size_t{1} << P.levels[c + 1];
      constexpr std::size_t K = S2 * (2 - S - C) + P.offset[c + 1];
      o[i] = (oi + m + 1 - left) * S2 + K;
    } else {
      o[i] = oi + m + 1 - left + (2 - S - C);  // the leaf
    }
  }
}

template <std::size_t D, bool kNan, class Acc>
void walk(const RowPack& rp, const HeapPack& hp, const float* row, Acc* acc) noexcept {
  constexpr ChunkPlan P = make_plan(D);
  constexpr std::size_t T = P.stride;
  constexpr std::size_t NL = std::size_t{1} << D;
  constexpr std::size_t G = kRowGroup;
  const Acc* leaves;
  if constexpr (std::is_same_v<Acc, float>) leaves = hp.leaf_f.data(); else leaves = hp.leaf_d.data();
  const std::size_t nt = rp.num_trees;  // >= G
  const RowNode* nodes = rp.nodes.data();
  const bool single = hp.single_output;
  Acc a0 = acc[0];
  std::size_t t0 = 0, skip = 0;
  for (;;) {
    std::size_t o[G];
    for (std::size_t i = 0; i < G; ++i) o[i] = P.offset[0];
    const RowNode* g = nodes + t0 * T;
    [&]<std::size_t... L>(std::index_sequence<L...>) {
      (level_step<D, L, kNan>(g, row, o), ...);
    }(std::make_index_sequence<D>{});
    const Acc* lg = leaves + t0 * NL;
    if (single) {
      for (std::size_t i = skip; i < G; ++i) a0 += lg[i * NL + o[i]];
    } else {
      for (std::size_t i = skip; i < G; ++i) acc[hp.out[t0 + i]] += lg[i * NL + o[i]];
    }
    if (t0 + G == nt) break;
    t0 += G;
    if (t0 + G > nt) {  // the last group overlaps the previous one; skip what it added
      skip = t0 + G - nt;
      t0 = nt - G;
    }
  }
  if (single) acc[0] = a0;
}

template <class Acc>
using WalkFn = void (*)(const RowPack&, const HeapPack&, const float*, Acc*) noexcept;

template <class Acc, bool kNan, std::size_t... D>
constexpr auto walk_table(std::index_sequence<D...>) noexcept {
  return std::array<WalkFn<Acc>, sizeof...(D)>{&walk<D + 1, kNan, Acc>...};
}

template <class Acc>
void run(const RowPack& rp, const HeapPack& hp, const float* row, Acc* acc) noexcept {
  static constexpr auto kPlain = walk_table<Acc, false>(std::make_index_sequence<kMaxHeapDepth>{});
  static constexpr auto kNanRows = walk_table<Acc, true>(std::make_index_sequence<kMaxHeapDepth>{});
  const bool nan = block_has_nan(row, rp.num_features);
  (nan ? kNanRows : kPlain)[rp.depth - 1](rp, hp, row, acc);
}

}  // namespace

bool row_pack_applies(const HeapPack& heap) noexcept {
  return heap.depth >= 1 && heap.depth <= kMaxHeapDepth && heap.num_trees >= kRowGroup;
}

void build_row_pack(const HeapPack& hp, std::size_t num_features, RowPack& rp) {
  const ChunkPlan P = make_plan(hp.depth);
  rp.depth = hp.depth;
  rp.tree_slots = P.stride;
  rp.num_trees = hp.num_trees;
  rp.num_features = num_features;
  rp.nodes.assign(hp.num_trees * P.stride, RowNode{0, std::numeric_limits<float>::quiet_NaN()});
  for (std::size_t t = 0; t < hp.num_trees; ++t) {
    RowNode* tree = rp.nodes.data() + t * P.stride;
    for (std::size_t l = 0; l < hp.depth; ++l) {
      const std::size_t c = P.chunk_of(l);
      const std::size_t q = l - P.first[c];
      const std::size_t S = std::size_t{1} << P.levels[c];
      for (std::size_t j = 0; j < (std::size_t{1} << l); ++j) {
        const std::size_t blk = P.offset[c] + (j >> q) * S;
        const std::size_t m = (std::size_t{1} << q) - 1 + (j & ((std::size_t{1} << q) - 1));
        const std::size_t h = t * hp.node_stride + (std::size_t{1} << l) - 1 + j;
        tree[blk + m] = RowNode{hp.feat[h] & kFeatureMask, hp.thr[h]};
        if (hp.feat[h] & kNanRight) tree[blk + S - 1].feat |= 1u << m;
      }
    }
  }
}

void row_margins(const RowPack& rp, const HeapPack& heap, const float* row, float* acc) noexcept {
  run(rp, heap, row, acc);
}
void row_margins(const RowPack& rp, const HeapPack& heap, const float* row, double* acc) noexcept {
  run(rp, heap, row, acc);
}

}  // namespace keel::detail
