#pragma once
// ScoringEngine: the one object a host creates, configures once (with
// EngineBuilder or a JSON config, see config.hpp) and calls from many
// threads. One request goes
//
//   idempotency → validator → anomaly → preprocess → cache →
//   fallback chain (breaker, bulkhead, retry, model, output sanity) →
//   postprocess → response → metrics / log → cache and idempotency store
//
// score() and score_batch() never throw and never crash on bad input: every
// failure is a Status naming the stage, row and feature. The clock is read
// once at entry and once at exit; deadlines and latency derive from those.
//
// Models are swapped atomically by reload(): each request takes one
// snapshot of the models at entry, so it finishes on the model it started
// with and never mixes versions; cache keys carry the snapshot's
// generation, so a reload never serves a stale score.
//
// Thread-safe: every public member may be called concurrently.

#include <keel/core/clock.hpp>
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

// Rows in the caller's memory, row-major with `stride` floats between row
// starts (stride == cols for dense data). Never copied unless a validator
// fixes values or a preprocessor reshapes them.
struct BatchView {
  std::span<const float> values;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t stride = 0;  // 0 means cols

  [[nodiscard]] std::size_t row_stride() const noexcept { return stride == 0 ? cols : stride; }
  [[nodiscard]] std::span<const float> row(std::size_t r) const noexcept {
    return values.subspan(r * row_stride(), cols);
  }
};

// Per-row outcome of score_batch. Reuse one across calls: it keeps its
// capacity. Not thread-safe.
struct BatchResult {
  std::size_t rows = 0;
  std::size_t width = 0;                // scores per row
  std::vector<float> scores;            // rows * width; NaN for failed rows
  std::vector<Status> status;           // per row: ok, or that row's error
  std::vector<std::uint8_t> stage;      // per row: chain stage that answered (kNoStage if none)
  std::vector<std::uint8_t> anomaly;    // per row: 1 when flagged
  std::vector<std::string> stage_names; // index -> name
  std::string model_id;                 // the primary model of the snapshot used
  std::uint64_t model_version = 0;
  std::size_t failed = 0;
  std::size_t degraded = 0;
  Duration latency{0};
  static constexpr std::uint8_t kNoStage = 0xFF;

  [[nodiscard]] std::span<const float> row_scores(std::size_t r) const noexcept {
    return std::span<const float>(scores).subspan(r * width, width);
  }
};

struct ComponentHealth {
  std::string name;    // "model:primary", "stage:primary", "cache", ...
  bool ok = true;
  std::string state;   // "loaded", "closed", "open", "half_open", ...
  std::string detail;  // versions, counts, the last error
};

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

  // One row. Request::model must be empty or name().
  [[nodiscard]] Result<Response> score(const Request& request) noexcept;

  // Many rows in one call to each stage's model: a row that fails
  // validation (or whose output is not finite) gets its own error and falls
  // through the chain alone; the others are scored together. Fails as a
  // whole only for a wrong shape or an unknown model.
  [[nodiscard]] Status score_batch(const BatchView& rows, BatchResult& out, Deadline deadline = Deadline::never(),
                                   std::string_view model = {}) noexcept;

  // Loads `path` aside, checks it (loads, the canary rows score finite, the
  // same feature schema unless configured otherwise), then swaps it in for
  // model slot `model_name`. A bad file leaves the old model serving; the
  // Status says why. Returns the new model's version.
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
  // Let a reload change the feature schema (count must still match).
  EngineBuilder& allow_schema_change(bool allow = true);
  // Deadline for requests that carry none (default: none).
  EngineBuilder& default_timeout(Duration timeout);

  [[nodiscard]] std::unique_ptr<ScoringEngine> build();

 private:
  std::unique_ptr<ScoringEngine::Impl> impl_;
  std::vector<std::string> pending_slots_;  // per stage: the slot name, resolved in build()
};

}  // namespace keel
