// The request path's driver: score() and score_batch() run the same stages
// (request_state.hpp); admit (idempotency) wraps them.

#include "engine/request_state.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace keel {

namespace detail {

void fail_row(RequestState& st, std::uint32_t r, Status why) { st.out.status[r] = std::move(why); }

namespace {

// Sets v to n copies of x, keeping capacity. Always inlined: a reused
// single-row result (score()) takes one store, and a batch's fill sees the
// constant (a memset or a vector loop).
template <class T>
[[gnu::always_inline]] inline void reset_rows(std::vector<T>& v, std::size_t n, const T& x) {
  if (n == 1 && v.size() == 1) [[likely]] {
    v[0] = x;
    return;
  }
  if (v.size() != n) v.resize(n);
  std::fill(v.begin(), v.end(), x);
}

// Clears the per-row fields for n rows, keeping capacity (strings and
// statuses are reset only when a previous call set them); copies the
// per-stage tables only when the snapshot changed.
void begin_result(BatchResult& out, const Snapshot& snap, std::size_t n, std::size_t width) {
  out.rows = n;
  out.width = width;
  reset_rows(out.scores, n * width, std::numeric_limits<float>::quiet_NaN());
  reset_rows(out.stage, n, BatchResult::kNoStage);
  reset_rows(out.anomaly, n, std::uint8_t{0});
  reset_rows(out.cache_hit, n, std::uint8_t{0});
  reset_rows(out.attempts, n, std::uint32_t{0});
  reset_rows(out.anomaly_score, n, 0.0);
  out.status.resize(n);
  out.degraded_reason.resize(n);
  out.anomaly_reason.resize(n);
  for (std::size_t r = 0; r < n; ++r) {
    if (!out.status[r].is_ok()) out.status[r] = Status();
    if (!out.degraded_reason[r].empty()) out.degraded_reason[r].clear();
    if (!out.anomaly_reason[r].empty()) out.anomaly_reason[r].clear();
  }
  if (out.snapshot != snap.generation) {
    out.stage_names = snap.stage_names;
    out.stage_model_ids = snap.model_ids;
    out.stage_model_versions = snap.model_versions;
    out.stage_content_ids = snap.content_ids;
    out.model_id = snap.model_ids.front();
    out.model_version = snap.model_versions.front();
    out.model_content_id = snap.content_ids.front();
    out.snapshot = snap.generation;
  }
  out.failed = 0;
  out.degraded = 0;
  out.latency = Duration::zero();
  out.reason_k = 0;  // stage_explain sets these when asked
  out.contrib_width = out.leaf_width = 0;
  out.contributions.clear();
  out.leaves.clear();
}

// The thread's scratch, or fresh buffers when a model on this thread is
// itself inside a request (an engine used as a model).
class ScratchLease {
 public:
  ScratchLease() : s_(&scratch()) {
    if (s_->busy) {
      own_ = std::make_unique<Scratch>();
      s_ = own_.get();
    }
    s_->busy = true;
  }
  ~ScratchLease() { s_->busy = false; }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  Scratch& get() noexcept { return *s_; }

 private:
  Scratch* s_;
  std::unique_ptr<Scratch> own_;
};

// Every stage, in order (admit wraps them: run_admitted), and whether an
// engine needs it: a stage whose component is a null object would do
// nothing, so plan_stages() leaves it out of the engine's plan.
struct StageEntry {
  StageFn run;
  bool (*needed)(const ScoringEngine::Impl&) noexcept;
};
constexpr bool always(const ScoringEngine::Impl&) noexcept { return true; }
constexpr StageEntry kStages[] = {
    // AcceptAllValidator reports every row clean.
    {stage_validate,
     [](const ScoringEngine::Impl& m) noexcept {
       return dynamic_cast<const AcceptAllValidator*>(m.validator.get()) == nullptr;
     }},
    // No detector: the screen is NoScreen.
    {stage_screen, [](const ScoringEngine::Impl& m) noexcept { return m.anomaly != nullptr; }},
    {stage_preprocess, [](const ScoringEngine::Impl& m) noexcept { return !m.pre.empty(); }},
    {stage_cache_lookup, [](const ScoringEngine::Impl& m) noexcept { return m.cache->enabled(); }},
    {stage_chain, always},
    {stage_postprocess, [](const ScoringEngine::Impl& m) noexcept { return m.post.calibrates(); }},
    // Per request: a request that asks for no reason codes passes at once.
    {stage_explain, always},
    {stage_observe, always},
    {stage_store, [](const ScoringEngine::Impl& m) noexcept { return m.cache->enabled(); }},
};
static_assert(std::size(kStages) <= kMaxStages);

}  // namespace

}  // namespace detail

void ScoringEngine::Impl::plan_stages() noexcept {
  plan_size = 0;
  for (const detail::StageEntry& e : detail::kStages) {
    if (e.needed(*this)) plan[plan_size++] = e.run;
  }
}

Status ScoringEngine::Impl::run_stages(const BatchView& v, BatchResult& out, TimePoint t0, Deadline deadline,
                                       bool single, detail::ReasonAsk reasons) noexcept {
  try {
    const std::size_t n = v.rows;
    const std::size_t stride = v.row_stride();
    const bool f64 = !v.values64.empty();
    const std::size_t n_values = f64 ? v.values64.size() : v.values.size();
    if (v.cols != in_width) {
      return invalid_input(fmt::format("batch: rows have {} columns, the engine takes {}", v.cols, in_width));
    }
    if (stride < v.cols) return invalid_input(fmt::format("batch: stride {} is below {} columns", stride, v.cols));
    if (n > 0 && n_values < (n - 1) * stride + v.cols) {
      return invalid_input(fmt::format("batch: {} {}values cannot hold {} rows of stride {}", n_values,
                                       f64 ? "float64 " : "", n, stride));
    }
    if (n > std::numeric_limits<std::uint32_t>::max()) {
      return invalid_input(fmt::format("batch: {} rows is more than one call takes", n));
    }
    const std::shared_ptr<const detail::Snapshot> snapshot = current();
    detail::ScratchLease lease;
    detail::Scratch& s = lease.get();
    detail::begin_result(out, *snapshot, n, out_width);

    // Dense input rows, in the caller's memory when possible; float64 rows
    // stay as they are for the models and are narrowed for the rest.
    std::span<const float> rows;
    std::span<const double> rows64;
    if (f64) {
      if (stride == v.cols) {
        rows64 = v.values64.first(n * v.cols);
      } else {
        s.rows64.resize(n * v.cols);
        for (std::size_t r = 0; r < n; ++r)
          std::memcpy(&s.rows64[r * v.cols], &v.values64[r * stride], v.cols * sizeof(double));
        rows64 = s.rows64;
      }
      s.rows.resize(n * v.cols);
      for (std::size_t i = 0; i < n * v.cols; ++i) s.rows[i] = static_cast<float>(rows64[i]);
      rows = s.rows;
      s.key64.resize(2 * n * model_width);  // the cache keys (stage_cache.cpp)
    } else if (stride == v.cols) {
      rows = v.values.first(n * v.cols);
    } else {
      s.rows.resize(n * v.cols);
      for (std::size_t r = 0; r < n; ++r) std::memcpy(&s.rows[r * v.cols], &v.values[r * stride], v.cols * 4);
      rows = s.rows;
    }
    if (n == 1 && s.pending.size() == 1) {  // score()'s row, in a reused list
      s.pending[0] = 0;
    } else {
      s.pending.resize(n);
      for (std::size_t r = 0; r < n; ++r) s.pending[r] = static_cast<std::uint32_t>(r);
    }
    // first_stage is filled by the screen when it first routes a row (any_routed).

    detail::RequestState st{*snapshot, t0,    deadline, n,      rows,    rows,   s,
                            out,       Status(), false, single, reasons, rows64, rows64};
    for (std::size_t i = 0; i < plan_size; ++i) {
      if (plan[i](*this, st) == detail::Next::kStop) return st.error;
    }
    return Status::ok();
  } catch (...) {
    return internal_error("score: out of memory");
  }
}

Status ScoringEngine::Impl::run_admitted(std::string_view id, const BatchView& v, BatchResult& out, TimePoint t0,
                                         Deadline deadline, bool single, bool& computed,
                                         const ReasonOptions& reason_options) noexcept {
  computed = true;
  const detail::ReasonAsk reasons = resolve(reason_options);
  if (id.empty()) {
    out.id.clear();  // `out` may be reused from an idempotent call
    return run_stages(v, out, t0, deadline, single, reasons);
  }
  try {
    // The payload compared for a reused id: the rows, densely (a float64
    // request's doubles, as bytes).
    std::vector<float> dense;
    std::span<const float> features;
    const bool f64 = !v.values64.empty();
    const std::size_t n_values = f64 ? v.values64.size() : v.values.size();
    const std::size_t per = f64 ? 2 : 1;  // floats a value takes in the payload
    if (f64 || (v.row_stride() != v.cols && v.rows > 0)) {
      const std::size_t rows = v.rows == 0 || n_values < (v.rows - 1) * v.row_stride() + v.cols ? 0 : v.rows;
      dense.resize(rows * v.cols * per);
      const auto* src = f64 ? static_cast<const void*>(v.values64.data()) : static_cast<const void*>(v.values.data());
      const std::size_t esize = f64 ? sizeof(double) : sizeof(float);
      for (std::size_t r = 0; r < rows; ++r) {
        std::memcpy(&dense[r * v.cols * per], static_cast<const char*>(src) + r * v.row_stride() * esize,
                    v.cols * esize);
      }
      features = dense;
    } else {
      features = v.values.first(std::min(v.values.size(), v.rows * v.cols));
    }
    computed = false;
    // Reason codes and explanation tensors asked for are part of the
    // payload (another k is another request), and so is a float64
    // request's type.
    std::string payload_model;
    if (reasons.any()) {
      payload_model = fmt::format("{}\x1freasons={}/{}{}{}", name, reasons.k,
                                  reasons.mode == ReasonMode::kIncreasing ? "up" : "magnitude",
                                  reasons.contributions ? "\x1f" "contributions" : "",
                                  reasons.leaves ? "\x1fleaves" : "");
    }
    if (f64) payload_model = (payload_model.empty() ? name : payload_model) + "\x1f" "f64";
    Result<StoredBatch> r = idempotency->run(
        {id, payload_model.empty() ? std::string_view(name) : std::string_view(payload_model), features}, t0, deadline,
        [&]() noexcept -> Result<StoredBatch> {
          computed = true;
          Status st = run_stages(v, out, t0, deadline, single, reasons);
          if (!st) return st;
          out.id.assign(id);
          // The store forgets a batch whose every row failed (remembered()).
          try {
            return StoredBatch(std::make_shared<const BatchResult>(out));
          } catch (...) {
            return internal_error("idempotency: out of memory");
          }
        });
    if (!r.ok()) return r.status();
    if (!computed) out = **r;  // a replay, or a duplicate's answer
    return Status::ok();
  } catch (...) {
    return internal_error("idempotency: out of memory");
  }
}

Result<Response> ScoringEngine::score(const Request& req) noexcept {
  Impl& m = *impl_;
  const TimePoint t0 = m.clock->now();
  Deadline deadline = req.deadline;
  if (deadline.is_never() && m.default_timeout != Duration::max()) deadline = Deadline::after(m.default_timeout, t0);
  bool computed = true;
  // The answer is built in place (no Response moved or copied on the way out).
  Result<Response> result(std::in_place);
  Status why = [&]() noexcept -> Status {
    if (!req.model.empty() && req.model != m.name) {
      return not_found(fmt::format("model: engine '{}' does not serve '{}'", m.name, req.model));
    }
    const bool f64 = !req.features64.empty();
    if ((f64 ? req.features64.size() : req.features.size()) != m.in_width) {
      return invalid_input(fmt::format("features{}: expected {} values, got {}", f64 ? "64" : "", m.in_width,
                                       f64 ? req.features64.size() : req.features.size()));
    }
    try {
      // A batch of one, in a per-thread result (fresh when nested).
      thread_local BatchResult shared;
      thread_local bool busy = false;
      std::unique_ptr<BatchResult> own;
      BatchResult* out = &shared;
      if (busy) {
        own = std::make_unique<BatchResult>();
        out = own.get();
      }
      const bool owner = !busy;
      busy = true;
      Status s = m.run_admitted(req.id, {req.features, 1, m.in_width, 0, req.features64}, *out, t0, deadline, true,
                                computed, req.reason_codes);
      if (owner) busy = false;
      if (!s) return s;
      if (!out->response(0, *result)) return out->status[0];
      return Status::ok();
    } catch (...) {
      return internal_error("score: out of memory");
    }
  }();
  if (!why.is_ok()) {
    result = std::move(why);
  }
  if (computed) {
    m.latency->observe(result.ok() ? result->latency : m.clock->now() - t0);
    m.record(result);
  } else if (!result.ok()) {
    m.record(result);  // a conflict, or a wait for the duplicate past the deadline
  }
  return result;
}

Status ScoringEngine::score_batch(const BatchView& v, BatchResult& out, Deadline deadline, std::string_view model,
                                  std::string_view id, const ReasonOptions& reasons) noexcept {
  Impl& m = *impl_;
  const TimePoint t0 = m.clock->now();
  if (!model.empty() && model != m.name) {
    return not_found(fmt::format("model: engine '{}' does not serve '{}'", m.name, model));
  }
  if (deadline.is_never() && m.default_timeout != Duration::max()) deadline = Deadline::after(m.default_timeout, t0);
  bool computed = true;
  return m.run_admitted(id, v, out, t0, deadline, false, computed, reasons);
}

}  // namespace keel
