#pragma once
// ValidationReport: what a Validator found in a batch, per row: ok, flagged,
// fixed (clamped/imputed), or rejected, with the violations. The caller
// keeps one per thread and passes it to every call: it keeps its capacity,
// so validating allocates nothing once warm. Not thread-safe.

#include <keel/core/status.hpp>
#include <keel/validate/detail/row_findings.hpp>
#include <keel/validate/violation.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace keel {

class ValidationReport {
 public:
  // Outcome bits of one row; a row with none is clean.
  enum : std::uint8_t { kFlagged = 1, kFixed = 2, kRejected = 4 };

  explicit ValidationReport(std::size_t max_violations_per_row = 32) : max_per_row_(max_violations_per_row) {}

  // Called by validators at the start of a batch.
  void reset(std::size_t n_rows) {
    findings_.reset(n_rows, max_per_row_);
    if (n_rows == 1 && outcome_.size() == 1) {  // a reused report, one row: no library call
      outcome_[0] = 0;
    } else {
      outcome_.assign(n_rows, 0);
    }
    rejected_ = 0;
    flagged_ = 0;
  }
  // Called by validators, rows in ascending order.
  void add(std::size_t row, const Violation& v) noexcept {
    findings_.add(row, v);
    const std::uint8_t bit = v.action == Action::kReject  ? kRejected
                             : v.action == Action::kFlag ? kFlagged
                                                         : kFixed;
    const std::uint8_t before = outcome_[row];
    outcome_[row] = static_cast<std::uint8_t>(before | bit);
    if ((bit & kRejected) && !(before & kRejected)) ++rejected_;
    if ((bit & kFlagged) && !(before & kFlagged)) ++flagged_;
  }

  // Rejects every row of the batch for its length (a batch whose size is not
  // rows * num_features).
  void reject_row_length(std::size_t row_length) noexcept {
    for (std::size_t r = 0; r < rows(); ++r) {
      add(r, Violation{Violation::kNoFeature, Rule::kRowLength, Action::kReject, static_cast<float>(row_length),
                       static_cast<float>(row_length), {}});
    }
  }

  [[nodiscard]] std::size_t rows() const noexcept { return outcome_.size(); }
  [[nodiscard]] bool ok(std::size_t row) const noexcept { return outcome_[row] == 0; }
  [[nodiscard]] bool rejected(std::size_t row) const noexcept { return outcome_[row] & kRejected; }
  [[nodiscard]] bool flagged(std::size_t row) const noexcept { return outcome_[row] & kFlagged; }
  [[nodiscard]] bool fixed(std::size_t row) const noexcept { return outcome_[row] & kFixed; }
  [[nodiscard]] std::size_t rejected_count() const noexcept { return rejected_; }
  [[nodiscard]] std::size_t flagged_count() const noexcept { return flagged_; }
  [[nodiscard]] bool all_ok() const noexcept { return findings_.all().empty(); }

  [[nodiscard]] std::span<const Violation> violations(std::size_t row) const noexcept { return findings_.of(row); }
  [[nodiscard]] std::span<const Violation> violations() const noexcept { return findings_.all(); }
  // Violations of the row including those beyond the stored cap.
  [[nodiscard]] std::size_t violation_count(std::size_t row) const noexcept { return findings_.count(row); }

  // Status::ok() unless the row is rejected; then InvalidInput naming the
  // row, each rejecting feature (name and index), rule and value.
  // Allocates only on the error path.
  [[nodiscard]] Status row_status(std::size_t row) const;
  // One line for logs and Response::anomaly_reason: "f3 'age' below_min -1 -> clamp 0; ...".
  [[nodiscard]] std::string describe(std::size_t row) const;

 private:
  detail::RowFindings<Violation> findings_;
  std::vector<std::uint8_t> outcome_;
  std::size_t rejected_ = 0;
  std::size_t flagged_ = 0;
  std::size_t max_per_row_;
};

}  // namespace keel
