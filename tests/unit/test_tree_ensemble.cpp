#include <keel/model/loaders.hpp>
#include <keel/model/reference_evaluator.hpp>
#include <keel/model/tree_ensemble.hpp>

#include "tree_ensemble_testing.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

using namespace keel;
using namespace keel::testing;

namespace {

struct Outputs {
  std::vector<float> margin, transformed;
};

Outputs run(const Model& m, const std::vector<float>& rows, std::size_t n, bool one_by_one = false) {
  Outputs o;
  const ModelInfo& mi = m.info();
  o.margin.resize(n * mi.num_margin_outputs);
  o.transformed.resize(n * mi.num_outputs);
  for (OutputKind kind : {OutputKind::kMargin, OutputKind::kTransformed}) {
    std::vector<float>& out = kind == OutputKind::kMargin ? o.margin : o.transformed;
    PredictOptions opts;
    opts.output = kind;
    if (!one_by_one) {
      REQUIRE(m.predict(rows, n, out, opts).is_ok());
      continue;
    }
    const std::size_t f = mi.num_features, w = mi.width(kind);
    for (std::size_t r = 0; r < n; ++r) {
      REQUIRE(m.predict_row(std::span<const float>(rows).subspan(r * f, f), std::span<float>(out).subspan(r * w, w),
                            opts)
                  .is_ok());
    }
  }
  return o;
}

// Every kernel and layout that accepts the spec, against the reference.
// Without NaN rows, kernels take their NaN-free instances.
void check_all_engines(const TreeEnsembleSpec& spec, std::mt19937_64& rng, std::size_t n, bool nan_rows = true) {
  auto ref = make_reference_model(spec);
  REQUIRE(ref.ok());
  std::vector<float> rows = random_rows(rng, n, spec.info.num_features);
  if (!nan_rows) {
    for (float& x : rows) x = std::isnan(x) ? static_cast<float>(rng() % 7) - 3.0f : x;
  }
  const Outputs want = run(**ref, rows, n);
  const Outputs want_one = run(**ref, rows, std::min<std::size_t>(n, 9), true);
  for (TreeLayout layout : {TreeLayout::kCompact, TreeLayout::kHeap}) {
    for (TreeKernel kernel : available_kernels()) {
      auto m = make_tree_ensemble(spec, {kernel, layout});
      if (!m.ok()) {
        REQUIRE(layout == TreeLayout::kHeap);  // only the heap may refuse a model
        CHECK(m.code() == StatusCode::kInvalidInput);
        continue;
      }
      INFO("layout " << to_string(layout) << ", kernel " << to_string(tree_kernel_of(**m)) << ", rows " << n
                     << ", depth " << spec.info.max_depth);
      CHECK(tree_layout_of(**m) == layout);
      const Outputs got = run(**m, rows, n);
      CHECK(same_bits(got.margin, want.margin));
      CHECK(same_bits(got.transformed, want.transformed));
      const Outputs got_one = run(**m, rows, std::min<std::size_t>(n, 9), true);
      CHECK(same_bits(got_one.margin, want_one.margin));
      CHECK(same_bits(got_one.transformed, want_one.transformed));
      // Without the single-row copy, single rows walk the batch layout.
      auto lean = make_tree_ensemble(spec, {kernel, layout, true, false});
      REQUIRE(lean.ok());
      const TreeMemory full = tree_memory_of(**m), cut = tree_memory_of(**lean);
      CHECK(cut.row == 0);
      CHECK(cut.heap == full.heap);
      CHECK(cut.compact_simd == full.compact_simd);
      if (full.compact_simd > 0) CHECK(cut.compact <= spec.trees.size() * sizeof(std::uint32_t));  // the roots stay
      CHECK(cut.total() <= full.total());
      const Outputs lean_one = run(**lean, rows, std::min<std::size_t>(n, 9), true);
      CHECK(same_bits(lean_one.margin, want_one.margin));
      CHECK(same_bits(lean_one.transformed, want_one.transformed));
    }
  }
}

}  // namespace

TEST_CASE("tree ensemble: XGBoost-semantics random models match the reference bit for bit", "[model][tree_ensemble]") {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 60; ++i) {
    SpecShape s;
    s.features = 1 + rng() % 12;
    s.outputs = 1 + (i % 5 == 0 ? rng() % 3 : 0);
    s.trees = 1 + rng() % 40;
    s.max_depth = 1 + rng() % 12;
    s.leaf_prob = (rng() % 4) * 0.1;
    s.dart = i % 3 == 0;
    const auto spec = random_spec(rng, s);
    check_all_engines(spec, rng, 1 + rng() % 300);
  }
}

TEST_CASE("tree ensemble: NaN-free batches take the kernels' fast instances and still match", "[model][tree_ensemble]") {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 40; ++i) {
    SpecShape s;
    s.lightgbm = i % 2 == 1;
    s.features = 1 + rng() % 30;
    s.outputs = 1 + (i % 5 == 0 ? rng() % 3 : 0);
    s.trees = 1 + rng() % 40;
    s.max_depth = 3 + rng() % 8;  // around the column-compare top levels
    s.leaf_prob = (rng() % 3) * 0.1;
    const auto spec = random_spec(rng, s);
    check_all_engines(spec, rng, 1 + rng() % 300, false);
  }
}

TEST_CASE("tree ensemble: LightGBM-semantics random models match the reference bit for bit", "[model][tree_ensemble]") {
  std::mt19937_64 rng(2);
  for (int i = 0; i < 60; ++i) {
    SpecShape s;
    s.lightgbm = true;
    s.features = 1 + rng() % 12;
    s.outputs = 1 + (i % 4 == 0 ? rng() % 4 : 0);
    s.trees = 1 + rng() % 40;
    s.max_depth = 1 + rng() % 12;
    s.leaf_prob = (rng() % 4) * 0.1;
    const auto spec = random_spec(rng, s);
    check_all_engines(spec, rng, 1 + rng() % 300);
  }
}

TEST_CASE("tree ensemble: deep, unbalanced, categorical and linear-leaf models use the compact walk exactly",
          "[model][tree_ensemble]") {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 40; ++i) {
    SpecShape s;
    s.lightgbm = i % 2 == 0;
    s.features = 1 + rng() % 10;
    s.outputs = 1 + rng() % 2;
    s.trees = 1 + rng() % 20;
    s.max_depth = 10 + rng() % 11;  // up to 20
    s.leaf_prob = 0.05 + (rng() % 4) * 0.1;
    s.categorical = i % 3 == 0 ? 0.3 : 0.0;
    s.linear = i % 4 == 1 ? 0.5 : 0.0;
    s.dart = !s.lightgbm && i % 5 == 0;
    const auto spec = random_spec(rng, s);
    check_all_engines(spec, rng, 1 + rng() % 200);
    auto m = make_tree_ensemble(spec);
    REQUIRE(m.ok());
    if (spec.info.max_depth > kMaxHeapDepth || s.categorical > 0 || s.linear > 0) {
      CHECK(tree_layout_of(**m) == TreeLayout::kCompact);
    }
  }
}

TEST_CASE("tree ensemble: shallow numeric models choose the heap layout and the best kernel", "[model][tree_ensemble]") {
  std::mt19937_64 rng(4);
  SpecShape s;
  s.max_depth = 6;
  auto m = make_tree_ensemble(random_spec(rng, s));
  REQUIRE(m.ok());
  CHECK(tree_layout_of(**m) == TreeLayout::kHeap);
  CHECK(tree_kernel_of(**m) == default_tree_kernel());
}

TEST_CASE("tree ensemble: models too wide for the SIMD kernels' 32-bit row offsets take the scalar walk",
          "[model][tree_ensemble]") {
  // 128-row blocks of 2^24 features would overflow int32 offsets. (The
  // spec's feature list alone is 640 MB: few copies.)
  std::mt19937_64 rng(5);
  SpecShape s;
  s.features = 3;
  s.trees = 4;
  s.max_depth = 5;
  auto spec = random_spec(rng, s);
  spec.info.num_features = std::size_t{1} << 24;
  spec.info.features.resize(spec.info.num_features);
  spec.trees[0].nodes[0].feature = static_cast<std::int32_t>((std::size_t{1} << 24) - 1);
  std::vector<float> rows(2 * spec.info.num_features, 0.25f);
  rows[spec.info.num_features - 1] = 7.0f;
  std::vector<double> want(2 * spec.info.num_margin_outputs);
  for (std::size_t r = 0; r < 2; ++r) {
    const std::vector<double> row(rows.begin() + static_cast<std::ptrdiff_t>(r * spec.info.num_features),
                                  rows.begin() + static_cast<std::ptrdiff_t>((r + 1) * spec.info.num_features));
    reference_margin(spec, row, std::span<double>(want).subspan(r * spec.info.num_margin_outputs, spec.info.num_margin_outputs));
  }
  for (TreeKernel k : available_kernels()) {
    if (k == TreeKernel::kScalar) continue;
    auto m = make_tree_ensemble(spec, {k, TreeLayout::kAuto});
    INFO("asked for " << to_string(k) << ": " << m.status().to_string());
    REQUIRE(m.ok());
    CHECK(tree_kernel_of(**m) == TreeKernel::kScalar);
    std::vector<float> got(want.size());
    REQUIRE((*m)->predict(rows, 2, got, {OutputKind::kMargin, 1}).is_ok());
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == static_cast<float>(want[i]));
  }
}

TEST_CASE("tree ensemble: single rows through the blocked layout, every heap depth, match the reference",
          "[model][tree_ensemble][row]") {
  // Heap models with >= 16 trees answer single rows from the blocked
  // layout (3 levels per block, the top chunk takes depth % 3): every depth,
  // tree counts that leave a partial last group of 16, rows with and
  // without NaN (NaN-right bits), float and double accumulation, several
  // outputs.
  std::mt19937_64 rng(11);
  for (std::size_t depth = 1; depth <= kMaxHeapDepth; ++depth) {
    for (std::size_t trees : {16u, 17u, 31u, 40u}) {
      for (bool lgb : {false, true}) {
        SpecShape s;
        s.lightgbm = lgb;
        s.features = 1 + rng() % 20;
        s.outputs = trees == 31 ? 3 : 1;
        s.trees = trees;
        s.max_depth = depth;
        s.leaf_prob = trees == 40 ? 0.2 : 0.0;
        s.dart = !lgb && trees == 17;
        auto spec = random_spec(rng, s);
        for (Tree& t : spec.trees) {  // a zero band against its side would need the compact layout
          for (TreeNode& nd : t.nodes) {
            if (nd.missing == MissingType::kZero) nd.missing = MissingType::kNaN;
          }
        }
        constexpr std::size_t n = 24;
        std::vector<float> rows = random_rows(rng, n, s.features);
        for (std::size_t i = 0; i < rows.size() / 2; ++i) {
          if (rows[i] != rows[i]) rows[i] = 0.5f;  // the first half of the rows without NaN
        }
        auto ref = make_reference_model(spec);
        REQUIRE(ref.ok());
        const Outputs want = run(**ref, rows, n);
        auto m = make_tree_ensemble(spec, {TreeKernel::kAuto, TreeLayout::kHeap});
        REQUIRE(m.ok());
        CHECK(tree_memory_of(**m).row > 0);  // the blocked layout was built
        INFO("depth " << depth << " (model " << spec.info.max_depth << "), trees " << trees << ", lightgbm " << lgb);
        const Outputs got = run(**m, rows, n, true);
        CHECK(same_bits(got.margin, want.margin));
        CHECK(same_bits(got.transformed, want.transformed));
      }
    }
  }
}

TEST_CASE("tree ensemble: threshold edges in float and double", "[model][tree_ensemble]") {
  // LightGBM thresholds between two floats, exactly on a float, and at the
  // float range's edges; XGBoost thresholds that round when narrowed.
  for (bool lgb : {false, true}) {
    for (double t : {0.1, -0.1, 0.5, 1.0 / 3.0, 0.0, -0.0, 3.4e38, 1e39, -1e39,
                     static_cast<double>(std::numeric_limits<float>::max()), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()}) {
      TreeEnsembleSpec spec;
      spec.info.num_features = 1;
      spec.info.features.resize(1);
      spec.base_margin = {0.0};
      spec.arithmetic = lgb ? Arithmetic::kLightGBM : Arithmetic::kXGBoost;
      Tree tree;
      TreeNode split;
      split.kind = lgb ? SplitKind::kNumericLessEqual : SplitKind::kNumericLess;
      split.feature = 0;
      split.threshold = t;
      split.left = 1;
      split.right = 2;
      TreeNode l, r;
      l.leaf_value = -1;
      r.leaf_value = 1;
      tree.nodes = {split, l, r};
      spec.trees.push_back(tree);
      compute_shape(spec);
      std::vector<float> rows;
      const float tf = static_cast<float>(t);
      for (float x : {tf, std::nextafter(tf, kInff), std::nextafter(tf, -kInff), 0.0f, -0.0f, kInff, -kInff, kNaNf,
                      std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()}) {
        rows.push_back(x);
      }
      std::mt19937_64 rng(5);
      auto ref = make_reference_model(spec);
      REQUIRE(ref.ok());
      const Outputs want = run(**ref, rows, rows.size());
      for (TreeKernel k : available_kernels()) {
        for (TreeLayout layout : {TreeLayout::kHeap, TreeLayout::kCompact}) {
          auto m = make_tree_ensemble(spec, {k, layout});
          REQUIRE(m.ok());
          INFO("threshold " << t << (lgb ? " lightgbm " : " xgboost ") << to_string(k) << " " << to_string(layout));
          CHECK(same_bits(run(**m, rows, rows.size()).margin, want.margin));
          CHECK(same_bits(run(**m, rows, rows.size(), true).margin, want.margin));
        }
      }
    }
  }
}

TEST_CASE("tree ensemble: double rows answer as the reference does", "[model][tree_ensemble]") {
  std::mt19937_64 rng(6);
  for (bool lgb : {false, true}) {
    SpecShape s;
    s.lightgbm = lgb;
    s.linear = lgb ? 0.2 : 0.0;
    const auto spec = random_spec(rng, s);
    auto ref = make_reference_model(spec);
    auto m = make_tree_ensemble(spec);
    REQUIRE(ref.ok());
    REQUIRE(m.ok());
    std::vector<double> rows;
    for (int i = 0; i < 50 * 8; ++i) rows.push_back(i % 7 == 0 ? 0.1 + 1e-12 * i : static_cast<double>(pick_value(rng)));
    std::vector<float> want(50), got(50);
    REQUIRE((*ref)->predict(std::span<const double>(rows), 50, want).is_ok());
    REQUIRE((*m)->predict(std::span<const double>(rows), 50, got).is_ok());
    CHECK(same_bits(got, want));
  }
}

TEST_CASE("tree ensemble: bad shapes and options are errors, not crashes", "[model][tree_ensemble]") {
  std::mt19937_64 rng(7);
  SpecShape s;
  s.features = 4;
  const auto spec = random_spec(rng, s);
  auto m = make_tree_ensemble(spec);
  REQUIRE(m.ok());
  std::vector<float> rows(4 * 3), out(2);
  const Status st = (*m)->predict(rows, 3, out);
  CHECK(st.code() == StatusCode::kInvalidInput);
  CHECK(st.message().find("out") != std::string::npos);
  std::vector<float> out3(3);
  CHECK((*m)->predict(std::span<const float>(rows).first(11), 3, out3).code() == StatusCode::kInvalidInput);
  CHECK((*m)->predict(std::span<const float>(), 0, std::span<float>()).is_ok());

  SpecShape deep;
  deep.max_depth = kMaxHeapDepth + 2;
  deep.leaf_prob = 0;
  deep.trees = 2;
  auto refused = make_tree_ensemble(random_spec(rng, deep), {TreeKernel::kAuto, TreeLayout::kHeap});
  CHECK(refused.code() == StatusCode::kInvalidInput);

  TreeEnsembleSpec broken = spec;
  broken.trees[0].nodes[0].left = 999;
  auto bad = make_tree_ensemble(broken);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("tree 0 node 0") != std::string::npos);
}

TEST_CASE("tree ensemble: kernel names, support and the process-wide override", "[model][tree_ensemble]") {
  TreeKernel k = TreeKernel::kAuto;
  CHECK(parse_tree_kernel("avx2", k));
  CHECK(k == TreeKernel::kAvx2);
  CHECK_FALSE(parse_tree_kernel("sse9", k));
  CHECK(tree_kernel_supported(TreeKernel::kScalar));
  const TreeKernel before = default_tree_kernel();
  REQUIRE(set_default_tree_kernel(TreeKernel::kScalar).is_ok());
  CHECK(default_tree_kernel() == TreeKernel::kScalar);
  std::mt19937_64 rng(8);
  auto m = make_tree_ensemble(random_spec(rng, SpecShape{}));
  REQUIRE(m.ok());
  CHECK(tree_kernel_of(**m) == TreeKernel::kScalar);
  REQUIRE(set_default_tree_kernel(TreeKernel::kAuto).is_ok());
  CHECK(default_tree_kernel() == before);
  if (!tree_kernel_supported(TreeKernel::kAvx512)) {
    CHECK(set_default_tree_kernel(TreeKernel::kAvx512).code() == StatusCode::kInvalidInput);
  }
}


TEST_CASE("tree ensemble: every XGBoost and LightGBM fixture, every kernel, matches the reference bit for bit",
          "[model][tree_ensemble][fixtures]") {
  std::size_t checked = 0;
  std::mt19937_64 rng(9);
  for_each_fixture([&](std::string_view lib, const std::string& file, const std::string& model,
                       const std::string& input) {
    auto ref = load_with(model, TreeKernel::kReference);
    REQUIRE(ref.ok());
    if ((*ref)->info().num_trees == 0) return;  // linear models
    std::size_t cols = 0;
    std::vector<double> drows = read_fixture_rows(input, cols);
    REQUIRE(cols == (*ref)->info().num_features);
    // The fixture rows plus copies with random values knocked out or set on edges.
    const std::size_t base_rows = drows.size() / cols;
    for (std::size_t r = 0; r < std::min<std::size_t>(base_rows, 64); ++r) {
      for (std::size_t c = 0; c < cols; ++c) {
        const double x = drows[r * cols + c];
        drows.push_back(rng() % 4 == 0 ? static_cast<double>(pick_value(rng)) : x);
      }
    }
    const std::size_t n = drows.size() / cols;
    const std::vector<float> frows(drows.begin(), drows.end());
    const Outputs want = run(**ref, frows, n);
    const std::size_t w = (*ref)->info().num_outputs;
    std::vector<float> want_d(n * w);
    REQUIRE((*ref)->predict(std::span<const double>(drows), n, want_d).is_ok());
    for (TreeKernel k : available_kernels()) {
      auto m = load_with(model, k);
      REQUIRE(m.ok());
      INFO(lib << "/" << file << ", kernel " << to_string(k) << ", layout " << to_string(tree_layout_of(**m)));
      CHECK(tree_kernel_of(**m) != TreeKernel::kAuto);
      const Outputs got = run(**m, frows, n);
      CHECK(same_bits(got.margin, want.margin));
      CHECK(same_bits(got.transformed, want.transformed));
      const Outputs got_one = run(**m, frows, std::min<std::size_t>(n, 20), true);
      CHECK(same_bits(got_one.margin, std::vector<float>(want.margin.begin(), want.margin.begin() + got_one.margin.size())));
      std::vector<float> got_d(n * w);
      REQUIRE((*m)->predict(std::span<const double>(drows), n, got_d).is_ok());
      CHECK(same_bits(got_d, want_d));
      ++checked;
    }
  });
  CHECK(checked >= 40);
}
