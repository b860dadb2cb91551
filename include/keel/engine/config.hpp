#pragma once
// The same composition as EngineBuilder, from a JSON file. Every error
// throws keel::Error naming the JSON path of the bad value
// ("chain[1].breaker.failure_rate: must be in (0, 1], got 1.5"); unknown
// keys are errors too, so a typo never silently falls back to a default.
// Relative paths in the file are relative to the file's directory.
// A model's "fault" (for tests and chaos drills) wraps it, and every reload
// of its file, in a FaultInjector; a hang_rate needs a hang_limit_ms. The
// canary rows run through the fault: an error_rate of 1 fails them, and the
// model is refused (at build) or kept as it was (at reload).
// "explain" sets the reason codes a request gets when it does not ask
// (Request::reason_codes); reason_codes is at most the model's feature count.
//
// {
//   "name": "churn",
//   "models": [{"name": "replicas", "remote": {"model": "churn", "endpoints": [{"host": "10.0.0.5", "port": 8000}]}},
//              {"name": "primary", "path": "model.json", "id": "churn-xgb",
//               "fault": {"latency_ms": 40, "latency_jitter_ms": 10, "tail_rate": 0.01, "tail_latency_ms": 500,
//                         "error_rate": 0.1, "error_code": "unavailable", "nan_rate": 0, "hang_rate": 0,
//                         "hang_limit_ms": 1000, "seed": 1, "enabled": true}}],
//   "chain": [
//     {"model": "primary",
//      "breaker":  {"window": "count", "window_size": 100, "minimum_calls": 20, "failure_rate": 0.5,
//                   "slow_call_rate": 1.0, "slow_call_ms": 50, "wait_in_open_ms": 5000,
//                   "wait_multiplier": 2, "max_wait_in_open_ms": 60000, "half_open_probes": 3},
//      "retry":    {"max_attempts": 3, "initial_backoff_ms": 1, "multiplier": 2, "max_backoff_ms": 50,
//                   "jitter": "full", "seed": 1, "budget": {"ratio": 0.2, "min_per_second": 10}},
//      "bulkhead": {"max_concurrent": 64, "max_wait_ms": 0,
//                   "adaptive": {"initial_limit": 20, "min_limit": 1, "max_limit": 1000,
//                                "backoff_ratio": 0.9, "latency_threshold_ms": 100}},
//      "isolated": true, "executor": {"threads": 4, "queue": 64}, "timeout_ms": 5, "hedge_ms": 2,
//      "output": "transformed"},
//     {"model": "backup"},
//     {"default": [0.5]}],
//   "features": ["age", "income", "colour"],
//   "validator": {"schema": "schema.json" | {...}, "profile": "profile.json"},
//   "anomaly":   {"profile": "profile.json", "policy": "flag", "z_threshold": 6, "min_score": 1},
//   "drift":     {"profile": "profile.json", "window_rows": 10000},
//   "preprocess": {"steps": [{"op": "default", "feature": "age", "value": 35},
//                            {"op": "clip", "feature": 1, "min": 0, "max": 1e6},
//                            {"op": "log1p", "feature": "income"},
//                            {"op": "standardise", "feature": "age", "mean": 40, "std": 12}],
//                  "one_hot": [{"feature": "colour", "categories": [0, 1, 2]}]},
//   "postprocess": {"calibration": {"platt": {"a": -1.2, "b": 0.1}},
//                   "labels": {"thresholds": [0.5], "names": ["stay", "churn"]}, "top_k": 0},
//   "cache": {"max_entries": 100000, "max_bytes": 67108864, "ttl_ms": 300000, "shards": 16},
//   "idempotency": {"ttl_ms": 600000, "max_entries": 100000, "max_bytes": 67108864},
//   "log": {"level": "warn", "burst": 5, "window_ms": 10000},
//   "default_timeout_ms": 50,
//   "explain": {"reason_codes": 3, "mode": "magnitude" | "up"},
//   "canary_rows": [[0, 0, 0]],
//   "allow_schema_change": false
// }

#include <keel/engine/scoring_engine.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace keel {

// What a config file cannot say: the host's own clock, loader, registry and
// log sink.
struct ConfigOptions {
  Clock* clock = nullptr;                      // default: system_clock()
  ModelLoaderFn loader;                        // default: keel::load_model
  std::shared_ptr<MetricsRegistry> metrics;    // default: a new one
  std::shared_ptr<LogSink> log_sink;           // default: std::clog
  // The longest wait a model's "fault" may add (latency, tail, hang limit).
  Duration max_fault_wait = std::chrono::seconds(60);
  // Model kinds a config names by a key instead of "path", such as
  // keel::net's {"name": "replicas", "remote": {...}} (add_remote_models in
  // <keel/net/remote/remote_config.hpp>; keel serve and keel worker register
  // it). A factory gets the key's JSON value as text and its JSON path, and
  // throws keel::Error naming that path. A "remote" key without a factory
  // is an error saying so; keel::keel itself links no networking.
  using ModelFactory =
      std::function<ModelPtr(std::string_view json, const std::string& json_path, MetricsRegistry* metrics)>;
  std::map<std::string, ModelFactory, std::less<>> model_factories;
};

// A builder ready to build(), or to be refined in code first.
[[nodiscard]] EngineBuilder builder_from_json(std::string_view json_text, const std::filesystem::path& base_dir,
                                              const ConfigOptions& opts = {});
[[nodiscard]] EngineBuilder builder_from_config(const std::filesystem::path& path, const ConfigOptions& opts = {});
[[nodiscard]] std::unique_ptr<ScoringEngine> engine_from_config(const std::filesystem::path& path,
                                                                const ConfigOptions& opts = {});

}  // namespace keel
