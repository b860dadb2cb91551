#pragma once
// Violation: one broken rule in one row: which feature (index and name),
// which rule, the offending value, and what the validator did about it.
// Value types; thread-safe to read.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

namespace keel {

// What a schema checks, one policy each.
enum class Rule : std::uint8_t {
  kRowLength,        // the row has the wrong number of values
  kMissing,          // NaN where the schema does not allow missing (or the feature is required)
  kInfinite,         // +inf or -inf where the schema does not allow it
  kBelowMin,         // finite and below the feature's min
  kAboveMax,         // finite and above the feature's max
  kType,             // not an integer (integer, categorical) or not 0/1 (indicator)
  kUnknownCategory,  // a categorical id outside the schema's allowed set
};
inline constexpr std::size_t kNumRules = 7;
std::string_view to_string(Rule r) noexcept;

// What happens to a row that breaks a rule.
enum class Action : std::uint8_t {
  kReject,  // the row is not scored: InvalidInput
  kClamp,   // the value is moved to the nearest allowed one (range, inf, type)
  kImpute,  // the value is replaced by the feature's impute value
  kFlag,    // scored as is, but marked
};
std::string_view to_string(Action a) noexcept;

struct Violation {
  static constexpr std::uint32_t kNoFeature = std::numeric_limits<std::uint32_t>::max();

  std::uint32_t feature = kNoFeature;  // index in the row; kNoFeature for kRowLength
  Rule rule = Rule::kRowLength;
  Action action = Action::kReject;
  float value = 0.0f;     // as received (for kRowLength: the row's length)
  float replaced = 0.0f;  // the value written instead (clamp, impute); == value otherwise
  // Points into the validator's schema: valid while the validator lives.
  std::string_view feature_name;
};

}  // namespace keel
