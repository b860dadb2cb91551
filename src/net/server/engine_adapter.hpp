#pragma once
// The one place keel::net calls into keel::ScoringEngine (build, score,
// health, reload, metrics), so adopting a new engine API is one file.

#include <keel/net/server/model_repository.hpp>

#include <filesystem>
#include <memory>
#include <string>

namespace keel::net::detail {

// Builds the engine for one model folder (engine.json, or the one model
// file in it) or one model file. Throws keel::Error naming what is wrong.
std::unique_ptr<ServedModel> load_served_model(const std::string& name, const std::string& version,
                                               const std::filesystem::path& source, const std::string& engine_name,
                                               const RepositoryOptions& options);
// Whether scoring on `engine` may wait (ServedModel::waits): a stage that
// is isolated, retries with a backoff, queues at its bulkhead or has a
// fault injector (latency faults sleep), or
// `remote_or_shared` (a remote stage, Redis state), which the caller knows.
bool engine_waits(const ScoringEngine& engine, bool remote_or_shared);
std::size_t reload_changed(const ServedModel& model);
void watch(const ServedModel& model, Duration interval);
// Rebuilds `model`'s engine when its engine.json changed since it was
// built: true when swapped; an error (and the old engine kept) when the
// new config does not build or changes the model's inputs or outputs.
Result<bool> reload_config(const ServedModel& model, const RepositoryOptions& options, Duration watch_interval);

}  // namespace keel::net::detail
