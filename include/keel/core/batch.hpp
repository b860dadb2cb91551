#pragma once
// BatchView and BatchResult: the rows going into ScoringEngine::score_batch
// and what comes back, row by row, with everything a Response carries.
// score() is a batch of one: its Response is BatchResult::response(0).
// Value types; not thread-safe to mutate.

#include <keel/core/clock.hpp>
#include <keel/core/content_id.hpp>
#include <keel/core/reason.hpp>
#include <keel/core/request.hpp>
#include <keel/core/result.hpp>
#include <keel/core/status.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace keel {

// Rows in the caller's memory, row-major with `stride` floats between row
// starts (stride == cols for dense data). Never copied unless a validator
// fixes values or a preprocessor reshapes them.
//
// Float64 rows: set `values64` (same layout) instead of `values`. The
// chain's models then get the doubles (Model::predict's double overload),
// so a LightGBM model answers exactly as LightGBM does on double data (it
// compares double(x) <= threshold; narrowing to float first can take
// another branch). Validation, anomaly screening and drift see the rows
// narrowed to float; a value the validator fixes takes the fixed float; a
// preprocessor makes float rows (the models then get those). The cache and
// idempotency key a float64 row on its doubles' bytes.
struct BatchView {
  std::span<const float> values;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t stride = 0;  // 0 means cols
  std::span<const double> values64{};  // when not empty: the rows, and `values` is not read

  [[nodiscard]] std::size_t row_stride() const noexcept { return stride == 0 ? cols : stride; }
  [[nodiscard]] std::span<const float> row(std::size_t r) const noexcept {
    return values.subspan(r * row_stride(), cols);
  }
};

// Per-row outcome of score_batch. Reuse one across calls: it keeps its
// capacity. Not thread-safe.
struct BatchResult {
  static constexpr std::uint8_t kNoStage = 0xFF;

  std::string id;                        // the request id (idempotency key), if any
  std::size_t rows = 0;
  std::size_t width = 0;                 // scores per row
  std::vector<float> scores;             // rows * width; NaN for failed rows
  std::vector<Status> status;            // per row: ok, or that row's error
  std::vector<std::uint8_t> stage;       // per row: chain stage that answered (kNoStage if none)
  std::vector<std::uint8_t> anomaly;     // per row: 1 when flagged (validation or the detector)
  std::vector<std::uint8_t> cache_hit;   // per row: 1 when answered from the cache
  std::vector<std::uint32_t> attempts;   // per row: model calls that carried the row
  std::vector<double> anomaly_score;     // per row: the detector's score when flagged, else 0
  std::vector<std::string> degraded_reason;  // per row: why earlier stages failed ("" when not degraded)
  std::vector<std::string> anomaly_reason;   // per row: what was flagged ("" when not)
  // Per stage (index -> ...): its name, and the model that answers there
  // (a default stage's model id is its name; version 0, no content id).
  std::vector<std::string> stage_names;
  std::vector<std::string> stage_model_ids;
  std::vector<std::uint64_t> stage_model_versions;
  std::vector<ModelContentId> stage_content_ids;
  std::string model_id;                  // the primary model of the snapshot used
  std::uint64_t model_version = 0;
  ModelContentId model_content_id;       // the primary's content identity (empty for in-memory models)
  std::size_t failed = 0;
  std::size_t degraded = 0;
  Duration latency{0};
  // The engine snapshot the per-stage tables describe (lets the engine skip
  // copying them again into a reused BatchResult).
  std::uint64_t snapshot = 0;
  // Reason codes, only when the request asked (reason_k > 0; see
  // Response::reasons). Row r's codes are reasons[reason_begin[r],
  // reason_begin[r + 1]): per margin output in order, best first, computed
  // by the model of stage[r]. reasons_unavailable[r] says why a row that
  // answered has none (its stage cannot explain). Rows that failed have none.
  std::uint32_t reason_k = 0;  // codes asked per output (0: none asked; the rest is stale)
  ReasonMode reason_mode = ReasonMode::kMagnitude;
  std::vector<Reason> reasons;
  std::vector<std::uint32_t> reason_begin;       // rows + 1 offsets
  std::vector<std::string> reasons_unavailable;  // per row (also set when only tensors were asked)
  // Explanation tensors, only when asked (ReasonOptions::contributions /
  // leaves; width 0 otherwise): row r's at [r * width, (r + 1) * width),
  // computed by stage[r]'s model on the rows it scored. contributions: per
  // margin output, each feature's SHAP value then the bias; its width is
  // that of the stage with the most margin outputs (a narrower stage's rows
  // end in NaN). leaves: the leaf each tree of stage[r]'s model reaches,
  // -1 past its trees (the width is the most trees of any stage). A row
  // that failed, or whose stage could not explain it (reasons_unavailable),
  // is all NaN / -1. Not kept by Redis idempotency records (width 0 on such
  // a replay).
  std::size_t contrib_width = 0;
  std::vector<float> contributions;
  std::size_t leaf_width = 0;
  std::vector<std::int32_t> leaves;

  [[nodiscard]] std::span<const Reason> row_reasons(std::size_t r) const noexcept {
    if (reason_k == 0) return {};
    return std::span<const Reason>(reasons).subspan(reason_begin[r], reason_begin[r + 1] - reason_begin[r]);
  }
  // Row r answered and its stage's model explained it (possibly with no
  // code qualifying: up-mode on a row whose every contribution is <= 0).
  [[nodiscard]] bool explained(std::size_t r) const noexcept {
    return reason_k != 0 && stage[r] != kNoStage && reasons_unavailable[r].empty();
  }

  [[nodiscard]] std::span<const float> row_scores(std::size_t r) const noexcept {
    return std::span<const float>(scores).subspan(r * width, width);
  }
  // Answered by a later stage than the first (or routed past it).
  [[nodiscard]] bool is_degraded(std::size_t r) const noexcept { return stage[r] != kNoStage && stage[r] > 0; }
  // Row r as score() would answer it: status[r] when it failed.
  [[nodiscard]] Result<Response> response(std::size_t r) const;
  // The same into `out`, reusing its buffers; false when row r failed.
  bool response(std::size_t r, Response& out) const;
};

}  // namespace keel
