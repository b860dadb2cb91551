#include <keel/resilience/fallback_chain.hpp>
#include <keel/resilience/guarded_call.hpp>

#include <fmt/format.h>

#include <cmath>
#include <set>

namespace keel {

struct FallbackChain::Counters {
  std::atomic<std::uint64_t> entered{0};
  std::atomic<std::uint64_t> breaker_rejections{0};
  std::atomic<std::uint64_t> bulkhead_rejections{0};
  std::atomic<std::uint64_t> deadline_skips{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> non_finite{0};
  std::atomic<std::uint64_t> errors{0};
};

namespace {

void inc(std::atomic<std::uint64_t>& c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }
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
    impl.counters = std::make_unique<Counters>();
    impl.config = std::move(s);
    stages_.push_back(std::move(impl));
  }
}

FallbackChain::~FallbackChain() = default;

Status FallbackChain::run_model_stage(StageImpl& st, std::span<const float> row, std::span<float> out,
                                      Deadline deadline, TimePoint now, std::uint32_t& attempts) noexcept {
  Counters& c = *st.counters;
  const StageOptions& o = st.config.options;
  if (deadline.expired(now)) {
    inc(c.deadline_skips);
    return deadline_exceeded(fmt::format("deadline passed before stage '{}'", st.config.name));
  }
  Bulkhead& bulkhead = *o.bulkhead;
  Bulkhead::Permit slot = bulkhead.acquire(deadline);
  if (!slot) {
    inc(c.bulkhead_rejections);
    return bulkhead.rejection();
  }
  const ModelPtr& model = st.config.model;
  const std::span<float> dst = out.first(st.width);
  std::uint32_t hedges = 0;
  bool non_finite = false;  // the last attempt's output was NaN/inf
  auto attempt = [&](Deadline attempt_deadline) noexcept -> Status {
    Status s;
    non_finite = false;
    if (o.isolation == Isolation::kIsolated) {
      const IsolatedCallOptions iso{o.hedge_delay, o.max_hedges, o.predict};
      IsolatedCallReport rep;
      s = call_isolated(*o.executor, model, row, dst, attempt_deadline, clock_, iso, st.isolation, &rep);
      if (rep.launched > 1) hedges += rep.launched - 1;
    } else {
      s = model->predict(row, 1, dst, o.predict);
    }
    if (!s) return s;
    for (std::size_t i = 0; i < dst.size(); ++i) {
      if (!std::isfinite(dst[i])) {
        non_finite = true;
        return model_error(fmt::format("stage '{}': output {} is {}", st.config.name, i,
                                       std::isnan(dst[i]) ? "NaN" : "infinite"));
      }
    }
    return s;
  };
  GuardedCallReport rep;
  const TimePoint start = now;
  Status s = guarded_call(*o.breaker, *o.retry, clock_, deadline, now, o.attempt_timeout, attempt, rep);
  attempts += rep.attempts + hedges;
  if (bulkhead.adaptive()) {
    const bool dropped = s.code() == StatusCode::kDeadlineExceeded || s.code() == StatusCode::kOverloaded;
    slot.release(clock_.now() - start, dropped);
  }
  if (!s) {
    if (rep.rejected) {
      inc(c.breaker_rejections);
    } else if (s.code() == StatusCode::kDeadlineExceeded) {
      inc(c.timeouts);
    } else if (non_finite) {
      inc(c.non_finite);
    } else {
      inc(c.errors);
    }
  }
  return s;
}

Result<ChainOutcome> FallbackChain::run(std::span<const float> row, std::span<float> out, Deadline deadline,
                                        TimePoint now) noexcept {
  if (row.size() != num_features_) {
    return invalid_input(fmt::format("row has {} features, the chain's models take {}", row.size(), num_features_));
  }
  if (out.size() < width_) {
    return invalid_input(fmt::format("output span holds {} floats, the chain writes {}", out.size(), width_));
  }
  ChainOutcome outcome;
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    StageImpl& st = stages_[i];
    inc(st.counters->entered);
    Status s;
    if (st.config.model) {
      if (i > 0) now = clock_.now();
      s = run_model_stage(st, row, out, deadline, now, outcome.attempts);
    } else {
      std::copy(st.config.constant.begin(), st.config.constant.end(), out.begin());
    }
    if (s) {
      outcome.stage = static_cast<std::uint32_t>(i);
      outcome.stage_name = st.config.name;
      outcome.degraded = i > 0;
      return outcome;
    }
    outcome.failures.push_back({static_cast<std::uint32_t>(i), st.config.name, std::move(s)});
  }
  const StatusCode code = outcome.failures.back().status.code();
  return Status(code, fmt::format("all {} stages failed: {}", stages_.size(), outcome.reason()));
}

ChainStats FallbackChain::stats() const {
  ChainStats cs;
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    const StageImpl& st = stages_[i];
    const Counters& c = *st.counters;
    StageStats s;
    s.name = st.config.name;
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
    if (i == 0) cs.requests = s.entered;
    if (i > 0) cs.degraded += s.answered;
    cs.stages.push_back(std::move(s));
  }
  std::uint64_t answered = 0;
  for (const StageStats& s : cs.stages) answered += s.answered;
  cs.failed = cs.requests >= answered ? cs.requests - answered : 0;
  return cs;
}

}  // namespace keel
