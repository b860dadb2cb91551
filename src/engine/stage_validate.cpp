// validate: the validator (AcceptAllValidator when none is configured)
// rejects rows (each gets its own error), fixes them (clamp, impute: the
// rows are copied once, then fixed in place) and flags them (anomaly). A
// float64 request is validated as floats; its fixed values replace the
// doubles they came from.

#include "engine/request_state.hpp"

#include <bit>
#include <cstdint>

namespace keel::detail {

Next stage_validate(ScoringEngine::Impl& m, RequestState& st) noexcept {
  try {
    Scratch& s = st.s;
    m.validator->validate(st.rows, st.n, {}, s.report);  // check only: no copy unless something needs fixing
    if (s.report.all_ok()) return Next::kContinue;
    bool any_fixed = false;
    s.next.clear();
    for (std::uint32_t r : s.pending) {
      if (s.report.rejected(r)) {
        Status why = s.report.row_status(r);  // names the row
        fail_row(st, r, std::move(why.with_context("validation")));
        continue;
      }
      if (s.report.flagged(r)) {
        st.out.anomaly[r] = 1;
        st.out.anomaly_reason[r] = "validation: " + s.report.describe(r);
        m.anomalies->inc();
      }
      if (s.report.fixed(r)) {
        any_fixed = true;
        m.validation_fixed->inc();
      }
      s.next.push_back(r);
    }
    s.pending.swap(s.next);
    if (any_fixed) {
      s.fixed.assign(st.rows.begin(), st.rows.end());
      m.validator->validate(s.fixed, st.n, s.fixed, s.report);  // in place
      if (!st.rows64.empty()) {
        // A float64 row keeps its doubles, but a value the validator
        // changed (clamped, imputed) takes the fixed float.
        s.fixed64.assign(st.rows64.begin(), st.rows64.end());
        for (std::size_t i = 0; i < s.fixed.size(); ++i) {
          if (std::bit_cast<std::uint32_t>(s.fixed[i]) != std::bit_cast<std::uint32_t>(st.rows[i])) {
            s.fixed64[i] = s.fixed[i];
          }
        }
        st.rows64 = s.fixed64;
        st.model_rows64 = st.rows64;
      }
      st.rows = s.fixed;
      st.model_rows = st.rows;
    }
    return Next::kContinue;
  } catch (...) {
    st.error = internal_error("validate: out of memory");
    return Next::kStop;
  }
}

}  // namespace keel::detail
