#include <keel/resilience/fallback_chain.hpp>
#include <keel/resilience/guarded_call.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace keel {

struct FallbackChain::Counters {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> entered{0};
  std::atomic<std::uint64_t> breaker_rejections{0};
  std::atomic<std::uint64_t> bulkhead_rejections{0};
  std::atomic<std::uint64_t> deadline_skips{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> non_finite{0};
  std::atomic<std::uint64_t> errors{0};
};

namespace {

std::uint64_t get(const std::atomic<std::uint64_t>& c) noexcept { return c.load(std::memory_order_relaxed); }

[[noreturn]] void bad_stage(std::size_t i, std::string_view name, std::string_view why) {
  throw Error(StatusCode::kInvalidInput, fmt::format("fallback chain: stage {} ('{}'): {}", i, name, why));
}

}  // namespace

Stage model_stage(std::string name, ModelPtr model, StageOptions options) {
  return Stage{std::move(name), std::move(model), {}, std::move(options)};
}

Stage default_stage(std::vector<float> scores, std::string name) {
  return Stage{std::move(name), nullptr, std::move(scores), {}};
}

std::string ChainOutcome::reason() const {
  std::string r;
  for (const StageFailure& f : failures) {
    if (!r.empty()) r += "; ";
    r += fmt::format("{}: {}", f.name, f.status.to_string());
  }
  return r;
}

FallbackChain::FallbackChain(std::vector<Stage> stages, Clock& clock) : clock_(clock) {
  if (stages.empty()) throw Error(StatusCode::kInvalidInput, "fallback chain: no stages");
  std::set<std::string> names;
  bool have_model = false;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    Stage& s = stages[i];
    if (s.name.empty()) bad_stage(i, s.name, "empty name");
    if (!names.insert(s.name).second) bad_stage(i, s.name, "duplicate name");
    StageOptions& o = s.options;
    if (!s.model) {
      if (s.constant.empty()) bad_stage(i, s.name, "neither a model nor default scores");
      if (i + 1 != stages.size()) bad_stage(i, s.name, "a default stage must be the last");
      for (float v : s.constant) {
        if (!std::isfinite(v)) bad_stage(i, s.name, "default scores must be finite");
      }
      continue;
    }
    const std::size_t width = s.model->info().width(o.predict.output);
    if (!have_model) {
      num_features_ = s.model->info().num_features;
      width_ = width;
      have_model = true;
    } else if (s.model->info().num_features != num_features_) {
      bad_stage(i, s.name, fmt::format("model takes {} features, the first model {}", s.model->info().num_features,
                                       num_features_));
    } else if (width != width_) {
      bad_stage(i, s.name, fmt::format("model writes {} outputs, the first model {}", width, width_));
    }
    const bool isolated = o.isolation == Isolation::kIsolated;
    if (isolated && !o.executor) bad_stage(i, s.name, "isolated but no executor");
    if (!isolated && o.attempt_timeout != Duration::max()) {
      bad_stage(i, s.name, "attempt_timeout needs isolation (an inline call cannot be interrupted)");
    }
    if (!isolated && o.hedge_delay != Duration::max()) bad_stage(i, s.name, "hedging needs isolation");
    if (o.attempt_timeout <= Duration::zero()) bad_stage(i, s.name, "attempt_timeout must be > 0");
    if (o.hedge_delay < Duration::zero()) bad_stage(i, s.name, "hedge_delay must be >= 0");
    if (!o.breaker) o.breaker = CircuitBreaker::never_open(s.name);
    if (!o.retry) o.retry = RetryPolicy::no_retry();
    if (!o.bulkhead) o.bulkhead = Bulkhead::unlimited(s.name);
    o.predict.threads = 1;
  }
  if (!have_model) width_ = stages.back().constant.size();
  const Stage& last = stages.back();
  if (!last.model && last.constant.size() != width_) {
    bad_stage(stages.size() - 1, last.name,
              fmt::format("default has {} scores, the models write {}", last.constant.size(), width_));
  }
  stages_.reserve(stages.size());
  for (Stage& s : stages) {
    StageImpl impl;
    impl.width = width_;
    impl.isolation = std::make_shared<IsolationCounters>();
    impl.counters = std::make_shared<Counters>();
    impl.config = std::move(s);
    stages_.push_back(std::move(impl));
  }
}

FallbackChain::FallbackChain(std::vector<Stage> stages, Clock& clock, const FallbackChain& previous)
    : FallbackChain(std::move(stages), clock) {
  rows_in_ = previous.rows_in_;
  for (StageImpl& st : stages_) {
    for (const StageImpl& old : previous.stages_) {
      if (old.config.name != st.config.name) continue;
      st.counters = old.counters;
      st.isolation = old.isolation;
      break;
    }
  }
}

FallbackChain::~FallbackChain() = default;

namespace {

// v = n copies of x, keeping capacity (no memset call for one row).
template <class T>
void reset_rows(std::vector<T>& v, std::size_t n, T x) {
  if (v.size() != n) v.resize(n);
  if (n == 1) {
    v[0] = x;
  } else {
    std::fill(v.begin(), v.end(), x);
  }
}

bool finite_row(const float* p, std::size_t w) noexcept {
  bool ok = true;
  for (std::size_t i = 0; i < w; ++i) ok &= std::isfinite(p[i]);
  return ok;
}

Status non_finite_error(std::string_view stage, const float* p, std::size_t w) {
  for (std::size_t i = 0; i < w; ++i) {
    if (!std::isfinite(p[i])) {
      return model_error(
          fmt::format("stage '{}': output {} is {}", stage, i, std::isnan(p[i]) ? "NaN" : "infinite"));
    }
  }
  return Status::ok();
}

}  // namespace

void FallbackChain::run_model_stage(StageImpl& st, std::uint32_t index, Rows rows, std::size_t n,
                                    std::span<float> out, Deadline deadline, TimePoint now,
                                    ChainRows& res) noexcept {
  Counters& c = *st.counters;
  const StageOptions& o = st.config.options;
  const std::size_t k = res.pending.size();
  const std::size_t F = num_features_;
  const std::size_t W = st.width;
  // Every pending row fails this stage with `why` and stays pending.
  auto fail_all = [&](Status why, std::atomic<std::uint64_t>& counter) {
    counter.fetch_add(k, std::memory_order_relaxed);
    for (std::size_t j = 0; j + 1 < k; ++j) res.failures.push_back({res.pending[j], index, why});
    res.failures.push_back({res.pending[k - 1], index, std::move(why)});
  };
  if (deadline.expired(now)) {
    fail_all(deadline_exceeded(fmt::format("deadline passed before stage '{}'", st.config.name)), c.deadline_skips);
    return;
  }
  Bulkhead& bulkhead = *o.bulkhead;
  Bulkhead::Permit slot = bulkhead.acquire(deadline);
  if (!slot) {
    fail_all(bulkhead.rejection(), c.bulkhead_rejections);
    return;
  }
  // All rows pending: the model reads the caller's rows and writes in place.
  const bool whole = k == n;
  const bool f64 = !rows.d.empty();
  std::span<const float> in = f64 ? std::span<const float>() : rows.f.first(n * F);
  std::span<const double> in64 = f64 ? rows.d.first(n * F) : std::span<const double>();
  std::span<float> dst = out.first(n * W);
  if (!whole) {
    if (f64) {
      res.gather64.resize(k * F);
      for (std::size_t j = 0; j < k; ++j) {
        std::copy_n(rows.d.begin() + static_cast<std::ptrdiff_t>(res.pending[j] * F), F,
                    res.gather64.begin() + static_cast<std::ptrdiff_t>(j * F));
      }
      in64 = res.gather64;
    } else {
      res.gather.resize(k * F);
      for (std::size_t j = 0; j < k; ++j) {
        std::copy_n(rows.f.begin() + static_cast<std::ptrdiff_t>(res.pending[j] * F), F,
                    res.gather.begin() + static_cast<std::ptrdiff_t>(j * F));
      }
      in = res.gather;
    }
    res.out.resize(k * W);
    dst = res.out;
  }
  const ModelPtr& model = st.config.model;
  std::uint32_t hedges = 0;
  std::size_t bad_rows = 0;  // of the last attempt that returned ok
  bool all_bad = false;
  auto attempt = [&](Deadline attempt_deadline) noexcept -> Status {
    Status s;
    all_bad = false;
    if (o.isolation == Isolation::kIsolated) {
      IsolatedCallOptions iso{HedgePolicy{o.hedge_delay, o.max_hedges}, o.predict};
      IsolatedCallReport rep;
      s = f64 ? call_isolated(*o.executor, model, in64, k, dst, attempt_deadline, clock_, iso, st.isolation, &rep)
              : call_isolated(*o.executor, model, in, k, dst, attempt_deadline, clock_, iso, st.isolation, &rep);
      if (rep.launched > 1) hedges += rep.launched - 1;
    } else if (attempt_deadline.is_never()) {
      s = f64 ? model->predict(in64, k, dst, o.predict) : model->predict(in, k, dst, o.predict);
    } else {
      PredictOptions po = o.predict;
      po.deadline = attempt_deadline;
      s = f64 ? model->predict(in64, k, dst, po) : model->predict(in, k, dst, po);
    }
    if (!s) return s;
    bad_rows = 0;
    if (W == 1) {  // one output a row: a loop that vectorises
      for (std::size_t j = 0; j < k; ++j) bad_rows += !std::isfinite(dst[j]);
    } else {
      for (std::size_t j = 0; j < k; ++j) bad_rows += !finite_row(&dst[j * W], W);
    }
    if (bad_rows < k) return s;  // at least one good row: the call succeeded
    all_bad = true;
    return k == 1 ? non_finite_error(st.config.name, dst.data(), W)
                  : model_error(fmt::format("stage '{}': all {} rows scored non-finite", st.config.name, k));
  };
  GuardedCallReport rep;
  const TimePoint start = now;
  Status s = guarded_call(*o.breaker, *o.retry, clock_, deadline, now, o.attempt_timeout, attempt, rep);
  c.calls.fetch_add(1, std::memory_order_relaxed);
  const std::uint32_t carried = rep.attempts + hedges;
  if (whole) {  // pending is 0..n-1
    for (std::size_t r = 0; r < n; ++r) res.attempts[r] += carried;
  } else {
    for (std::uint32_t r : res.pending) res.attempts[r] += carried;
  }
  if (bulkhead.adaptive()) {
    const bool dropped = s.code() == StatusCode::kDeadlineExceeded || s.code() == StatusCode::kOverloaded;
    slot.release(clock_.now() - start, dropped);
  }
  slot.release();
  if (!s && !all_bad) {
    std::atomic<std::uint64_t>& counter = rep.rejected                                   ? c.breaker_rejections
                                          : s.code() == StatusCode::kDeadlineExceeded ? c.timeouts
                                                                                      : c.errors;
    fail_all(std::move(s), counter);
    return;
  }
  if (s.is_ok() && bad_rows == 0) {  // every row answered (checked in the attempt)
    if (n == 1) {  // no library call for one row
      res.stage[0] = static_cast<std::uint8_t>(index);
    } else if (whole) {
      std::fill_n(res.stage.begin(), n, static_cast<std::uint8_t>(index));
    } else {
      for (std::size_t j = 0; j < k; ++j) {
        const std::uint32_t r = res.pending[j];
        std::copy_n(&dst[j * W], W, out.begin() + static_cast<std::ptrdiff_t>(r * W));
        res.stage[r] = static_cast<std::uint8_t>(index);
      }
    }
    res.answered[index] += static_cast<std::uint32_t>(k);
    res.pending.clear();
    return;
  }
  res.next.clear();
  for (std::size_t j = 0; j < k; ++j) {
    const std::uint32_t r = res.pending[j];
    const float* src = &dst[j * W];
    if (!finite_row(src, W)) {
      c.non_finite.fetch_add(1, std::memory_order_relaxed);
      res.failures.push_back({r, index, non_finite_error(st.config.name, src, W)});
      res.next.push_back(r);
      continue;
    }
    if (!whole) std::copy_n(src, W, out.begin() + static_cast<std::ptrdiff_t>(r * W));
    res.stage[r] = static_cast<std::uint8_t>(index);
    ++res.answered[index];
  }
  res.pending.swap(res.next);
}

Status FallbackChain::run_rows(std::span<const float> rows, std::size_t n, std::span<const std::uint32_t> pending,
                               std::span<float> out, Deadline deadline, TimePoint now, ChainRows& res,
                               std::span<const std::uint8_t> first_stage) noexcept {
  return run_rows_impl({rows, {}}, n, pending, out, deadline, now, res, first_stage);
}

Status FallbackChain::run_rows(std::span<const double> rows, std::size_t n, std::span<const std::uint32_t> pending,
                               std::span<float> out, Deadline deadline, TimePoint now, ChainRows& res,
                               std::span<const std::uint8_t> first_stage) noexcept {
  if (rows.empty() && n > 0) return invalid_input(fmt::format("rows: no values for {} rows", n));
  return run_rows_impl({{}, rows}, n, pending, out, deadline, now, res, first_stage);
}

Status FallbackChain::run_rows_impl(Rows rows, std::size_t n, std::span<const std::uint32_t> pending,
                                    std::span<float> out, Deadline deadline, TimePoint now, ChainRows& res,
                                    std::span<const std::uint8_t> first_stage) noexcept {
  try {
    if (rows.size() != n * num_features_) {
      return invalid_input(fmt::format("rows: {} values are not {} rows of the chain's {} features", rows.size(), n,
                                       num_features_));
    }
    if (out.size() < n * width_) {
      return invalid_input(fmt::format("output span holds {} floats, the chain writes {}", out.size(), n * width_));
    }
    if (!first_stage.empty() && first_stage.size() != n) {
      return invalid_input(fmt::format("first_stage has {} entries for {} rows", first_stage.size(), n));
    }
    reset_rows(res.stage, n, ChainRows::kNoStage);
    reset_rows(res.attempts, n, std::uint32_t{0});
    res.failures.clear();
    res.pending.clear();
    res.later.clear();
    // Each stage's count is zeroed as the loop below reaches it (a few
    // stores, where a separate loop would become a memset call).
    if (res.answered.size() != stages_.size()) res.answered.resize(stages_.size());
    // Every row pending and none routed (the common batch): pending is
    // 0..n-1, checked by a loop that vectorises, and copied whole.
    bool identity = first_stage.empty() && pending.size() == n;
    if (identity && n == 1) {  // one row: no loop set-up
      identity = pending[0] == 0;
    } else if (identity) {
      std::uint32_t off = 0;
      for (std::size_t j = 0; j < n; ++j) off |= pending[j] ^ static_cast<std::uint32_t>(j);
      identity = off == 0;
    }
    if (identity) {
      if (n == 1) {
        res.pending.push_back(0);
      } else {
        res.pending.assign(pending.begin(), pending.end());
      }
    }
    std::uint32_t prev = 0;
    for (std::size_t j = 0; j < pending.size() && !identity; ++j) {
      const std::uint32_t r = pending[j];
      if (r >= n || (j > 0 && r <= prev)) {
        return invalid_input(fmt::format("pending[{}] = {}: rows must be ascending, distinct and below {}", j, r, n));
      }
      prev = r;
      if (first_stage.empty() || first_stage[r] == 0) {
        res.pending.push_back(r);
      } else if (first_stage[r] >= stages_.size()) {
        return invalid_input(fmt::format("row {}: first stage {} of {}", r, first_stage[r], stages_.size()));
      } else {
        res.later.push_back(r);
      }
    }
    rows_in_->fetch_add(pending.size(), std::memory_order_relaxed);
    bool first_run = true;
    for (std::size_t i = 0; i < stages_.size(); ++i) {
      res.answered[i] = 0;
      if (!res.later.empty()) {  // rows that start here join, in row order
        bool joined = false;
        for (std::uint32_t r : res.later) {
          if (first_stage[r] == i) {
            res.pending.push_back(r);
            joined = true;
          }
        }
        if (joined) {
          std::erase_if(res.later, [&](std::uint32_t r) { return first_stage[r] == i; });
          std::sort(res.pending.begin(), res.pending.end());
        }
      }
      if (res.pending.empty()) continue;
      StageImpl& st = stages_[i];
      st.counters->entered.fetch_add(res.pending.size(), std::memory_order_relaxed);
      if (!st.config.model) {  // a default answers every row left
        const std::size_t W = st.width;
        for (std::uint32_t r : res.pending) {
          std::copy(st.config.constant.begin(), st.config.constant.end(),
                    out.begin() + static_cast<std::ptrdiff_t>(r * W));
          res.stage[r] = static_cast<std::uint8_t>(i);
        }
        res.answered[i] += static_cast<std::uint32_t>(res.pending.size());
        res.pending.clear();
        continue;
      }
      if (!first_run) now = clock_.now();
      first_run = false;
      run_model_stage(st, static_cast<std::uint32_t>(i), rows, n, out, deadline, now, res);
    }
    return Status::ok();
  } catch (...) {
    return internal_error("fallback chain: out of memory");
  }
}

Result<ChainOutcome> FallbackChain::run(std::span<const float> row, std::span<float> out, Deadline deadline,
                                        TimePoint now) noexcept {
  if (row.size() != num_features_) {
    return invalid_input(fmt::format("row has {} features, the chain's models take {}", row.size(), num_features_));
  }
  if (out.size() < width_) {
    return invalid_input(fmt::format("output span holds {} floats, the chain writes {}", out.size(), width_));
  }
  try {
    // One per thread, unless a model in this chain runs a chain itself.
    thread_local ChainRows shared;
    thread_local bool busy = false;
    ChainRows local;
    ChainRows& rs = busy ? local : shared;
    const bool owner = !busy;
    busy = true;
    static constexpr std::uint32_t kRow0 = 0;
    Status s = run_rows(row, 1, {&kRow0, 1}, out.first(width_), deadline, now, rs);
    if (owner) busy = false;
    if (!s) return s;
    ChainOutcome outcome;
    outcome.attempts = rs.attempts[0];
    for (RowFailure& f : rs.failures) {
      outcome.failures.push_back({f.stage, stages_[f.stage].config.name, std::move(f.status)});
    }
    if (rs.stage[0] == ChainRows::kNoStage) {
      const StatusCode code = outcome.failures.back().status.code();
      return Status(code, fmt::format("all {} stages failed: {}", stages_.size(), outcome.reason()));
    }
    outcome.stage = rs.stage[0];
    outcome.stage_name = stages_[outcome.stage].config.name;
    outcome.degraded = outcome.stage > 0;
    return outcome;
  } catch (...) {
    return internal_error("fallback chain: out of memory");
  }
}

ChainStats FallbackChain::stats() const {
  ChainStats cs;
  cs.requests = get(*rows_in_);
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    const StageImpl& st = stages_[i];
    const Counters& c = *st.counters;
    StageStats s;
    s.name = st.config.name;
    s.calls = get(c.calls);
    s.entered = get(c.entered);
    s.breaker_rejections = get(c.breaker_rejections);
    s.bulkhead_rejections = get(c.bulkhead_rejections);
    s.deadline_skips = get(c.deadline_skips);
    s.timeouts = get(c.timeouts);
    s.non_finite = get(c.non_finite);
    s.errors = get(c.errors);
    s.failed = s.breaker_rejections + s.bulkhead_rejections + s.deadline_skips + s.timeouts + s.non_finite + s.errors;
    s.answered = s.entered >= s.failed ? s.entered - s.failed : 0;
    const StageOptions& o = st.config.options;
    if (o.breaker) s.breaker = o.breaker->stats();
    if (o.retry) s.retry = o.retry->stats();
    if (o.bulkhead) s.bulkhead = o.bulkhead->stats();
    s.isolation = snapshot(*st.isolation);
    if (i > 0) cs.degraded += s.answered;
    cs.stages.push_back(std::move(s));
  }
  std::uint64_t answered = 0;
  for (const StageStats& s : cs.stages) answered += s.answered;
  cs.failed = cs.requests >= answered ? cs.requests - answered : 0;
  return cs;
}

}  // namespace keel
