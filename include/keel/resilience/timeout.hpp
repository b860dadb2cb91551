#pragma once
// Timeouts that hold even when the model does not return: the call runs on
// a BoundedExecutor while the caller waits, on the injected Clock, until
// the attempt's deadline. A call that overruns returns kDeadlineExceeded on
// time; its eventual result is dropped (counted in late_results). The row is
// copied for the worker, so the caller's buffers may go away at once.
//
// Hedging: with a hedge delay, if the first attempt has not answered after
// that delay a second copy is submitted, and the first good answer wins
// (Dean & Barroso, "The Tail at Scale"). Use a delay near the model's
// observed p95 so that about 5 % of calls pay for a second attempt.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/status.hpp>
#include <keel/model/model.hpp>
#include <keel/resilience/executor.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

namespace keel {

struct IsolatedCallOptions {
  // Off (Duration::max()) by default: hedging doubles load on the slow tail.
  Duration hedge_delay = Duration::max();
  // Extra copies beyond the first (at most this many hedges per call).
  std::uint32_t max_hedges = 1;
  PredictOptions predict;
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

// Runs model.predict(row) into out on the executor, waiting until
// `deadline`. Errors: kDeadlineExceeded (late), kOverloaded (executor
// full), or the model's own error (the last one when every attempt failed).
// Thread-safe; noexcept (an allocation failure terminates).
[[nodiscard]] Status call_isolated(BoundedExecutor& executor, const ModelPtr& model, std::span<const float> row,
                                   std::span<float> out, Deadline deadline, Clock& clock,
                                   const IsolatedCallOptions& options = {},
                                   const std::shared_ptr<IsolationCounters>& counters = nullptr,
                                   IsolatedCallReport* report = nullptr) noexcept;

}  // namespace keel
