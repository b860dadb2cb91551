// Model's default explanations: the explainer the loader attached to the
// model's info (tree ensembles), else an error naming the model. Reason
// codes from a row's contributions.

#include <keel/model/explain.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

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

// Reason codes: a bounded insertion into the caller's buffer, kept sorted
// best first, so the top k of F features cost O(F k) and no allocation.
namespace keel {
namespace {

// a ranks before b.
bool better(float a, std::uint32_t ia, float b, std::uint32_t ib, ReasonMode mode) noexcept {
  const float ka = mode == ReasonMode::kMagnitude ? std::fabs(a) : a;
  const float kb = mode == ReasonMode::kMagnitude ? std::fabs(b) : b;
  return ka > kb || (ka == kb && ia < ib);
}

Status bad_shape(std::string_view what, std::size_t got, std::size_t want) noexcept {
  try {
    return invalid_input(fmt::format("reason codes: {} has {} values, expected {}", what, got, want));
  } catch (...) {
    return invalid_input("reason codes: sizes disagree");
  }
}

template <class V>
Result<std::size_t> top_codes(std::span<const float> contributions, std::span<const std::string> names,
                              std::span<const V> values, ReasonMode mode, std::span<ReasonCode> out) noexcept {
  const std::size_t nf = values.size();
  if (names.size() != nf) return bad_shape("the feature names", names.size(), nf);
  if (contributions.size() != nf && contributions.size() != nf + 1) {
    return bad_shape("the contributions", contributions.size(), nf + 1);
  }
  std::size_t n = 0;
  for (std::size_t j = 0; j < nf; ++j) {
    const float c = contributions[j];
    if (std::isnan(c)) {
      try {
        return invalid_input(fmt::format("reason codes: the contribution of feature {} ('{}') is NaN", j, names[j]));
      } catch (...) {
        return invalid_input("reason codes: a contribution is NaN");
      }
    }
    if (c == 0.0f || (mode == ReasonMode::kIncreasing && !(c > 0.0f))) continue;
    const auto jj = static_cast<std::uint32_t>(j);
    // Position among the n kept; past the end when it ranks below them all.
    std::size_t pos = n;
    while (pos > 0 && better(c, jj, out[pos - 1].contribution, out[pos - 1].feature, mode)) --pos;
    if (pos >= out.size()) continue;
    for (std::size_t m = std::min(n, out.size() - 1); m > pos; --m) out[m] = out[m - 1];
    out[pos] = ReasonCode{jj, names[j], static_cast<double>(values[j]), c};
    n = std::min(n + 1, out.size());
  }
  return n;
}

template <class V>
Result<std::vector<ReasonCode>> codes_vector(std::span<const float> contributions, std::span<const std::string> names,
                                             std::span<const V> values, std::size_t k, ReasonMode mode) {
  std::vector<ReasonCode> v(std::min(k, values.size()));
  Result<std::size_t> n = top_codes<V>(contributions, names, values, mode, v);
  if (!n) return n.status();
  v.resize(*n);
  return v;
}

}  // namespace

std::vector<std::string> reason_code_names(const ModelInfo& mi) {
  std::vector<std::string> names(mi.num_features);
  for (std::size_t j = 0; j < names.size(); ++j) {
    const bool named = j < mi.features.size() && !mi.features[j].name.empty();
    names[j] = named ? mi.features[j].name : fmt::format("f{}", j);
  }
  return names;
}

Result<std::size_t> top_reason_codes(std::span<const float> contributions, std::span<const std::string> names,
                                     std::span<const double> values, ReasonMode mode,
                                     std::span<ReasonCode> out) noexcept {
  return top_codes<double>(contributions, names, values, mode, out);
}

Result<std::size_t> top_reason_codes(std::span<const float> contributions, std::span<const std::string> names,
                                     std::span<const float> values, ReasonMode mode,
                                     std::span<ReasonCode> out) noexcept {
  return top_codes<float>(contributions, names, values, mode, out);
}

Result<std::vector<ReasonCode>> reason_codes(std::span<const float> contributions, std::span<const std::string> names,
                                             std::span<const double> values, std::size_t k, ReasonMode mode) {
  return codes_vector<double>(contributions, names, values, k, mode);
}

Result<std::vector<ReasonCode>> reason_codes(std::span<const float> contributions, std::span<const std::string> names,
                                             std::span<const float> values, std::size_t k, ReasonMode mode) {
  return codes_vector<float>(contributions, names, values, k, mode);
}

}  // namespace keel
