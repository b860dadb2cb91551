#pragma once
// Isolation: a model call that holds its deadline even when the model does
// not return. The call runs on a BoundedExecutor while the caller waits, on
// the injected Clock, until the attempt's deadline. A call that overruns
// returns kDeadlineExceeded on time; its eventual result is dropped
// (counted in late_results). The rows are copied for the worker, so the
// caller's buffers may go away at once. An isolated call may hedge
// (hedging.hpp). The deadline is also passed to the model in
// PredictOptions::deadline, so that a model that can stop early does.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/status.hpp>
#include <keel/model/model.hpp>
#include <keel/resilience/executor.hpp>
#include <keel/resilience/hedging.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace keel {

struct IsolatedCallOptions {
  HedgePolicy hedge;
  PredictOptions predict;  // its deadline is replaced by the call's
};

// Shared, thread-safe counters of isolated calls (workers may update them
// after the caller has returned, hence shared ownership).
struct IsolationCounters {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> late_results{0};  // answers that arrived after the caller left
  std::atomic<std::uint64_t> hedges{0};        // extra attempts launched
  std::atomic<std::uint64_t> hedge_wins{0};    // calls answered by a hedge
  std::atomic<std::uint64_t> rejected{0};      // executor queue full
};

// A plain snapshot of IsolationCounters, for metrics.
struct IsolationStats {
  std::uint64_t calls = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t late_results = 0;
  std::uint64_t hedges = 0;
  std::uint64_t hedge_wins = 0;
  std::uint64_t rejected = 0;
};
[[nodiscard]] IsolationStats snapshot(const IsolationCounters& c) noexcept;

struct IsolatedCallReport {
  std::uint32_t launched = 0;  // attempts submitted (1 + hedges)
  std::uint32_t winner = 0;    // 1-based index of the answering attempt, 0 if none
};

// Runs model.predict(rows, n_rows) into out on the executor, waiting until
// `deadline`. Errors: kDeadlineExceeded (late), kOverloaded (executor
// full), or the model's own error (the last one when every attempt failed).
// Thread-safe; noexcept (an allocation failure terminates).
[[nodiscard]] Status call_isolated(BoundedExecutor& executor, const ModelPtr& model, std::span<const float> rows,
                                   std::size_t n_rows, std::span<float> out, Deadline deadline, Clock& clock,
                                   const IsolatedCallOptions& options = {},
                                   const std::shared_ptr<IsolationCounters>& counters = nullptr,
                                   IsolatedCallReport* report = nullptr) noexcept;
// The same for float64 rows (Model::predict's double overload: a LightGBM
// model compares them in double).
[[nodiscard]] Status call_isolated(BoundedExecutor& executor, const ModelPtr& model, std::span<const double> rows,
                                   std::size_t n_rows, std::span<float> out, Deadline deadline, Clock& clock,
                                   const IsolatedCallOptions& options = {},
                                   const std::shared_ptr<IsolationCounters>& counters = nullptr,
                                   IsolatedCallReport* report = nullptr) noexcept;

// One row.
[[nodiscard]] inline Status call_isolated(BoundedExecutor& executor, const ModelPtr& model,
                                          std::span<const float> row, std::span<float> out, Deadline deadline,
                                          Clock& clock, const IsolatedCallOptions& options = {},
                                          const std::shared_ptr<IsolationCounters>& counters = nullptr,
                                          IsolatedCallReport* report = nullptr) noexcept {
  return call_isolated(executor, model, row, 1, out, deadline, clock, options, counters, report);
}

}  // namespace keel
