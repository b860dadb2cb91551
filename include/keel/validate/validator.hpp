#pragma once
// Validator: checks rows before they reach a model. A small interface so
// that hosts can plug in their own; SchemaValidator is Keel's.
//
// Implementations are immutable after construction: validate() on a const
// Validator may run concurrently from many threads (thread-safe), each with
// its own ValidationReport and output buffer.

#include <keel/validate/validation_report.hpp>

#include <cstddef>
#include <span>

namespace keel {

class Validator {
 public:
  virtual ~Validator() = default;

  // Row length the validator expects.
  [[nodiscard]] virtual std::size_t num_features() const noexcept = 0;

  // Checks n_rows row-major rows held in `rows` (rows.size() / n_rows each;
  // a size that is not num_features() * n_rows rejects every row with
  // Rule::kRowLength). Results go to `report` (reset first).
  //
  // `fixed` receives the rows with clamp/impute applied: it must be empty
  // (check only: the actions are reported but nothing is written) or hold
  // rows.size() floats (any other size is treated as empty); it may be the
  // same memory as `rows` (in place). A rejected row may be partly fixed:
  // do not score it. Never throws, never allocates once the report is warm.
  virtual void validate(std::span<const float> rows, std::size_t n_rows, std::span<float> fixed,
                        ValidationReport& report) const noexcept = 0;

  // One row; returns the row's Status (InvalidInput when rejected).
  [[nodiscard]] Status validate_row(std::span<const float> row, std::span<float> fixed,
                                    ValidationReport& report) const {
    validate(row, 1, fixed, report);
    return report.row_status(0);
  }
};

// The null validator: every row of the right length passes untouched. For
// engines configured without validation. Thread-safe.
class AcceptAllValidator final : public Validator {
 public:
  explicit AcceptAllValidator(std::size_t num_features) noexcept : n_(num_features) {}
  [[nodiscard]] std::size_t num_features() const noexcept override { return n_; }
  void validate(std::span<const float> rows, std::size_t n_rows, std::span<float> fixed,
                ValidationReport& report) const noexcept override;

 private:
  std::size_t n_;
};

}  // namespace keel
