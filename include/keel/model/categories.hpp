#pragma once
// CategoryEncoder: the preprocessing step that turns category strings into
// the codes a model's trees test, built from the vocabulary the model file
// carries (FeatureInfo::categories: XGBoost >= 3.1 `cats`, LightGBM
// `pandas_categorical`). It maps as the training library maps a DataFrame
// before predicting: a string's code is its index in the vocabulary; a
// string the vocabulary lacks is treated as ModelInfo::unseen_category says
// (XGBoost: an error, as XGBoost raises; LightGBM: missing, NaN).
//
//   CategoryEncoder enc(model->info());
//   Result<double> code = enc.encode(feature, "Private");  // then row[feature] = *code
//
// Numbers are not looked up: a numeric value in a categorical column is
// already a code (as XGBoost's DMatrix and LightGBM read numeric arrays).
// Immutable after construction; thread-safe.

#include <keel/core/result.hpp>
#include <keel/model/model.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace keel {

class CategoryEncoder {
 public:
  explicit CategoryEncoder(const ModelInfo& info);

  // True when feature j has a vocabulary to look strings up in.
  [[nodiscard]] bool has_vocabulary(std::size_t feature) const noexcept {
    return feature < maps_.size() && !maps_[feature].empty();
  }
  // The code of `value` for feature j. Errors (kInvalidInput) name the
  // feature and the value: no vocabulary for j, or (kError models) a value
  // outside it.
  [[nodiscard]] Result<double> encode(std::size_t feature, std::string_view value) const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::unordered_map<std::string, std::uint32_t, Hash, std::equal_to<>>> maps_;
  std::vector<std::string> names_;
  UnseenCategory unseen_;
};

}  // namespace keel
