// Model's default explanations: the explainer the loader attached to the
// model's info (tree ensembles), else an error naming the model.

#include <keel/model/explain.hpp>

#include <fmt/format.h>

namespace keel {
namespace {

Status none(const ModelInfo& mi, std::string_view what) noexcept {
  try {
    return model_error(fmt::format("model '{}' ({}) has no {}", mi.id, mi.booster.empty() ? "custom" : mi.booster,
                                   what));
  } catch (...) {
    return model_error("model has no explanations");
  }
}

}  // namespace

Status Model::contributions(std::span<const float> rows, std::size_t n_rows, std::span<float> out) const noexcept {
  if (const auto& e = info().explainer) return e->contributions(rows, n_rows, out);
  return none(info(), "contributions");
}

Status Model::contributions(std::span<const double> rows, std::size_t n_rows, std::span<float> out) const noexcept {
  if (const auto& e = info().explainer) return e->contributions(rows, n_rows, out);
  return none(info(), "contributions");
}

Status Model::leaf_indices(std::span<const float> rows, std::size_t n_rows,
                           std::span<std::int32_t> out) const noexcept {
  if (const auto& e = info().explainer) return e->leaf_indices(rows, n_rows, out);
  return none(info(), "leaf indices (not a tree model)");
}

Status Model::leaf_indices(std::span<const double> rows, std::size_t n_rows,
                           std::span<std::int32_t> out) const noexcept {
  if (const auto& e = info().explainer) return e->leaf_indices(rows, n_rows, out);
  return none(info(), "leaf indices (not a tree model)");
}

}  // namespace keel
