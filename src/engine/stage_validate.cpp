// validate: the validator (AcceptAllValidator when none is configured)
// rejects rows (each gets its own error), fixes them (clamp, impute: the
// rows are copied once, then fixed in place) and flags them (anomaly).

#include "engine/request_state.hpp"

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
