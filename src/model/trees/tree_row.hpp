#pragma once
// Single-row layout of a heap-layout ensemble (TreeEnsemble's predict for
// one row). The heap keeps each level of a tree in its own run of nodes, so
// one walk touches a cache line per level and per field; here every tree is
// cut into chunks of up to 3 levels, and each chunk's subtrees are blocks of
// 2^r eight-byte {feature, threshold} slots (2^r - 1 nodes and one slot of
// NaN-right bits), aligned to their size. A depth-8 walk reads 3 blocks
// (2 + 3 + 3 levels) and one leaf instead of 16 lines.
//
// Within a tree, node offsets o are in slots from the tree's start; in a
// block of S slots the node at local index m = o & (S - 1) has children at
// o + m + 1 + right; past a chunk's last level the walk moves to block
// o + m + right + const of the next chunk (derivation in tree_row.cpp).
// Chunks are stored bottom first so that every block is aligned to its size.
//
// Leaves are the HeapPack's own (no copy). Memory, on top of the heap:
// tree_slots * 8 bytes per tree, 2^depth * 8 plus the upper chunks and
// rounding to 64 bytes (depth 8: 2368 bytes, the heap's nodes 2048; depth 6:
// 576; depth 4: 192). Immutable after build; safe to read concurrently.

#include "model/trees/tree_ensemble_impl.hpp"

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace keel::detail {

struct RowNode {
  std::uint32_t feat = 0;  // feature index; in a block's last slot: NaN-right bit per local node
  float thr = 0.0f;
};

// std::allocator for over-aligned storage of plain values.
template <class T, std::size_t kAlign>
struct AlignedAlloc {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = AlignedAlloc<U, kAlign>;
  };
  AlignedAlloc() = default;
  template <class U>
  AlignedAlloc(const AlignedAlloc<U, kAlign>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kAlign})); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{kAlign}); }
  template <class U>
  bool operator==(const AlignedAlloc<U, kAlign>&) const noexcept {
    return true;
  }
};

// Trees a single-row walk advances in lockstep; an ensemble with fewer trees
// keeps the heap walk.
inline constexpr std::size_t kRowGroup = 16;

struct RowPack {
  std::size_t depth = 0;
  std::size_t tree_slots = 0;  // per tree, a multiple of 8 (64 bytes)
  std::size_t num_trees = 0;
  std::size_t num_features = 0;
  std::vector<RowNode, AlignedAlloc<RowNode, 64>> nodes;

  bool empty() const noexcept { return nodes.empty(); }
};

// Whether build_row_pack supports the heap (depth <= kMaxHeapDepth, at least
// kRowGroup trees).
bool row_pack_applies(const HeapPack& heap) noexcept;
// Builds the row layout from the heap's nodes. Throws bad_alloc.
void build_row_pack(const HeapPack& heap, std::size_t num_features, RowPack& rp);

// Adds the leaves of every tree for one row to acc ([outputs]), in tree
// order. rp was built from heap; row has the model's features.
void row_margins(const RowPack& rp, const HeapPack& heap, const float* row, float* acc) noexcept;
void row_margins(const RowPack& rp, const HeapPack& heap, const float* row, double* acc) noexcept;

}  // namespace keel::detail
