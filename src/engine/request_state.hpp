#pragma once
// The request path of ScoringEngine: named stages over one per-request
// state, the same code for score() (a batch of one) and score_batch().
// As in Envoy's HTTP filter chain (envoy/http/filter.h), each stage runs in
// order and either lets the request continue or stops it; a stage that
// fails one row takes that row out of `pending` with its own error, and the
// other rows go on.
//
//   admit        idempotency: replay, join the duplicate in flight, or run   request_path.cpp
//   validate     the validator rejects, fixes and flags rows                 stage_validate.cpp
//   screen       the anomaly detector flags, rejects or routes rows          stage_screen.cpp
//   preprocess   the engine's input transforms                               stage_preprocess.cpp
//   cache lookup rows the cache holds are answered                           stage_cache.cpp
//   chain        FallbackChain::run_rows (routed rows start at stage 1)      stage_chain.cpp
//   postprocess  calibration                                                 stage_postprocess.cpp
//   explain      reason codes from the answering stage's model, when asked   stage_explain.cpp
//   observe      drift, metrics, the degraded log line                       stage_observe.cpp
//   store        cache inserts (idempotency stores on the way out of admit)  stage_cache.cpp
//
// Internal to the engine (src/engine). Not thread-safe: one state per call.

#include "engine/engine_impl.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace keel::detail {

struct RequestState {
  const Snapshot& snap;
  TimePoint t0;
  Deadline deadline;
  std::size_t n = 0;
  std::span<const float> rows;        // dense input rows; the fixed copy once the validator fixed any
  std::span<const float> model_rows;  // after preprocessing (== rows without a preprocessor)
  Scratch& s;                         // pending, first_stage, chain rows and buffers
  BatchResult& out;
  Status error;  // why the whole request stopped (a stage returned kStop)
  bool any_routed = false;
  bool single = false;  // score()'s batch of one
  ReasonAsk reasons{};  // reason codes asked for (k = 0: none)
  // Float64 requests (BatchView::values64): the dense doubles (`rows` is
  // then their float narrowing), and what the models get: the doubles, the
  // validator's fixes applied, or nothing once a preprocessor made float
  // model rows.
  std::span<const double> rows64{};
  std::span<const double> model_rows64{};
  bool chain_failures = false;  // the chain left a stage's failure code on some row (stage_chain)
};

// Gives row r its error; the calling stage drops it from `pending`.
void fail_row(RequestState& st, std::uint32_t r, Status why);

Next stage_validate(ScoringEngine::Impl& m, RequestState& st) noexcept;
Next stage_screen(ScoringEngine::Impl& m, RequestState& st) noexcept;
Next stage_preprocess(ScoringEngine::Impl& m, RequestState& st) noexcept;
Next stage_cache_lookup(ScoringEngine::Impl& m, RequestState& st) noexcept;
Next stage_chain(ScoringEngine::Impl& m, RequestState& st) noexcept;
Next stage_postprocess(ScoringEngine::Impl& m, RequestState& st) noexcept;
// The one branch a request without reason codes pays; the work is out of line.
Next explain_rows(ScoringEngine::Impl& m, RequestState& st) noexcept;
inline Next stage_explain(ScoringEngine::Impl& m, RequestState& st) noexcept {
  return st.reasons.any() ? explain_rows(m, st) : Next::kContinue;
}
Next stage_observe(ScoringEngine::Impl& m, RequestState& st) noexcept;
Next stage_store(ScoringEngine::Impl& m, RequestState& st) noexcept;

}  // namespace keel::detail
