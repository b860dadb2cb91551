#pragma once
// ScoringEngine: the one object a host creates, configures once (with
// EngineBuilder or a JSON config, see config.hpp) and calls from many
// threads. One request goes through named stages (src/engine/request_state.hpp)
//
//   admit (idempotency) → validate → screen (anomaly) → preprocess →
//   cache lookup → chain (breaker, bulkhead, retry, isolation, model,
//   output sanity) → postprocess → explain (reason codes, when asked) →
//   observe (metrics, drift, log) → store
//
// score() is a batch of one: it and score_batch() run the same stage code,
// so a row gets the same answer, stage, flags and errors either way.
//
// score() and score_batch() never throw and never crash on bad input: every
// failure is a Status naming the stage, row and feature. The clock is read
// once at entry and once at exit; deadlines and latency derive from those.
//
// Models are swapped atomically by reload(): each request takes one
// snapshot of the models at entry, so it finishes on the model it started
// with and never mixes versions. Cache keys carry the primary's content
// identity (ModelContentId: the same file gives the same id in every
// process) and the postprocessor's calibration (the cache holds calibrated
// scores), so a reload to another model, or another calibration of the same
// model, never serves a stale score and replicas sharing a cache agree.
//
// Idempotency: a request id seen again gets the stored answer. For score()
// only an answered row is stored (a failure is retried); for score_batch()
// the whole BatchResult is, per-row errors included, so that a retry of
// the batch gets the same per-row answers.
//
// Thread-safe: every public member may be called concurrently.

#include <keel/core/batch.hpp>
#include <keel/core/clock.hpp>
#include <keel/core/health.hpp>
#include <keel/core/request.hpp>
#include <keel/core/result.hpp>
#include <keel/engine/event_log.hpp>
#include <keel/engine/metrics.hpp>
#include <keel/engine/transforms.hpp>
#include <keel/model/loaders.hpp>
#include <keel/model/model.hpp>
#include <keel/resilience/cache.hpp>
#include <keel/resilience/fallback_chain.hpp>
#include <keel/resilience/idempotency.hpp>
#include <keel/validate/anomaly_detector.hpp>
#include <keel/validate/drift_monitor.hpp>
#include <keel/validate/validator.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace keel {

struct Health {
  bool live = true;   // the engine answers (possibly degraded)
  bool ready = false; // models loaded and some stage can answer
  std::vector<ComponentHealth> components;
  [[nodiscard]] std::string to_json() const;
};

using ModelLoaderFn = std::function<Result<ModelPtr>(const std::filesystem::path&, const LoadOptions&)>;

class ScoringEngine {
 public:
  ~ScoringEngine();
  ScoringEngine(const ScoringEngine&) = delete;
  ScoringEngine& operator=(const ScoringEngine&) = delete;

  // One row: a batch of one. Request::model must be empty or name().
  [[nodiscard]] Result<Response> score(const Request& request) noexcept;

  // Many rows in one call to each stage's model: a row that fails
  // validation (or whose output is not finite) gets its own error and falls
  // through the chain alone; the others are scored together. Fails as a
  // whole only for a wrong shape, an unknown model, or (with an `id`) an
  // idempotency conflict or a duplicate's wait past the deadline.
  // `reasons`: reason codes per answered row (BatchResult::row_reasons), as
  // Request::reason_codes asks for one row.
  [[nodiscard]] Status score_batch(const BatchView& rows, BatchResult& out, Deadline deadline = Deadline::never(),
                                   std::string_view model = {}, std::string_view id = {},
                                   const ReasonOptions& reasons = {}) noexcept;

  // Loads `path` aside, checks it (loads, the canary rows score finite
  // within the canary deadline, the same feature schema unless configured
  // otherwise), then swaps it in for model slot `model_name`. A bad file
  // leaves the old model serving; the Status says why. Returns the new
  // model's version. The stages on that slot keep their breaker, retry and
  // bulkhead state when the new model has the same content identity (the
  // same file again: its record still applies); for another model their
  // breakers are reset to closed (a new model starts with a clean record).
  [[nodiscard]] Result<std::uint64_t> reload(std::string_view model_name, const std::filesystem::path& path) noexcept;
  // The same with a model already in memory.
  [[nodiscard]] Result<std::uint64_t> reload(std::string_view model_name, ModelPtr model) noexcept;
  // Reloads every file-backed model whose file changed since it was loaded;
  // returns how many were swapped. Failures are logged and in health().
  std::size_t reload_changed() noexcept;
  // Calls reload_changed() every `interval` on a background thread (real
  // time) until stop_watching() or destruction.
  void watch(Duration interval);
  void stop_watching() noexcept;

  [[nodiscard]] Health health() const;
  // Prometheus text of this engine's registry.
  [[nodiscard]] std::string metrics_text() const;
  [[nodiscard]] MetricsRegistry& metrics() noexcept;

  // The label and top-k classes the postprocessor derives from a response.
  [[nodiscard]] Result<Labels> labels(const Response& response) const;

  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] std::size_t num_features() const noexcept;  // the caller's row length
  [[nodiscard]] std::size_t width() const noexcept;         // scores per row
  // The model currently in slot `model_name` (null if none).
  [[nodiscard]] ModelPtr model(std::string_view model_name) const;
  // The chain of the current snapshot (for its stats and stage policies).
  // Its stats() count from build(): a reload's new chain continues the
  // counts of the chain it replaces (as the breaker, retry and bulkhead
  // stats inside them, and the engine's metrics, do).
  [[nodiscard]] std::shared_ptr<const FallbackChain> chain() const;

  struct Impl;

 private:
  friend class EngineBuilder;
  explicit ScoringEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Fluent construction. Every setter returns *this; build() checks the whole
// composition and throws keel::Error naming what is wrong. Not thread-safe.
class EngineBuilder {
 public:
  EngineBuilder();
  ~EngineBuilder();
  EngineBuilder(EngineBuilder&&) noexcept;
  EngineBuilder& operator=(EngineBuilder&&) noexcept;

  EngineBuilder& name(std::string name);
  EngineBuilder& clock(Clock& clock);
  // Model slots, by name, from memory or from a file (loaded in build()).
  // `path`, when given, is where `model` came from (loaded with `opts`):
  // reload_changed() watches it.
  EngineBuilder& model(std::string slot, ModelPtr model, std::filesystem::path path = {}, LoadOptions opts = {});
  EngineBuilder& model_file(std::string slot, std::filesystem::path path, LoadOptions opts = {});
  EngineBuilder& loader(ModelLoaderFn loader);  // default: keel::load_model
  // Chain stages in order: a model slot with its policies, then optionally
  // a default answer (last). The stage's name defaults to the slot's.
  EngineBuilder& stage(std::string slot, StageOptions options = {}, std::string stage_name = {});
  EngineBuilder& default_scores(std::vector<float> scores, std::string stage_name = "default");
  EngineBuilder& validator(std::shared_ptr<const Validator> validator);
  // Scores each (validated) row against the training profile; its
  // options' policy says flag, reject, or route past the primary stage.
  EngineBuilder& anomaly(std::shared_ptr<const AnomalyDetector> detector);
  // Observes every scored row and its first score; exported as gauges.
  EngineBuilder& drift(std::shared_ptr<DriftMonitor> monitor);
  EngineBuilder& preprocess(Preprocessor pre);
  EngineBuilder& postprocess(Postprocessor post);
  EngineBuilder& cache(std::shared_ptr<Cache> cache);
  EngineBuilder& idempotency(std::shared_ptr<IdempotencyStore> store);
  EngineBuilder& metrics(std::shared_ptr<MetricsRegistry> registry);
  EngineBuilder& log(std::shared_ptr<EventLog> log);
  // Rows every reload must score to finite values (model-width rows, after
  // preprocessing). Default: one row of zeros and one of all-missing.
  EngineBuilder& canary_rows(std::vector<std::vector<float>> rows);
  // Deadline for the canary rows of build() and each reload (default 5 s):
  // a model that hangs fails the check (kDeadlineExceeded) instead of
  // blocking the reload.
  EngineBuilder& canary_timeout(Duration timeout);
  // Let a reload change the feature schema (count must still match).
  EngineBuilder& allow_schema_change(bool allow = true);
  // Deadline for requests that carry none (default: none).
  EngineBuilder& default_timeout(Duration timeout);
  // Reason codes for requests that do not say (default: none): the top k
  // features per output, by magnitude or only those pushing the score up.
  EngineBuilder& reason_codes(std::uint32_t k, ReasonMode mode = ReasonMode::kMagnitude);

  [[nodiscard]] std::unique_ptr<ScoringEngine> build();

 private:
  std::unique_ptr<ScoringEngine::Impl> impl_;
  std::vector<std::string> pending_slots_;  // per stage: the slot name, resolved in build()
};

}  // namespace keel
