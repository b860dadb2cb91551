// libFuzzer: Keel linear JSON loader on arbitrary bytes.
#include <keel/model/loaders.hpp>

#include "fuzz_common.hpp"

#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  keel::fuzz::exercise(keel::load_keel_linear_json(text));
  return 0;
}
