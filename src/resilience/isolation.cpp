#include <keel/resilience/detail/wait.hpp>
#include <keel/resilience/isolation.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <type_traits>
#include <vector>

namespace keel {

namespace {

// What the caller and its attempts share; outlives the caller when an
// attempt is still running (the late result lands here and is dropped).
struct CallState {
  std::vector<float> rows;     // immutable once launched
  std::vector<double> rows64;  // or these, for a float64 call
  std::size_t n_rows = 0;
  std::size_t width = 0;  // per row
  PredictOptions opts;
  std::shared_ptr<IsolationCounters> counters;

  std::mutex mu;  // guards the members below
  std::condition_variable cv;
  std::vector<float> result;
  Status last_error;
  std::uint32_t launched = 0;
  std::uint32_t finished = 0;
  std::uint32_t winner = 0;
  bool done = false;
  bool abandoned = false;
};

void bump(const std::shared_ptr<IsolationCounters>& c, std::atomic<std::uint64_t> IsolationCounters::*field) {
  if (c) ((*c).*field).fetch_add(1, std::memory_order_relaxed);
}

bool launch(BoundedExecutor& executor, const std::shared_ptr<CallState>& st, const ModelPtr& model,
            std::uint32_t index) {
  return executor.try_submit([st, model, index] {
    {
      std::lock_guard lock(st->mu);
      if (st->done || st->abandoned) return;  // not started in time, or a sibling answered
    }
    std::vector<float> buf(st->width * st->n_rows);
    Status s = st->rows64.empty() ? model->predict(st->rows, st->n_rows, buf, st->opts)
                                  : model->predict(st->rows64, st->n_rows, buf, st->opts);
    std::lock_guard lock(st->mu);
    ++st->finished;
    if (st->abandoned) {
      bump(st->counters, &IsolationCounters::late_results);
      return;
    }
    if (st->done) return;  // lost to a sibling
    if (s.is_ok()) {
      st->result = std::move(buf);
      st->done = true;
      st->winner = index;
    } else {
      st->last_error = std::move(s);
    }
    st->cv.notify_all();
  });
}

}  // namespace

namespace {

template <class T>
Status isolated(BoundedExecutor& executor, const ModelPtr& model, std::span<const T> rows, std::size_t n_rows,
                std::span<float> out, Deadline deadline, Clock& clock, const IsolatedCallOptions& options,
                const std::shared_ptr<IsolationCounters>& counters, IsolatedCallReport* report) noexcept {
  bump(counters, &IsolationCounters::calls);
  const std::size_t width = model->info().width(options.predict.output);
  if (out.size() < width * n_rows) {
    return invalid_input(fmt::format("output span holds {} floats, model '{}' writes {}", out.size(),
                                     model->info().id, width * n_rows));
  }
  auto st = std::make_shared<CallState>();
  if constexpr (std::is_same_v<T, double>) {
    st->rows64.assign(rows.begin(), rows.end());
  } else {
    st->rows.assign(rows.begin(), rows.end());
  }
  st->n_rows = n_rows;
  st->width = width;
  st->opts = options.predict;
  st->opts.threads = 1;
  st->opts.deadline = deadline;
  st->counters = counters;

  TimePoint now = clock.now();
  if (deadline.expired(now)) {
    bump(counters, &IsolationCounters::timeouts);
    return deadline_exceeded(fmt::format("model '{}': deadline passed before the call", model->info().id));
  }
  std::unique_lock lock(st->mu);
  if (!launch(executor, st, model, 1)) {
    bump(counters, &IsolationCounters::rejected);
    return overloaded(fmt::format("model '{}': executor queue full", model->info().id));
  }
  st->launched = 1;
  TimePoint hedge_at = options.hedge.next_at(1, now);
  const bool real = detail::is_real_clock(clock);
  auto finish = [&](Status s) {
    if (report) *report = {st->launched, st->winner};
    return s;
  };

  for (;;) {
    const TimePoint wake = std::min(hedge_at, deadline.time());
    detail::wait_until(st->cv, lock, clock, real, wake, [&] { return st->done || st->finished == st->launched; });
    if (st->done) {
      std::copy(st->result.begin(), st->result.end(), out.begin());
      if (st->winner > 1) bump(counters, &IsolationCounters::hedge_wins);
      return finish(Status::ok());
    }
    if (st->finished == st->launched) return finish(st->last_error);
    now = clock.now();
    if (deadline.expired(now)) {
      st->abandoned = true;
      bump(counters, &IsolationCounters::timeouts);
      return finish(deadline_exceeded(fmt::format("model '{}': no answer within the deadline ({} attempt{})",
                                                  model->info().id, st->launched, st->launched == 1 ? "" : "s")));
    }
    if (now >= hedge_at) {
      if (st->launched - 1 < options.hedge.max_hedges && launch(executor, st, model, st->launched + 1)) {
        ++st->launched;
        bump(counters, &IsolationCounters::hedges);
        hedge_at = options.hedge.next_at(st->launched, now);
      } else {
        hedge_at = TimePoint::max();  // no more hedges (limit reached or executor full)
      }
    }
  }
}

}  // namespace

Status call_isolated(BoundedExecutor& executor, const ModelPtr& model, std::span<const float> rows,
                     std::size_t n_rows, std::span<float> out, Deadline deadline, Clock& clock,
                     const IsolatedCallOptions& options, const std::shared_ptr<IsolationCounters>& counters,
                     IsolatedCallReport* report) noexcept {
  return isolated(executor, model, rows, n_rows, out, deadline, clock, options, counters, report);
}

Status call_isolated(BoundedExecutor& executor, const ModelPtr& model, std::span<const double> rows,
                     std::size_t n_rows, std::span<float> out, Deadline deadline, Clock& clock,
                     const IsolatedCallOptions& options, const std::shared_ptr<IsolationCounters>& counters,
                     IsolatedCallReport* report) noexcept {
  return isolated(executor, model, rows, n_rows, out, deadline, clock, options, counters, report);
}

}  // namespace keel

namespace keel {

IsolationStats snapshot(const IsolationCounters& c) noexcept {
  auto r = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {r(c.calls), r(c.timeouts), r(c.late_results), r(c.hedges), r(c.hedge_wins), r(c.rejected)};
}

}  // namespace keel
