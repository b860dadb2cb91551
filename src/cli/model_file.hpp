#pragma once
// Loading a model file for the CLI commands, with errors ready to print.

#include <keel/model/loaders.hpp>

#include <string>

namespace keel::cli {

// Loads the model at `path`, detecting its format.
[[nodiscard]] Result<ModelPtr> load_model_file(const std::string& path, const LoadOptions& opts = {});

}  // namespace keel::cli
