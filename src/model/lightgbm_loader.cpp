// Placeholder until the LightGBM loader lands (issue 3): answers an honest
// error so that load_model links. Replaced wholesale by the real loader.
#include <keel/model/loaders.hpp>

namespace keel {

Result<ModelPtr> load_lightgbm_text(std::string_view, const LoadOptions&) {
  return model_error("LightGBM loader not built yet");
}

}  // namespace keel
