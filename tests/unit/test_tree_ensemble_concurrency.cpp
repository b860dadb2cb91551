#include <keel/model/tree_ensemble.hpp>

#include "model/support/thread_pool.hpp"
#include "tree_ensemble_testing.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <utility>
#include <thread>
#include <vector>

using namespace keel;
using namespace keel::testing;

TEST_CASE("tree ensemble: results do not depend on the thread count", "[model][tree_ensemble][concurrency]") {
  // Batches of at least 65536 tree-rows go parallel: large ones split rows
  // among threads; those under 64 rows split the trees and add the leaves
  // in tree order afterwards. Both must answer as one thread does, bit for
  // bit (smaller batches stay on one thread).
  std::mt19937_64 rng(11);
  struct Shape {
    bool lgb;
    std::size_t depth, outputs, trees;
  };
  for (const Shape& sh : {Shape{false, 7, 1, 30}, Shape{false, 14, 1, 30}, Shape{true, 14, 2, 30}, Shape{true, 6, 1, 30},
                          Shape{false, 8, 1, 2000}, Shape{true, 12, 1, 2000}}) {
    SpecShape s;
    s.lightgbm = sh.lgb;
    s.features = 10;
    s.trees = sh.trees;
    s.max_depth = sh.depth;  // heap (<= 10) and compact layouts
    s.outputs = sh.outputs;
    s.max_nodes = 300;
    const auto spec = random_spec(rng, s);
    for (std::size_t n : sh.trees > 100 ? std::vector<std::size_t>{100, 40, 9} : std::vector<std::size_t>{3000, 40}) {
      const auto rows = random_rows(rng, n, s.features);
      for (TreeKernel k : available_kernels()) {
        auto m = make_tree_ensemble(spec, {k, TreeLayout::kAuto});
        REQUIRE(m.ok());
        // Margins: a transform may saturate and hide a different sum.
        for (OutputKind kind : {OutputKind::kMargin, OutputKind::kTransformed}) {
          std::vector<float> one(n * spec.info.width(kind));
          REQUIRE((*m)->predict(rows, n, one, {kind, 1}).is_ok());
          for (unsigned threads : {2u, 3u, 8u}) {
            std::vector<float> many(one.size());
            REQUIRE((*m)->predict(rows, n, many, {kind, threads}).is_ok());
            INFO("threads " << threads << ", kernel " << to_string(k) << ", layout "
                            << to_string(tree_layout_of(**m)) << ", rows " << n << ", depth " << sh.depth
                            << ", trees " << sh.trees);
            CHECK(same_bits(many, one));
          }
        }
      }
    }
  }
}

TEST_CASE("tree ensemble: concurrent multi-threaded batches share the pool safely",
          "[model][tree_ensemble][concurrency]") {
  // 4 callers at once, each batch large enough (80,000 tree-rows, above the
  // 65,536 threshold) to go to the pool's workers: 2000 rows split by rows,
  // 40 rows of 2000 trees split by trees.
  std::mt19937_64 rng(12);
  for (auto [trees, n] : {std::pair<std::size_t, std::size_t>{40, 2000}, {2000, 40}}) {
    SpecShape s;
    s.features = 6;
    s.trees = trees;
    const auto spec = random_spec(rng, s);
    const auto rows = random_rows(rng, n, s.features);
    for (TreeKernel k : available_kernels()) {
      auto m = make_tree_ensemble(spec, {k, TreeLayout::kAuto});
      REQUIRE(m.ok());
      std::vector<float> want(n);
      REQUIRE((*m)->predict(rows, n, want, {OutputKind::kTransformed, 1}).is_ok());
      const std::size_t before = detail::ThreadPool::instance().shared_runs();
      std::vector<std::vector<float>> got(4, std::vector<float>(n));
      std::vector<int> ok(4, 0), same(4, 0);
      std::vector<std::thread> callers;
      for (std::size_t c = 0; c < 4; ++c) {
        callers.emplace_back([&, c] {
          for (int rep = 0; rep < 5; ++rep) {
            std::fill(got[c].begin(), got[c].end(), -1.0f);
            ok[c] += (*m)->predict(rows, n, got[c], {OutputKind::kTransformed, 2}).is_ok();
            same[c] += same_bits(got[c], want);
          }
        });
      }
      for (auto& t : callers) t.join();
      INFO("kernel " << to_string(k) << ", rows " << n);
      for (std::size_t c = 0; c < 4; ++c) {
        CHECK(ok[c] == 5);
        CHECK(same[c] == 5);
      }
      // Every one of the 20 batches went to the pool.
      CHECK(detail::ThreadPool::instance().shared_runs() - before >= 20);
    }
  }
}
