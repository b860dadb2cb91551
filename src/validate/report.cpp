// Names of rules and actions, ValidationReport's messages, AcceptAllValidator.
#include <keel/validate/validator.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace keel {

std::string_view to_string(Rule r) noexcept {
  switch (r) {
    case Rule::kRowLength: return "row_length";
    case Rule::kMissing: return "missing";
    case Rule::kInfinite: return "infinite";
    case Rule::kBelowMin: return "below_min";
    case Rule::kAboveMax: return "above_max";
    case Rule::kType: return "type";
    case Rule::kUnknownCategory: return "unknown_category";
  }
  return "unknown";
}

std::string_view to_string(Action a) noexcept {
  switch (a) {
    case Action::kReject: return "reject";
    case Action::kClamp: return "clamp";
    case Action::kImpute: return "impute";
    case Action::kFlag: return "flag";
  }
  return "unknown";
}

namespace {

void append_violation(std::string& out, const Violation& v) {
  if (v.rule == Rule::kRowLength) {
    fmt::format_to(std::back_inserter(out), "row length {} (rule row_length, {})", v.value, to_string(v.action));
    return;
  }
  fmt::format_to(std::back_inserter(out), "feature '{}' (index {}) value {} (rule {}, {}", v.feature_name, v.feature,
                 v.value, to_string(v.rule), to_string(v.action));
  if (v.action == Action::kClamp || v.action == Action::kImpute) fmt::format_to(std::back_inserter(out), " to {}", v.replaced);
  out += ')';
}

}  // namespace

Status ValidationReport::row_status(std::size_t row) const {
  if (row >= rows() || !rejected(row)) return Status::ok();
  std::string msg = fmt::format("row {}: ", row);
  bool first = true;
  for (const Violation& v : violations(row)) {
    if (v.action != Action::kReject) continue;
    if (!first) msg += "; ";
    append_violation(msg, v);
    first = false;
  }
  if (first) msg += "rejected";  // every rejecting violation was beyond the stored cap
  return invalid_input(std::move(msg));
}

std::string ValidationReport::describe(std::size_t row) const {
  std::string out;
  if (row >= rows()) return out;
  for (const Violation& v : violations(row)) {
    if (!out.empty()) out += "; ";
    append_violation(out, v);
  }
  const std::size_t extra = violation_count(row) - violations(row).size();
  if (extra > 0) fmt::format_to(std::back_inserter(out), "; {} more", extra);
  return out;
}

void AcceptAllValidator::validate(std::span<const float> rows, std::size_t n_rows, std::span<float> fixed,
                                  ValidationReport& report) const noexcept {
  report.reset(n_rows);
  if (n_rows == 0) return;
  const bool length_ok = rows.size() == n_rows * n_;
  if (!fixed.empty() && fixed.size() == rows.size() && fixed.data() != rows.data()) {
    std::memcpy(fixed.data(), rows.data(), rows.size_bytes());
  }
  if (length_ok) return;
  report.reject_row_length(rows.size() / n_rows);
}

}  // namespace keel
