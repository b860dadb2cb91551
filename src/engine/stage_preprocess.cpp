// preprocess: the engine's input transforms make model rows from the
// caller's rows; a row the transforms refuse gets its own error. They work
// in float: a float64 request's model rows are the transforms' floats.

#include "engine/request_state.hpp"

#include <fmt/format.h>

namespace keel::detail {

Next stage_preprocess(ScoringEngine::Impl& m, RequestState& st) noexcept {
  // Runs only with a preprocessor (plan_stages()).
  try {
    Scratch& s = st.s;
    const std::size_t in = m.in_width;
    const std::size_t F = m.model_width;
    s.model_rows.resize(st.n * F);
    s.next.clear();
    for (std::uint32_t r : s.pending) {
      Status why = m.pre.apply(st.rows.subspan(r * in, in), std::span<float>(&s.model_rows[r * F], F));
      if (why.is_ok()) {
        s.next.push_back(r);
      } else {
        fail_row(st, r, std::move(why.with_context(fmt::format("row {}", r))));
      }
    }
    s.pending.swap(s.next);
    st.model_rows = s.model_rows;
    st.model_rows64 = {};  // the transforms make float rows: the models get those
    return Next::kContinue;
  } catch (...) {
    st.error = internal_error("preprocess: out of memory");
    return Next::kStop;
  }
}

}  // namespace keel::detail
