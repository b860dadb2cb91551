#pragma once
// Shared by the loader fuzz targets: when an input loads, score one all-NaN
// row and one zero row in both output kinds, so evaluator paths run on
// every model the loader accepts. Any crash, sanitizer report or broken
// invariant (a load that says ok with a wrong-width model) aborts.

#include <keel/model/model.hpp>

#include <cstdlib>
#include <limits>
#include <vector>

namespace keel::fuzz {

inline void exercise(const Result<ModelPtr>& r) {
  if (!r.ok()) {
    if (r.status().message().empty()) std::abort();  // errors must say what is wrong
    return;
  }
  const Model& m = **r;
  const ModelInfo& mi = m.info();
  if (mi.features.size() != mi.num_features) std::abort();
  std::vector<float> row(mi.num_features, std::numeric_limits<float>::quiet_NaN());
  for (int pass = 0; pass < 2; ++pass) {
    for (const OutputKind kind : {OutputKind::kMargin, OutputKind::kTransformed}) {
      std::vector<float> out(mi.width(kind));
      PredictOptions o;
      o.output = kind;
      if (!m.predict_row(row, out, o).is_ok()) std::abort();
    }
    std::fill(row.begin(), row.end(), 0.0f);
  }
}

}  // namespace keel::fuzz
