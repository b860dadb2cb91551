#pragma once
// LightGBM text-model parsing, split from the loader so that tests can see
// the TreeEnsembleSpec (and its node layout) the loader builds.

#include <keel/model/loaders.hpp>
#include <keel/model/tree_spec.hpp>

#include <cstdint>
#include <string_view>

namespace keel::detail {

// Parses a LightGBM text model (format v2-v4) into a validated spec with
// Arithmetic::kLightGBM. Node layout per tree: LightGBM's internal nodes
// first, in file order (node i = internal node i), then its leaves in file
// order (node L-1+j = leaf j), so LightGBM's leaf number is recoverable with
// lightgbm_leaf_number(). Errors (kModelError) name the tree and the line.
[[nodiscard]] Result<TreeEnsembleSpec> parse_lightgbm_text(std::string_view text, const LoadOptions& opts);

// LightGBM's leaf number of node `node` in a tree built by parse_lightgbm_text.
[[nodiscard]] inline std::int32_t lightgbm_leaf_number(const Tree& t, std::int32_t node) noexcept {
  return node - static_cast<std::int32_t>((t.nodes.size() - 1) / 2);
}

}  // namespace keel::detail
