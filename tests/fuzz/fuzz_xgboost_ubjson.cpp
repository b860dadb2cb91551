// libFuzzer: XGBoost UBJSON loader (and load_model's detection) on arbitrary bytes.
#include <keel/model/loaders.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  keel::fuzz::exercise(keel::load_xgboost_ubjson(bytes));
  keel::fuzz::exercise(keel::load_model_from_memory(bytes));
  return 0;
}
