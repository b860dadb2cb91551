// observe: the final tally of the rows (failed rows' scores are NaN, an
// answered row's status is ok), the drift monitor (a null object without
// one), the batch metrics, and one log line for a degraded request.
// score()'s own metrics (keel_requests_total, its latency) are counted by
// score(), which also sees replays and whole-request errors.

#include "engine/request_state.hpp"

#include <limits>

namespace keel::detail {

namespace {

class NoDrift final : public DriftSink {
 public:
  void observe(const RequestState&) const noexcept override {}
};

class MonitorDrift final : public DriftSink {
 public:
  explicit MonitorDrift(std::shared_ptr<DriftMonitor> d) : d_(std::move(d)) {}

  void observe(const RequestState& st) const noexcept override {
    const BatchResult& out = st.out;
    const std::size_t in = st.rows.size() / std::max<std::size_t>(1, st.n);
    if (out.failed == 0 && out.width == 1) {
      d_->observe(st.rows, st.n, out.scores);
      return;
    }
    for (std::size_t r = 0; r < st.n; ++r) {
      if (out.stage[r] != BatchResult::kNoStage) d_->observe(st.rows.subspan(r * in, in), out.scores[r * out.width]);
    }
  }

 private:
  std::shared_ptr<DriftMonitor> d_;
};

}  // namespace

std::shared_ptr<const DriftSink> make_drift_sink(std::shared_ptr<DriftMonitor> monitor) {
  if (!monitor) return std::make_shared<NoDrift>();
  return std::make_shared<MonitorDrift>(std::move(monitor));
}

Next stage_observe(ScoringEngine::Impl& m, RequestState& st) noexcept {
  BatchResult& out = st.out;
  const std::size_t W = out.width;
  std::size_t first_degraded = st.n;
  for (std::size_t r = 0; r < st.n; ++r) {
    if (out.stage[r] == BatchResult::kNoStage) {
      if (out.status[r].is_ok()) out.status[r] = internal_error("no stage answered");
      std::fill_n(out.scores.begin() + static_cast<std::ptrdiff_t>(r * W), W,
                  std::numeric_limits<float>::quiet_NaN());
      ++out.failed;
      continue;
    }
    // Answered: earlier failures are in the reason (only the chain leaves a
    // failed stage's code on a row it then answers).
    if (st.chain_failures && !out.status[r].is_ok()) out.status[r] = Status();
    if (out.stage[r] > 0) {
      ++out.degraded;
      if (first_degraded == st.n) first_degraded = r;
    }
  }
  m.drift_sink->observe(st);
  out.latency = m.clock->now() - st.t0;
  if (!st.single) {
    m.batch_latency->observe(out.latency);
    m.batch_rows[0]->inc(st.n - out.failed - out.degraded);
    m.batch_rows[1]->inc(out.degraded);
    m.batch_rows[2]->inc(out.failed);
  }
  if (first_degraded != st.n && m.log->enabled(LogLevel::kWarn)) {
    const std::string& stage = out.stage_names[out.stage[first_degraded]];
    m.log->emit(LogLevel::kWarn, "degraded",
                {{"engine", m.name},
                 {"stage", stage},
                 {"reason", out.degraded_reason[first_degraded]},
                 {"rows", out.degraded}},
                stage);
  }
  return Next::kContinue;
}

}  // namespace keel::detail
