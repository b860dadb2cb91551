// Differential test of the request path: score() (a batch of one) and
// score_batch() answer every row alike — scores, stage, model, degraded
// flag and reason, attempts, cache hit, anomaly flag/score/reason, and each
// failed row's error — over random engine compositions and random rows.
//
// Two engines of the same composition: A gets each row through score(), B
// the same rows as one score_batch(). Components are chosen so that the
// two must agree when the paths do: models whose faults depend on the row
// (NaN outputs) or recur identically on every call (a hang of an isolated
// stage, a retryable failure of every call's first attempt, a forced-open
// breaker), so that neither path's call pattern changes what a row gets.
// Several rounds per engine repeat earlier rows (cache hits from the first
// round's inserts) and replay idempotent ids (the stored answers again).
// Time is a ManualClock: a hanging model moves it to its call's deadline
// itself, and retry backoff advances it (auto-advance), so nothing sleeps.

#include <catch2/catch.hpp>

#include <keel/engine/scoring_engine.hpp>
#include <keel/validate/profile_builder.hpp>
#include <keel/validate/schema_validator.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <regex>
#include <set>

using namespace std::chrono_literals;

namespace {

constexpr std::size_t kFeatures = 3;

// Where hanging model calls wait until the test lets them go. Thread-safe.
class HangGate {
 public:
  // Models misbehave only once armed (the canaries at build() must pass).
  std::atomic<bool> armed{false};

  void wait() {
    std::unique_lock lock(mu_);
    ++hanging_;
    cv_.notify_all();
    const std::uint64_t gen = generation_;
    cv_.wait_for(lock, 10s, [&] { return generation_ != gen; });  // bounded: never hangs the test
    --hanging_;
    cv_.notify_all();
  }
  // Lets every hanging call return (its late result is dropped) and waits
  // until they have, so executor threads are free for the next request.
  void release_all() {
    std::unique_lock lock(mu_);
    ++generation_;
    cv_.notify_all();
    cv_.wait_for(lock, 10s, [&] { return hanging_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int hanging_ = 0;               // guarded by mu_
  std::uint64_t generation_ = 0;  // guarded by mu_
};

enum class Mode { kOk, kHang, kFlaky };

// score = seed + x0 + 2 x1 - x2 (missing counts 0); NaN for rows whose
// first feature falls in this model's NaN band. kHang: every call moves
// the clock to its deadline and hangs; kFlaky: every call's first attempt
// fails (retryable), the second answers. Thread-safe.
class RowModel final : public keel::Model {
 public:
  RowModel(keel::ManualClock& clock, HangGate& gate, std::string id, int seed, Mode mode)
      : clock_(clock), gate_(gate), seed_(seed), mode_(mode) {
    info_.id = std::move(id);
    info_.num_features = kFeatures;
    info_.features.resize(kFeatures);
    info_.version = keel::next_model_version();
  }
  [[nodiscard]] const keel::ModelInfo& info() const noexcept override { return info_; }
  [[nodiscard]] keel::Status predict(std::span<const float> rows, std::size_t n, std::span<float> out,
                                     const keel::PredictOptions& opts = {}) const noexcept override {
    if (keel::Status s = check_shapes(rows.size(), n, out.size(), opts); !s) return s;
    const bool armed = gate_.armed.load();
    if (!armed) {
      std::fill(out.begin(), out.end(), 0.f);
      return keel::Status::ok();
    }
    if (mode_ == Mode::kHang) {
      if (!opts.deadline.is_never()) clock_.set(opts.deadline.time());
      gate_.wait();
      return keel::Status::ok();  // late: the caller gave up
    }
    if (mode_ == Mode::kFlaky && attempts_.fetch_add(1) % 2 == 0) {
      return keel::unavailable(fmt::format("model '{}': first attempt fails", info_.id));
    }
    for (std::size_t r = 0; r < n; ++r) {
      const float* x = &rows[r * kFeatures];
      auto v = [](float f) { return std::isnan(f) ? 0.f : f; };
      const int band = static_cast<int>(std::floor(std::fabs(v(x[0])) * 3.f));
      out[r] = (band + seed_) % 5 == 0 ? std::numeric_limits<float>::quiet_NaN()
                                       : static_cast<float>(seed_) + v(x[0]) + 2.f * v(x[1]) - v(x[2]);
    }
    return keel::Status::ok();
  }
  using Model::predict;

 private:
  keel::ManualClock& clock_;
  HangGate& gate_;
  keel::ModelInfo info_;
  int seed_;
  Mode mode_;
  mutable std::atomic<std::uint64_t> attempts_{0};
};

// What one random composition is, so that two engines can be built alike.
struct StageSpec {
  int seed = 0;
  Mode mode = Mode::kOk;
  bool isolated = false;
  bool open = false;   // breaker forced open
  int attempts = 1;    // retry policy's max_attempts
};
struct Composition {
  std::vector<StageSpec> stages;
  bool with_default = false;
  bool validator = false;
  bool anomaly = false;
  keel::AnomalyPolicy policy = keel::AnomalyPolicy::kFlag;
  bool cache = false;
  bool idempotency = false;
  int deadline = 0;  // 0: none, 1: 1 s, 2: already passed
  std::string describe() const {
    std::string s;
    for (const StageSpec& st : stages) {
      s += fmt::format("[seed {} mode {} {} open {} attempts {}] ", st.seed, static_cast<int>(st.mode),
                       st.isolated ? "isolated" : "inline", st.open, st.attempts);
    }
    return s + fmt::format("default {} validator {} anomaly {} policy {} cache {} idempotency {} deadline {}",
                           with_default, validator, anomaly, static_cast<int>(policy), cache, idempotency, deadline);
  }
};

Composition random_composition(std::mt19937& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  Composition c;
  const int n = 1 + pick(3);
  for (int i = 0; i < n; ++i) {
    StageSpec s;
    s.seed = pick(5);
    s.isolated = pick(2) == 1;
    const int m = pick(6);
    s.mode = m == 0 && s.isolated ? Mode::kHang : m == 1 ? Mode::kFlaky : Mode::kOk;
    s.attempts = s.mode == Mode::kFlaky ? 2 + pick(2) : 1 + pick(2);
    s.open = pick(6) == 0;
    c.stages.push_back(s);
  }
  c.with_default = pick(2) == 1;
  c.validator = pick(2) == 1;
  c.anomaly = pick(2) == 1;
  c.policy = static_cast<keel::AnomalyPolicy>(pick(3));
  c.cache = pick(2) == 1;
  c.idempotency = pick(2) == 1;
  c.deadline = pick(8) == 0 ? 2 : pick(2);
  return c;
}

keel::Profile training_profile() {
  keel::ProfileBuilder b({{"a", keel::FeatureType::kNumeric},
                          {"b", keel::FeatureType::kNumeric},
                          {"c", keel::FeatureType::kNumeric}});
  std::vector<float> rows;
  for (int i = 0; i < 1000; ++i) {
    rows.push_back(float(i % 100) / 10.f);
    rows.push_back(float(i % 7));
    rows.push_back(float(i % 13) / 2.f);
  }
  REQUIRE(b.add(rows, 1000).is_ok());
  return b.build();
}

// One engine of the composition, with everything it owns.
struct Rig {
  keel::ManualClock clock{keel::TimePoint{} + 1h, /*auto_advance=*/true};
  HangGate gate;
  std::shared_ptr<keel::BoundedExecutor> executor =
      std::make_shared<keel::BoundedExecutor>(keel::ExecutorConfig{8, 256});
  std::unique_ptr<keel::ScoringEngine> engine;

  Rig(const Composition& c, const keel::Profile& profile) {
    keel::EngineBuilder b;
    b.clock(clock);
    for (std::size_t i = 0; i < c.stages.size(); ++i) {
      const StageSpec& s = c.stages[i];
      const std::string slot = fmt::format("m{}", i);
      b.model(slot, std::make_shared<RowModel>(clock, gate, slot, s.seed, s.mode));
      keel::StageOptions o;
      if (s.isolated) {
        o.isolation = keel::Isolation::kIsolated;
        o.executor = executor;
        o.attempt_timeout = 10ms;
      }
      if (s.open) {  // otherwise none: a breaker that trips would see N calls in A and one in B
        o.breaker = std::make_shared<keel::CircuitBreaker>(slot, keel::CircuitBreakerConfig{}, clock);
        o.breaker->force_open();
      }
      keel::RetryConfig rc;
      rc.max_attempts = static_cast<std::uint32_t>(s.attempts);
      rc.jitter = keel::Jitter::kNone;
      o.retry = std::make_shared<keel::RetryPolicy>(rc);
      b.stage(slot, o);
    }
    if (c.with_default) b.default_scores({-1.f});
    if (c.validator) {
      keel::Schema schema = keel::Schema::from_names({"a", "b", "c"});
      schema.features[0].min = -1.f;  // below: rejected
      schema.features[1].max = 8.f;   // above: clamped
      schema.features[1].set_action(keel::Rule::kAboveMax, keel::Action::kClamp);
      schema.features[2].min = 0.f;   // below: flagged
      schema.features[2].set_action(keel::Rule::kBelowMin, keel::Action::kFlag);
      b.validator(std::make_shared<keel::SchemaValidator>(schema));
    }
    if (c.anomaly) {
      keel::AnomalyOptions o;
      o.policy = c.policy;
      b.anomaly(std::make_shared<keel::AnomalyDetector>(profile, o));
    }
    if (c.cache) b.cache(std::make_shared<keel::LruCache>());
    if (c.idempotency) b.idempotency(std::make_shared<keel::InMemoryIdempotencyStore>(keel::IdempotencyOptions{}, clock));
    engine = b.build();
    gate.armed = true;
  }
  ~Rig() { gate.release_all(); }

  keel::Deadline deadline(int kind) const {
    if (kind == 1) return keel::Deadline::after(1s, clock.now());
    if (kind == 2) return keel::Deadline(clock.now());
    return keel::Deadline::never();
  }
};

// Row numbers in messages differ by construction (score() sees row 0).
std::string unrow(const std::string& s) {
  static const std::regex kRow("row [0-9]+");
  return std::regex_replace(s, kRow, "row N");
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

// Row r of `batch` against `single`, the score() answer of the same row.
void check_row(const keel::Result<keel::Response>& single, const keel::BatchResult& batch, std::size_t r,
               const std::string& what) {
  INFO(what << " row " << r);
  const bool answered = batch.stage[r] != keel::BatchResult::kNoStage;
  REQUIRE(single.ok() == answered);
  if (!answered) {
    CHECK(single.code() == batch.status[r].code());
    CHECK(unrow(single.status().message()) == unrow(batch.status[r].message()));
    CHECK(std::isnan(batch.row_scores(r)[0]));
    return;
  }
  const keel::Response& s = *single;
  const std::size_t st = batch.stage[r];
  CHECK(batch.status[r].is_ok());
  CHECK(same_bits(s.scores, batch.row_scores(r)));
  CHECK(s.stage == batch.stage_names[st]);
  CHECK(s.model_id == batch.stage_model_ids[st]);
  CHECK(s.degraded == batch.is_degraded(r));
  CHECK(s.degraded_reason == batch.degraded_reason[r]);
  CHECK(s.attempts == batch.attempts[r]);
  CHECK(s.cache_hit == (batch.cache_hit[r] != 0));
  CHECK(s.anomaly == (batch.anomaly[r] != 0));
  CHECK(s.anomaly_score == batch.anomaly_score[r]);
  CHECK(s.anomaly_reason == batch.anomaly_reason[r]);
}

// A replay answers exactly what the first call did.
void check_replay(const keel::Result<keel::Response>& first, const keel::Result<keel::Response>& again) {
  REQUIRE(first.ok() == again.ok());
  if (!first.ok()) {
    CHECK(first.code() == again.code());
    return;
  }
  CHECK(same_bits(first->scores, again->scores));
  CHECK(first->stage == again->stage);
  CHECK(first->degraded_reason == again->degraded_reason);
  CHECK(first->attempts == again->attempts);
  CHECK(first->cache_hit == again->cache_hit);
  CHECK(first->latency == again->latency);
}

}  // namespace

TEST_CASE("request path: score() and score_batch() agree row by row over random compositions",
          "[engine][differential]") {
  const keel::Profile profile = training_profile();
  std::mt19937 rng(20261202);
  std::uniform_real_distribution<float> value(-2.f, 14.f);
  std::size_t compared = 0, hits = 0, failed = 0, degraded = 0, anomalous = 0, replays = 0;
  std::uint64_t timeouts = 0, open_rejections = 0, retries = 0, non_finite = 0;
  for (int e = 0; e < 60; ++e) {
    const Composition comp = random_composition(rng);
    const std::string what = comp.describe();
    Rig a(comp, profile), b(comp, profile);
    std::vector<std::vector<float>> seen;  // rows of earlier rounds
    for (int round = 0; round < 3; ++round) {
      // Distinct rows (bit for bit): a third repeated from earlier rounds.
      const std::size_t n = 1 + rng() % 12;
      std::vector<std::vector<float>> rows;
      std::set<std::vector<std::uint32_t>> bits;
      auto add = [&](std::vector<float> row) {
        std::vector<std::uint32_t> k(kFeatures);
        std::memcpy(k.data(), row.data(), kFeatures * 4);
        if (bits.insert(k).second) rows.push_back(std::move(row));
      };
      while (rows.size() < n) {
        if (!seen.empty() && rng() % 3 == 0) {
          add(seen[rng() % seen.size()]);
          continue;
        }
        std::vector<float> row(kFeatures);
        for (float& f : row) f = rng() % 10 == 0 ? std::numeric_limits<float>::quiet_NaN() : value(rng);
        add(std::move(row));
      }
      std::vector<float> flat;
      for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());

      std::vector<keel::Result<keel::Response>> singles;
      std::vector<std::string> ids;
      for (std::size_t r = 0; r < rows.size(); ++r) {
        keel::Request q;
        q.features = rows[r];
        q.deadline = a.deadline(comp.deadline);
        if (comp.idempotency) q.id = fmt::format("s{}-{}", round, r);
        ids.push_back(q.id);
        singles.push_back(a.engine->score(q));
        a.gate.release_all();
      }
      keel::BatchResult batch;
      const std::string batch_id = comp.idempotency ? fmt::format("b{}", round) : std::string();
      REQUIRE(b.engine->score_batch({flat, rows.size(), kFeatures}, batch, b.deadline(comp.deadline), {}, batch_id)
                  .is_ok());
      b.gate.release_all();
      REQUIRE(batch.rows == rows.size());
      CHECK(batch.id == batch_id);
      std::size_t batch_degraded = 0, batch_failed = 0;
      for (std::size_t r = 0; r < rows.size(); ++r) {
        check_row(singles[r], batch, r, what);
        ++compared;
        hits += batch.cache_hit[r];
        anomalous += batch.anomaly[r];
        batch_failed += batch.stage[r] == keel::BatchResult::kNoStage;
        batch_degraded += batch.is_degraded(r);
      }
      CHECK(batch.failed == batch_failed);
      CHECK(batch.degraded == batch_degraded);
      failed += batch_failed;
      degraded += batch_degraded;

      if (comp.idempotency) {
        // Replays: the same answers again, with no new model call.
        for (std::size_t r = 0; r < rows.size(); ++r) {
          keel::Request q;
          q.id = ids[r];
          q.features = rows[r];
          q.deadline = a.deadline(comp.deadline);
          const keel::Result<keel::Response> again = a.engine->score(q);
          a.gate.release_all();
          // A failed single request is not remembered: it computes again.
          if (singles[r].ok()) {
            check_replay(singles[r], again);
            ++replays;
          }
        }
        keel::BatchResult replay;
        REQUIRE(b.engine->score_batch({flat, rows.size(), kFeatures}, replay, b.deadline(comp.deadline), {}, batch_id)
                    .is_ok());
        b.gate.release_all();
        if (batch.failed < batch.rows) {
          for (std::size_t r = 0; r < rows.size(); ++r) {
            INFO(what << " replayed row " << r);
            CHECK(replay.stage[r] == batch.stage[r]);
            CHECK(same_bits(replay.row_scores(r), batch.row_scores(r)));
            CHECK(replay.attempts[r] == batch.attempts[r]);
            CHECK(replay.cache_hit[r] == batch.cache_hit[r]);
            CHECK(replay.degraded_reason[r] == batch.degraded_reason[r]);
            CHECK(replay.status[r].message() == batch.status[r].message());
          }
          CHECK(replay.latency == batch.latency);
          ++replays;
        }
      }
      for (auto& row : rows) seen.push_back(std::move(row));
    }
    for (const keel::StageStats& st : b.engine->chain()->stats().stages) {
      timeouts += st.timeouts;
      open_rejections += st.breaker_rejections;
      retries += st.retry.retries;
      non_finite += st.non_finite;
    }
  }
  // The compositions reached what they are for.
  fmt::print("compared {} rows: {} cache hits, {} failed, {} degraded, {} anomalous, {} replays; batch side: {} "
             "timeouts, {} open-breaker rejections, {} retries, {} non-finite rows\n",
             compared, hits, failed, degraded, anomalous, replays, timeouts, open_rejections, retries, non_finite);
  INFO("compared " << compared << " hits " << hits << " failed " << failed << " degraded " << degraded
                   << " anomalous " << anomalous << " replays " << replays);
  CHECK(compared > 500);
  CHECK(hits > 20);
  CHECK(failed > 20);
  CHECK(degraded > 20);
  CHECK(anomalous > 20);
  CHECK(replays > 50);
  CHECK(timeouts > 10);
  CHECK(open_rejections > 10);
  CHECK(retries > 10);
  CHECK(non_finite > 10);
}
