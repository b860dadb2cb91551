// postprocess: calibration of each answered row; a calibration that fails
// (a non-finite result) fails that row. Cache hits were stored calibrated.

#include "engine/request_state.hpp"

#include <fmt/format.h>

namespace keel::detail {

Next stage_postprocess(ScoringEngine::Impl& m, RequestState& st) noexcept {
  // Runs only when the postprocessor calibrates (plan_stages()).
  try {
    BatchResult& out = st.out;
    const std::size_t W = m.out_width;
    for (std::size_t r = 0; r < st.n; ++r) {
      if (out.stage[r] == BatchResult::kNoStage || out.cache_hit[r]) continue;
      Status why = m.post.calibrate(std::span<float>(&out.scores[r * W], W));
      if (!why.is_ok()) {
        fail_row(st, static_cast<std::uint32_t>(r), std::move(why.with_context(fmt::format("row {}", r))));
        out.stage[r] = BatchResult::kNoStage;
        out.degraded_reason[r].clear();
      }
    }
    return Next::kContinue;
  } catch (...) {
    st.error = internal_error("postprocess: out of memory");
    return Next::kStop;
  }
}

}  // namespace keel::detail
