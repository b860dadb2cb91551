// Once a thread is warm, explanations allocate nothing: contributions and
// leaf indices, float and float64 rows, single rows and batches, reason
// codes into a caller's buffer. This executable counts operator new.
#include "support/counting_new.hpp"

#include <keel/model/explain.hpp>
#include <keel/model/loaders.hpp>

#include "explain_testing.hpp"
#include "support/fixture_csv.hpp"

#include <catch2/catch.hpp>

#include <span>
#include <string>
#include <vector>

using namespace keel;
using namespace keel::testing;
using keel::test::AllocationCounter;

namespace {

using Case = ExplainCase;

Case load_case(const std::string& model_path, const std::string& rows_path) {
  Case c = load_explain_case(model_path, rows_path);
  REQUIRE(c.n >= 8);
  return c;
}

}  // namespace

TEST_CASE("explanations: warm calls allocate nothing", "[explain][alloc]") {
  {
    AllocationCounter probe;  // the counter sees allocations when armed
    auto* p = new int(1);
    CHECK(probe.count() == 1);
    delete p;
  }
  std::vector<Case> cases;
  for (const char* name : {"binary_logistic", "multi_softprob", "categorical", "dart", "depth12_200trees",
                           "missing_nan"}) {
    cases.push_back(load_case(kXgbDir + name + ".json", kXgbDir + name + ".explain.input.csv"));
  }
  cases.push_back(load_case(kLgbDir + "categorical.model.txt", kLgbDir + "categorical.input.csv"));
  cases.push_back(load_case(kLgbDir + "multiclass.model.txt", kLgbDir + "multiclass.input.csv"));
  Case linear = load_case(kXgbDir + "gblinear.json", kXgbDir + "gblinear.input.csv");

  auto run = [](const Case& c, std::size_t n, std::vector<float>& contribs, std::vector<std::int32_t>& leaves,
                bool tree) {
    const Model& m = *c.model;
    const std::size_t f = m.info().num_features;
    bool ok = true;
    for (std::size_t start = 0; start + n <= c.n; start += n) {
      const std::span<const float> rows(c.rows.data() + start * f, n * f);
      const std::span<const double> rows64(c.rows64.data() + start * f, n * f);
      const std::span<float> out(contribs.data(), n * contributions_width(m.info()));
      ok &= m.contributions(rows, n, out).is_ok();
      ok &= m.contributions(rows64, n, out).is_ok();
      if (tree) {
        const std::span<std::int32_t> lv(leaves.data(), n * leaf_indices_width(m.info()));
        ok &= m.leaf_indices(rows, n, lv).is_ok();
        ok &= m.leaf_indices(rows64, n, lv).is_ok();
      }
    }
    return ok;
  };

  for (const std::size_t n : {std::size_t{1}, std::size_t{8}}) {
    INFO("rows per call " << n);
    std::vector<float> contribs(8 * 400);
    std::vector<std::int32_t> leaves(8 * 4000);
    // Warm: every model once on this thread (the workspace grows to the largest).
    for (const Case& c : cases) REQUIRE(run(c, n, contribs, leaves, true));
    REQUIRE(run(linear, n, contribs, leaves, false));
    for (const Case& c : cases) {
      INFO(c.model->info().id);
      REQUIRE(contributions_width(c.model->info()) * 8 <= contribs.size());
      REQUIRE(leaf_indices_width(c.model->info()) * 8 <= leaves.size());
      AllocationCounter count;
      const bool ok = run(c, n, contribs, leaves, true);
      const long allocs = count.count();
      CHECK(ok);
      CHECK(allocs == 0);
    }
    AllocationCounter count;
    CHECK(run(linear, n, contribs, leaves, false));
    CHECK(count.count() == 0);
  }
}

TEST_CASE("reason codes into a caller's buffer allocate nothing", "[explain][alloc][reason]") {
  const Case c = load_case(kXgbDir + "feature_names.json", kXgbDir + "feature_names.explain.input.csv");
  const ModelInfo& mi = c.model->info();
  const auto names = reason_code_names(mi);
  const std::size_t f = mi.num_features;
  std::vector<float> contribs(contributions_width(mi));
  std::vector<ReasonCode> codes(5);
  REQUIRE(c.model->contributions(std::span<const float>(c.rows.data(), f), 1, contribs).is_ok());
  AllocationCounter count;
  bool ok = true;
  std::size_t written = 0;
  for (std::size_t r = 0; r < c.n; ++r) {
    ok &= c.model->contributions(std::span<const float>(c.rows.data() + r * f, f), 1, contribs).is_ok();
    auto n = top_reason_codes(contribs, names, std::span<const double>(c.rows64.data() + r * f, f),
                              ReasonMode::kMagnitude, codes);
    ok &= n.ok();
    if (n.ok()) written += *n;
  }
  const long allocs = count.count();
  CHECK(ok);
  CHECK(written > 0);
  CHECK(allocs == 0);
}
