// Explanations from many threads on shared models: every thread's
// contributions and leaf indices equal, bit for bit, what one thread
// computed alone, while threads grow their workspaces at different times
// (models of different sizes in different orders). Run under TSan too.
#include <keel/model/explain.hpp>
#include <keel/model/loaders.hpp>

#include "explain_testing.hpp"
#include "support/fixture_csv.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <span>
#include <string>
#include <thread>
#include <vector>

using namespace keel;
using namespace keel::testing;

namespace {

struct Case : ExplainCase {
  std::vector<float> contribs, contribs64;  // one thread's answer
  std::vector<std::int32_t> leaves;
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("explanations: concurrent callers get one thread's answers", "[explain][concurrency]") {
  std::vector<Case> cases;
  auto add = [&](const std::string& model, const std::string& rows) {
    Case c{load_explain_case(model, rows), {}, {}, {}};
    // 24 rows each keep the TSan run short; the threads still overlap on every model.
    c.n = std::min<std::size_t>(c.n, 24);
    c.rows.resize(c.n * c.model->info().num_features);
    c.rows64.resize(c.rows.size());
    const ModelInfo& mi = c.model->info();
    c.contribs.resize(c.n * contributions_width(mi));
    c.contribs64.resize(c.contribs.size());
    c.leaves.resize(c.n * leaf_indices_width(mi));
    REQUIRE(c.model->contributions(std::span<const float>(c.rows), c.n, c.contribs).is_ok());
    REQUIRE(c.model->contributions(std::span<const double>(c.rows64), c.n, c.contribs64).is_ok());
    REQUIRE(c.model->leaf_indices(std::span<const float>(c.rows), c.n, c.leaves).is_ok());
    cases.push_back(std::move(c));
  };
  // Small to large, so a thread starting on a different case grows its workspace at another moment.
  for (const char* name : {"binary_logistic", "multi_softprob", "categorical", "depth12_200trees", "dart"}) {
    add(kXgbDir + name + ".json", kXgbDir + name + ".explain.input.csv");
  }
  add(kLgbDir + "categorical.model.txt", kLgbDir + "categorical.input.csv");
  add(kLgbDir + "deep255.model.txt", kLgbDir + "deep255.input.csv");

  constexpr int kThreads = 4;
  constexpr int kRounds = 2;
  std::atomic<int> mismatches{0}, errors{0}, calls{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int round = 0; round < kRounds; ++round) {
        for (std::size_t i = 0; i < cases.size(); ++i) {
          const Case& c = cases[(i + static_cast<std::size_t>(t)) % cases.size()];
          const Model& m = *c.model;
          const std::size_t f = m.info().num_features, cw = contributions_width(m.info()),
                            lw = leaf_indices_width(m.info());
          // Thread t uses batches of t + 1 rows (1 = the single-row path), the rest in one call.
          const std::size_t batch = static_cast<std::size_t>(t) + 1;
          std::vector<float> got(c.contribs.size()), got64(c.contribs.size());
          std::vector<std::int32_t> leaves(c.leaves.size());
          for (std::size_t r = 0; r < c.n; r += batch) {
            const std::size_t n = std::min(batch, c.n - r);
            bool ok = m.contributions(std::span<const float>(c.rows.data() + r * f, n * f), n,
                                      std::span<float>(got.data() + r * cw, n * cw))
                          .is_ok();
            ok &= m.contributions(std::span<const double>(c.rows64.data() + r * f, n * f), n,
                                  std::span<float>(got64.data() + r * cw, n * cw))
                      .is_ok();
            ok &= m.leaf_indices(std::span<const float>(c.rows.data() + r * f, n * f), n,
                                 std::span<std::int32_t>(leaves.data() + r * lw, n * lw))
                      .is_ok();
            if (!ok) errors.fetch_add(1);
            calls.fetch_add(3);
          }
          if (!same_bits(got, c.contribs) || !same_bits(got64, c.contribs64) || leaves != c.leaves) {
            mismatches.fetch_add(1);
          }
        }
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  CHECK(mismatches == 0);
  CHECK(calls > 0);
}
