// score_batch() under concurrency: duplicates of one batch id computed once
// with every caller getting the same per-row answers; batches sharing an
// LruCache from many threads always answer each row exactly; replays of
// many ids in parallel. Run under TSan by CI (*_concurrency.cpp).

#include <catch2/catch.hpp>

#include "unit/engine_test_util.hpp"

#include <keel/engine/scoring_engine.hpp>

#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

using keel::test::linear;

namespace {

// x0 + 2 x1 (missing counts 0), NaN for a negative x0; blocks every call
// while `hold` is set.
class GatedModel final : public keel::Model {
 public:
  GatedModel() {
    info_.id = "gated";
    info_.num_features = 2;
    info_.features.resize(2);
    info_.version = keel::next_model_version();
  }
  [[nodiscard]] const keel::ModelInfo& info() const noexcept override { return info_; }
  [[nodiscard]] keel::Status predict(std::span<const float> rows, std::size_t n, std::span<float> out,
                                     const keel::PredictOptions& opts = {}) const noexcept override {
    if (keel::Status s = check_shapes(rows.size(), n, out.size(), opts); !s) return s;
    while (hold.load()) std::this_thread::yield();
    calls.fetch_add(1);
    for (std::size_t r = 0; r < n; ++r) {
      const float x0 = std::isnan(rows[2 * r]) ? 0.f : rows[2 * r];
      const float x1 = std::isnan(rows[2 * r + 1]) ? 0.f : rows[2 * r + 1];
      out[r] = x0 < 0 ? std::nanf("") : x0 + 2.f * x1;
    }
    return keel::Status::ok();
  }
  using Model::predict;
  mutable std::atomic<bool> hold{false};
  mutable std::atomic<int> calls{0};

 private:
  keel::ModelInfo info_;
};

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

}  // namespace

TEST_CASE("batch concurrency: duplicates of one batch id compute once and all get its per-row answers",
          "[engine][batch][concurrency]") {
  auto model = std::make_shared<GatedModel>();
  auto store = std::make_shared<keel::InMemoryIdempotencyStore>();
  auto engine = keel::EngineBuilder()
                    .model("primary", model)
                    .stage("primary")
                    .default_scores({-1.f})
                    .idempotency(store)
                    .build();
  model->calls = 0;
  // Row 2 scores NaN on the model: it falls to the default, degraded; the
  // others are the primary's.
  const std::vector<float> rows = {1, 2, 3, 4, -1, 1, 5, 6};
  constexpr int kCallers = 8;
  std::vector<keel::BatchResult> results(kCallers);
  std::vector<keel::Status> status(kCallers, keel::internal_error("not run"));
  model->hold = true;
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      status[i] = engine->score_batch({rows, 4, 2}, results[i], keel::Deadline::never(), {}, "batch-1");
    });
  }
  // Release the flight only when every other caller has joined it.
  while (store->waiting("batch-1") < kCallers - 1) std::this_thread::yield();
  model->hold = false;
  for (auto& t : threads) t.join();
  CHECK(model->calls == 1);
  CHECK(store->stats().computed == 1);
  CHECK(store->stats().joined == kCallers - 1);
  for (int i = 0; i < kCallers; ++i) {
    REQUIRE(status[i].is_ok());
    const keel::BatchResult& b = results[i];
    REQUIRE(b.rows == 4);
    CHECK(b.id == "batch-1");
    CHECK(same_bits(b.scores, results[0].scores));
    CHECK(b.stage == std::vector<std::uint8_t>{0, 0, 1, 0});
    CHECK(b.degraded == 1);
    CHECK(b.degraded_reason[2] == results[0].degraded_reason[2]);
    CHECK_FALSE(b.degraded_reason[2].empty());
    CHECK(b.attempts == results[0].attempts);
  }
  CHECK(results[0].scores[0] == 5.f);
  CHECK(results[0].scores[2] == -1.f);
  // Later: a replay, and the same id with other rows is a conflict.
  keel::BatchResult again;
  REQUIRE(engine->score_batch({rows, 4, 2}, again, keel::Deadline::never(), {}, "batch-1").is_ok());
  CHECK(model->calls == 1);
  CHECK(same_bits(again.scores, results[0].scores));
  const std::vector<float> other = {1, 2, 3, 4, 0, 1, 5, 7};
  CHECK(engine->score_batch({other, 4, 2}, again, keel::Deadline::never(), {}, "batch-1").code() ==
        keel::StatusCode::kConflict);
}

TEST_CASE("batch concurrency: batches sharing a cache from many threads answer every row exactly",
          "[engine][batch][concurrency]") {
  auto model = linear({1.f, 2.f}, 0.5f);
  keel::LruCacheOptions co;
  co.max_entries = 48;  // evictions while threads race
  co.shards = 4;
  auto cache = std::make_shared<keel::LruCache>(co);
  auto store = std::make_shared<keel::InMemoryIdempotencyStore>();
  auto engine =
      keel::EngineBuilder().model("primary", model).stage("primary").cache(cache).idempotency(store).build();
  constexpr int kThreads = 4;
  std::atomic<int> wrong{0}, failed{0}, replay_mismatch{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      keel::BatchResult out, replay;
      std::vector<float> rows;
      for (int i = 0; i < 300; ++i) {
        // 16 rows from a pool of 100: the threads hit each other's entries.
        rows.clear();
        for (int r = 0; r < 16; ++r) {
          const int k = (i * 37 + r * 11 + t * 5) % 100;
          rows.push_back(float(k));
          rows.push_back(float(k % 7));
        }
        // Every third batch carries an id, replayed at once.
        const std::string id = i % 3 == 0 ? "t" + std::to_string(t) + "-" + std::to_string(i) : std::string();
        if (!engine->score_batch({rows, 16, 2}, out, keel::Deadline::never(), {}, id).is_ok()) {
          ++failed;
          continue;
        }
        for (int r = 0; r < 16; ++r) {
          const float want = 0.5f + rows[2 * r] + 2.f * rows[2 * r + 1];
          if (out.stage[r] != 0 || out.scores[r] != want) ++wrong;
        }
        if (!id.empty()) {
          if (!engine->score_batch({rows, 16, 2}, replay, keel::Deadline::never(), {}, id).is_ok() ||
              !same_bits(replay.scores, out.scores) || replay.cache_hit != out.cache_hit) {
            ++replay_mismatch;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failed == 0);
  CHECK(wrong == 0);
  CHECK(replay_mismatch == 0);
  const keel::CacheStats cs = cache->stats();
  CHECK(cs.hits > 0);
  CHECK(cs.insertions > 0);
  CHECK(cs.entries <= 48);
  CHECK(store->stats().replayed == kThreads * 100);
}
