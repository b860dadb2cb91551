// cache lookup and store: one batch call each (Cache::lookup_many /
// insert_many), per row keyed on the primary's identity
// (Snapshot::cache_model: content id, output kind and the calibration, as
// the cache holds calibrated scores) and the model row's
// exact bytes. Rows routed past the primary neither read nor fill the cache;
// only the primary's answers are stored (a fallback's are degraded). A
// float64 row is keyed on its doubles' bytes under another model key
// (Snapshot::cache_model64): two doubles with one float can score apart.

#include "engine/request_state.hpp"

#include <cstring>

namespace keel::detail {

namespace {

// The rows' keys: the model rows' bytes, or a float64 request's doubles,
// copied into the scratch as floats (sized by run_stages) under another
// model key.
CacheRows rows_of(RequestState& st, std::size_t F, std::span<const std::uint32_t> rows) noexcept {
  if (st.model_rows64.empty()) return {st.snap.cache_model, st.model_rows, F, rows};
  static_assert(sizeof(double) == 2 * sizeof(float));
  const std::span<float> k = std::span<float>(st.s.key64).first(2 * F * st.n);
  std::memcpy(k.data(), st.model_rows64.data(), st.n * F * sizeof(double));
  return {st.snap.cache_model64, k, 2 * F, rows};
}

}  // namespace

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
  const CacheRows batch = rows_of(st, m.model_width, ask);
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
  const CacheRows batch = rows_of(st, m.model_width, rows);
  cache.insert_many(batch, st.out.scores, m.out_width, st.t0, st.deadline);
  return Next::kContinue;
}

}  // namespace keel::detail
