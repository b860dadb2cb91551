// Building the binned pack (tree_binned.hpp) from a heap pack.

#include "model/trees/tree_binned.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace keel::detail {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Code {
  std::uint32_t pos = 0;
  std::uint8_t a = 0;
  std::uint8_t cc = 1;  // dummy position: always left
};

}  // namespace

std::size_t BinnedPack::bytes() const noexcept {
  return (pos_feature.capacity() + thr_offset.capacity() + thr_first.capacity() + thr_count.capacity()) *
             sizeof(std::uint32_t) +
         thr.capacity() * sizeof(float) + top.capacity() + deep_off.capacity() * sizeof(std::uint16_t) + deep_cc.capacity();
}

std::string build_binned(const HeapPack& h, std::size_t num_features, BinnedPack& b) {
  const std::size_t depth = h.depth;
  const std::size_t inner = (std::size_t{1} << depth) - 1;  // internal heap nodes per tree
  auto node = [&](std::size_t t, std::size_t i) {
    struct {
      std::uint32_t f;
      float th;
      bool nan_right;
    } n{h.feat[t * h.node_stride + i] & kFeatureMask, h.thr[t * h.node_stride + i],
        (h.feat[t * h.node_stride + i] & kNanRight) != 0};
    return n;
  };
  // Each feature's distinct thresholds, cut into chunks of at most
  // kMaxBinThresholds; a chunk is a position of its own.
  std::vector<std::vector<float>> thr_of(num_features);
  for (std::size_t t = 0; t < h.num_trees; ++t) {
    for (std::size_t i = 0; i < inner; ++i) {
      const auto n = node(t, i);
      if (!std::isnan(n.th)) thr_of[n.f].push_back(n.th);
    }
  }
  std::vector<std::size_t> chunk_len(num_features, 1), chunk_base(num_features + 1, 0);
  std::size_t max_t = 0;
  for (std::size_t f = 0; f < num_features; ++f) {
    std::vector<float>& v = thr_of[f];
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end(), [](float x, float y) { return x == y; }), v.end());  // -0 == 0
    max_t = std::max(max_t, v.size());
    const std::size_t chunks = std::max<std::size_t>(1, (v.size() + kMaxBinThresholds - 1) / kMaxBinThresholds);
    chunk_len[f] = std::max<std::size_t>(1, (v.size() + chunks - 1) / chunks);
    chunk_base[f + 1] = chunk_base[f] + chunks;
  }
  // (feature, chunk) of a node that reads a feature; the chunk's local
  // threshold index k (or none: a NaN threshold).
  struct Ref {
    std::size_t chunk;
    std::size_t k;
    bool thr;
  };
  auto ref_of = [&](std::uint32_t f, float th) {
    if (std::isnan(th)) return Ref{chunk_base[f], 0, false};
    const std::vector<float>& v = thr_of[f];
    const auto k = static_cast<std::size_t>(std::lower_bound(v.begin(), v.end(), th) - v.begin());
    return Ref{chunk_base[f] + k / chunk_len[f], k % chunk_len[f], true};
  };
  // Positions: the dummy, then the chunks in the order the levels first
  // read them (all trees' level 0, then level 1, ...); vec_end[l]: the
  // positions levels < l read.
  const std::size_t chunks = chunk_base[num_features];
  std::vector<std::uint32_t> pos_of(chunks, 0);
  std::vector<std::size_t> pos_chunk(1, 0);
  std::vector<std::size_t> vec_end(depth + 1, 1);
  for (std::size_t l = 0; l < depth; ++l) {
    for (std::size_t t = 0; t < h.num_trees; ++t) {
      for (std::size_t i = (std::size_t{1} << l) - 1; i < (std::size_t{2} << l) - 1; ++i) {
        const auto n = node(t, i);
        if (std::isnan(n.th) && !n.nan_right) continue;  // always left: the dummy position
        const std::size_t c = ref_of(n.f, n.th).chunk;
        if (pos_of[c] == 0) {
          pos_of[c] = static_cast<std::uint32_t>(pos_chunk.size());
          pos_chunk.push_back(c);
        }
      }
    }
    vec_end[l + 1] = pos_chunk.size();
  }
  // V: all of the first 8 levels if their positions fit one permute, else
  // as many as fit, at most 6 (one group).
  const std::size_t want = std::min(depth, kBinVecLevels);
  std::size_t vec = want;
  while (vec > 0 && vec_end[vec] > kBinVecPositions) --vec;
  if (vec < want) vec = std::min(vec, kBinTopLevels);
  if (pos_chunk.size() > kMaxBinPositions) {
    return fmt::format("the trees read {} features or threshold ranges (the binned rows hold {})",
                       pos_chunk.size() - 1, kMaxBinPositions - 1);
  }
  std::vector<std::uint32_t> chunk_feature(chunks);
  for (std::size_t f = 0; f < num_features; ++f) {
    for (std::size_t c = chunk_base[f]; c < chunk_base[f + 1]; ++c) chunk_feature[c] = static_cast<std::uint32_t>(f);
  }
  b.depth = depth;
  b.positions = pos_chunk.size();
  b.half = b.positions <= kBinVecPositions ? kBinVecPositions : kMaxBinPositions;
  b.max_thresholds = max_t;
  b.pos_feature.assign(b.positions, 0);
  for (std::size_t p = 1; p < b.positions; ++p) b.pos_feature[p] = chunk_feature[pos_chunk[p]];
  // Threshold tables: a chunk's slice of its feature's thresholds.
  auto slice_of = [&](std::size_t c) {
    const std::size_t f = chunk_feature[c];
    const std::size_t lo = (c - chunk_base[f]) * chunk_len[f];
    const std::size_t hi = std::min(thr_of[f].size(), lo + chunk_len[f]);
    return std::pair{thr_of[f].data() + lo, hi > lo ? hi - lo : 0};
  };
  b.thr_offset.assign(b.positions, 0);
  b.thr_first.assign(b.positions, 0);
  b.thr_count.assign(b.positions, 0);
  std::size_t floats = kBinGroup * 2;  // position 0 (the dummy) keeps an all-NaN table
  for (std::size_t p = 1; p < b.positions; ++p) {
    b.thr_offset[p] = static_cast<std::uint32_t>(floats);
    // At least one NaN after the last threshold ends a plain search.
    floats += kBinGroup * (2 + slice_of(pos_chunk[p]).second / kBinGroup);
  }
  b.thr.assign(floats, kNaN);
  for (std::size_t p = 1; p < b.positions; ++p) {
    const auto [v, len] = slice_of(pos_chunk[p]);
    float* tab = b.thr.data() + b.thr_offset[p];
    b.thr_first[p] = static_cast<std::uint32_t>(v - thr_of[b.pos_feature[p]].data());
    b.thr_count[p] = static_cast<std::uint32_t>(len);
    for (std::size_t k = 0; k < len; ++k) {
      if (k % kBinGroup == 0) tab[k / kBinGroup] = v[k];
      tab[kBinGroup + k] = v[k];
    }
  }
  // Nodes.
  auto code_of = [&](std::size_t t, std::size_t i) {
    Code c;
    if (i >= inner) return c;  // below a shallow model's depth: never read
    const auto n = node(t, i);
    if (std::isnan(n.th) && !n.nan_right) return c;
    const Ref r = ref_of(n.f, n.th);
    c.pos = pos_of[r.chunk];
    if (!r.thr) {
      c.cc = 255;  // NaN threshold, NaN right
      return c;
    }
    c.a = n.nan_right ? 0 : 1;
    c.cc = static_cast<std::uint8_t>(r.k + 1 + c.a);
    return c;
  };
  b.num_trees = h.num_trees;
  b.vec_levels = vec;
  b.groups = vec <= kBinTopLevels ? 1 : vec == kBinTopLevels + 1 ? 2 : 4;
  b.top.assign(b.num_trees * b.groups * kBinGroupRecord, 0);
  b.deep_stride = (std::size_t{1} << depth) - (std::size_t{1} << vec);
  b.deep_off.assign(b.num_trees * b.deep_stride, 0);
  b.deep_cc.assign(b.num_trees * b.deep_stride, 0);
  for (std::size_t t = 0; t < b.num_trees; ++t) {
    for (std::size_t g = 0; g < b.groups; ++g) {
      std::uint8_t* rec = b.top.data() + (t * b.groups + g) * kBinGroupRecord;
      for (std::size_t j = 0; j < kBinGroupBytes; ++j) {
        const std::size_t hn = g * kBinGroupBytes + j;  // heap node, from 1
        // Nodes at or below level V in the last group are never read.
        const Code c = hn == 0 || hn >= (std::size_t{1} << vec) ? Code{} : code_of(t, hn - 1);
        rec[j] = static_cast<std::uint8_t>(c.pos);
        rec[kBinGroupBytes + j] = static_cast<std::uint8_t>(c.cc - c.a);
        rec[2 * kBinGroupBytes + j] = c.a;
        rec[3 * kBinGroupBytes + j] = c.cc;
      }
    }
    for (std::size_t k = 0; k < b.deep_stride; ++k) {
      const Code c = code_of(t, (std::size_t{1} << vec) + k - 1);
      b.deep_off[t * b.deep_stride + k] = static_cast<std::uint16_t>(c.pos + c.a * b.half);
      b.deep_cc[t * b.deep_stride + k] = static_cast<std::uint8_t>(c.cc - 1);
    }
  }
  return {};
}

BinnedView binned_view(const BinnedPack& b, const HeapPack& h) noexcept {
  BinnedView v;
  v.depth = b.depth;
  v.positions = b.positions;
  v.half = b.half;
  v.vec_levels = b.vec_levels;
  v.groups = b.groups;
  v.deep_stride = b.deep_stride;
  v.leaf_stride = h.leaf_stride;
  v.num_trees = b.num_trees;
  v.pos_feature = b.pos_feature.data();
  v.thr_offset = b.thr_offset.data();
  v.thr = b.thr.data();
  v.top = b.top.data();
  v.deep_off = b.deep_off.data();
  v.deep_cc = b.deep_cc.data();
  v.leaf_f = h.leaf_f.data();
  v.leaf_d = h.leaf_d.data();
  v.out = h.out.data();
  v.double_acc = h.double_acc;
  return v;
}

BinnedView binned_slice(const BinnedView& v, std::size_t t0, std::size_t t1, const std::uint32_t* out) noexcept {
  BinnedView s = v;
  s.num_trees = t1 - t0;
  s.top = v.top + t0 * v.groups * kBinGroupRecord;
  s.deep_off = v.deep_off + t0 * v.deep_stride;
  s.deep_cc = v.deep_cc + t0 * v.deep_stride;
  if (s.leaf_f != nullptr) s.leaf_f = v.leaf_f + t0 * v.leaf_stride;
  if (s.leaf_d != nullptr) s.leaf_d = v.leaf_d + t0 * v.leaf_stride;
  s.out = out;
  return s;
}

std::uint8_t bin_code_reference(const BinnedView& v, std::size_t position, float x) noexcept {
  if (std::isnan(x)) return kBinNaN;
  if (position == 0) return 0;
  const float* tab = v.thr + v.thr_offset[position] + kBinGroup;
  std::size_t n = 0;
  while (!std::isnan(tab[n]) && x >= tab[n]) ++n;
  return static_cast<std::uint8_t>(n);
}

#if defined(__x86_64__)
bool binned_cpu_supported() noexcept {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vbmi");
}
#endif

}  // namespace keel::detail
