#include <keel/model/categories.hpp>

#include <fmt/format.h>

#include <limits>

namespace keel {

CategoryEncoder::CategoryEncoder(const ModelInfo& info) : maps_(info.features.size()), unseen_(info.unseen_category) {
  names_.reserve(info.features.size());
  for (std::size_t j = 0; j < info.features.size(); ++j) {
    const FeatureInfo& f = info.features[j];
    names_.push_back(f.name.empty() ? fmt::format("feature {}", j) : fmt::format("'{}'", f.name));
    for (std::size_t c = 0; c < f.categories.size(); ++c) {
      // The first of two equal strings wins, as a first-match lookup would.
      maps_[j].emplace(f.categories[c], static_cast<std::uint32_t>(c));
    }
  }
}

Result<double> CategoryEncoder::encode(std::size_t feature, std::string_view value) const {
  if (!has_vocabulary(feature)) {
    return invalid_input(fmt::format("{}: '{}' is not a number and the model has no category vocabulary for it",
                                     feature < names_.size() ? names_[feature] : fmt::format("feature {}", feature),
                                     value.substr(0, 40)));
  }
  const auto& m = maps_[feature];
  if (const auto it = m.find(value); it != m.end()) return static_cast<double>(it->second);
  if (unseen_ == UnseenCategory::kMissing) return std::numeric_limits<double>::quiet_NaN();
  return invalid_input(fmt::format("{}: category '{}' is not in the model's vocabulary of {} (XGBoost refuses "
                                   "categories not seen in training)",
                                   names_[feature], value.substr(0, 40), m.size()));
}

}  // namespace keel
