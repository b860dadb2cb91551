#include <keel/core/batch.hpp>

#include <fmt/format.h>

namespace keel {

namespace {

// dst = src, without a library call when both are empty (the common case
// for a fresh Response's reason strings).
void set(std::string& dst, const std::string& src) {
  if (!src.empty() || !dst.empty()) dst = src;
}

}  // namespace

bool BatchResult::response(std::size_t r, Response& o) const {
  if (r >= rows || stage[r] == kNoStage) return false;
  const std::size_t s = stage[r];
  set(o.id, id);
  const std::span<const float> sc = row_scores(r);
  o.scores.assign(sc.begin(), sc.end());
  set(o.model_id, stage_model_ids[s]);
  o.model_version = stage_model_versions[s];
  o.model_content_id = stage_content_ids[s];
  set(o.stage, stage_names[s]);
  o.degraded = is_degraded(r);
  set(o.degraded_reason, degraded_reason[r]);
  o.cache_hit = cache_hit[r] != 0;
  o.attempts = attempts[r];
  o.latency = latency;
  o.anomaly = anomaly[r] != 0;
  o.anomaly_score = anomaly_score[r];
  set(o.anomaly_reason, anomaly_reason[r]);
  const std::span<const Reason> why = row_reasons(r);
  if (!why.empty() || !o.reasons.empty()) o.reasons.assign(why.begin(), why.end());
  if (explained(r)) {
    set(o.explained_by, stage_names[s]);
  } else {
    o.explained_by.clear();
  }
  if (reason_k != 0) {
    set(o.reasons_unavailable, reasons_unavailable[r]);
  } else {
    o.reasons_unavailable.clear();
  }
  return true;
}

Result<Response> BatchResult::response(std::size_t r) const {
  if (r >= rows) return invalid_input(fmt::format("row {}: the batch has {} rows", r, rows));
  Response o;
  if (!response(r, o)) return status[r];
  return o;
}

}  // namespace keel
