// explain: reason codes (and, when asked, the contribution and leaf tensors)
// for every answered row, only when the request asked
// (RequestState::reasons.any(); stage_explain in request_state.hpp is the
// one branch the others pay). Per stage, one Model::contributions call on
// the model rows that stage answered, so a degraded row is explained by the
// fallback's model; a cache hit (stage 0) is recomputed on the primary,
// whose content identity the cache key carries. Then top_reason_codes per
// row and margin output. A row whose stage cannot explain (a default
// stage, a model without contributions, a NaN contribution) keeps its
// answer and gets BatchResult::reasons_unavailable instead. The time spent
// is keel_explain_duration_seconds (on the engine's clock).

#include "engine/request_state.hpp"

#include <keel/model/explain.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace keel::detail {

namespace {

// Per-thread buffers, fresh when a model explaining here is itself an
// engine explaining on this thread.
struct ExplainScratch {
  std::vector<std::uint32_t> rows;      // the rows one stage answered
  std::vector<float> x;                 // their model rows, dense
  std::vector<double> x64;              // the same for a float64 request
  std::vector<float> contribs;          // their contributions
  std::vector<std::int32_t> leaves;     // their leaf indices (when asked)
  std::vector<ReasonCode> codes;        // per row: `slots` codes (views into the snapshot's names)
  std::vector<std::uint32_t> output;    // per code slot: the margin output it explains
  std::vector<std::uint32_t> count;     // per row: codes written
  bool busy = false;
};

class ExplainLease {
 public:
  ExplainLease() {
    thread_local ExplainScratch shared;
    s_ = &shared;
    if (s_->busy) {
      own_ = std::make_unique<ExplainScratch>();
      s_ = own_.get();
    }
    s_->busy = true;
  }
  ~ExplainLease() { s_->busy = false; }
  ExplainLease(const ExplainLease&) = delete;
  ExplainLease& operator=(const ExplainLease&) = delete;
  ExplainScratch& get() noexcept { return *s_; }

 private:
  ExplainScratch* s_ = nullptr;
  std::unique_ptr<ExplainScratch> own_;
};

// Explains the rows stage `i` answered: their codes into their slots of
// x.codes (k per margin output of the widest stage; k = 0: none), and the
// tensors asked for into out.contributions / out.leaves.
void explain_stage(const RequestState& st, std::size_t i, std::size_t F, std::size_t k, std::size_t slots,
                   ExplainScratch& x) {
  BatchResult& out = st.out;
  const Model* model = st.snap.stage_models[i].get();
  if (model == nullptr) {
    const std::string why =
        fmt::format("stage '{}' answers with default scores: there is no model to explain", st.snap.stage_names[i]);
    for (std::uint32_t r : x.rows) out.reasons_unavailable[r] = why;
    return;
  }
  const std::size_t n = x.rows.size();
  const std::size_t outputs = model->info().num_margin_outputs;
  const std::size_t trees = out.leaf_width == 0 ? 0 : model->info().num_trees;
  const std::size_t block = F + 1;
  std::span<const float> rows;
  std::span<const double> rows64;  // a float64 request: the models' rows
  const bool f64 = !st.model_rows64.empty();
  if (n == st.n) {
    rows = st.model_rows.first(n * F);  // every row: no gather
    if (f64) rows64 = st.model_rows64.first(n * F);
  } else {
    x.x.resize(n * F);
    for (std::size_t j = 0; j < n; ++j) {
      std::memcpy(&x.x[j * F], &st.model_rows[std::size_t{x.rows[j]} * F], F * sizeof(float));
    }
    rows = x.x;
    if (f64) {
      x.x64.resize(n * F);
      for (std::size_t j = 0; j < n; ++j) {
        std::memcpy(&x.x64[j * F], &st.model_rows64[std::size_t{x.rows[j]} * F], F * sizeof(double));
      }
      rows64 = x.x64;
    }
  }
  // A row's explanation is whole or absent: a stage that cannot give every
  // part asked for gives none. A float64 request is explained on its doubles.
  const bool contribs = k != 0 || out.contrib_width != 0;
  Status s;
  if (contribs) {
    x.contribs.resize(n * outputs * block);
    s = f64 ? model->contributions(rows64, n, x.contribs) : model->contributions(rows, n, x.contribs);
  }
  if (s.is_ok() && trees != 0) {
    x.leaves.resize(n * trees);
    s = f64 ? model->leaf_indices(rows64, n, x.leaves) : model->leaf_indices(rows, n, x.leaves);
  }
  if (!s.is_ok()) {
    const std::string why = fmt::format("stage '{}' cannot explain: {}", st.snap.stage_names[i], s.to_string());
    for (std::uint32_t r : x.rows) out.reasons_unavailable[r] = why;
    return;
  }
  const std::vector<std::string>& names = st.snap.reason_names[i];
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint32_t r = x.rows[j];
    const std::span<const float> values = rows.subspan(j * F, F);
    std::size_t written = 0;
    for (std::size_t o = 0; o < outputs && k != 0; ++o) {
      const std::span<const float> c(&x.contribs[(j * outputs + o) * block], block);
      const std::span<ReasonCode> dst(&x.codes[r * slots + written], k);
      Result<std::size_t> got = top_reason_codes(c, names, values, st.reasons.mode, dst);
      if (!got.ok()) {
        out.reasons_unavailable[r] = fmt::format("stage '{}' cannot explain row {} (output {}): {}",
                                                 st.snap.stage_names[i], r, o, got.status().to_string());
        written = 0;
        break;
      }
      std::fill_n(&x.output[r * slots + written], *got, static_cast<std::uint32_t>(o));
      if (f64) {  // the value the model saw is the double
        for (std::size_t c2 = 0; c2 < *got; ++c2) dst[c2].value = rows64[j * F + dst[c2].feature];
      }
      written += *got;
    }
    if (k != 0) x.count[r] = static_cast<std::uint32_t>(written);
    if (!out.reasons_unavailable[r].empty()) continue;  // its tensors stay NaN / -1
    if (out.contrib_width != 0) {
      std::memcpy(&out.contributions[r * out.contrib_width], &x.contribs[j * outputs * block],
                  outputs * block * sizeof(float));
    }
    if (trees != 0) {
      std::memcpy(&out.leaves[r * out.leaf_width], &x.leaves[j * trees], trees * sizeof(std::int32_t));
    }
  }
}

}  // namespace

Next explain_rows(ScoringEngine::Impl& m, RequestState& st) noexcept {
  try {
    const TimePoint start = m.clock->now();
    ExplainLease lease;
    ExplainScratch& x = lease.get();
    BatchResult& out = st.out;
    const std::size_t n = st.n;
    const std::size_t F = m.model_width;
    const std::size_t k = std::min<std::size_t>(st.reasons.k, F);
    std::size_t outputs = 1;
    for (const ModelPtr& p : st.snap.stage_models) {
      if (p) outputs = std::max(outputs, p->info().num_margin_outputs);
    }
    const std::size_t slots = k * outputs;
    if (st.reasons.contributions) {
      out.contrib_width = outputs * (F + 1);
      out.contributions.assign(n * out.contrib_width, std::numeric_limits<float>::quiet_NaN());
    }
    if (st.reasons.leaves) {
      std::size_t trees = 0;
      for (const ModelPtr& p : st.snap.stage_models) {
        if (p) trees = std::max(trees, p->info().num_trees);
      }
      out.leaf_width = trees;
      out.leaves.assign(n * trees, -1);
    }
    out.reason_k = st.reasons.k;
    out.reason_mode = st.reasons.mode;
    out.reasons_unavailable.resize(n);
    for (std::string& s : out.reasons_unavailable) {
      if (!s.empty()) s.clear();
    }
    x.codes.resize(n * slots);
    x.output.resize(n * slots);
    x.count.assign(n, 0);
    for (std::size_t i = 0; i < st.snap.stage_models.size(); ++i) {
      x.rows.clear();
      for (std::size_t r = 0; r < n; ++r) {
        if (out.stage[r] == i) x.rows.push_back(static_cast<std::uint32_t>(r));
      }
      if (!x.rows.empty()) explain_stage(st, i, F, k, slots, x);
    }
    // Compact: row r's codes at reasons[reason_begin[r]...].
    out.reason_begin.resize(n + 1);
    std::size_t total = 0;
    for (std::size_t r = 0; r < n; ++r) {
      out.reason_begin[r] = static_cast<std::uint32_t>(total);
      total += x.count[r];
    }
    out.reason_begin[n] = static_cast<std::uint32_t>(total);
    out.reasons.resize(total);
    for (std::size_t r = 0; r < n; ++r) {
      for (std::uint32_t c = 0; c < x.count[r]; ++c) {
        const ReasonCode& from = x.codes[r * slots + c];
        Reason& to = out.reasons[out.reason_begin[r] + c];
        to.feature.assign(from.name);
        to.index = from.feature;
        to.output = x.output[r * slots + c];
        to.value = from.value;
        to.contribution = from.contribution;
      }
    }
    m.explain_latency->observe(m.clock->now() - start);
    return Next::kContinue;
  } catch (...) {
    st.error = internal_error("explain: out of memory");
    return Next::kStop;
  }
}

}  // namespace keel::detail
