#pragma once
// Loaders are free functions (one per format, plus load_model, which
// detects the format). They parse untrusted bytes: every index is checked,
// and a malformed file is a Status naming the tree, node, line or byte
// offset, never a crash. Each returns a ready, immutable, thread-safe Model.

#include <keel/model/model.hpp>
#include <keel/model/tree_ensemble.hpp>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace keel {

struct LoadOptions {
  // ModelInfo::id; empty means the file's stem (or "model" from memory).
  std::string id;
  // Upper bound on the bytes a loader accepts (and so on what it allocates).
  std::size_t max_bytes = std::size_t{1} << 30;
  // Score with only the first N boosting rounds (0 = all in the file), as
  // the training library's own limit does: XGBoost iteration_range (0, N)
  // (trees [iteration_indptr[0], iteration_indptr[N])), LightGBM
  // num_iteration (the first N * num_tree_per_iteration trees), DART
  // included. More rounds than the file holds, or any limit on a model
  // without rounds (gblinear, Keel linear), is an error, never ignored.
  std::size_t num_iterations = 0;
  // Score with the rounds up to the file's recorded best iteration
  // (ModelInfo::best_iteration); an error when the file records none.
  // Excludes num_iterations.
  bool use_best_iteration = false;
  // Tree ensembles: kernel, layout and kernel features (defaults: the best
  // this CPU runs).
  TreeEnsembleOptions tree;
};

// Detects the format from the content (JSON object with "learner" ->
// XGBoost JSON; UBJSON '{' + typed keys -> XGBoost UBJSON; "tree\nversion="
// -> LightGBM text; JSON object with "keel_linear" -> Keel linear JSON).
[[nodiscard]] Result<ModelPtr> load_model(const std::filesystem::path& path, const LoadOptions& opts = {});
[[nodiscard]] Result<ModelPtr> load_model_from_memory(std::span<const std::uint8_t> bytes, const LoadOptions& opts = {});

[[nodiscard]] Result<ModelPtr> load_xgboost_json(std::string_view text, const LoadOptions& opts = {});
[[nodiscard]] Result<ModelPtr> load_xgboost_ubjson(std::span<const std::uint8_t> bytes, const LoadOptions& opts = {});
[[nodiscard]] Result<ModelPtr> load_lightgbm_text(std::string_view text, const LoadOptions& opts = {});
[[nodiscard]] Result<ModelPtr> load_keel_linear_json(std::string_view text, const LoadOptions& opts = {});

}  // namespace keel
