#pragma once
// ModelRepository: the models `keel serve` answers for, by name and
// version. Built at start from `--models DIR` (one folder per model holding
// the model file and an optional engine.json; optional version subfolders
// named by digits) and `--model NAME=FILE`; every model is loaded at once
// and a bad one fails the start (throws keel::Error naming it). Models are
// changed only through each engine's checked reload (polling, SIGHUP): a bad
// file keeps the old model serving. The models sit in a keel::EngineRegistry
// (each entry's context is its ServedModel; unload = the entry not ready).
//
// Thread-safe: load() and unload() may change the set while requests look
// models up (the registry's snapshots; load/unload serialise on a mutex);
// models are never removed from the registry, so a pointer from find()
// stays valid for the repository's life; each model's engine is
// thread-safe and its counters are atomics.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/result.hpp>
#include <keel/engine/registry.hpp>
#include <keel/net/oip/infer.hpp>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace keel {
class ScoringEngine;
class MetricsRegistry;
class Cache;
class IdempotencyStore;
}  // namespace keel

namespace keel::net {

// Counters for Triton's statistics extension. Thread-safe (atomics).
struct ModelStats {
  std::atomic<std::uint64_t> success_count{0}, success_ns{0};
  std::atomic<std::uint64_t> fail_count{0}, fail_ns{0};
  std::atomic<std::uint64_t> queue_count{0}, queue_ns{0};
  std::atomic<std::uint64_t> parse_ns{0}, score_ns{0}, write_ns{0};
  std::atomic<std::uint64_t> inference_count{0};  // rows
  std::atomic<std::uint64_t> execution_count{0};  // engine calls
  std::atomic<std::int64_t> last_inference_ms{0};  // Unix epoch ms
  // The recent scoring time per row, ns: each call's time divided by its
  // rows, averaged with weight 1/8 from 0 (so one slow first call, or one
  // preempted call, moves it only an eighth of the way), for the
  // run-to-completion rule (ServiceConfig::inline_rows).
  std::atomic<std::uint64_t> recent_row_ns{0};
};

// One (name, version) and the engine that scores it. A changed engine.json
// builds a new engine that replaces the old one here (same inputs and
// outputs, or it is refused); calls in flight finish on the engine they
// started with, and the ServedModel itself (its stats) stays.
struct ServedModel {
  std::string name;
  std::string version;  // "1" when the folder has no version subfolders
  std::string engine_name;
  std::filesystem::path source;
  std::filesystem::path config;  // the folder's engine.json, empty without one
  std::size_t features = 0;
  std::size_t width = 0;
  mutable ModelStats stats;
  // Whether the engine may wait while it scores: a remote stage, a Redis
  // cache or idempotency store, an isolated stage, a retry with backoff, a
  // stage bulkhead that queues or a fault injector. Such an engine is never
  // scored on an I/O thread. Set with the engine (engine_waits() in
  // engine_adapter.hpp).
  mutable std::atomic<bool> waits{true};

  // The engine now; set_engine() swaps it. Thread-safe.
  [[nodiscard]] std::shared_ptr<ScoringEngine> engine() const;
  void set_engine(std::shared_ptr<ScoringEngine> engine) const;
  // engine.json's modification time when last built, and when it last
  // failed to build (so a bad file is tried once, not at every poll).
  mutable std::filesystem::file_time_type config_built{}, config_failed{};

  ServedModel();
  ~ServedModel();
  ServedModel(ServedModel&&) = delete;

  // The engine calls the server makes, all in engine_adapter.cpp.
  [[nodiscard]] bool ready() const;
  // Scores `request` into `result` (scores, Keel's answer fields, per-row
  // errors). A Status that is not ok fails the request as a whole.
  [[nodiscard]] Status score(const oip::InferRequest& request, std::string_view idempotency_key, Deadline deadline,
                             oip::InferResult& result) const;

 private:
  mutable std::mutex engine_mu_;
  mutable std::shared_ptr<ScoringEngine> engine_;
};

// State an engine shares with other processes (keel serve: Redis), given
// to every engine built, replacing its engine.json's cache or idempotency.
// A null member keeps the engine's own.
struct EngineSharedState {
  std::shared_ptr<Cache> cache;
  std::shared_ptr<IdempotencyStore> idempotency;
};

struct RepositoryOptions {
  std::shared_ptr<MetricsRegistry> metrics;  // shared by every engine (one /metrics)
  // Where the engine.json poller reports a config it refused (one line each).
  std::function<void(const std::string&)> log;
  // Called once per engine built (at start and by load()) with the engine's
  // name ("m", or "m:2" for version folders). Empty: no shared state.
  std::function<EngineSharedState(const std::string& engine_name)> shared_state;
};

class ModelRepository {
 public:
  explicit ModelRepository(RepositoryOptions options);
  ~ModelRepository();
  ModelRepository(const ModelRepository&) = delete;
  ModelRepository& operator=(const ModelRepository&) = delete;

  // Loads every model folder below `dir`. Throws keel::Error.
  void add_directory(const std::filesystem::path& dir);
  // Loads one model file as version "1" of `name`. Throws keel::Error.
  void add_file(const std::string& name, const std::filesystem::path& file);

  // `version` empty: the highest version. Null when unknown.
  [[nodiscard]] const ServedModel* find(std::string_view name, std::string_view version = {}) const;
  // Every model, by name then version.
  [[nodiscard]] std::vector<const ServedModel*> all() const;
  [[nodiscard]] bool all_ready() const;
  [[nodiscard]] bool empty() const { return registry_.size() == 0; }

  // Triton's repository extension. A model is loaded from its folder below
  // the --models directory (a folder that appeared since the start too) or,
  // if already known, re-read through each version's checked reload and
  // served again; unloaded, it stops being served (its memory is kept
  // until the process exits, so calls in flight finish). Errors are values:
  // kNotFound for no such folder, kInvalidInput for a bad name or model.
  struct IndexEntry {
    std::string name, version, state, reason;  // state: READY | UNAVAILABLE
  };
  [[nodiscard]] std::vector<IndexEntry> index() const;
  [[nodiscard]] Status load(std::string_view name);
  [[nodiscard]] Status unload(std::string_view name);

  // Reloads every changed model file and rebuilds every engine whose
  // engine.json changed (SIGHUP); how many were swapped. A model file or
  // engine.json that fails keeps what was served; the engine.json errors
  // are in `errors` when given.
  std::size_t reload_changed(std::vector<std::string>* errors = nullptr);
  // Polls for changed files every `interval`: each engine's model files
  // (engine watchers) and every engine.json (a repository thread).
  void watch(Duration interval);

  // The Prometheus text of every engine's registry.
  [[nodiscard]] std::string metrics_text() const;

  // A model or version name a URL may carry: [A-Za-z0-9_.-], not "." or
  // "..", at most 128 bytes.
  [[nodiscard]] static bool valid_name(std::string_view name) noexcept;

 private:
  void add(std::unique_ptr<ServedModel> model);
  Status set_served(std::string_view name, bool serve, bool& known);
  // The models of one folder of the repository (its versions). Throws.
  std::vector<std::unique_ptr<ServedModel>> load_folder(const std::filesystem::path& folder) const;
  RepositoryOptions options_;
  std::filesystem::path dir_;  // --models, empty without one
  Duration watch_interval_{0};
  std::mutex load_mu_;  // serialises load(), unload() and engine.json rebuilds
  std::size_t reload_configs(std::vector<std::string>* errors);  // under load_mu_
  // The engine.json poller (watch()).
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;
  std::thread watcher_;
  EngineRegistry registry_;
};

}  // namespace keel::net
