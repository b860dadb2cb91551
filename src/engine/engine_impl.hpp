#pragma once
// ScoringEngine::Impl, shared by the request path (request_state.hpp and
// its stage_*.cpp files), scoring_engine.cpp (metrics, health),
// engine_reload.cpp and engine_builder.cpp.

#include <keel/engine/scoring_engine.hpp>
#include <keel/validate/validation_report.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace keel {

namespace detail {

// The id and content identity of a slot's model, for the info metric
// (read by the registry, which may outlive the engine). Thread-safe.
class ContentCell {
 public:
  void set(std::string id, ModelContentId content) {
    std::lock_guard lock(mu_);
    id_ = std::move(id);
    content_ = content;
  }
  [[nodiscard]] std::pair<std::string, ModelContentId> get() const {
    std::lock_guard lock(mu_);
    return {id_, content_};
  }

 private:
  mutable std::mutex mu_;
  std::string id_;            // guarded by mu_
  ModelContentId content_{};  // guarded by mu_
};

// A model slot: a named model the chain's stages refer to; reload() swaps
// what it holds.
struct ModelSlot {
  std::string name;
  std::filesystem::path path;  // empty: given in memory
  LoadOptions load_options;
  ModelPtr current;                                // guarded by Impl::reload_mu
  std::filesystem::file_time_type seen_mtime{};    // guarded by Impl::reload_mu
  std::string last_error;                          // guarded by Impl::reload_mu
  std::uint64_t reloads = 0;                       // guarded by Impl::reload_mu
  std::uint64_t reload_failures = 0;               // guarded by Impl::reload_mu
  std::filesystem::file_time_type failed_mtime{};  // guarded by Impl::reload_mu
  // The current model's version, for the metrics gauge (outlives the engine).
  std::shared_ptr<std::atomic<std::uint64_t>> version_cell = std::make_shared<std::atomic<std::uint64_t>>(0);
  std::shared_ptr<ContentCell> content_cell = std::make_shared<ContentCell>();
};

// A chain stage as declared; the model comes from the slot at snapshot time.
struct StageTemplate {
  std::string name;
  std::size_t slot = 0;  // index into slots; unused for a default stage
  bool is_default = false;
  std::vector<float> constant;
  StageOptions options;
};

// What one request uses from start to end: immutable once published.
struct Snapshot {
  std::shared_ptr<FallbackChain> chain;
  std::vector<ModelPtr> stage_models;  // per stage; null for a default stage
  // Per stage, what a BatchResult reports (copied only when it changes).
  std::vector<std::string> stage_names;
  std::vector<std::string> model_ids;  // a default stage: its name
  std::vector<std::uint64_t> model_versions;
  std::vector<ModelContentId> content_ids;
  // The primary's part of cache keys: its content identity and output kind,
  // so that replicas sharing a cache agree; "id@version" for a model built
  // in memory (valid in this process only); and the postprocessor's
  // calibration_id() when it calibrates (cached scores are calibrated).
  std::string cache_model;
  std::string cache_model64;  // the same for float64 rows (keyed on the doubles)
  // Per stage: the names reason codes carry (reason_code_names; empty for a default stage).
  std::vector<std::vector<std::string>> reason_names;
  std::uint64_t generation = 0;  // new for every swap (globally unique)
};

// Per-thread buffers so the request path does not allocate once warm.
struct Scratch {
  std::vector<float> rows;   // a strided batch made dense
  std::vector<float> fixed;  // rows the validator fixed
  std::vector<float> model_rows;
  std::vector<double> rows64;   // float64 rows made dense
  std::vector<double> fixed64;  // float64 rows the validator fixed
  std::vector<float> key64;     // one float64 row's bytes, as a cache key
  ValidationReport report;
  AnomalyReport anomaly;
  std::vector<std::uint32_t> pending;     // rows still to answer, ascending
  std::vector<std::uint8_t> first_stage;  // per row: 0, or 1 when routed past the primary (set once any_routed)
  std::vector<std::uint32_t> next;
  std::vector<std::uint32_t> stored;      // rows the chain's first stage answered (cache inserts)
  std::vector<float> cached;
  ChainRows chain;
  bool busy = false;   // in use (a model that calls an engine gets fresh buffers)
};
Scratch& scratch() noexcept;

struct RequestState;

enum class Next : std::uint8_t { kContinue, kStop };
// A stage of the request path (request_state.hpp).
using StageFn = Next (*)(ScoringEngine::Impl&, RequestState&) noexcept;
inline constexpr std::size_t kMaxStages = 9;
// The reason codes one request asks for, the engine's default filled in.
struct ReasonAsk {
  std::uint32_t k = 0;  // 0: none
  ReasonMode mode = ReasonMode::kMagnitude;
  bool contributions = false;  // the tensors (ReasonOptions)
  bool leaves = false;
  [[nodiscard]] bool any() const noexcept { return k != 0 || contributions || leaves; }
};

// Null objects for the optional per-row components, so that the stages
// call them without null checks. Thread-safe (immutable; the monitor is).
class Screen {  // the anomaly screen: NoScreen without a detector
 public:
  virtual ~Screen() = default;
  virtual void run(ScoringEngine::Impl& m, RequestState& st) const noexcept = 0;
};
class DriftSink {  // the drift monitor: a no-op without one
 public:
  virtual ~DriftSink() = default;
  virtual void observe(const RequestState& st) const noexcept = 0;
};
std::shared_ptr<const Screen> make_screen(std::shared_ptr<const AnomalyDetector> detector);
std::shared_ptr<const DriftSink> make_drift_sink(std::shared_ptr<DriftMonitor> monitor);

inline constexpr std::size_t kOutcomeOk = 0;
inline constexpr std::size_t kOutcomeDegraded = 1;
inline constexpr std::size_t kOutcomeCacheHit = 2;
inline constexpr std::size_t kNumCodes = 10;  // StatusCode values 0..9
inline constexpr std::size_t kNumOutcomes = 3 + kNumCodes;
std::size_t outcome_index(StatusCode c) noexcept;

}  // namespace detail

struct ScoringEngine::Impl {
  // --- configuration (immutable after build) -----------------------------
  std::string name = "default";
  Clock* clock = &system_clock();
  std::vector<detail::ModelSlot> slots;
  std::vector<detail::StageTemplate> stages;
  ModelLoaderFn loader;
  std::shared_ptr<const Validator> validator;       // AcceptAllValidator when none is configured
  std::shared_ptr<const AnomalyDetector> anomaly;  // null when none (configuration only)
  std::shared_ptr<DriftMonitor> drift;             // null when none (configuration only)
  std::shared_ptr<const detail::Screen> screen;    // never null
  std::shared_ptr<const detail::DriftSink> drift_sink;  // never null
  Preprocessor pre;
  Postprocessor post;
  std::shared_ptr<Cache> cache;
  std::shared_ptr<IdempotencyStore> idempotency;
  std::shared_ptr<MetricsRegistry> registry;
  std::shared_ptr<EventLog> log;
  std::vector<std::vector<float>> canary;
  bool allow_schema_change = false;
  Duration default_timeout = Duration::max();
  Duration canary_timeout = std::chrono::seconds(5);
  std::size_t in_width = 0;     // caller's row length
  std::size_t model_width = 0;  // model's row length (after preprocessing)
  std::size_t out_width = 0;    // scores per row
  // The stages this engine runs, in order (plan_stages(): a stage whose
  // component is a null object, e.g. no cache, is left out). Both score()
  // and score_batch() run exactly these.
  std::array<detail::StageFn, detail::kMaxStages> plan{};
  std::size_t plan_size = 0;
  ReasonOptions reason_default;  // what a request that does not say asks for (k unset: 0)

  // --- state -------------------------------------------------------------
  // The current snapshot. A mutex-guarded shared_ptr rather than
  // std::atomic<std::shared_ptr>: GCC 12's lock-bit implementation of the
  // latter is invisible to ThreadSanitizer (false data-race reports).
  // The request path pins it through a per-thread cache instead (pin()):
  // one acquire load of the generation and one weak_ptr lock, no mutex.
  class SnapshotSlot {
   public:
    [[nodiscard]] std::shared_ptr<const detail::Snapshot> load(std::memory_order = std::memory_order_acquire) const noexcept {
      std::lock_guard lock(mu_);
      return ptr_;
    }
    void store(std::shared_ptr<const detail::Snapshot> next, std::memory_order = std::memory_order_release) noexcept {
      {
        std::lock_guard lock(mu_);
        const std::uint64_t g = next ? next->generation : 0;
        ptr_.swap(next);
        gen_.store(g, std::memory_order_release);
      }
      // `next` now holds the old snapshot; it is released outside the lock.
    }
    // The current snapshot, held for the caller. Each thread remembers the
    // last few slots it read as (slot, generation, weak_ptr): while the
    // slot's generation is unchanged the remembered snapshot is the current
    // one, and locking the weak_ptr keeps it alive for the call. A weak_ptr
    // keeps no model alive, so a replaced snapshot, or a destroyed
    // engine's, is freed as soon as its last request ends. Generations are
    // unique across engines, so a new slot at a dead one's address misses.
    [[nodiscard]] std::shared_ptr<const detail::Snapshot> pin() const noexcept;

   private:
    mutable std::mutex mu_;
    std::shared_ptr<const detail::Snapshot> ptr_;  // guarded by mu_
    std::atomic<std::uint64_t> gen_{0};            // ptr_'s generation
  };
  SnapshotSlot snap;
  mutable std::mutex reload_mu;  // serialises reloads; guards slots' mutable fields

  std::mutex watch_mu;
  std::condition_variable watch_cv;
  bool watch_stop = false;  // guarded by watch_mu
  std::thread watcher;

  // --- metrics (registered in build) -------------------------------------
  std::array<Counter*, detail::kNumOutcomes> requests{};
  std::vector<Counter*> stage_answers;
  std::vector<std::array<Counter*, detail::kNumCodes>> stage_failures;
  HistogramMetric* latency = nullptr;
  Counter* anomalies = nullptr;
  Counter* anomalies_rejected = nullptr;
  Counter* anomalies_routed = nullptr;
  Counter* validation_fixed = nullptr;
  std::array<Counter*, 3> batch_rows{};  // ok, degraded, failed
  HistogramMetric* batch_latency = nullptr;
  Counter* reloads_ok = nullptr;
  Counter* reloads_failed = nullptr;
  HistogramMetric* explain_latency = nullptr;

  // --- request path --------------------------------------------------------
  [[nodiscard]] std::shared_ptr<const detail::Snapshot> current() const noexcept { return snap.pin(); }
  // The stages of request_state.hpp on `v` into `out`; a non-ok Status is a
  // whole-request failure (the rows' own errors are in out.status).
  // `single`: score()'s batch of one (its metrics are score()'s).
  // `reasons`: the request's reason codes, the engine's default filled in.
  Status run_stages(const BatchView& v, BatchResult& out, TimePoint t0, Deadline deadline, bool single,
                    detail::ReasonAsk reasons) noexcept;
  // The admit stage: run_stages behind the idempotency store when `id` is
  // set. `computed` is false when the answer was a replay or a duplicate's.
  // The reason codes asked for are part of the payload a reused id must match.
  Status run_admitted(std::string_view id, const BatchView& v, BatchResult& out, TimePoint t0, Deadline deadline,
                      bool single, bool& computed, const ReasonOptions& reasons) noexcept;
  void record(const Result<Response>& r) noexcept;
  // Fills `plan` from the configured components (build(), once).
  void plan_stages() noexcept;
  [[nodiscard]] detail::ReasonAsk resolve(const ReasonOptions& o) const noexcept {
    return {o.k.value_or(reason_default.k.value_or(0)),
            o.mode.value_or(reason_default.mode.value_or(ReasonMode::kMagnitude)), o.contributions, o.leaves};
  }

  // --- models ----------------------------------------------------------------
  // Builds a snapshot from the slots' current models (reload_mu held or
  // not yet shared). Throws keel::Error if the chain rejects them.
  std::shared_ptr<const detail::Snapshot> make_snapshot() const;
  // Checks a candidate for slot `i` against the one it replaces (or, for
  // the first load, against the configured widths). Status names why not.
  Status check_candidate(std::size_t slot, const ModelPtr& candidate) const noexcept;
  Result<std::uint64_t> swap_in(std::size_t slot, ModelPtr model) noexcept;  // reload_mu held
  Status reload_failed(std::size_t slot, Status why) noexcept;                // reload_mu held
  [[nodiscard]] std::size_t slot_index(std::string_view name) const noexcept;
  void register_metrics();
};

}  // namespace keel
