// chain: FallbackChain::run_rows scores every pending row, one model call
// per stage for the rows still pending; rows routed past the primary start
// at stage 1. Per row: the stage that answered, the attempts, and why the
// earlier stages failed (the degraded reason), or, when none answered, an
// error naming each stage's reason.

#include "engine/request_state.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace keel::detail {

namespace {

void count_answers(ScoringEngine::Impl& m, const ChainRows& cr, std::size_t n) noexcept {
  if (n == 1) {  // score()'s one row: only its stage answered, if any
    if (cr.stage[0] != ChainRows::kNoStage) m.stage_answers[cr.stage[0]]->inc();
    return;
  }
  for (std::size_t i = 0; i < cr.answered.size(); ++i) {
    if (cr.answered[i] != 0) m.stage_answers[i]->inc(cr.answered[i]);
  }
}

}  // namespace

Next stage_chain(ScoringEngine::Impl& m, RequestState& st) noexcept {
  Scratch& s = st.s;
  if (s.pending.empty()) return Next::kContinue;
  try {
    FallbackChain& chain = *st.snap.chain;
    ChainRows& cr = s.chain;
    BatchResult& out = st.out;
    const std::span<const std::uint8_t> first =
        st.any_routed ? std::span<const std::uint8_t>(s.first_stage) : std::span<const std::uint8_t>();
    const Status run = st.model_rows64.empty()
                           ? chain.run_rows(st.model_rows, st.n, s.pending, out.scores, st.deadline, st.t0, cr, first)
                           : chain.run_rows(st.model_rows64, st.n, s.pending, out.scores, st.deadline, st.t0, cr, first);
    if (!run.is_ok()) {
      st.error = run;
      return Next::kStop;
    }
    if (st.any_routed) {
      const std::string skipped = st.snap.stage_names.front() + ": skipped: the row is anomalous";
      for (std::uint32_t r : s.pending) {
        if (s.first_stage[r] != 0) out.degraded_reason[r] = skipped;
      }
    }
    st.chain_failures = !cr.failures.empty();
    for (const RowFailure& f : cr.failures) {
      const auto code = static_cast<std::size_t>(f.status.code());
      m.stage_failures[f.stage][std::min<std::size_t>(code, kNumCodes - 1)]->inc();
      std::string& reason = out.degraded_reason[f.row];
      if (!reason.empty()) reason += "; ";
      reason += st.snap.stage_names[f.stage];
      reason += ": ";
      reason += f.status.to_string();
      out.status[f.row] = Status(f.status.code(), std::string());  // the last failure's code, for an error
    }
    // Rows answered (one row: whether it was, as it was pending).
    std::size_t answered = 0;
    if (st.n == 1) {
      answered = cr.stage[0] != ChainRows::kNoStage ? 1 : 0;
    } else {
      for (std::uint32_t a : cr.answered) answered += a;
    }
    if (cr.failures.empty() && answered == st.n) {
      // Every row pending and answered: the chain's per-row tables are the
      // result's.
      if (st.n == 1) {  // no library call for score()'s one row
        out.attempts[0] = cr.attempts[0];
        out.stage[0] = cr.stage[0];
      } else {
        std::copy_n(cr.attempts.begin(), st.n, out.attempts.begin());
        std::copy_n(cr.stage.begin(), st.n, out.stage.begin());
      }
      count_answers(m, cr, st.n);
      return Next::kContinue;
    }
    for (std::uint32_t r : s.pending) {
      out.attempts[r] = cr.attempts[r];
      if (cr.stage[r] != ChainRows::kNoStage) {
        out.stage[r] = cr.stage[r];
        continue;
      }
      std::string& reason = out.degraded_reason[r];
      const StatusCode code = out.status[r].is_ok() ? StatusCode::kInternal : out.status[r].code();
      out.status[r] = Status(code, fmt::format("all {} stages failed: {}", chain.size(), reason));
      reason.clear();
    }
    count_answers(m, cr, st.n);
    return Next::kContinue;
  } catch (...) {
    st.error = internal_error("chain: out of memory");
    return Next::kStop;
  }
}

}  // namespace keel::detail
