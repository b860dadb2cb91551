// The binned heap kernel (src/model/tree_binned.hpp): bit-identical to the
// reference evaluator on random ensembles built to stress the byte codes
// (duplicate thresholds, -0/+0, denormals, infinities, thresholds equal to
// inputs, NaN both ways), on every fixture and every model in the wild it
// accepts, and its refusals fall back to the heap kernel.

#include <keel/model/loaders.hpp>
#include <keel/model/tree_ensemble.hpp>

#include "model/trees/tree_binned.hpp"
#include "tree_ensemble_testing.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

using namespace keel;
using namespace keel::testing;

namespace {

bool binned_here() {
#if defined(__x86_64__)
  return tree_kernel_supported(TreeKernel::kAvx512) && detail::binned_cpu_supported();
#else
  return false;
#endif
}

TreeEnsembleOptions binned_opts(TreeBinning b = TreeBinning::kOn) {
  TreeEnsembleOptions o;
  o.kernel = TreeKernel::kAvx512;
  o.binning = b;
  return o;
}

// Float values on every edge the codes must keep apart (or together).
const std::vector<float>& edge_floats() {
  static const std::vector<float> v = {0.0f, -0.0f, 1e-40f, -1e-40f, 1.4e-45f, -1.4e-45f,
                                       std::numeric_limits<float>::min(), -std::numeric_limits<float>::min(),
                                       1e-35f, -1e-35f, 0.5f, -0.5f, 1.0f, -1.0f, 2.5f, 100.0f, 0.1f, -0.1f,
                                       1.0f / 3.0f, 16777216.0f, std::numeric_limits<float>::max(),
                                       -std::numeric_limits<float>::max(), kInff, -kInff, 7.0f, 31.0f};
  return v;
}

// A threshold from a small pool (duplicates across nodes are the rule), as
// the double a loader would hold: floats, and for LightGBM doubles between
// floats and beyond the float range.
double pool_threshold(std::mt19937_64& rng, bool lgb, std::size_t pool) {
  const auto& e = edge_floats();
  const std::size_t i = rng() % std::min(pool, e.size() + 8);
  if (i < e.size()) return static_cast<double>(e[i]);
  const double extra[] = {0.1, -1.0 / 3.0, 1e39, -1e39, 1e-36, 2.0000001, 0.30000001, -7.5};
  return lgb ? extra[i - e.size()] : static_cast<double>(static_cast<float>(extra[i - e.size()]));
}

float pool_value(std::mt19937_64& rng) {
  const auto& e = edge_floats();
  switch (rng() % 10) {
    case 0: return kNaNf;
    case 1: return static_cast<float>(std::uniform_real_distribution<double>(-3.0, 3.0)(rng));
    default: {
      float f = e[rng() % e.size()];
      const int nudge = static_cast<int>(rng() % 3) - 1;
      if (nudge != 0) f = std::nextafter(f, nudge > 0 ? kInff : -kInff);
      return f;
    }
  }
}

// random_spec with the thresholds drawn from the pool.
TreeEnsembleSpec pool_spec(std::mt19937_64& rng, const SpecShape& s, std::size_t pool) {
  TreeEnsembleSpec spec = random_spec(rng, s);
  for (Tree& t : spec.trees) {
    for (TreeNode& n : t.nodes) {
      if (n.kind == SplitKind::kNumericLess || n.kind == SplitKind::kNumericLessEqual) {
        n.threshold = pool_threshold(rng, s.lightgbm, pool);
        if (n.missing == MissingType::kZero && rng() % 4 != 0) n.missing = MissingType::kNaN;
      }
    }
  }
  return spec;
}

std::vector<float> pool_rows(std::mt19937_64& rng, std::size_t n, std::size_t features, bool nan) {
  std::vector<float> rows(n * features);
  for (float& x : rows) {
    x = pool_value(rng);
    if (!nan && x != x) x = 0.5f;
  }
  return rows;
}

// m against ref on rows: batches (margins and transforms, one and two
// threads), single rows, and the same rows as float64.
void check_same(const Model& ref, const Model& m, const std::vector<float>& rows, std::size_t n) {
  const ModelInfo& mi = ref.info();
  for (OutputKind kind : {OutputKind::kMargin, OutputKind::kTransformed}) {
    const std::size_t w = mi.width(kind);
    std::vector<float> want(n * w);
    REQUIRE(ref.predict(rows, n, want, {kind, 1}).is_ok());
    for (unsigned threads : {1u, 2u}) {
      std::vector<float> got(n * w);
      REQUIRE(m.predict(rows, n, got, {kind, threads}).is_ok());
      INFO("threads " << threads << ", output " << (kind == OutputKind::kMargin ? "margin" : "transformed"));
      CHECK(same_bits(got, want));
    }
    std::vector<float> one(w);
    for (std::size_t r = 0; r < std::min<std::size_t>(n, 12); ++r) {
      REQUIRE(m.predict(std::span<const float>(rows).subspan(r * mi.num_features, mi.num_features), 1, one, {kind, 1})
                  .is_ok());
      INFO("single row " << r);
      CHECK(std::memcmp(one.data(), want.data() + r * w, w * sizeof(float)) == 0);
    }
  }
  const std::vector<double> drows(rows.begin(), rows.end());
  const std::size_t w = mi.num_outputs;
  std::vector<float> want(n * w), got(n * w);
  std::vector<double> want_d(n * w), got_d(n * w);
  REQUIRE(ref.predict(std::span<const double>(drows), n, want).is_ok());
  REQUIRE(m.predict(std::span<const double>(drows), n, got).is_ok());
  CHECK(same_bits(got, want));
  REQUIRE(ref.predict(std::span<const double>(drows), n, std::span<double>(want_d)).is_ok());
  REQUIRE(m.predict(std::span<const double>(drows), n, std::span<double>(got_d)).is_ok());
  CHECK(same_bits(got_d, want_d));
}

// Whether the heap layout takes spec (the binned kernel's precondition).
bool heap_fits(const TreeEnsembleSpec& spec) {
  TreeEnsembleOptions o;
  o.layout = TreeLayout::kHeap;
  return make_tree_ensemble(spec, o).ok();
}

}  // namespace

TEST_CASE("binned: random ensembles with pooled thresholds match the reference bit for bit", "[model][binned]") {
  if (!binned_here()) {
    WARN("this CPU has no AVX-512 VBMI: the binned kernel is not tested");
    return;
  }
  std::mt19937_64 rng(101);
  std::size_t binned = 0;
  for (int i = 0; i < 80; ++i) {
    SpecShape s;
    s.lightgbm = i % 2 == 1;
    s.features = 1 + rng() % 40;
    s.outputs = 1 + (i % 6 == 0 ? rng() % 3 : 0);
    s.trees = 1 + rng() % 60;
    s.max_depth = 1 + rng() % kMaxHeapDepth;
    s.leaf_prob = (rng() % 4) * 0.1;
    s.dart = !s.lightgbm && i % 4 == 0;
    const auto spec = pool_spec(rng, s, 4 + rng() % 40);
    auto ref = make_reference_model(spec);
    REQUIRE(ref.ok());
    auto m = make_tree_ensemble(spec, binned_opts());
    INFO("case " << i << ", depth " << spec.info.max_depth << ", features " << s.features << ", lightgbm "
                 << s.lightgbm << ": " << (m.ok() ? tree_binning_note(**m) : m.status().to_string()));
    if (!m.ok()) {
      // Only a model the heap refuses (a LightGBM zero band against its side) may be refused.
      CHECK(s.lightgbm);
      CHECK(!heap_fits(spec));
      continue;
    }
    REQUIRE(tree_binned_of(**m));
    ++binned;
    const std::size_t n = 1 + rng() % 300;
    check_same(**ref, **m, pool_rows(rng, n, s.features, true), n);
    check_same(**ref, **m, pool_rows(rng, n, s.features, false), n);  // the NaN-free instance
  }
  CHECK(binned >= 45);  // every XGBoost case, and LightGBM ones without a zero band against its side
}

TEST_CASE("binned: rows equal to every threshold and its float neighbours", "[model][binned]") {
  if (!binned_here()) return;
  std::mt19937_64 rng(102);
  for (bool lgb : {false, true}) {
    SpecShape s;
    s.lightgbm = lgb;
    s.features = 3;
    s.trees = 30;
    s.max_depth = 8;
    const auto spec = pool_spec(rng, s, 100);
    auto ref = make_reference_model(spec);
    auto m = make_tree_ensemble(spec, binned_opts(TreeBinning::kAuto));
    REQUIRE(ref.ok());
    REQUIRE(m.ok());
    std::vector<float> rows;
    for (const Tree& t : spec.trees) {
      for (const TreeNode& nd : t.nodes) {
        if (nd.kind == SplitKind::kLeaf) continue;
        const float tf = static_cast<float>(nd.threshold);
        for (float x : {tf, std::nextafter(tf, kInff), std::nextafter(tf, -kInff), -tf}) {
          for (std::size_t f = 0; f < s.features; ++f) rows.push_back(f == static_cast<std::size_t>(nd.feature) ? x : pool_value(rng));
        }
      }
    }
    const std::size_t n = rows.size() / s.features;
    check_same(**ref, **m, rows, n);
  }
}

TEST_CASE("binned: features past 254 distinct thresholds take several code bytes", "[model][binned]") {
  if (!binned_here()) return;
  for (std::size_t distinct : {253u, 254u, 255u, 256u, 509u, 700u}) {
    // Stumps on feature 0, each a different threshold, NaN both ways.
    TreeEnsembleSpec spec;
    spec.info.num_features = 2;
    spec.info.features.resize(2);
    spec.base_margin = {0.25};
    for (std::size_t i = 0; i < distinct; ++i) {
      Tree t;
      TreeNode split;
      split.kind = SplitKind::kNumericLess;
      split.feature = 0;
      split.threshold = static_cast<double>(i) * 0.25 - 30.0;
      split.default_left = i % 3 == 0;
      split.left = 1;
      split.right = 2;
      TreeNode l, r;
      l.leaf_value = -0.001 * static_cast<double>(i);
      r.leaf_value = 0.002 * static_cast<double>(i % 17);
      t.nodes = {split, l, r};
      spec.trees.push_back(t);
    }
    compute_shape(spec);
    std::vector<float> rows;
    for (std::size_t i = 0; i <= distinct + 1; ++i) {
      const float x = static_cast<float>(i) * 0.25f - 30.0f;
      for (float y : {x, std::nextafter(x, -kInff), kNaNf, kInff, -kInff}) {
        rows.push_back(y);
        rows.push_back(1.0f);
      }
    }
    const std::size_t n = rows.size() / 2;
    auto ref = make_reference_model(spec);
    REQUIRE(ref.ok());
    auto m = make_tree_ensemble(spec, binned_opts());
    INFO(distinct << " distinct thresholds");
    REQUIRE(m.ok());
    CHECK(tree_binned_of(**m));
    check_same(**ref, **m, rows, n);
  }
}

TEST_CASE("binned: wide models, positions past the permute's reach, and the feature limits", "[model][binned]") {
  if (!binned_here()) return;
  std::mt19937_64 rng(103);
  for (std::size_t top_features : {100u, 140u}) {
    SpecShape s;
    s.features = 230;
    s.trees = 60;
    s.max_depth = 9;
    auto spec = pool_spec(rng, s, 30);
    // Top six levels read features < top_features, deeper ones any of 230.
    for (Tree& t : spec.trees) {
      std::vector<std::pair<std::int32_t, std::size_t>> stack{{0, 0}};
      while (!stack.empty()) {
        auto [i, d] = stack.back();
        stack.pop_back();
        TreeNode& nd = t.nodes[static_cast<std::size_t>(i)];
        if (nd.kind == SplitKind::kLeaf) continue;
        nd.feature = static_cast<std::int32_t>(d < detail::kBinTopLevels ? rng() % top_features : rng() % s.features);
        stack.push_back({nd.left, d + 1});
        stack.push_back({nd.right, d + 1});
      }
    }
    auto ref = make_reference_model(spec);
    REQUIRE(ref.ok());
    auto forced = make_tree_ensemble(spec, binned_opts());
    INFO("top levels read " << top_features << " features");
    // 100: levels 6-7 read past position 127, so V = 6 (the k6 instance at
    // depth 9); 140: the top six do too, so V < 6 (the runtime instance).
    REQUIRE(forced.ok());
    const std::size_t n = 200;
    check_same(**ref, **forced, pool_rows(rng, n, s.features, true), n);
    check_same(**ref, **forced, pool_rows(rng, n, s.features, false), n);
  }
  // More than 255 features read: refused, the heap kernel answers.
  SpecShape s;
  s.features = 400;
  s.trees = 80;
  s.max_depth = 8;
  const auto spec = pool_spec(rng, s, 10);
  auto forced = make_tree_ensemble(spec, binned_opts());
  if (!forced.ok()) CHECK(forced.status().message().find("features") != std::string::npos);
}

TEST_CASE("binned: two threads split a small batch by trees over binned slices", "[model][binned]") {
  if (!binned_here()) return;
  // Under 64 rows and >= 65536 tree-rows: predict_tree_split, each task a
  // slice of the trees.
  std::mt19937_64 rng(104);
  SpecShape s;
  s.features = 12;
  s.trees = 1200;
  s.max_depth = 7;
  s.outputs = 2;
  const auto spec = pool_spec(rng, s, 40);
  auto ref = make_reference_model(spec);
  auto m = make_tree_ensemble(spec, binned_opts());
  REQUIRE(ref.ok());
  REQUIRE(m.ok());
  for (std::size_t n : {60u, 63u}) check_same(**ref, **m, pool_rows(rng, n, s.features, true), n);
}

TEST_CASE("binned: a row's codes count the thresholds at or below each value", "[model][binned]") {
  if (!binned_here()) return;
  // A heap pack by hand: codes against an independent count over the
  // distinct float thresholds of each feature.
  std::mt19937_64 rng(105);
  for (int iter = 0; iter < 30; ++iter) {
    detail::HeapPack h;
    h.depth = 1 + rng() % 8;
    h.node_stride = h.leaf_stride = std::size_t{1} << h.depth;
    h.num_trees = 1 + rng() % 40;
    const std::size_t nf = 1 + rng() % 20;
    h.feat.assign(h.num_trees * h.node_stride + detail::kHeapPad, 0);
    h.thr.assign(h.num_trees * h.node_stride + detail::kHeapPad, kNaNf);
    h.leaf_f.assign(h.num_trees * h.leaf_stride + detail::kHeapPad, 0.0f);
    h.out.assign(h.num_trees, 0);
    std::vector<std::set<float>> want_thr(nf);  // std::set<float> merges -0 and 0 as the compare does
    const std::size_t pool = 1 + rng() % 600;
    for (std::size_t t = 0; t < h.num_trees; ++t) {
      for (std::size_t i = 0; i + 1 < h.node_stride; ++i) {
        const std::uint32_t f = static_cast<std::uint32_t>(rng() % nf);
        const float th = rng() % 8 == 0 ? kNaNf
                                        : (rng() % 2 ? edge_floats()[rng() % edge_floats().size()]
                                                     : static_cast<float>(rng() % pool) * 0.125f - 10.0f);
        h.feat[t * h.node_stride + i] = f | (rng() % 2 ? detail::kNanRight : 0u);
        h.thr[t * h.node_stride + i] = th;
        if (!std::isnan(th)) want_thr[f].insert(th);
      }
    }
    detail::BinnedPack b;
    const std::string why = detail::build_binned(h, nf, b);
    INFO("iteration " << iter << ": " << why);
    REQUIRE(why.empty());
    // Every feature's thresholds are covered by its positions, in order, at most 254 each.
    std::vector<std::size_t> covered(nf, 0);
    for (std::size_t p = 1; p < b.positions; ++p) {
      CHECK(b.thr_count[p] <= detail::kMaxBinThresholds);
      covered[b.pos_feature[p]] += b.thr_count[p];
    }
    for (std::size_t f = 0; f < nf; ++f) CHECK((covered[f] == want_thr[f].size() || covered[f] == 0));
    const detail::BinnedView v = detail::binned_view(b, h);
    alignas(64) std::uint8_t codes[2 * detail::kMaxBinPositions];
    std::vector<float> row(nf);
    for (int r = 0; r < 300; ++r) {
      for (float& x : row) {
        x = rng() % 3 == 0 ? static_cast<float>(rng() % pool) * 0.125f - 10.0f : pool_value(rng);
      }
      detail::binned_codes_avx512(v, row.data(), codes);
      CHECK(codes[0] == 0);
      CHECK(codes[v.half] == 1);
      for (std::size_t p = 1; p < v.positions; ++p) {
        const float x = row[v.pos_feature[p]];
        std::size_t want = detail::kBinNaN;
        if (!std::isnan(x)) {
          const std::vector<float> sorted(want_thr[v.pos_feature[p]].begin(), want_thr[v.pos_feature[p]].end());
          want = 0;
          for (std::size_t k = b.thr_first[p]; k < b.thr_first[p] + b.thr_count[p]; ++k) want += x >= sorted[k] ? 1 : 0;
        }
        INFO("position " << p << " feature " << v.pos_feature[p] << " x " << x);
        REQUIRE(codes[p] == want);
        REQUIRE(codes[v.half + p] == static_cast<std::uint8_t>(want + 1));
        REQUIRE(detail::bin_code_reference(v, p, x) == want);
      }
    }
  }
}

namespace {

// Loads path twice (reference, binned forced) and compares them on rows
// (plus the rows knocked onto edge values); false when the binned kernel
// refuses the model (note says why).
bool check_file(const std::string& path, std::vector<double> drows, std::size_t cols, std::mt19937_64& rng,
                std::string& note) {
  auto ref = load_with(path, TreeKernel::kReference);
  if (!ref.ok() || (*ref)->info().num_trees == 0) {
    note = ref.ok() ? "no trees" : ref.status().to_string();
    return false;
  }
  const ModelInfo& mi = (*ref)->info();
  if (cols != mi.num_features) {
    note = "rows do not have the model's features";
    return false;
  }
  LoadOptions lo;
  lo.tree = binned_opts();
  auto m = load_model(path, lo);
  if (!m.ok()) {
    note = m.status().message();
    return false;
  }
  CHECK(tree_binned_of(**m));
  const std::size_t base = drows.size() / cols;
  for (std::size_t r = 0; r < std::min<std::size_t>(base, 64); ++r) {
    for (std::size_t c = 0; c < cols; ++c) {
      const double x = drows[r * cols + c];
      drows.push_back(rng() % 4 == 0 ? static_cast<double>(pool_value(rng)) : x);
    }
  }
  const std::size_t n = std::min<std::size_t>(drows.size() / cols, 3000);
  drows.resize(n * cols);
  check_same(**ref, **m, std::vector<float>(drows.begin(), drows.end()), n);
  return true;
}

}  // namespace

TEST_CASE("binned: every fixture the kernel accepts matches the reference bit for bit", "[model][binned][fixtures]") {
  if (!binned_here()) return;
  std::mt19937_64 rng(106);
  std::size_t accepted = 0, refused = 0;
  for_each_fixture([&](std::string_view lib, const std::string& file, const std::string& model,
                       const std::string& input) {
    std::size_t cols = 0;
    std::vector<double> rows = read_fixture_rows(input, cols);
    std::string note;
    INFO(lib << "/" << file);
    if (check_file(model, rows, cols, rng, note)) {
      ++accepted;
    } else {
      ++refused;
      UNSCOPED_INFO(lib << "/" << file << " keeps its kernel: " << note);
    }
  });
  WARN("fixtures: " << accepted << " binned, " << refused << " not");
  CHECK(accepted >= 30);
}

TEST_CASE("binned: models in the wild it accepts match the reference bit for bit", "[model][binned][wild]") {
  if (!binned_here()) return;
  namespace fs = std::filesystem;
  // The corpus sits beside the source tree (<source>/../shared, as
  // tests/cli/test_models_in_the_wild.sh finds it) or where
  // KEEL_WILD_MODELS says. Absent, the test fails: a skip would pass
  // silently.
  const char* env = std::getenv("KEEL_WILD_MODELS");
  fs::path dir = env ? fs::path(env) : fs::path(KEEL_SOURCE_DIR) / ".." / "shared" / "models-in-the-wild";
  if (!env && !fs::exists(dir)) dir = "/work/shared/models-in-the-wild";
  INFO("models-in-the-wild: " << dir.string() << " (set KEEL_WILD_MODELS to point elsewhere)");
  REQUIRE(fs::exists(dir / "check.py"));
  std::mt19937_64 rng(107);
  std::size_t accepted = 0, refused = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::path case_json = entry.path() / "case.json";
    if (!fs::exists(case_json)) continue;
    std::ifstream cj(case_json);
    const std::string text((std::istreambuf_iterator<char>(cj)), std::istreambuf_iterator<char>());
    const auto p = text.find("\"model\": \"");
    REQUIRE(p != std::string::npos);
    const auto q = text.find('"', p + 10);
    const fs::path model = entry.path() / text.substr(p + 10, q - p - 10);
    auto ref = load_with(model.string(), TreeKernel::kReference);
    if (!ref.ok() || (*ref)->info().num_trees == 0) continue;
    const ModelInfo& mi = (*ref)->info();
    std::vector<double> rows;
    std::size_t n = 0;
    if (!read_named_csv((entry.path() / "input.csv").string(), mi, rows, n, 1000)) continue;
    std::string note;
    INFO(entry.path().filename().string());
    if (check_file(model.string(), rows, mi.num_features, rng, note)) {
      ++accepted;
    } else {
      ++refused;
      UNSCOPED_INFO(entry.path().filename().string() << " keeps its kernel: " << note);
    }
  }
  WARN("models in the wild: " << accepted << " binned, " << refused << " not");
  CHECK(accepted >= 20);
}

TEST_CASE("binned: the switch, the note and the memory", "[model][binned]") {
  std::mt19937_64 rng(108);
  SpecShape s;
  s.features = 10;
  s.max_depth = 6;
  const auto spec = pool_spec(rng, s, 20);
  auto off = make_tree_ensemble(spec, binned_opts(TreeBinning::kOff));
  REQUIRE(off.ok());
  CHECK(!tree_binned_of(**off));
  CHECK(tree_memory_of(**off).binned == 0);
  CHECK(!tree_binning_note(**off).empty());
  TreeEnsembleOptions compact;
  compact.layout = TreeLayout::kCompact;
  compact.binning = TreeBinning::kOn;
  auto c = make_tree_ensemble(spec, compact);
  REQUIRE(!c.ok());
  CHECK(c.status().message().find("heap layout") != std::string::npos);
  TreeEnsembleOptions scalar;
  scalar.kernel = TreeKernel::kScalar;
  scalar.binning = TreeBinning::kOn;
  CHECK(!make_tree_ensemble(spec, scalar).ok());
  if (!binned_here()) return;
  auto on = make_tree_ensemble(spec, binned_opts());
  REQUIRE(on.ok());
  CHECK(tree_binned_of(**on));
  CHECK(tree_binning_note(**on).empty());
  CHECK(tree_memory_of(**on).binned > 0);
  CHECK(tree_kernel_of(**on) == TreeKernel::kAvx512);
  CHECK(tree_layout_of(**on) == TreeLayout::kHeap);
}
