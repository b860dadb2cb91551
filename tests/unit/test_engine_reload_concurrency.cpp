#include <catch2/catch.hpp>

#include "unit/engine_test_util.hpp"

#include <keel/engine/scoring_engine.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <thread>
#include <vector>

using keel::test::linear;

TEST_CASE("reload under concurrent load loses no request and never mixes versions", "[engine][reload][concurrency]") {
  constexpr int kModels = 40;
  constexpr int kScorers = 4;
  // Model k answers k + 0 * x: its score says which model computed it.
  std::vector<std::shared_ptr<keel::test::LinearTestModel>> models;
  std::map<std::uint64_t, float> bias_of_version;
  for (int k = 0; k < kModels; ++k) {
    models.push_back(linear({0.f, 0.f}, float(k), "m"));
    bias_of_version[models.back()->info().version] = float(k);
  }
  keel::LruCacheOptions co;
  co.max_entries = 64;
  auto engine = keel::EngineBuilder()
                    .model("primary", models[0])
                    .stage("primary")
                    .cache(std::make_shared<keel::LruCache>(co))
                    .build();

  std::atomic<bool> done{false};
  std::atomic<int> failures{0}, mixed{0}, answered{0};
  std::vector<std::thread> scorers;
  for (int t = 0; t < kScorers; ++t) {
    scorers.emplace_back([&, t] {
      std::vector<float> row(2);
      for (int i = 0; !done.load() || i < 200; ++i) {
        row[0] = float(i % 8);  // few distinct rows: the cache is hit often
        row[1] = float(t);
        keel::Request r;
        r.features = row;
        auto res = engine->score(r);
        if (!res.ok()) {
          ++failures;
          continue;
        }
        ++answered;
        auto it = bias_of_version.find(res->model_version);
        if (it == bias_of_version.end() || res->scores.size() != 1 || res->scores[0] != it->second) ++mixed;
      }
    });
  }
  std::thread reloader([&] {
    for (int k = 1; k < kModels; ++k) REQUIRE(engine->reload("primary", models[k]).ok());
    done = true;
  });
  reloader.join();
  for (auto& s : scorers) s.join();
  CHECK(failures == 0);
  CHECK(mixed == 0);
  CHECK(answered >= kScorers * 200);
  CHECK(engine->model("primary")->info().version == models.back()->info().version);
}

TEST_CASE("batches during reloads use one model version each", "[engine][reload][concurrency]") {
  std::vector<std::shared_ptr<keel::test::LinearTestModel>> models;
  std::map<std::uint64_t, float> bias_of_version;
  for (int k = 0; k < 20; ++k) {
    models.push_back(linear({0.f}, float(k), "m"));
    bias_of_version[models.back()->info().version] = float(k);
  }
  auto engine = keel::EngineBuilder().model("primary", models[0]).stage("primary").build();
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread scorer([&] {
    std::vector<float> data(64, 1.f);
    keel::BatchResult out;
    for (int i = 0; !done.load() || i < 100; ++i) {
      if (!engine->score_batch({data, 64, 1}, out).is_ok()) {
        ++bad;
        continue;
      }
      const float want = bias_of_version.at(out.model_version);
      for (std::size_t r = 0; r < 64; ++r) bad += out.row_scores(r)[0] != want;
    }
  });
  for (int k = 1; k < 20; ++k) REQUIRE(engine->reload("primary", models[k]).ok());
  done = true;
  scorer.join();
  CHECK(bad == 0);
}

namespace {

// Blocks every call until `gate` says go; counts calls.
class GatedModel final : public keel::Model {
 public:
  explicit GatedModel(std::function<bool()> gate) : gate_(std::move(gate)) {
    info_.num_features = 1;
    info_.features.resize(1);
    info_.id = "gated";
    info_.version = keel::next_model_version();
  }
  const keel::ModelInfo& info() const noexcept override { return info_; }
  keel::Status predict(std::span<const float> rows, std::size_t n, std::span<float> out,
                       const keel::PredictOptions& o = {}) const noexcept override {
    if (auto s = check_shapes(rows.size(), n, out.size(), o); !s.is_ok()) return s;
    calls.fetch_add(1);
    while (armed.load() && !gate_()) std::this_thread::yield();
    for (std::size_t i = 0; i < n; ++i) out[i] = rows[i] * 2;
    return keel::Status::ok();
  }
  using keel::Model::predict;
  mutable std::atomic<int> calls{0};
  std::atomic<bool> armed{false};

 private:
  std::function<bool()> gate_;
  keel::ModelInfo info_;
};

}  // namespace

TEST_CASE("16 concurrent duplicate requests through the engine compute once", "[engine][idempotency][concurrency]") {
  constexpr int kCallers = 16;
  auto store = std::make_shared<keel::InMemoryIdempotencyStore>();
  auto model = std::make_shared<GatedModel>([&] { return store->waiting("order-7") == kCallers - 1; });
  auto engine =
      keel::EngineBuilder().model("primary", model).stage("primary").idempotency(store).canary_rows({{1.f}}).build();
  model->calls = 0;
  model->armed = true;
  std::vector<float> row{21.f};
  std::vector<keel::Result<keel::Response>> results(kCallers, keel::internal_error("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      keel::Request r;
      r.id = "order-7";
      r.features = row;
      results[i] = engine->score(r);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(model->calls == 1);
  for (const auto& r : results) {
    REQUIRE(r.ok());
    CHECK(r->scores == std::vector<float>{42.f});
    CHECK(r->model_version == model->info().version);
  }
}

TEST_CASE("a reload is seen at once by a thread whose cached snapshot is still in use elsewhere",
          "[engine][reload][snapshot][concurrency]") {
  // The request path pins snapshots through a per-thread cache keyed by the
  // slot's generation. While another thread's request keeps the replaced
  // snapshot alive, this thread's cached entry for it must not be used.
  std::atomic<bool> release{false};
  std::atomic<std::thread::id> held{};
  auto gated = std::make_shared<GatedModel>([&] { return std::this_thread::get_id() != held.load() || release.load(); });
  auto engine = keel::EngineBuilder().model("primary", gated).stage("primary").canary_rows({{1.f}}).build();
  const std::vector<float> row{5.f};
  keel::Request r;
  r.features = row;
  auto before = engine->score(r);  // this thread caches the first snapshot
  REQUIRE(before.ok());
  CHECK(before->scores == std::vector<float>{10.f});

  gated->armed = true;
  const int calls_before = gated->calls.load();
  keel::Result<keel::Response> slow = keel::internal_error("not run");
  std::thread t([&] {
    held = std::this_thread::get_id();
    slow = engine->score(r);  // blocks inside the first model, holding its snapshot
  });
  while (gated->calls.load() == calls_before || held.load() == std::thread::id{}) std::this_thread::yield();

  auto next = std::make_shared<keel::test::LinearTestModel>(std::vector<float>{3.f}, 0.f, "next");
  REQUIRE(engine->reload("primary", next).ok());
  auto after = engine->score(r);
  REQUIRE(after.ok());
  CHECK(after->scores == std::vector<float>{15.f});  // the new model, not the cached snapshot's
  CHECK(after->model_id == "next");

  release = true;
  t.join();
  REQUIRE(slow.ok());
  CHECK(slow->scores == std::vector<float>{10.f});  // the request that started first kept its snapshot
}
