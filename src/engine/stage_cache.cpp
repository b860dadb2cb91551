// cache lookup and store: per row, keyed on the primary's identity
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

// Row r's key; a float64 row's bytes are copied into the scratch (sized
// by run_stages; valid until the next call).
CacheKey key_of(RequestState& st, std::uint32_t r, std::size_t F) noexcept {
  if (st.model_rows64.empty()) return {st.snap.cache_model, st.model_rows.subspan(r * F, F)};
  std::span<float> k = std::span<float>(st.s.key64).first(2 * F);
  static_assert(sizeof(double) == 2 * sizeof(float));
  std::memcpy(k.data(), &st.model_rows64[std::size_t{r} * F], F * sizeof(double));
  return {st.snap.cache_model64, k};
}

}  // namespace

Next stage_cache_lookup(ScoringEngine::Impl& m, RequestState& st) noexcept {
  Cache& cache = *m.cache;  // enabled: plan_stages() leaves this stage out otherwise
  Scratch& s = st.s;
  const std::size_t F = m.model_width;
  const std::size_t W = m.out_width;
  s.next.clear();
  for (std::uint32_t r : s.pending) {
    if (!st.any_routed || s.first_stage[r] == 0) {
      const CacheKey key = key_of(st, r, F);
      if (cache.lookup(key, st.t0, st.deadline, std::span<float>(&st.out.scores[r * W], W))) {
        st.out.cache_hit[r] = 1;
        st.out.stage[r] = 0;
        continue;
      }
    }
    s.next.push_back(r);
  }
  s.pending.swap(s.next);
  return Next::kContinue;
}

Next stage_store(ScoringEngine::Impl& m, RequestState& st) noexcept {
  Cache& cache = *m.cache;  // enabled: plan_stages() leaves this stage out otherwise
  const std::size_t F = m.model_width;
  for (std::size_t r = 0; r < st.n; ++r) {
    if (st.out.stage[r] != 0 || st.out.cache_hit[r]) continue;
    const CacheKey key = key_of(st, static_cast<std::uint32_t>(r), F);
    cache.insert(key, st.out.row_scores(r), st.t0, st.deadline);
  }
  return Next::kContinue;
}

}  // namespace keel::detail
