#pragma once
// Request and Response: what goes into ScoringEngine::score and what comes
// back. Value types, not thread-safe to mutate.
//
// A Request does not own its features: it views the caller's floats, which
// must stay alive until score() returns (it is synchronous). NaN means
// missing. Use OwnedRequest when the request must outlive the caller's
// buffer (queues, retries on another thread).

#include <keel/core/content_id.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/reason.hpp>
#include <keel/core/score_vector.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace keel {

struct Request {
  // Idempotency key; empty means "not idempotent, always compute".
  std::string id;
  // One dense row, model feature order.
  std::span<const float> features;
  // Which model to use; empty means the engine's default.
  std::string model;
  Deadline deadline = Deadline::never();
  // Reason codes for the answer (Response::reasons); unset: the engine's default.
  ReasonOptions reason_codes;
  // The row as float64 instead of `features` (which is then not read): see
  // BatchView::values64.
  std::span<const double> features64{};
};

// A Request that owns a copy of its features.
struct OwnedRequest {
  std::string id;
  std::vector<float> features;
  std::string model;
  Deadline deadline = Deadline::never();
  ReasonOptions reason_codes;
  std::vector<double> features64;

  OwnedRequest() = default;
  explicit OwnedRequest(const Request& r)
      : id(r.id),
        features(r.features.begin(), r.features.end()),
        model(r.model),
        deadline(r.deadline),
        reason_codes(r.reason_codes),
        features64(r.features64.begin(), r.features64.end()) {}
  [[nodiscard]] Request view() const { return Request{id, features, model, deadline, reason_codes, features64}; }
};

struct Response {
  // User-provided, so that value-initialising one (Result<Response>'s
  // in-place answer) runs the member initialisers without first zeroing
  // the whole object.
  Response() noexcept {}  // NOLINT(modernize-use-equals-default)
  std::string id;
  // One score per model output (1 for regression/binary, K for multiclass);
  // up to four are held inline (score_vector.hpp).
  ScoreVector scores;
  // The model that answered: its id, its per-process version and its
  // content identity (the same in every process; empty for in-memory
  // models and default stages).
  std::string model_id;
  std::uint64_t model_version = 0;
  ModelContentId model_content_id;
  // Which stage of the fallback chain answered ("primary", "fallback:0",
  // "default", ...), and whether that makes the answer degraded.
  std::string stage;
  bool degraded = false;
  // Why earlier stages failed, when degraded ("primary: unavailable: circuit open").
  std::string degraded_reason;
  bool cache_hit = false;
  // Model calls made for this answer (retries and hedges included).
  std::uint32_t attempts = 0;
  Duration latency{0};
  // Set when an anomaly detector flagged the row (scored anyway).
  bool anomaly = false;
  double anomaly_score = 0.0;
  std::string anomaly_reason;
  // Reason codes, when asked for (Request::reason_codes): per margin output,
  // the top k features of the row, best first, computed by the model of the
  // stage that answered (a cache hit: the primary, recomputed). Empty with
  // reasons_unavailable set when that stage cannot explain (a default
  // stage, a model without contributions).
  std::vector<Reason> reasons;
  std::string explained_by;         // the stage whose model computed them ("" when none)
  std::string reasons_unavailable;  // why there are none although asked ("" otherwise)
};

}  // namespace keel
