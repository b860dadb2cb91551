// cache lookup and store: one batch call each (Cache::lookup_many /
// insert_many), per row keyed on the primary's identity
// (Snapshot::cache_model: content id, output kind and the calibration, as
// the cache holds calibrated scores) and the model row's
// exact bytes. Rows routed past the primary neither read nor fill the cache;
// only the primary's answers are stored (a fallback's are degraded).

#include "engine/request_state.hpp"

namespace keel::detail {

Next stage_cache_lookup(ScoringEngine::Impl& m, RequestState& st) noexcept {
  Cache& cache = *m.cache;  // enabled: plan_stages() leaves this stage out otherwise
  Scratch& s = st.s;
  const std::size_t W = m.out_width;
  // One batch call (a remote cache pays O(1) round trips for it); `next`
  // holds the rows to ask only while it runs.
  std::span<const std::uint32_t> ask = s.pending;
  if (st.any_routed) {
    s.next.clear();
    for (std::uint32_t r : s.pending) {
      if (s.first_stage[r] == 0) s.next.push_back(r);
    }
    ask = s.next;
  }
  const CacheRows batch{st.snap.cache_model, st.model_rows, m.model_width, ask};
  if (cache.lookup_many(batch, st.t0, st.deadline, st.out.scores, W, st.out.cache_hit) == 0) return Next::kContinue;
  s.next.clear();
  for (std::uint32_t r : s.pending) {
    if (st.out.cache_hit[r]) {
      st.out.stage[r] = 0;
      continue;
    }
    s.next.push_back(r);
  }
  s.pending.swap(s.next);
  return Next::kContinue;
}

Next stage_store(ScoringEngine::Impl& m, RequestState& st) noexcept {
  Cache& cache = *m.cache;  // enabled: plan_stages() leaves this stage out otherwise
  std::vector<std::uint32_t>& rows = st.s.stored;
  rows.clear();
  for (std::size_t r = 0; r < st.n; ++r) {
    if (st.out.stage[r] == 0 && !st.out.cache_hit[r]) rows.push_back(static_cast<std::uint32_t>(r));
  }
  if (rows.empty()) return Next::kContinue;
  const CacheRows batch{st.snap.cache_model, st.model_rows, m.model_width, rows};
  cache.insert_many(batch, st.out.scores, m.out_width, st.t0, st.deadline);
  return Next::kContinue;
}

}  // namespace keel::detail
