// libFuzzer target: the LightGBM text loader must reject or accept any bytes
// without crashing, hanging or allocating without bound; an accepted model
// must score a row.
#include <keel/model/loaders.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  keel::LoadOptions opts;
  opts.max_bytes = std::size_t{1} << 20;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  keel::Result<keel::ModelPtr> m = keel::load_lightgbm_text(text, opts);
  if (!m.ok()) return 0;
  const keel::ModelInfo& info = (*m)->info();
  // Two rows: all zeros, all NaN; both output kinds.
  std::vector<double> rows(2 * info.num_features, 0.0);
  for (std::size_t j = 0; j < info.num_features; ++j) rows[info.num_features + j] = std::nan("");
  for (const auto kind : {keel::OutputKind::kMargin, keel::OutputKind::kTransformed}) {
    std::vector<float> out(2 * info.width(kind));
    if (!(*m)->predict(std::span<const double>(rows), 2, out, {kind}).is_ok()) __builtin_trap();
  }
  return 0;
}
