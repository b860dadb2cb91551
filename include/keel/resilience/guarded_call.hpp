#pragma once
// guarded_call: one call through a CircuitBreaker and a RetryPolicy, the
// composition every chain stage uses (retry outside, breaker per attempt,
// as resilience4j's Retry(CircuitBreaker(call))). Header-only so the
// closed-breaker, first-try-success path inlines to an atomic load, the
// attempt, and the window update: no lock, no allocation, and no clock read
// unless the breaker measures durations.
//
// A breaker rejection ends the call at once (not retried: another stage is
// a better bet than waiting for this one). Backoff sleeps go through the
// Clock, so ManualClock tests never sleep.

#include <keel/core/clock.hpp>
#include <keel/core/deadline.hpp>
#include <keel/core/status.hpp>
#include <keel/resilience/circuit_breaker.hpp>
#include <keel/resilience/retry_policy.hpp>

#include <cstdint>
#include <utility>

namespace keel {

struct GuardedCallReport {
  std::uint32_t attempts = 0;  // attempts that ran
  bool rejected = false;       // the breaker refused an attempt
};

// `attempt(Deadline attempt_deadline)` returns Status; it must be noexcept
// in spirit (it runs on the scoring path). `attempt_timeout` bounds each
// attempt inside `deadline` (Duration::max() for none). `now` is the
// caller's current time, so the happy path reads no clock.
template <class Attempt>
Status guarded_call(CircuitBreaker& breaker, RetryPolicy& retry, Clock& clock, Deadline deadline, TimePoint now,
                    Duration attempt_timeout, Attempt&& attempt, GuardedCallReport& report) noexcept {
  retry.on_request();
  const bool timed = breaker.measures_duration();
  Duration previous_backoff = Duration::zero();
  for (std::uint32_t n = 1;; ++n) {
    const CircuitBreaker::Permit permit = breaker.try_acquire(now);
    if (!permit) {
      report.rejected = true;
      return breaker.rejection();
    }
    const Deadline attempt_deadline =
        attempt_timeout == Duration::max() ? deadline : deadline.min_with_timeout(attempt_timeout, now);
    const TimePoint start = timed ? clock.now() : now;
    ++report.attempts;
    Status s = attempt(attempt_deadline);
    if (s.is_ok() && !timed) {
      breaker.on_success(permit, now);
      return s;
    }
    const TimePoint end = clock.now();
    breaker.record(permit, s.code(), end - start, end);
    if (s.is_ok()) return s;
    const RetryDecision d = retry.next(s, n, previous_backoff, deadline, end);
    if (!d.retry) return s;
    previous_backoff = d.backoff;
    clock.sleep_until(d.at);
    now = clock.now();
  }
}

}  // namespace keel
