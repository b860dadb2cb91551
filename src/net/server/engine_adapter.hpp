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
std::size_t reload_changed(const ServedModel& model);
void watch(const ServedModel& model, Duration interval);

}  // namespace keel::net::detail
