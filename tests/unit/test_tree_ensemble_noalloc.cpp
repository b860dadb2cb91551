// Proves that single-row prediction never allocates: this executable
// replaces the global operator new and counts calls while armed.
#include <keel/model/tree_ensemble.hpp>

#include "tree_ensemble_testing.hpp"

#include <catch2/catch.hpp>

// GCC 12 at -O2/-O3 inlines std::allocator into the replaced operator delete
// below and reports malloc/free as a mismatched pair (they match).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<bool> g_armed{false};
std::atomic<long> g_news{0};

void* counted_alloc(std::size_t n) {
  if (g_armed.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

// Under ASan, objects Catch2 allocated before main (through the sanitizer's
// operator new) are released through this file's delete at exit; the
// mismatch report is about that hand-over, not about the code under test.
extern "C" const char* __asan_default_options() { return "alloc_dealloc_mismatch=0"; }

using namespace keel;
using namespace keel::testing;

TEST_CASE("tree ensemble: a single row allocates nothing", "[model][tree_ensemble][alloc]") {
  std::mt19937_64 rng(21);
  for (bool lgb : {false, true}) {
    for (std::size_t depth : {6u, 16u}) {  // heap and compact layouts
      SpecShape s;
      s.lightgbm = lgb;
      s.max_depth = depth;
      s.outputs = 3;
      s.trees = 40;
      s.categorical = depth > 10 ? 0.2 : 0.0;
      const auto spec = random_spec(rng, s);
      const auto rows = random_rows(rng, 1, s.features);
      for (TreeKernel k : available_kernels()) {
        auto m = make_tree_ensemble(spec, {k, TreeLayout::kAuto});
        REQUIRE(m.ok());
        std::vector<float> out(spec.info.num_outputs), margin(spec.info.num_margin_outputs);
        const Model& model = **m;
        // Sanity: the counter sees allocations when armed.
        g_news = 0;
        g_armed = true;
        auto* probe = new int(1);
        g_armed = false;
        delete probe;
        REQUIRE(g_news == 1);

        g_news = 0;
        g_armed = true;
        bool all_ok = true;
        for (int i = 0; i < 100; ++i) {
          all_ok &= model.predict_row(rows, out).is_ok();
          all_ok &= model.predict_row(rows, margin, {OutputKind::kMargin, 4}).is_ok();
        }
        g_armed = false;
        INFO("lightgbm " << lgb << ", depth " << depth << ", layout " << to_string(tree_layout_of(model)));
        CHECK(all_ok);
        CHECK(g_news == 0);
      }
    }
  }
}
