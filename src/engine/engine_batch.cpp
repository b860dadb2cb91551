// The batch path of ScoringEngine: the same stages as score(), vectorised.
// Each chain stage gets one model call for all rows still pending; a row
// that fails validation, preprocessing or comes back non-finite gets its
// own error or falls to the next stage alone.

#include "engine/engine_impl.hpp"

#include <keel/resilience/guarded_call.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace keel {

namespace {

// Adds a stage's failure to a pending row's status ("primary: ...; fallback: ...").
void add_failure(Status& row_status, std::string_view stage, const Status& why) {
  std::string msg = row_status.is_ok() ? std::string() : row_status.message() + "; ";
  msg += fmt::format("{}: {}", stage, why.to_string());
  row_status = Status(why.code(), std::move(msg));
}

bool all_finite(const float* p, std::size_t n) noexcept {
  bool ok = true;
  for (std::size_t i = 0; i < n; ++i) ok &= std::isfinite(p[i]);
  return ok;
}

}  // namespace

Status ScoringEngine::score_batch(const BatchView& v, BatchResult& out, Deadline deadline,
                                  std::string_view model) noexcept {
  Impl& m = *impl_;
  const TimePoint t0 = m.clock->now();
  try {
    if (!model.empty() && model != m.name) {
      return not_found(fmt::format("model: engine '{}' does not serve '{}'", m.name, model));
    }
    const std::size_t n = v.rows;
    const std::size_t stride = v.row_stride();
    if (v.cols != m.in_width) {
      return invalid_input(fmt::format("batch: rows have {} columns, the engine takes {}", v.cols, m.in_width));
    }
    if (stride < v.cols) return invalid_input(fmt::format("batch: stride {} is below {} columns", stride, v.cols));
    if (n > 0 && v.values.size() < (n - 1) * stride + v.cols) {
      return invalid_input(fmt::format("batch: {} values cannot hold {} rows of stride {}", v.values.size(), n, stride));
    }
    if (deadline.is_never() && m.default_timeout != Duration::max()) {
      deadline = Deadline::after(m.default_timeout, t0);
    }
    const std::shared_ptr<const detail::Snapshot> snapshot = m.current();
    const FallbackChain& chain = *snapshot->chain;
    const std::size_t W = m.out_width;
    detail::Scratch& s = detail::scratch();

    out.rows = n;
    out.width = W;
    out.scores.assign(n * W, std::numeric_limits<float>::quiet_NaN());
    out.status.assign(n, Status());
    out.stage.assign(n, BatchResult::kNoStage);
    out.anomaly.assign(n, 0);
    out.stage_names.resize(m.stages.size());
    for (std::size_t i = 0; i < m.stages.size(); ++i) out.stage_names[i] = m.stages[i].name;
    const Model& primary = *snapshot->stage_models.front();
    out.model_id = primary.info().id;
    out.model_version = primary.info().version;
    out.failed = 0;
    out.degraded = 0;

    // Dense input rows, in the caller's memory when possible.
    std::span<const float> rows;
    if (stride == v.cols) {
      rows = v.values.first(n * v.cols);
    } else {
      s.rows.resize(n * v.cols);
      for (std::size_t r = 0; r < n; ++r) std::memcpy(&s.rows[r * v.cols], &v.values[r * stride], v.cols * 4);
      rows = s.rows;
    }

    s.pending.clear();
    if (m.validator) {
      m.validator->validate(rows, n, {}, s.report);  // check only: no copy unless something needs fixing
      bool any_fixed = false;
      for (std::size_t r = 0; r < n; ++r) {
        if (s.report.rejected(r)) {
          out.status[r] = s.report.row_status(r);  // names the row
          out.status[r].with_context("validation");
          continue;
        }
        if (s.report.flagged(r)) out.anomaly[r] = 1;
        any_fixed = any_fixed || s.report.fixed(r);
        s.pending.push_back(static_cast<std::uint32_t>(r));
      }
      if (any_fixed) {
        s.fixed.assign(rows.begin(), rows.end());
        m.validator->validate(s.fixed, n, s.fixed, s.report);  // in place
        rows = s.fixed;
      }
    } else {
      for (std::size_t r = 0; r < n; ++r) s.pending.push_back(static_cast<std::uint32_t>(r));
    }

    s.routed.clear();
    if (m.anomaly) {
      m.anomaly->score(rows, n, s.anomaly);
      s.next.clear();
      for (std::uint32_t r : s.pending) {
        if (!s.anomaly.anomalous(r)) {
          s.next.push_back(r);
          continue;
        }
        out.anomaly[r] = 1;
        m.anomalies->inc();
        switch (m.anomaly->options().policy) {
          case AnomalyPolicy::kFlag:
            s.next.push_back(r);
            break;
          case AnomalyPolicy::kReject:
            m.anomalies_rejected->inc();
            out.status[r] = invalid_input(fmt::format("row {}: anomaly: {}", r, s.anomaly.describe(r)));
            break;
          case AnomalyPolicy::kRoute:
            if (chain.size() < 2) {
              out.status[r] = unavailable(fmt::format("row {}: anomaly: routed past the primary, but it has no "
                                                      "fallback", r));
            } else {
              m.anomalies_routed->inc();
              add_failure(out.status[r], m.stages.front().name, unavailable("skipped: the row is anomalous"));
              s.routed.push_back(r);
            }
            break;
        }
      }
      std::swap(s.pending, s.next);
    }
    const std::span<const float> input_rows = rows;

    const std::size_t F = m.model_width;
    if (!m.pre.empty()) {
      s.model_row.resize(n * F);
      auto apply = [&](std::vector<std::uint32_t>& list) {
        s.next.clear();
        for (std::uint32_t r : list) {
          Status st =
              m.pre.apply(rows.subspan(r * m.in_width, m.in_width), std::span<float>(&s.model_row[r * F], F));
          if (st.is_ok()) {
            s.next.push_back(r);
          } else {
            out.status[r] = std::move(st.with_context(fmt::format("row {}", r)));
          }
        }
        std::swap(list, s.next);
      };
      apply(s.pending);
      apply(s.routed);
      rows = s.model_row;
    }

    for (std::size_t i = 0; i < chain.size(); ++i) {
      if (i == 1 && !s.routed.empty()) {  // anomalous rows join at the first fallback
        s.pending.insert(s.pending.end(), s.routed.begin(), s.routed.end());
        std::sort(s.pending.begin(), s.pending.end());
      }
      if (s.pending.empty()) continue;
      const Stage& st = chain.stage(i);
      const std::size_t k = s.pending.size();
      if (!st.model) {  // the default answers every row left
        for (std::uint32_t r : s.pending) {
          std::copy(st.constant.begin(), st.constant.end(), out.scores.begin() + r * W);
          out.stage[r] = static_cast<std::uint8_t>(i);
        }
        m.stage_answers[i]->inc(k);
        s.pending.clear();
        break;
      }
      auto fail_all = [&](const Status& why) {
        for (std::uint32_t r : s.pending) add_failure(out.status[r], st.name, why);
        m.stage_failures[i][std::min<std::size_t>(static_cast<std::size_t>(why.code()), detail::kNumCodes - 1)]
            ->inc(k);
      };
      if (deadline.expired(t0)) {
        fail_all(deadline_exceeded("deadline passed before the stage"));
        continue;
      }
      Bulkhead::Permit permit = st.options.bulkhead->try_acquire();
      if (!permit) {
        fail_all(st.options.bulkhead->rejection());
        continue;
      }
      // All rows pending and laid out densely: the model reads the caller's
      // memory and writes the result in place.
      const bool whole = k == n;
      std::span<const float> in = rows;
      std::span<float> dst(out.scores);
      if (!whole) {
        s.gather.resize(k * F);
        for (std::size_t j = 0; j < k; ++j) {
          std::memcpy(&s.gather[j * F], &rows[s.pending[j] * F], F * sizeof(float));
        }
        in = s.gather;
        s.out.resize(k * W);
        dst = s.out;
      }
      Status predicted;
      std::size_t bad_rows = 0;
      GuardedCallReport report;
      const Status call = guarded_call(
          *st.options.breaker, *st.options.retry, *m.clock, deadline, t0, Duration::max(),
          [&](Deadline) noexcept -> Status {
            predicted = st.model->predict(in, k, dst, st.options.predict);
            if (!predicted.is_ok()) return predicted;
            bad_rows = 0;
            for (std::size_t j = 0; j < k; ++j) bad_rows += !all_finite(&dst[j * W], W);
            return bad_rows == 0 ? Status::ok()
                                 : model_error(fmt::format("{} of {} rows scored non-finite", bad_rows, k));
          },
          report);
      permit.release();
      if (!predicted.is_ok() || report.rejected || (call.code() != StatusCode::kOk && bad_rows == 0)) {
        fail_all(call.is_ok() ? predicted : call);
        continue;
      }
      s.next.clear();
      std::size_t answered = 0;
      for (std::size_t j = 0; j < k; ++j) {
        const std::uint32_t r = s.pending[j];
        const float* src = &dst[j * W];
        if (!all_finite(src, W)) {
          add_failure(out.status[r], st.name, model_error("score is not finite"));
          s.next.push_back(r);
          if (whole) std::fill_n(out.scores.begin() + r * W, W, std::numeric_limits<float>::quiet_NaN());
          continue;
        }
        if (!whole) std::copy_n(src, W, out.scores.begin() + r * W);
        out.stage[r] = static_cast<std::uint8_t>(i);
        ++answered;
      }
      m.stage_answers[i]->inc(answered);
      if (!s.next.empty()) m.stage_failures[i][static_cast<std::size_t>(StatusCode::kModelError)]->inc(s.next.size());
      std::swap(s.pending, s.next);
    }

    for (std::size_t r = 0; r < n; ++r) {
      if (out.stage[r] == BatchResult::kNoStage) {
        if (out.status[r].is_ok()) out.status[r] = internal_error("no stage answered");
        std::fill_n(out.scores.begin() + r * W, W, std::numeric_limits<float>::quiet_NaN());
        ++out.failed;
        continue;
      }
      if (m.post.calibrates()) {
        Status cs = m.post.calibrate(std::span<float>(&out.scores[r * W], W));
        if (!cs.is_ok()) {
          out.status[r] = std::move(cs.with_context(fmt::format("row {}", r)));
          out.stage[r] = BatchResult::kNoStage;
          std::fill_n(out.scores.begin() + r * W, W, std::numeric_limits<float>::quiet_NaN());
          ++out.failed;
          continue;
        }
      }
      if (out.stage[r] > 0) ++out.degraded;
      out.status[r] = Status();  // answered: earlier stage failures are not the row's error
    }
    if (m.drift) {
      if (out.failed == 0 && W == 1) {
        m.drift->observe(input_rows, n, out.scores);
      } else {
        for (std::size_t r = 0; r < n; ++r) {
          if (out.stage[r] != BatchResult::kNoStage) {
            m.drift->observe(input_rows.subspan(r * m.in_width, m.in_width), out.scores[r * W]);
          }
        }
      }
    }
    const TimePoint t1 = m.clock->now();
    out.latency = t1 - t0;
    m.batch_latency->observe(out.latency);
    m.batch_rows[0]->inc(n - out.failed - out.degraded);
    m.batch_rows[1]->inc(out.degraded);
    m.batch_rows[2]->inc(out.failed);
    return Status::ok();
  } catch (...) {
    return internal_error("score_batch: out of memory");
  }
}

}  // namespace keel
