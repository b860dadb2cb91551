#pragma once
// Schema: what a valid row looks like, feature by feature, and what to do
// (a policy per rule) when a row breaks a rule. Built from a model's own
// metadata (length, names, types) and optionally refined by a JSON schema
// file. Value type; thread-safe to read.
//
// JSON schema (every key optional; features matched by "name", or by
// "index" when the model has no names):
//   { "defaults": {"missing": "reject", "infinite": "reject", "range": "reject",
//                  "type": "flag", "unknown_category": "reject"},
//     "allow_missing": true,
//     "features": [ {"name": "age", "type": "integer", "min": 0, "max": 120,
//                    "allow_missing": false, "required": false, "allow_inf": false,
//                    "impute": 35 | "median", "categories": [0, 1, 2],
//                    "policy": {"range": "clamp", "missing": "impute"}} ] }

#include <keel/model/model.hpp>
#include <keel/validate/violation.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

class Profile;

struct FeatureSchema {
  std::string name;
  FeatureType type = FeatureType::kNumeric;
  // Inclusive bounds on finite values; infinite means unbounded.
  float min = -std::numeric_limits<float>::infinity();
  float max = std::numeric_limits<float>::infinity();
  bool allow_missing = true;  // NaN accepted as "missing"
  bool required = false;      // missing always rejects, whatever the missing policy
  bool allow_inf = false;     // ±inf accepted (and then not range-checked)
  // Allowed ids of a categorical feature; empty = any non-negative integer.
  std::vector<std::int32_t> categories;
  // The value Action::kImpute writes.
  std::optional<float> impute;
  // Action per Rule (indexed by the Rule's value; kRowLength always rejects).
  std::array<Action, kNumRules> policy{Action::kReject, Action::kReject, Action::kReject, Action::kReject,
                                       Action::kReject, Action::kFlag,   Action::kReject};

  [[nodiscard]] Action action(Rule r) const noexcept { return policy[static_cast<std::size_t>(r)]; }
  void set_action(Rule r, Action a) noexcept { policy[static_cast<std::size_t>(r)] = a; }
};

struct Schema {
  std::vector<FeatureSchema> features;

  [[nodiscard]] std::size_t num_features() const noexcept { return features.size(); }

  // One FeatureSchema per model feature: name (or "f<i>"), type, default
  // policies; indicator features get [0, 1] bounds.
  static Schema from_model(const ModelInfo& info);
  // Numeric features with these names.
  static Schema from_names(const std::vector<std::string>& names);

  // Sets the impute value of every feature that has none to the profile's
  // median (features matched by index). Throws keel::Error when lengths differ.
  void impute_medians(const Profile& profile);
};

// Refines `base` with a JSON schema (see above). `profile`, when given,
// supplies medians for "impute": "median". Without a base (empty
// features) the file's "features" define the schema, in order. Throws
// keel::Error naming the feature and key on a bad file.
[[nodiscard]] Schema parse_schema(std::string_view json_text, Schema base = {}, const Profile* profile = nullptr);
[[nodiscard]] Schema load_schema(const std::filesystem::path& path, Schema base = {},
                                 const Profile* profile = nullptr);

// "reject", "clamp", "impute", "flag"; throws keel::Error otherwise.
[[nodiscard]] Action parse_action(std::string_view s);

}  // namespace keel
