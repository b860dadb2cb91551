#pragma once
// Reason codes as requests ask for them and responses carry them: the
// features that moved one row's score most, each with the row's value and
// its exact contribution (model/explain.hpp computes them). Value types.

#include <cstdint>
#include <optional>
#include <string>

namespace keel {

enum class ReasonMode : std::uint8_t {
  kMagnitude,   // largest |contribution| first, either sign
  kIncreasing,  // only contributions > 0 (pushing the margin up), largest first
};

// What a request asks for. Unset fields take the engine's default (the
// config's "explain" key; none unless configured); k = 0 asks for none.
struct ReasonOptions {
  std::optional<std::uint32_t> k;  // codes per model output
  std::optional<ReasonMode> mode;
  // The whole explanation as tensors, besides or instead of codes
  // (BatchResult::contributions / leaves): every feature's contribution,
  // the leaf each tree reaches. Off unless asked (no engine default).
  bool contributions = false;
  bool leaves = false;
};

// One reason code of an answer.
struct Reason {
  std::string feature;         // the model's feature name, or "f<index>" when the file has none
  std::uint32_t index = 0;     // the feature's index in the model's row
  std::uint32_t output = 0;    // which margin output it explains (0 unless multiclass)
  double value = 0.0;          // the row's value as the model saw it (after preprocessing; NaN = missing)
  float contribution = 0.0f;   // its SHAP contribution to that margin
};

}  // namespace keel
