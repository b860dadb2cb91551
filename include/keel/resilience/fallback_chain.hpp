#pragma once
// FallbackChain: ordered stages (primary model, fallback models, a default
// value) tried in turn until one answers. Each model stage has its own
// CircuitBreaker, RetryPolicy, Bulkhead and isolation:
//
//   deadline passed?   → skip to the next stage (DeadlineExceeded)
//   bulkhead full?     → next stage (Overloaded, shed)
//   per attempt: breaker open → next stage (Unavailable);
//                predict inline, or isolated on a BoundedExecutor with a
//                per-attempt timeout (late results dropped) and hedging;
//                NaN/inf in the output → ModelError (a stage failure);
//                retryable error → backoff within the deadline, then retry.
//
// The answer says which stage answered, whether that is degraded (any
// stage but the first), every earlier stage's failure, and the attempts
// made. A default stage (a constant) answers even after the deadline: it
// costs nothing and beats an error. With no default stage, all stages
// failing is an error naming each stage's reason.
//
// Unset policies default to null objects (CircuitBreaker::never_open,
// RetryPolicy::no_retry, Bulkhead::unlimited), so run() has no null checks.
// Policies are shared_ptrs: share one breaker between chains calling the
// same dependency. Configuration errors throw keel::Error at construction.
//
// Thread-safe: run() may be called concurrently; the chain is immutable
// after construction and its policies are thread-safe.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/result.hpp>
#include <keel/model/model.hpp>
#include <keel/resilience/bulkhead.hpp>
#include <keel/resilience/circuit_breaker.hpp>
#include <keel/resilience/executor.hpp>
#include <keel/resilience/retry_policy.hpp>
#include <keel/resilience/timeout.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keel {

// kInline: predict() on the caller's thread (local models; microseconds,
// no hand-off; a timeout cannot be enforced). kIsolated: on an executor,
// so attempt_timeout holds even if the model hangs.
enum class Isolation : std::uint8_t { kInline, kIsolated };

struct StageOptions {
  std::shared_ptr<CircuitBreaker> breaker;  // null: never opens
  std::shared_ptr<RetryPolicy> retry;       // null: one attempt
  std::shared_ptr<Bulkhead> bulkhead;       // null: unlimited
  Isolation isolation = Isolation::kInline;
  std::shared_ptr<BoundedExecutor> executor;  // required when isolated
  // Per attempt, inside the request's deadline; isolated stages only.
  Duration attempt_timeout = Duration::max();
  // Isolated stages only; see timeout.hpp.
  Duration hedge_delay = Duration::max();
  std::uint32_t max_hedges = 1;
  PredictOptions predict;
};

struct Stage {
  std::string name;
  ModelPtr model;                // null for a default stage
  std::vector<float> constant;   // a default stage's scores
  StageOptions options;
};

[[nodiscard]] Stage model_stage(std::string name, ModelPtr model, StageOptions options = {});
[[nodiscard]] Stage default_stage(std::vector<float> scores, std::string name = "default");

struct StageFailure {
  std::uint32_t stage = 0;
  std::string_view name;  // owned by the chain
  Status status;
};

struct ChainOutcome {
  std::uint32_t stage = 0;     // index of the stage that answered
  std::string_view stage_name; // owned by the chain
  bool degraded = false;       // answered by any stage but the first
  std::uint32_t attempts = 0;  // model calls made, retries and hedges included
  std::vector<StageFailure> failures;  // the earlier stages' reasons, in order
  // "primary: unavailable: circuit 'primary' is open; fallback: ..."
  [[nodiscard]] std::string reason() const;
};

// Per-stage counters; `answered` = entered - the failures.
struct StageStats {
  std::string name;
  std::uint64_t entered = 0;
  std::uint64_t answered = 0;
  std::uint64_t failed = 0;
  std::uint64_t breaker_rejections = 0;
  std::uint64_t bulkhead_rejections = 0;
  std::uint64_t deadline_skips = 0;
  std::uint64_t timeouts = 0;     // failed with DeadlineExceeded after running
  std::uint64_t non_finite = 0;   // outputs with NaN/inf
  std::uint64_t errors = 0;       // other model errors
  BreakerStats breaker;
  RetryStats retry;
  BulkheadStats bulkhead;
  IsolationStats isolation;
};

struct ChainStats {
  std::uint64_t requests = 0;  // runs past input validation
  std::uint64_t degraded = 0;  // answered by a later stage
  std::uint64_t failed = 0;    // no stage answered
  std::vector<StageStats> stages;
};

class FallbackChain {
 public:
  // Throws keel::Error (kInvalidInput) naming the stage and the problem:
  // no stages, a model stage without a model, a default stage that is not
  // last, models disagreeing on features or output width, a default of the
  // wrong width, isolation options without isolation or an executor.
  explicit FallbackChain(std::vector<Stage> stages, Clock& clock = system_clock());
  ~FallbackChain();
  FallbackChain(const FallbackChain&) = delete;
  FallbackChain& operator=(const FallbackChain&) = delete;

  // Scores one row into out (≥ width() floats). Errors: kInvalidInput for a
  // row of the wrong length or a short out; otherwise, with no default
  // stage and every stage failing, the last stage's code with every
  // stage's reason. `now` is the caller's current time (saves a clock read).
  [[nodiscard]] Result<ChainOutcome> run(std::span<const float> row, std::span<float> out, Deadline deadline,
                                         TimePoint now) noexcept;
  [[nodiscard]] Result<ChainOutcome> run(std::span<const float> row, std::span<float> out,
                                         Deadline deadline = Deadline::never()) noexcept {
    return run(row, out, deadline, clock_.now());
  }

  [[nodiscard]] std::size_t num_features() const noexcept { return num_features_; }
  [[nodiscard]] std::size_t width() const noexcept { return width_; }
  [[nodiscard]] std::size_t size() const noexcept { return stages_.size(); }
  // The stage as configured, null objects filled in (e.g. to add breaker
  // listeners or read a FaultInjector).
  [[nodiscard]] const Stage& stage(std::size_t i) const { return stages_.at(i).config; }
  [[nodiscard]] ChainStats stats() const;

 private:
  struct Counters;
  struct StageImpl {
    Stage config;
    std::size_t width = 0;
    std::shared_ptr<IsolationCounters> isolation;
    std::unique_ptr<Counters> counters;
  };
  Status run_model_stage(StageImpl& st, std::span<const float> row, std::span<float> out, Deadline deadline,
                         TimePoint now, std::uint32_t& attempts) noexcept;

  std::vector<StageImpl> stages_;
  Clock& clock_;
  std::size_t num_features_ = 0;
  std::size_t width_ = 0;
};

}  // namespace keel
