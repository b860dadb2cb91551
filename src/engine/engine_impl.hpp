#pragma once
// ScoringEngine::Impl, shared by scoring_engine.cpp (request path),
// engine_batch.cpp, engine_reload.cpp and engine_builder.cpp.

#include <keel/engine/scoring_engine.hpp>
#include <keel/validate/validation_report.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace keel {

namespace detail {

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
  // The chain without its first stage, for rows the anomaly policy routes
  // past the primary; null when the chain has one stage.
  std::shared_ptr<FallbackChain> rest;
  std::vector<ModelPtr> stage_models;  // per stage; null for a default stage
  std::uint64_t generation = 0;        // new for every swap: part of cache keys
};

// Per-thread buffers so the request path does not allocate once warm.
struct Scratch {
  std::vector<float> fixed;
  std::vector<float> model_row;
  ValidationReport report;
  AnomalyReport anomaly;
  std::vector<std::uint32_t> routed;
  std::vector<float> rows;    // a strided batch made dense
  std::vector<float> gather;  // the rows still pending for a later stage
  std::vector<float> out;
  std::vector<std::uint32_t> pending;
  std::vector<std::uint32_t> next;
};
Scratch& scratch() noexcept;

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
  std::shared_ptr<const Validator> validator;
  std::shared_ptr<const AnomalyDetector> anomaly;
  std::shared_ptr<DriftMonitor> drift;
  Preprocessor pre;
  Postprocessor post;
  std::shared_ptr<Cache> cache;
  std::shared_ptr<IdempotencyStore> idempotency;
  std::shared_ptr<MetricsRegistry> registry;
  std::shared_ptr<EventLog> log;
  std::vector<std::vector<float>> canary;
  bool allow_schema_change = false;
  Duration default_timeout = Duration::max();
  std::size_t in_width = 0;     // caller's row length
  std::size_t model_width = 0;  // model's row length (after preprocessing)
  std::size_t out_width = 0;    // scores per row

  // --- state -------------------------------------------------------------
  // The current snapshot. A mutex-guarded shared_ptr rather than
  // std::atomic<std::shared_ptr>: GCC 12's lock-bit implementation of the
  // latter is invisible to ThreadSanitizer (false data-race reports), and an
  // uncontended lock around one refcount increment costs about the same.
  class SnapshotSlot {
   public:
    [[nodiscard]] std::shared_ptr<const detail::Snapshot> load(std::memory_order = std::memory_order_acquire) const noexcept {
      std::lock_guard lock(mu_);
      return ptr_;
    }
    void store(std::shared_ptr<const detail::Snapshot> next, std::memory_order = std::memory_order_release) noexcept {
      {
        std::lock_guard lock(mu_);
        ptr_.swap(next);
      }
      // `next` now holds the old snapshot; it is released outside the lock.
    }

   private:
    mutable std::mutex mu_;
    std::shared_ptr<const detail::Snapshot> ptr_;  // guarded by mu_
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

  // --- request path --------------------------------------------------------
  [[nodiscard]] std::shared_ptr<const detail::Snapshot> current() const noexcept {
    return snap.load(std::memory_order_acquire);
  }
  Result<Response> score_one(const Request& req, TimePoint t0, Deadline deadline) noexcept;
  void record(const Result<Response>& r) noexcept;

  // --- models ----------------------------------------------------------------
  // Builds a snapshot from the slots' current models (reload_mu held or
  // not yet shared). Throws keel::Error if the chain rejects them.
  std::shared_ptr<const detail::Snapshot> make_snapshot() const;
  // Checks a candidate for slot `i` against the one it replaces (or, for
  // the first load, against the configured widths). Status names why not.
  Status check_candidate(std::size_t slot, const Model& candidate) const noexcept;
  Result<std::uint64_t> swap_in(std::size_t slot, ModelPtr model) noexcept;  // reload_mu held
  Status reload_failed(std::size_t slot, Status why) noexcept;                // reload_mu held
  [[nodiscard]] std::size_t slot_index(std::string_view name) const noexcept;
  void register_metrics();
};

}  // namespace keel
