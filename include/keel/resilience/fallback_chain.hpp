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
// A stage holds its bulkhead slot across its retries and their backoff.
// The answer says which stage answered, whether that is degraded (any
// stage but the first), every earlier stage's failure, and the attempts
// made. A default stage (a constant) answers even after the deadline: it
// costs nothing and beats an error. With no default stage, all stages
// failing is an error naming each stage's reason.
//
// run_rows() is the one implementation: run() is a batch of one. A batch
// makes one model call per stage for all the rows still pending, through
// the same bulkhead rule (wait for a slot until the deadline), the same
// breaker, retry, isolation, per-attempt timeout and hedging. A row whose
// output is not finite falls to the next stage alone.
//
// How a batch counts toward a breaker: one model call is one outcome, as a
// call to a remote dependency is one request. The call is a failure when
// it errs (or times out) or when every row it scored came back non-finite;
// it is a success when at least one row came back finite (the bad rows
// fall through on their own and count in StageStats::non_finite). For one
// row this is exactly the single-row rule. Retries retry the whole call;
// an open breaker rejects the whole call (one rejection in BreakerStats).
// A batch of N rows thus weighs in a breaker's window as one request, not
// N: a dependency's health is judged by its calls, and one big batch cannot
// trip (or heal) a breaker N times over.
//
// chain()->stats() counts rows, so that a batch of N rows and N single
// requests give the same row counts: ChainStats requests/degraded/failed,
// StageStats entered/answered and the failures by kind (a rejected or
// erring call adds every row it carried). StageStats::calls counts model
// calls (a batch is one), as do the embedded BreakerStats and RetryStats.
// test_fallback_chain.cpp ("a batch is one model call and one breaker
// outcome") holds this.
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
#include <keel/resilience/isolation.hpp>

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
  // Isolated stages only; see hedging.hpp.
  Duration hedge_delay = Duration::max();
  std::uint32_t max_hedges = 1;
  // Its deadline is replaced by each attempt's deadline.
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

// Per row that ran through a chain with run_rows(): which stage answered,
// how many model calls carried it, and every stage failure on the way.
// Reuse one per thread: it keeps its capacity. Not thread-safe.
struct RowFailure {
  std::uint32_t row = 0;
  std::uint32_t stage = 0;
  Status status;
};
struct ChainRows {
  static constexpr std::uint8_t kNoStage = 0xFF;
  std::vector<std::uint8_t> stage;      // per row: the stage that answered, kNoStage if none (or not pending)
  std::vector<std::uint32_t> attempts;  // per row: model calls that carried it, retries and hedges included
  std::vector<RowFailure> failures;     // in stage order for each row
  std::vector<std::uint32_t> answered;  // per stage: the rows it answered
  // Working lists of run_rows.
  std::vector<std::uint32_t> pending, next, later;
  std::vector<float> gather, out;
  std::vector<double> gather64;
};

// Per-stage counters, in rows; `answered` = entered - the failures.
struct StageStats {
  std::string name;
  std::uint64_t calls = 0;    // model calls (a batch is one call)
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
  std::uint64_t requests = 0;  // rows that entered the chain (at any first stage)
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
  // The same, continuing the row and call counts of `previous` (the chain
  // this one replaces, e.g. on a model reload): stats() then counts across
  // both, stage by stage name; a stage `previous` lacks starts at zero.
  // Calls still running on `previous` keep counting into the shared totals.
  FallbackChain(std::vector<Stage> stages, Clock& clock, const FallbackChain& previous);
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

  // Scores the rows listed in `pending` (ascending, distinct, < n) of `rows`
  // (n rows of num_features(), row-major) into `out` (n * width() floats;
  // rows no stage answers are left as they were). `first_stage`, when not
  // empty, holds n entries: the stage each row starts at (anomaly routing
  // starts a row at stage 1). Per-row outcomes go to `result`. Errors are
  // only for wrong shapes (kInvalidInput); stage failures are per row.
  [[nodiscard]] Status run_rows(std::span<const float> rows, std::size_t n, std::span<const std::uint32_t> pending,
                                std::span<float> out, Deadline deadline, TimePoint now, ChainRows& result,
                                std::span<const std::uint8_t> first_stage = {}) noexcept;
  // The same for float64 rows: every model stage is called with the doubles
  // (Model::predict's double overload), so a model whose library compares
  // in double (LightGBM) answers as that library does on double data.
  [[nodiscard]] Status run_rows(std::span<const double> rows, std::size_t n, std::span<const std::uint32_t> pending,
                                std::span<float> out, Deadline deadline, TimePoint now, ChainRows& result,
                                std::span<const std::uint8_t> first_stage = {}) noexcept;

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
    std::shared_ptr<Counters> counters;  // shared with the chain this one continues
  };
  // The rows of one run: float or float64 (exactly one is set).
  struct Rows {
    std::span<const float> f;
    std::span<const double> d;
    [[nodiscard]] std::size_t size() const noexcept { return d.empty() ? f.size() : d.size(); }
  };
  Status run_rows_impl(Rows rows, std::size_t n, std::span<const std::uint32_t> pending, std::span<float> out,
                       Deadline deadline, TimePoint now, ChainRows& result,
                       std::span<const std::uint8_t> first_stage) noexcept;
  void run_model_stage(StageImpl& st, std::uint32_t index, Rows rows, std::size_t n, std::span<float> out,
                       Deadline deadline, TimePoint now, ChainRows& res) noexcept;

  std::vector<StageImpl> stages_;
  std::shared_ptr<std::atomic<std::uint64_t>> rows_in_ = std::make_shared<std::atomic<std::uint64_t>>(0);
  Clock& clock_;
  std::size_t num_features_ = 0;
  std::size_t width_ = 0;
};

}  // namespace keel
