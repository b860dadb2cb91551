#pragma once
// RemoteModel in engine.json: {"name": "replicas", "remote": {...}} in
// "models", then used by a chain stage like any model:
//
//   {"name": "replicas", "remote": {
//      "model": "churn", "version": "2", "transport": "rest", "local_zone": "a", "min_local_available": 1,
//      "endpoints": [{"host": "10.0.1.5", "port": 8000, "zone": "a"},
//                    {"host": "10.0.2.5", "port": 8000, "zone": "b", "standby": false}],
//      "connect_timeout_ms": 100, "attempt_timeout_ms": 250, "default_timeout_ms": 1000,
//      "max_attempts": 3, "max_connections": 64, "max_idle": 16,
//      "outlier": {"consecutive_failures": 5, "base_ejection_ms": 30000, "max_ejection_ms": 300000,
//                  "max_ejection_percent": 10},
//      "health_interval_ms": 1000, "health_timeout_ms": 200, "metadata_timeout_ms": 2000,
//      "ewma_decay_ms": 10000, "name": "replicas-b",
//      "hedge": {"quantile": 0.95, "min_delay_ms": 1, "min_samples": 20, "budget_percent": 10,
//                "burst": 10, "threads": 4}}}
//
// "transport": "rest" (the default) or "grpc" (the endpoints' ports are then
// their gRPC ports). "hedge" turns hedging on (HedgeOptions; each of its keys is optional).
// Every key but "model" and "endpoints" is optional (RemoteModelOptions'
// defaults). Unknown keys and bad values are keel::Error naming their JSON
// path. The endpoints must answer the model's metadata when the engine is
// built (RemoteModel's constructor).

#include <keel/engine/config.hpp>
#include <keel/net/remote/remote_model.hpp>

#include <string>
#include <string_view>

namespace keel::net {

// Parses the "remote" value (JSON text); `path` prefixes error messages.
[[nodiscard]] RemoteModelOptions remote_options_from_json(std::string_view json, const std::string& path);

// Registers the "remote" model kind in `options` (engine configs built with
// them may name remote models).
void add_remote_models(ConfigOptions& options);

}  // namespace keel::net
