#pragma once
// SchemaValidator: the Validator that enforces a Schema. The hot loop is
// branch-light: one pass compares every value against precomputed bounds
// (NaN and ±inf fail the comparison unless allowed), a second pass checks
// only typed features (integer, indicator, categorical); a row that passes
// both is done, and only a row that fails takes the per-feature slow path
// that applies the policies. Immutable after construction; thread-safe.

#include <keel/validate/detail/category_set.hpp>
#include <keel/validate/schema.hpp>
#include <keel/validate/validator.hpp>

#include <cstdint>
#include <vector>

namespace keel {

namespace detail {
struct CleanTables;
}

class SchemaValidator final : public Validator {
 public:
  // Throws keel::Error on an inconsistent schema (min > max, clamp on
  // missing or unknown_category, impute without a value or with a value
  // the feature's own rules reject).
  explicit SchemaValidator(Schema schema);

  [[nodiscard]] std::size_t num_features() const noexcept override { return schema_.features.size(); }
  [[nodiscard]] const Schema& schema() const noexcept { return schema_; }

  void validate(std::span<const float> rows, std::size_t n_rows, std::span<float> fixed,
                ValidationReport& report) const noexcept override;

 private:
  [[nodiscard]] bool row_clean(const float* row) const noexcept;
  // The first loop of row_clean over `count` values (a multiple of the
  // features, at most block_ rows); categories_ok is the second.
  [[nodiscard]] bool values_clean(const float* v, std::size_t count) const noexcept;
  [[nodiscard]] bool categories_ok(const float* row) const noexcept;
  void check_row(std::size_t r, const float* in, float* out, ValidationReport& report) const noexcept;

  Schema schema_;
  // Fast-path checks, one lane per feature so that the loop vectorises: a
  // value passes when lo <= v <= hi (bounds narrowed by type: [0, 1] for
  // indicators, ids >= 0) and, where whole_ is set, is a whole number; or
  // when it is NaN and nan_ok. ±inf is inside only when allowed.
  // Tiled block_ times (block_ rows checked in one loop).
  static constexpr std::size_t kBlockRows = 8;
  static constexpr std::size_t kMaxTiledFeatures = 64;
  std::size_t block_ = 1;
  std::vector<float> lo_, hi_;
  std::vector<std::int32_t> nan_ok_, whole_;
  // The first loop's kernel for this CPU (src/validate/validate_kernels.hpp).
  bool (*clean_)(const float* v, const detail::CleanTables& t, std::size_t count) noexcept = nullptr;
  std::vector<std::uint32_t> category_features_;  // categorical features with an id set
  detail::CategorySets categories_;
};

}  // namespace keel
